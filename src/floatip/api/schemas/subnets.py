"""Subnets: create and update bodies with Neutron's CIDR, gateway and pool rules (those
that need no database), the response."""
from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema, model_validator

from .base import (STANDARD, UUID, Bool, Cidr, HostRoutes, Int, IPAddress, Name, Nameservers,
                   Pools, Resource, Str255, StrList, reason, refuse, request, shown)
from ...service.common import AUTO_MODES, IPV6_MODES, family_mismatch, host_range

ATTRS = STANDARD | {"name", "network_id", "cidr", "ip_version", "gateway_ip",
                    "allocation_pools", "enable_dhcp", "dns_nameservers", "host_routes",
                    "ipv6_ra_mode", "ipv6_address_mode", "subnetpool_id",
                    "use_default_subnetpool", "prefixlen", "service_types", "segment_id"}

RESERVED = ipaddress.ip_network("240.0.0.0/4")  # class E, with the limited broadcast address


def invalid(message: str):
    return refuse(f"Invalid input for operation: {message}", "InvalidInput")


MULTICAST = {4: ipaddress.ip_network("224.0.0.0/4"), 6: ipaddress.ip_network("ff00::/8")}


def _mode(v: Any) -> Any:
    """neutron-lib's validate_values against IPV6_MODES."""
    if v is not None and v not in IPV6_MODES:
        raise reason(f"{shown(v)} is not in {list(IPV6_MODES)}")
    return v


Ipv6Mode = Annotated[str | None, BeforeValidator(_mode),
                     WithJsonSchema({"type": ["string", "null"], "enum": [*IPV6_MODES, None]})]


class SubnetUpdate(Resource):
    ATTRS = ATTRS
    METHOD = "PUT"
    name: Name = ""
    description: Str255 = ""
    enable_dhcp: Bool = True
    dns_nameservers: Nameservers = []
    host_routes: HostRoutes = []
    gateway_ip: IPAddress | None = Field(
        None, description="a host address outside the allocation pools, not in use; "
                          "null: no gateway")


