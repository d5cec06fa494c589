"""Trunks: create and update bodies, the responses (Neutron's trunk extension)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .base import STANDARD, UUID, Bool, Name, Resource, Str255, StrList, answer, request

ATTRS = STANDARD | {"name", "admin_state_up", "port_id", "status", "sub_ports"}


class TrunkUpdate(Resource):
    ATTRS = ATTRS
    METHOD = "PUT"
    name: Name = ""
    description: Str255 = ""
    admin_state_up: Bool = True


class TrunkCreate(TrunkUpdate):
    METHOD = "POST"
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    port_id: UUID
    sub_ports: Any = Field([], description="each {port_id, segmentation_type: vlan | inherit, "
                                           "segmentation_id: 1-4094}")
    tags: StrList = []


CreateTrunkRequest = request("CreateTrunkRequest", "trunk", TrunkCreate)
UpdateTrunkRequest = request("UpdateTrunkRequest", "trunk", TrunkUpdate)


class SubPort(BaseModel):
    port_id: str
    segmentation_type: str
    segmentation_id: int


class Trunk(BaseModel):
    id: str
    name: str
    description: str
    project_id: str
    tenant_id: str
    admin_state_up: bool
    status: str
    port_id: str
    sub_ports: list[SubPort]
    revision_number: int
    created_at: str | None
    updated_at: str | None
    tags: list[str]


TrunkOne = answer("TrunkOne", "trunk", Trunk)
TrunkList = answer("TrunkList", "trunks", Trunk, many=True)


class SubPorts(BaseModel):
    sub_ports: list[SubPort]
