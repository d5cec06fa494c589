"""Ports: create and update bodies, the response."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, model_validator

from ...service.dhcp import USER_DATA_MAX
from .base import (STANDARD, UUID, Bool, Dict, FixedIPs, MacAddress, Name, Resource, Str,
                   Str255, StrList, envelope)

PublicKeys = Annotated[dict[Str(255, none_ok=False), Str(16384, none_ok=False)],
                      BeforeValidator(lambda v: {} if v is None else v)]

ATTRS = STANDARD | {"name", "network_id", "fixed_ips", "mac_address", "device_id",
                    "device_owner", "admin_state_up", "binding:host_id", "binding:profile",
                    "binding:vnic_type", "security_groups", "port_security_enabled",
                    "allowed_address_pairs", "status", "floatip:user_data",
                    "floatip:public_keys"}


class PortUpdate(Resource):
    ATTRS = ATTRS
    METHOD = "PUT"
    name: Name = ""
    description: Str255 = ""
    admin_state_up: Bool = True
    device_id: Str255 = ""
    device_owner: Str255 = ""
    host_id: Str255 = Field("", alias="binding:host_id")
    fixed_ips: FixedIPs = Field([], description="each {subnet_id?, ip_address?}")
    mac_address: MacAddress | None = None
    profile: Dict = Field({}, alias="binding:profile")
    vnic_type: Str(64) = Field("normal", alias="binding:vnic_type")
    security_groups: StrList = []
    port_security_enabled: Bool = False
    allowed_address_pairs: list[Dict] | None = []
    # floatip-metadata extension: text here, its format checked in
    # service.dhcp.set_metadata_attrs
    user_data: Str(USER_DATA_MAX, none_ok=False) | None = Field(
        None, alias="floatip:user_data", description="user data served to the port's VM "
                                                     f"(at most {USER_DATA_MAX} bytes), or null")
    public_keys: PublicKeys = Field({}, alias="floatip:public_keys",
                                    description="{name: OpenSSH public key}")


class PortCreate(PortUpdate):
    METHOD = "POST"
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    network_id: UUID
    tags: StrList = []


class CreatePortRequest(BaseModel):
    port: PortCreate | None = None
    ports: list[PortCreate] | None = Field(
        None, min_length=1, description="bulk create")

    _envelope = model_validator(mode="before")(
        classmethod(lambda cls, d: envelope(d, "port", "ports")))


class UpdatePortRequest(BaseModel):
    port: PortUpdate

    _envelope = model_validator(mode="before")(classmethod(lambda cls, d: envelope(d, "port")))


class IPAllocation(BaseModel):
    subnet_id: str
    ip_address: str


class Port(BaseModel):
    id: str
    name: str
    description: str
    project_id: str
    tenant_id: str
    network_id: str
    mac_address: str
    admin_state_up: bool
    status: str
    device_id: str
    device_owner: str
    fixed_ips: list[IPAllocation]
    host_id: str = Field(alias="binding:host_id")
    vif_type: str = Field(alias="binding:vif_type")
    vnic_type: str = Field(alias="binding:vnic_type")
    profile: dict = Field(alias="binding:profile")
    vif_details: dict = Field(alias="binding:vif_details")
    security_groups: list[str]
    allowed_address_pairs: list[Any]
    extra_dhcp_opts: list[Any]
    port_security_enabled: bool
    user_data: str | None = Field(None, alias="floatip:user_data")
    public_keys: dict = Field({}, alias="floatip:public_keys")
    tags: list[str]
    revision_number: int
    created_at: str | None
    updated_at: str | None
