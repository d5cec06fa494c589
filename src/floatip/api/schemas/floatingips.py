"""Floating IPs: create and update bodies, the response."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from ...service import dns
from .base import (STANDARD, UUID, IPAddress, Resource, Str, Str255, StrList, checked,
                   refuse, request)

ATTRS = STANDARD | {"floating_network_id", "floating_ip_address", "subnet_id", "port_id",
                    "fixed_ip_address", "dns_name", "dns_domain", "qos_policy_id", "router_id",
                    "status", "port_details", "port_forwardings"}


class FloatingIPUpdate(Resource):
    ATTRS = ATTRS
    METHOD = "PUT"
    port_id: UUID | None = Field(None, description="associate with this port; null: "
                                                   "disassociate")
    fixed_ip_address: IPAddress | None = Field(None, description="needs port_id")
    description: Str255 = ""
    qos_policy_id: UUID | None = Field(None, description="a QoS policy (bandwidth limits); "
                                                         "null: none")


class FloatingIPCreate(FloatingIPUpdate):
    METHOD = "POST"
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    floating_network_id: UUID
    floating_ip_address: IPAddress | None = None
    subnet_id: UUID | None = None
    tags: StrList = []
    dns_name: Annotated[str, checked(dns.fip_dns_name)] = ""
    dns_domain: Annotated[str, checked(dns.dns_domain)] = ""

    @model_validator(mode="after")
    def _dns_pair(self):
        why = dns.check_fip_pair(self.dns_name, self.dns_domain)
        if why:
            raise refuse(f"Bad floatingip request: {why}.", "BadRequest")
        return self


CreateFloatingIPRequest = request("CreateFloatingIPRequest", "floatingip", FloatingIPCreate, "floatingips")
UpdateFloatingIPRequest = request("UpdateFloatingIPRequest", "floatingip", FloatingIPUpdate)


class PortDetails(BaseModel):
    name: str
    network_id: str
    mac_address: str
    admin_state_up: bool
    status: str
    device_id: str
    device_owner: str


class FloatingIP(BaseModel):
    id: str
    project_id: str
    tenant_id: str
    description: str
    floating_ip_address: str
    floating_network_id: str
    router_id: str | None
    port_id: str | None
    fixed_ip_address: str | None
    status: str
    port_details: PortDetails | None
    port_forwardings: list[Any]
    qos_policy_id: Any
    dns_name: str
    dns_domain: str
    tags: list[str]
    revision_number: int
    created_at: str | None
    updated_at: str | None
