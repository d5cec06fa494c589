"""Persistent state: SQLAlchemy models and the repository functions. The only module that
builds queries; the service layer calls these functions inside one transaction per request.

Uniqueness that matters for correctness lives in the database, not only in Python:
- ``ipallocations``: one row per (subnet, address) -> two ports (router gateways, floating IPs,
  VM ports) can never hold the same address, whatever the interleaving of requests;
- ``floatingips``: one per (floating network, fixed port, fixed address), as in Neutron;
- ``networks.local_vlan``: one tenant network per tag on the integration bridge;
- ``ports.mac_address`` per network.
"""
from __future__ import annotations

import datetime as dt
from typing import ClassVar

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None)


# 64 bits: PostgreSQL transaction ids (SQLite's INTEGER is 64 bits already)
BIG = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class _Standard:
    """Neutron's standard attributes."""
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Network(_Standard, Base):
    __tablename__ = "networks"
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
    network_type: Mapped[str] = mapped_column(String(16), default="local")
    physical_network: Mapped[str | None] = mapped_column(String(64), nullable=True)
    segmentation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    local_vlan: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)  # new ports' default
    dns_domain: Mapped[str] = mapped_column(String(255), default="")  # dns-integration
    subnets: Mapped[list["Subnet"]] = relationship(back_populates="network",
                                                   order_by="Subnet.created_at")


class Subnet(_Standard, Base):
    __tablename__ = "subnets"
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    cidr: Mapped[str] = mapped_column(String(64))
    ip_version: Mapped[int] = mapped_column(Integer, default=4)
    gateway_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    allocation_pools: Mapped[list] = mapped_column(JSON, default=list)
    dns_nameservers: Mapped[list] = mapped_column(JSON, default=list)
    host_routes: Mapped[list] = mapped_column(JSON, default=list)
    ipv6_ra_mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    ipv6_address_mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # the pool its CIDR came from (Neutron's subnet_allocation); no foreign key, as Neutron's
    subnetpool_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    network: Mapped[Network] = relationship(back_populates="subnets")


class Port(_Standard, Base):
    __tablename__ = "ports"
    __table_args__ = (UniqueConstraint("network_id", "mac_address", name="uniq_ports0network_id0mac"),
                      Index("ix_ports_created_at_id", "created_at", "id"),
                      # a network's ports, and its router interfaces (floating IP
                      # association) without every port on it or every router's interfaces
                      Index("ix_ports_network_id_device_owner", "network_id", "device_owner"))
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"))
    mac_address: Mapped[str] = mapped_column(String(32))
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    device_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    device_owner: Mapped[str] = mapped_column(String(255), default="", index=True)
    host_id: Mapped[str] = mapped_column(String(255), default="")
    # floatip-metadata extension: what the port's VM reads from 169.254.169.254
    user_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    public_keys: Mapped[list] = mapped_column(JSON, default=list)  # [[name, key], ...]
    # port security: off for trusted (network:*) ports; ports made before it existed: off
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # [{"ip_address": IP or CIDR, "mac_address": MAC}], the MAC filled in (Neutron's)
    allowed_address_pairs: Mapped[list] = mapped_column(JSON, default=list)
    # extra_dhcp_opt: [{"opt_name", "opt_value", "ip_version"}], one per (name, version)
    extra_dhcp_opts: Mapped[list] = mapped_column(JSON, default=list)
    dns_name: Mapped[str] = mapped_column(String(255), default="")  # dns-integration
    dns_domain: Mapped[str] = mapped_column(String(255), default="")  # dns-domain-ports
    sg_bindings: Mapped[list["PortSecurityGroup"]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="selectin",
        order_by="PortSecurityGroup.security_group_id")
    fixed_ips: Mapped[list["IPAllocation"]] = relationship(
        back_populates="port", cascade="all, delete-orphan", order_by="IPAllocation.ip_address",
        lazy="selectin")


