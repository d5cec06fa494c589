"""Subnets: create and update bodies with Neutron's CIDR, gateway and pool rules (those
that need no database), the response."""
from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, Field, model_validator

from .base import (STANDARD, UUID, Bool, Cidr, HostRoutes, Int, IPAddress, Name, Nameservers,
                   Pools, Resource, Str, Str255, StrList, envelope, refuse)

ATTRS = STANDARD | {"name", "network_id", "cidr", "ip_version", "gateway_ip",
                    "allocation_pools", "enable_dhcp", "dns_nameservers", "host_routes",
                    "ipv6_ra_mode", "ipv6_address_mode", "subnetpool_id",
                    "use_default_subnetpool", "prefixlen", "service_types", "segment_id"}

RESERVED = ipaddress.ip_network("240.0.0.0/4")  # class E, with the limited broadcast address


def invalid(message: str):
    return refuse(f"Invalid input for operation: {message}", "InvalidInput")


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

    @model_validator(mode="after")
    def _versions(self) -> "SubnetUpdate":
        check_versions(self.dns_nameservers, self.host_routes)
        return self


class SubnetCreate(SubnetUpdate):
    METHOD = "POST"
    id: UUID | None = None
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    network_id: UUID
    cidr: Cidr | None = None
    ip_version: Int = Field(4, description="4 (floatip supports IPv4 subnets only)")
    gateway_ip: IPAddress | None = Field(
        None, description="default: the first host address; null: no gateway")
    allocation_pools: Pools = []
    tags: StrList = []
    ipv6_ra_mode: Str(32) | None = None
    ipv6_address_mode: Str(32) | None = None
    subnetpool_id: UUID | None = None
    use_default_subnetpool: Bool = False
    prefixlen: Int | None = None
    service_types: StrList = []
    segment_id: UUID | None = None

    @model_validator(mode="after")
    def _rules(self) -> "SubnetCreate":
        """neutron's _validate_subnet and ipam's pool checks, for what the body says alone."""
        if self.ip_version not in (4, 6):
            raise refuse(f"Invalid input for ip_version. Reason: {self.ip_version} is not in "
                         "[4, 6].")
        if self.cidr is None:
            raise refuse("Bad subnet request: a cidr must be specified in the absence of a "
                         "subnet pool", "BadRequest")
        cidr = ipaddress.ip_network(self.cidr)
        if cidr.version != self.ip_version:
            raise invalid(f"cidr '{cidr}' does not match the ip_version '{self.ip_version}'")
        if self.ip_version != 4:
            raise refuse("Invalid input for ip_version. Reason: floatip supports IPv4 subnets "
                         "only.", "BadRequest")
        if cidr.prefixlen == 0:
            raise invalid("0 is not allowed as CIDR prefix length")
        if cidr.is_multicast:
            raise invalid(f"Subnet {cidr} overlaps with multicast range 224.0.0.0/4, which is "
                          "not supported.")
        if cidr.is_loopback:
            raise invalid("Loopback IP subnet is not supported")
        if cidr.overlaps(RESERVED):
            raise invalid(f"Subnet {cidr} overlaps with the reserved and broadcast range "
                          f"{RESERVED}, which is not supported.")
        if cidr.is_link_local and self.enable_dhcp:
            raise invalid("Link-local IP subnet is not supported if enable_dhcp is True")
        if cidr.prefixlen > 30:
            raise refuse(f"Invalid input for cidr. Reason: {cidr} must be IPv4 with prefix /30 "
                         "or shorter.", "BadRequest")
        hosts = (cidr.network_address + 1, cidr.broadcast_address - 1)
        gateway = None
        if self.gateway_ip is not None:
            gateway = ipaddress.ip_address(self.gateway_ip)
            if gateway.version != 4:
                raise invalid(f"gateway_ip '{gateway}' does not match the ip_version '4'")
            if not hosts[0] <= gateway <= hosts[1]:
                raise invalid(f"Gateway IP {gateway} is not a host address of {cidr}.")
        pools: list[tuple] = []
        for p in self.allocation_pools:
            a, b = ipaddress.ip_address(p.start), ipaddress.ip_address(p.end)
            if a.version != 4 or b.version != 4 or a > b:
                raise refuse(f"The allocation pool {p.start}-{p.end} is not valid.",
                             "InvalidAllocationPool")
            if not hosts[0] <= a <= b <= hosts[1]:
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


def check_versions(nameservers: list[str], routes: list) -> None:
    """IPv4 subnets take IPv4 nameservers and routes."""
    for ns in nameservers:
        if ipaddress.ip_address(ns).version != 4:
            raise invalid(f"dns_nameserver '{ns}' does not match the ip_version '4'")
    for rt in routes:
        if ipaddress.ip_network(rt.destination).version != 4 or \
                ipaddress.ip_address(rt.nexthop).version != 4:
            raise invalid(f"host_route {rt.destination} via {rt.nexthop} does not match the "
                          "ip_version '4'")


class CreateSubnetRequest(BaseModel):
    subnet: SubnetCreate | None = None
    subnets: list[SubnetCreate] | None = Field(
        None, min_length=1, description="bulk create")

    _envelope = model_validator(mode="before")(
        classmethod(lambda cls, d: envelope(d, "subnet", "subnets")))


class UpdateSubnetRequest(BaseModel):
    subnet: SubnetUpdate

    _envelope = model_validator(mode="before")(classmethod(lambda cls, d: envelope(d, "subnet")))


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
