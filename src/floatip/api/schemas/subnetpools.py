"""Subnet pools and address scopes: create and update bodies, the responses (Neutron's
subnet_allocation, subnetpool-prefix-ops, address-scope)."""
from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, WithJsonSchema, model_validator

from .base import (STANDARD, UUID, Bool, Int, Name, Resource, Str255, _integer, _list, answer,
                   reason, request, shown)

POOL_ATTRS = STANDARD | {"name", "prefixes", "default_quota", "ip_version",
                         "default_prefixlen", "min_prefixlen", "max_prefixlen", "is_default",
                         "shared", "address_scope_id"}
SCOPE_ATTRS = frozenset({"id", "name", "project_id", "tenant_id", "shared", "ip_version"})


def _prefix(v: Any) -> str:
    """neutron-lib's validate_subnet as a pool prefix: ADDRESS/LENGTH (host bits allowed,
    the pool keeps the network)."""
    if not isinstance(v, str) or "/" not in v or v != v.strip():
        raise reason(f"'{shown(v)}' is not a valid IP subnet")
    try:
        ipaddress.ip_network(v, strict=False)
    except ValueError:
        raise reason(f"'{shown(v)}' is not a valid IP subnet") from None
    return v


def _non_negative(v: Any) -> Any:
    v = _integer(v)
    if v < 0:
        raise reason(f"'{v}' should be non-negative")
    return v


def _version(v: Any) -> Any:
    v = _integer(v)
    if v not in (4, 6):
        raise reason(f"{v} is not in [4, 6]")
    return v


Prefix = Annotated[str, BeforeValidator(_prefix),
                   WithJsonSchema({"type": "string", "examples": ["198.51.100.0/24"]})]
Prefixes = Annotated[list[Prefix], BeforeValidator(_list("subnet_list"))]
NonNegative = Annotated[int, BeforeValidator(_non_negative),
                        WithJsonSchema({"type": "integer", "minimum": 0})]
IpVersion = Annotated[int, BeforeValidator(_version),
                      WithJsonSchema({"type": "integer", "enum": [4, 6]})]


def _not_empty(v: Any) -> Any:
    """neutron-lib's not_empty_name_string."""
    if isinstance(v, str) and not v.strip():
        raise reason("Name should not be empty")
    return v


class SubnetPoolUpdate(Resource):
    ATTRS = POOL_ATTRS
    METHOD = "PUT"
    name: Annotated[Name, BeforeValidator(_not_empty)] = ""
    description: Str255 = ""
    prefixes: Prefixes = []
    default_quota: NonNegative | None = None
    default_prefixlen: NonNegative = 0
    min_prefixlen: NonNegative = 0
    max_prefixlen: NonNegative = 0
    is_default: Bool = False
    address_scope_id: UUID | None = None


class SubnetPoolCreate(SubnetPoolUpdate):
    METHOD = "POST"
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    name: Annotated[Name, BeforeValidator(_not_empty)]
    prefixes: Prefixes
    shared: Bool = False
    tags: Annotated[list[Str255], BeforeValidator(_list("list"))] = []


class AddressScopeUpdate(Resource):
    ATTRS = SCOPE_ATTRS
    METHOD = "PUT"
    name: Name = ""
    shared: Bool = False


class AddressScopeCreate(AddressScopeUpdate):
    METHOD = "POST"
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    ip_version: IpVersion


CreateSubnetPoolRequest = request("SubnetPoolCreateRequest", "subnetpool", SubnetPoolCreate)
UpdateSubnetPoolRequest = request("SubnetPoolUpdateRequest", "subnetpool", SubnetPoolUpdate)
CreateAddressScopeRequest = request("AddressScopeCreateRequest", "address_scope",
                                    AddressScopeCreate)
UpdateAddressScopeRequest = request("AddressScopeUpdateRequest", "address_scope",
                                    AddressScopeUpdate)


class PrefixesRequest(BaseModel):
    """``add_prefixes``/``remove_prefixes``: ``{"prefixes": [...]}``."""
    prefixes: Prefixes = []

    @model_validator(mode="before")
    @classmethod
    def _body(cls, d: Any) -> Any:
        if not isinstance(d, dict) or "prefixes" not in d:
            raise reason("Invalid input for operation: Invalid request body: it needs "
                         "'prefixes'")
        return d


class SubnetPool(BaseModel):
    id: str
    name: str
    description: str
    project_id: str
    tenant_id: str
    ip_version: int
    prefixes: list[str]
    default_prefixlen: str | int  # show and list: strings, update: numbers (Neutron's)
    min_prefixlen: str | int
    max_prefixlen: str | int
    default_quota: int | None
    is_default: bool
    shared: bool
    address_scope_id: str | None
    tags: list[str]
    revision_number: int
    created_at: str | None
    updated_at: str | None


class AddressScope(BaseModel):
    id: str
    name: str
    project_id: str
    tenant_id: str
    shared: bool
    ip_version: int


SubnetPoolOne = answer("SubnetPoolOne", "subnetpool", SubnetPool)
SubnetPoolList = answer("SubnetPoolList", "subnetpools", SubnetPool, many=True)
AddressScopeOne = answer("AddressScopeOne", "address_scope", AddressScope)
AddressScopeList = answer("AddressScopeList", "address_scopes", AddressScope, many=True)


class PrefixList(BaseModel):
    prefixes: list[str]