class IPAllocation(Base):
    __tablename__ = "ipallocations"
    subnet_id: Mapped[str] = mapped_column(ForeignKey("subnets.id"), primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"), index=True)
    network_id: Mapped[str] = mapped_column(String(36))
    port: Mapped[Port] = relationship(back_populates="fixed_ips")


class Router(_Standard, Base):
    __tablename__ = "routers"
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    gw_port_id: Mapped[str | None] = mapped_column(ForeignKey("ports.id"), nullable=True,
                                                   index=True)  # a port delete checks it
    enable_snat: Mapped[bool] = mapped_column(Boolean, default=True)
    routes: Mapped[list] = mapped_column(JSON, default=list)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # why ERROR
    # Neutron's qos-gateway-ip: the QoS policy of the gateway's address
    qos_policy_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)


class RouterPort(Base):
    __tablename__ = "routerports"
    router_id: Mapped[str] = mapped_column(ForeignKey("routers.id", ondelete="CASCADE"),
                                           index=True)
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"),
                                         primary_key=True)
    port_type: Mapped[str] = mapped_column(String(255))


class FloatingIP(Base):
    __tablename__ = "floatingips"
    __table_args__ = (UniqueConstraint("floating_network_id", "fixed_port_id", "fixed_ip_address",
                                       name="uniq_floatingips0floatingnetworkid0fixedportid0fixedipaddress"),
                      Index("ix_floatingips_created_at_id", "created_at", "id"))
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    floating_ip_address: Mapped[str] = mapped_column(String(64))
    floating_network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"))
    floating_subnet_id: Mapped[str] = mapped_column(String(36))
    floating_port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"),
                                                  index=True)
    fixed_port_id: Mapped[str | None] = mapped_column(ForeignKey("ports.id"), nullable=True,
                                                      index=True)
    fixed_ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    router_id: Mapped[str | None] = mapped_column(ForeignKey("routers.id"), nullable=True,
                                                  index=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # why ERROR
    qos_policy_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    dns_name: Mapped[str] = mapped_column(String(255), default="")    # dns-integration
    dns_domain: Mapped[str] = mapped_column(String(255), default="")
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Trunk(_Standard, Base):
    """Neutron's trunk: a parent port and its subports (VLANs inside the VM); API only."""
    __tablename__ = "trunks"
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id"), unique=True)


class SubPort(Base):
    __tablename__ = "subports"
    __table_args__ = (UniqueConstraint("trunk_id", "segmentation_type", "segmentation_id",
                                       name="uniq_subport0trunk_id0segmentation_type0"
                                            "segmentation_id"),)
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id"), primary_key=True)
    trunk_id: Mapped[str] = mapped_column(ForeignKey("trunks.id", ondelete="CASCADE"),
                                          index=True)
    segmentation_type: Mapped[str] = mapped_column(String(32))
    segmentation_id: Mapped[int] = mapped_column(Integer)


class SecurityGroup(_Standard, Base):
    __tablename__ = "securitygroups"
    stateful: Mapped[bool] = mapped_column(Boolean, default=True)
    rules: Mapped[list["SecurityGroupRule"]] = relationship(
        cascade="all, delete-orphan", order_by="SecurityGroupRule.created_at",
        foreign_keys="SecurityGroupRule.security_group_id", lazy="selectin")


class DefaultSecurityGroup(Base):
    """A project's ``default`` group: one per project, whatever the interleaving of the
    requests that create it on first use."""
    __tablename__ = "default_security_groups"
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("securitygroups.id", ondelete="CASCADE"), unique=True)


class AddressGroup(_Standard, Base):
    __tablename__ = "address_groups"
    addresses: Mapped[list] = mapped_column(JSON, default=list)  # CIDRs, host bits cleared


