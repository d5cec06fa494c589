"""Routers: create and update bodies, the interface actions, the responses."""
from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from .base import (STANDARD, UUID, Bool, FixedIPs, HostRoutes, Name, Part, Resource, Str255,
                   StrList, refuse, request)
from .subnets import Route

ATTRS = STANDARD | {"name", "admin_state_up", "external_gateway_info", "routes", "distributed",
                    "ha", "availability_zone_hints", "status"}


class GatewayInfo(Part):
    network_id: UUID | None = Field(None, description="required unless only enable_snat "
                                                      "changes; {} clears the gateway")
    enable_snat: Bool = True
    external_fixed_ips: FixedIPs = []
    qos_policy_id: UUID | None = Field(None, description="a QoS policy for the gateway's "
                                                         "address; null: none")


class RouterUpdate(Resource):
    ATTRS = ATTRS
    METHOD = "PUT"
    name: Name = ""
    description: Str255 = ""
    admin_state_up: Bool = True
    external_gateway_info: GatewayInfo | None = None
    routes: HostRoutes = Field([], description="extra routes: {destination, nexthop}")
    distributed: Bool = Field(False, description="false only")
    ha: Bool = Field(False, description="false only")


class RouterCreate(RouterUpdate):
    METHOD = "POST"
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    tags: StrList = []
    availability_zone_hints: StrList = []


CreateRouterRequest = request("CreateRouterRequest", "router", RouterCreate, "routers")
UpdateRouterRequest = request("UpdateRouterRequest", "router", RouterUpdate)


class InterfaceRequest(Part):
    """add_router_interface / remove_router_interface: a subnet or a port."""
    subnet_id: UUID | None = None
    port_id: UUID | None = None

    @model_validator(mode="before")
    @classmethod
    def _body(cls, data):
        if not isinstance(data, dict):
            raise refuse("Bad router request: Either subnet_id or port_id must be specified.",
                         "BadRequest")
        return data


class ExternalFixedIP(BaseModel):
    subnet_id: str
    ip_address: str


class ExternalGateway(BaseModel):
    network_id: str
    enable_snat: bool
    external_fixed_ips: list[ExternalFixedIP]
    qos_policy_id: str | None = None


class Router(BaseModel):
    id: str
    name: str
    description: str
    project_id: str
    tenant_id: str
    admin_state_up: bool
    status: str
    external_gateway_info: ExternalGateway | None
    routes: list[Route]
    distributed: bool
    ha: bool
    availability_zone_hints: list[str]
    availability_zones: list[str]
    tags: list[str]
    revision_number: int
    created_at: str | None
    updated_at: str | None


class RouterInterface(BaseModel):
    id: str
    subnet_id: str | None
    subnet_ids: list[str]
    port_id: str
    network_id: str
    project_id: str
    tenant_id: str
    tags: list[str]