class SubnetCreate(SubnetUpdate):
    METHOD = "POST"
    id: UUID | None = None
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    network_id: UUID
    cidr: Cidr | None = None
    ip_version: Int = Field(4, description="4 or 6")
    gateway_ip: IPAddress | None = Field(
        None, description="default: the first address after the network address; null: no "
                          "gateway")
    allocation_pools: Pools = []
    tags: StrList = []
    ipv6_ra_mode: Ipv6Mode = Field(None, description="what the router advertises (IPv6)")
    ipv6_address_mode: Ipv6Mode = Field(None, description="how ports get addresses (IPv6); "
                                                          "slaac and dhcpv6-stateless: EUI-64 "
                                                          "from the MAC, on a /64")
    subnetpool_id: UUID | None = None
    use_default_subnetpool: Bool = False
    prefixlen: Int | None = None
    service_types: StrList = []
    segment_id: UUID | None = None

    @model_validator(mode="after")
    def _rules(self) -> "SubnetCreate":
        """neutron's _validate_subnet and ipam's pool checks, for what the body says alone."""
        v = self.ip_version
        if v not in (4, 6):
            raise refuse(f"Invalid input for ip_version. Reason: {v} is not in [4, 6].")
        if self.cidr is None:
            if self.subnetpool_id is None and not self.use_default_subnetpool:
                raise refuse("Bad subnets request: a subnetpool must be specified in the "
                             "absence of a cidr.", "BadRequest")
            return self._pooled()  # the pool gives the CIDR (service.subnetpools)
        cidr = ipaddress.ip_network(self.cidr)
        if cidr.version != v:
            raise invalid(f"cidr '{cidr}' does not match the ip_version '{v}'")
        if cidr.prefixlen == 0:
            raise invalid("0 is not allowed as CIDR prefix length")
        if v == 6 and cidr.network_address == ipaddress.IPv6Address("::"):
            raise invalid("IPv6 subnet '::' is not supported")
        if cidr.overlaps(MULTICAST[v]):
            raise invalid(f"Subnet {cidr} overlaps with multicast range {MULTICAST[v]}, which "
                          "is not supported.")
        if cidr.is_loopback:
            raise invalid("Loopback IP subnet is not supported")
        if v == 4 and cidr.overlaps(RESERVED):
            raise invalid(f"Subnet {cidr} overlaps with the reserved and broadcast range "
                          f"{RESERVED}, which is not supported.")
        if cidr.is_link_local and self.enable_dhcp:
            raise invalid("Link-local IP subnet is not supported if enable_dhcp is True")
        if v == 4 and cidr.prefixlen > 30:
            raise refuse(f"Invalid input for cidr. Reason: {cidr} must be IPv4 with prefix /30 "
                         "or shorter.", "BadRequest")
        if v == 6 and cidr.prefixlen > 126 and self.enable_dhcp:
            raise invalid("Subnet has a prefix length that is incompatible with DHCP service "
                          "enabled")
        self._modes(cidr)
        wrong = family_mismatch(v, self.dns_nameservers,
                                [(r.destination, r.nexthop) for r in self.host_routes])
        if wrong:
            raise invalid(wrong)
        first, last = host_range(cidr)
        gateway = None
        if self.gateway_ip is not None:
            gateway = ipaddress.ip_address(self.gateway_ip)
            if gateway.version != v:
                raise invalid(f"gateway_ip '{gateway}' does not match the ip_version '{v}'")
            if not first <= int(gateway) <= last:
                raise invalid(f"Gateway IP {gateway} is not a host address of {cidr}.")
        pools: list[tuple] = []
        for p in self.allocation_pools:
            a, b = ipaddress.ip_address(p.start), ipaddress.ip_address(p.end)
            if a.version != v or b.version != v or a > b:
                raise refuse(f"The allocation pool {p.start}-{p.end} is not valid.",
                             "InvalidAllocationPool")
            if not first <= int(a) <= int(b) <= last:
                raise refuse(f"The allocation pool {a}-{b} spans beyond the subnet cidr {cidr}.",
                             "InvalidAllocationPool")
            if gateway is not None and a <= gateway <= b:
                raise refuse(f"Gateway ip {gateway} conflicts with allocation pool {a}-{b}",
                             "GatewayConflictWithAllocationPools", 409)
            for qa, qb in pools:
                if not (b < qa or a > qb):
                    raise refuse(f"Found overlapping allocation pools: {a}-{b} and {qa}-{qb} "
                                 f"for subnet {cidr}.", "OverlappingAllocationPools", 409)
            pools.append((a, b))
        return self

    def _pooled(self) -> "SubnetCreate":
        """What can be checked of a subnet whose CIDR a pool allocates."""
        if self.prefixlen is not None and not 0 <= self.prefixlen <= (32 if self.ip_version == 4
                                                                     else 128):
            raise invalid(f"{self.prefixlen} is not a valid prefix length")
        if self.ip_version == 4:
            self._modes(None)
        if self.gateway_ip is not None and \
                ipaddress.ip_address(self.gateway_ip).version != self.ip_version:
            raise invalid(f"gateway_ip '{self.gateway_ip}' does not match the ip_version "
                          f"'{self.ip_version}'")
        wrong = family_mismatch(self.ip_version, self.dns_nameservers,
                                [(r.destination, r.nexthop) for r in self.host_routes])
        if wrong:
            raise invalid(wrong)
        return self

    def _modes(self, cidr) -> None:
        """neutron's _validate_ipv6_attributes: the allowed combinations of the modes."""
        ra, am = self.ipv6_ra_mode, self.ipv6_address_mode
        if self.ip_version == 4:
            for key, value in (("ipv6_ra_mode", ra), ("ipv6_address_mode", am)):
                if value is not None:
                    raise invalid(f"{key} is not valid when ip_version is 4")
            return
        if (ra or am) and not self.enable_dhcp:
            raise invalid("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp "
                          "is set to False")
        if ra and am and ra != am:
            raise invalid(f"ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{am}' is "
                          "not valid. If both attributes are set, they must be the same value")
        if (ra in AUTO_MODES or am in AUTO_MODES) and cidr.prefixlen != 64:
            raise invalid(f"Invalid CIDR {cidr} for IPv6 address mode. OpenStack uses the "
                          "EUI-64 address format, which requires the prefix to be /64")


CreateSubnetRequest = request("CreateSubnetRequest", "subnet", SubnetCreate, "subnets")
UpdateSubnetRequest = request("UpdateSubnetRequest", "subnet", SubnetUpdate)


class AllocationPool(BaseModel):
    start: str
    end: str


class Route(BaseModel):
    destination: str
    nexthop: str


class Subnet(BaseModel):
    id: str
    name: str
    description: str
    project_id: str
    tenant_id: str
    network_id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    allocation_pools: list[AllocationPool]
    enable_dhcp: bool
    dns_nameservers: list[str]
    host_routes: list[Route]
    ipv6_ra_mode: Any
    ipv6_address_mode: Any
    subnetpool_id: Any
    service_types: list[str]
    segment_id: Any
    dns_publish_fixed_ip: bool
    tags: list[str]
    revision_number: int
    created_at: str | None
    updated_at: str | None