class SecurityGroupRule(Base):
    """As the user gave it (protocol by name or number); ``core.model`` gets it normalised."""
    __tablename__ = "securitygrouprules"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("securitygroups.id", ondelete="CASCADE"), index=True)
    remote_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("securitygroups.id", ondelete="CASCADE"), nullable=True, index=True)
    # an address group in use by a rule cannot be deleted (AddressGroupInUse)
    remote_address_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("address_groups.id"), nullable=True, index=True)
    direction: Mapped[str] = mapped_column(String(16))
    ethertype: Mapped[str] = mapped_column(String(8), default="IPv4")
    protocol: Mapped[str | None] = mapped_column(String(40), nullable=True)
    port_range_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    port_range_max: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(255), nullable=True)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class PortForwarding(Base):
    """Neutron's floating IP port forwarding: (floating IP, protocol, external ports) ->
    (internal port's fixed IP, internal ports). A single port is a range of one. The
    unique keys settle concurrent creates of the same external or internal socket."""
    __tablename__ = "portforwardings"
    __table_args__ = (UniqueConstraint("floatingip_id", "protocol", "external_port_start",
                                       "external_port_end",
                                       name="uniq_portforwardings0fip0protocol0external"),
                      UniqueConstraint("protocol", "internal_port_id", "internal_ip_address",
                                       "internal_port_start", "internal_port_end",
                                       name="uniq_portforwardings0protocol0internal"))
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    floatingip_id: Mapped[str] = mapped_column(ForeignKey("floatingips.id", ondelete="CASCADE"),
                                               index=True)
    internal_port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"),
                                                  index=True)
    protocol: Mapped[str] = mapped_column(String(40))
    internal_ip_address: Mapped[str] = mapped_column(String(64))
    internal_port_start: Mapped[int] = mapped_column(Integer)
    internal_port_end: Mapped[int] = mapped_column(Integer)
    external_port_start: Mapped[int] = mapped_column(Integer)
    external_port_end: Mapped[int] = mapped_column(Integer)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class QosPolicy(Base):
    """Neutron's QoS policy; floating IPs and router gateways name it by
    ``qos_policy_id`` (the API refuses to delete one in use)."""
    __tablename__ = "qos_policies"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class QosBandwidthLimitRule(Base):
    """One per (policy, direction), as Neutron's unique key."""
    __tablename__ = "qos_bandwidth_limit_rules"
    __table_args__ = (UniqueConstraint("qos_policy_id", "direction",
                                       name="qos_bandwidth_rules0qos_policy_id0direction"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    qos_policy_id: Mapped[str] = mapped_column(
        ForeignKey("qos_policies.id", ondelete="CASCADE"), index=True)
    max_kbps: Mapped[int] = mapped_column(Integer, default=0)
    max_burst_kbps: Mapped[int] = mapped_column(Integer, default=0)
    direction: Mapped[str] = mapped_column(String(16), default="egress")


class _Rbac:
    """Neutron's RBAC entry (rbac_db_models.RBACColumns): ``target_project`` (``*``: every
    project) may ``action`` the object ``object_id``, a row of ``OBJECTS``; one entry per
    (action, object, target), the constraint named ``UNIQUE`` as Neutron's."""
    OBJECTS: ClassVar[str]
    UNIQUE: ClassVar[str]
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    action: Mapped[str] = mapped_column(String(255))
    target_project: Mapped[str] = mapped_column(String(255), index=True)

    @declared_attr
    def object_id(cls) -> Mapped[str]:
        return mapped_column(ForeignKey(f"{cls.OBJECTS}.id", ondelete="CASCADE"), index=True)

    @declared_attr.directive
    def __table_args__(cls) -> tuple:
        return (UniqueConstraint("action", "object_id", "target_project", name=cls.UNIQUE),)


class NetworkRbac(_Rbac, Base):
    """Neutron's network RBAC entry (``networkrbacs``): the network ``object_id`` is shared
    with (``access_as_shared``) or usable as external by (``access_as_external``)
    ``target_project``, or every project for ``*``; ``networks.shared`` mirrors the
    ``*`` access_as_shared entry."""
    __tablename__ = "networkrbacs"
    OBJECTS = "networks"
    UNIQUE = "uniq_networkrbacs0target_project0object_id0action"


class AddressScope(Base):
    """Neutron's address scope: subnet pools in one scope never overlap (no standard
    attributes, as Neutron's)."""
    __tablename__ = "address_scopes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    ip_version: Mapped[int] = mapped_column(Integer)


class SubnetPool(_Standard, Base):
    """Neutron's subnet pool: ``prefixes`` (compacted CIDRs) hand out subnets of
    ``min_prefixlen``..``max_prefixlen``; ``default_quota``: a project's share, in /32
    (IPv4) or /64 (IPv6) units, None for no limit."""
    __tablename__ = "subnetpools"
    ip_version: Mapped[int] = mapped_column(Integer)
    default_prefixlen: Mapped[int] = mapped_column(Integer)
    min_prefixlen: Mapped[int] = mapped_column(Integer)
    max_prefixlen: Mapped[int] = mapped_column(Integer)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    default_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)
    address_scope_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    prefixes: Mapped[list] = mapped_column(JSON, default=list)


class SubnetPoolRbac(_Rbac, Base):
    """Neutron's ``subnetpoolrbacs``: the pool ``object_id`` is shared with
    ``target_project`` (``*``: every project, the pool's ``shared``)."""
    __tablename__ = "subnetpoolrbacs"
    OBJECTS = "subnetpools"
    UNIQUE = "uniq_subnetpoolrbacs0target0object0action"


class AddressScopeRbac(_Rbac, Base):
    """Neutron's ``addressscoperbacs``, as ``subnetpoolrbacs`` for address scopes."""
    __tablename__ = "addressscoperbacs"
    OBJECTS = "address_scopes"
    UNIQUE = "uniq_addressscoperbacs0target0object0action"


class Quota(Base):
    """A project's limit for one resource, set by an admin (Neutron's ``quotas`` table);
    a resource without a row has the configured default."""
    __tablename__ = "quotas"
    __table_args__ = (UniqueConstraint("project_id", "resource",
                                       name="uniq_quotas0project_id0resource"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), index=True)
    resource: Mapped[str] = mapped_column(String(255))
    limit: Mapped[int] = mapped_column(Integer)


class PortSecurityGroup(Base):
    """A port's groups; a group with a port cannot be deleted (SecurityGroupInUse)."""
    __tablename__ = "securitygroupportbindings"
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"),
                                         primary_key=True)
    security_group_id: Mapped[str] = mapped_column(ForeignKey("securitygroups.id"),
                                                   primary_key=True, index=True)


