"""Networks: create and update bodies, the response."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from ...service import dns
from .base import (STANDARD, UUID, Bool, Int, Name, Resource, Str, Str255, StrList, checked,
                   request)

ATTRS = STANDARD | {"name", "admin_state_up", "shared", "router:external", "mtu",
                    "provider:network_type", "provider:physical_network",
                    "provider:segmentation_id", "port_security_enabled",
                    "availability_zone_hints", "is_default", "status", "subnets", "dns_domain"}


class NetworkUpdate(Resource):
    ATTRS = ATTRS
    METHOD = "PUT"
    name: Name = ""
    description: Str255 = ""
    admin_state_up: Bool = True
    shared: Bool = False
    mtu: Int = Field(1500, description="up to the physical network's; a subnet needs 68 (IPv4), 1280 (IPv6)")
    external: Bool = Field(False, alias="router:external",
                           description="admins only; the network must have no ports")
    port_security_enabled: Bool = Field(True, description="new ports' default")
    dns_domain: Annotated[str, checked(dns.dns_domain)] = Field(
        "", description="a FQDN ending in '.', for an external DNS service")


class NetworkCreate(NetworkUpdate):
    METHOD = "POST"
    id: UUID | None = None
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    external: Bool = Field(False, alias="router:external")
    network_type: Str(16) | None = Field(
        None, alias="provider:network_type",
        description="flat (external networks), vlan or local (the default for tenant networks)")
    physical_network: Str(64) | None = Field(None, alias="provider:physical_network")
    segmentation_id: Int | None = Field(None, alias="provider:segmentation_id",
                                        description="VLAN id, 1 through 4094")
    availability_zone_hints: StrList = []
    tags: StrList = []
    is_default: Bool = False


CreateNetworkRequest = request("CreateNetworkRequest", "network", NetworkCreate, "networks")
UpdateNetworkRequest = request("UpdateNetworkRequest", "network", NetworkUpdate)


class Network(BaseModel):
    id: str
    name: str
    description: str
    project_id: str
    tenant_id: str
    admin_state_up: bool
    status: str
    shared: bool
    external: bool = Field(alias="router:external")
    mtu: int
    network_type: str = Field(alias="provider:network_type")
    physical_network: str | None = Field(alias="provider:physical_network")
    segmentation_id: int | None = Field(alias="provider:segmentation_id")
    subnets: list[str]
    availability_zone_hints: list[str]
    availability_zones: list[str]
    port_security_enabled: bool
    is_default: bool
    l2_adjacency: bool
    dns_domain: str
    ipv4_address_scope: Any
    ipv6_address_scope: Any
    tags: list[str]
    revision_number: int
    created_at: str | None
    updated_at: str | None