class Tag(Base):
    """Neutron's standard-attr-tag: a resource's tags. ``resource``: its kind (``MODELS``'
    key); ids are UUIDs, so (resource, resource_id) names one row of one table. The index
    on (resource, tag) serves the list filters (``tags``, ``not-tags-any``, ...)."""
    __tablename__ = "tags"
    __table_args__ = (Index("ix_tags_resource_tag", "resource", "tag"),)
    resource: Mapped[str] = mapped_column(String(32), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tag: Mapped[str] = mapped_column(String(255), primary_key=True)


class DeletedRouter(Base):
    """Routers deleted through the API: an agent that missed the deletion still knows the
    namespace it finds is one of its own to remove."""
    __tablename__ = "deleted_routers"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deleted_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Meta(Base):
    """Key/value facts about the database itself: ``generation`` counts committed changes
    (SQLite); ``pruned``: the change feed reaches back to there (PostgreSQL)."""
    __tablename__ = "floatip_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BIG, default=0)


class Change(Base):
    """What each commit changed: (generation, resource, id), written in the commit's own
    transaction, so an agent at generation G reads exactly what happened after G. On
    PostgreSQL the generation is the transaction's id (``queries.bump_generation``)."""
    __tablename__ = "floatip_changes"
    generation: Mapped[int] = mapped_column(BIG, primary_key=True)
    resource: Mapped[str] = mapped_column(String(32), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)


class Info(Base):
    """Text facts about this database: ``instance_id``, the stable id of the floatip server
    that owns it (its routers, OVS ports and tables carry it)."""
    __tablename__ = "floatip_info"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), default="")


class Event(Base):
    """History: a status change or a repair of an object, with its reason and the change
    that caused it (bounded: ``store.events.KEEP`` newest rows)."""
    __tablename__ = "floatip_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    resource: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    kind: Mapped[str] = mapped_column(String(16))           # status | repair
    old_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    cause: Mapped[str | None] = mapped_column(Text, nullable=True)


MODELS = {"network": Network, "subnet": Subnet, "port": Port, "router": Router,
          "floatingip": FloatingIP, "security_group": SecurityGroup,
          "security_group_rule": SecurityGroupRule, "address_group": AddressGroup,
          "port_forwarding": PortForwarding, "subnetpool": SubnetPool,
          "policy": QosPolicy}  # a QoS policy: "policy" in Neutron's rule names
