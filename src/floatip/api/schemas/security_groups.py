"""Security groups, their rules and address groups: create and update bodies, responses
(neutron's securitygroup, stateful-security-group and address-group definitions)."""
from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, WithJsonSchema, model_validator

from ...core import protocols as P
from .base import (STANDARD, UUID, Bool, Name, Resource, Str, Str255, StrList, answer,
                   reason, refuse, request, shown)


def _name_not_default(v: Any) -> Any:
    if isinstance(v, str) and v.lower() == "default":
        raise refuse("Default security group already exists.",
                     "SecurityGroupDefaultAlreadyExists", 409)
    return v


def _protocol(v: Any) -> Any:
    """neutron's convert_protocol: a supported name (any case), a number 0-255, or any."""
    if v in P.PROTO_ANY:
        return None
    msg = (f"Security group rule protocol {shown(v)} not supported. Only protocol values "
           f"{list(P.SUPPORTED)} and integer representations [0 to 255] are supported.")
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise refuse(msg, "SecurityGroupRuleInvalidProtocol")
    try:
        n = int(v)
    except ValueError:
        if v.lower() in P.SUPPORTED:
            return None if v.lower() == "any" else v.lower()
        raise refuse(msg, "SecurityGroupRuleInvalidProtocol") from None
    if 0 <= n <= 255:
        return str(v).strip()
    raise refuse(msg, "SecurityGroupRuleInvalidProtocol")


def _ethertype(v: Any) -> Any:
    for e in ("IPv4", "IPv6"):
        if isinstance(v, str) and v.lower() == e.lower():
            return e
    raise refuse(f"Security group rule for ethertype '{shown(v)}' not supported. Allowed "
                 "values are ['IPv4', 'IPv6'].", "SecurityGroupRuleInvalidEtherType")


def _port(v: Any) -> Any:
    """neutron's convert_validate_port_value: 0-65535 (as a number or its text)."""
    if v is None:
        return None
    ok = not isinstance(v, bool) and (isinstance(v, int) or (isinstance(v, str)
                                                             and v.strip().isdigit()))
    if ok and 0 <= int(v) <= 65535:
        return int(v)
    raise refuse(f"Invalid value for port {shown(v)}", "SecurityGroupInvalidPortValue")


def _prefix(v: Any) -> Any:
    """neutron's convert_ip_prefix_to_cidr: an address or CIDR, kept as given (with its
    mask: 192.0.2.1 -> 192.0.2.1/32)."""
    if v in (None, ""):
        return None
    try:
        if not isinstance(v, str):
            raise ValueError
        return str(ipaddress.ip_interface(v.strip()))
    except ValueError:
        raise refuse(f"Invalid input for operation: '{shown(v)}' is not a valid CIDR.",
                     "InvalidCIDR") from None


def _direction(v: Any) -> Any:
    if v in ("ingress", "egress"):
        return v
    raise reason(f"'{shown(v)}' is not in ['ingress', 'egress']")


Protocol = Annotated[str | None, BeforeValidator(_protocol),
                     WithJsonSchema({"type": ["string", "integer", "null"],
                                     "description": "a name (tcp, udp, icmp, ...), 0-255, "
                                                    "any or null"})]
PortValue = Annotated[int | None, BeforeValidator(_port),
                      WithJsonSchema({"type": ["integer", "null"], "minimum": 0,
                                      "maximum": 65535})]
Prefix = Annotated[str | None, BeforeValidator(_prefix),
                   WithJsonSchema({"type": ["string", "null"], "examples": ["203.0.113.0/24"]})]
Ethertype = Annotated[str, BeforeValidator(_ethertype),
                      WithJsonSchema({"type": "string", "enum": ["IPv4", "IPv6"]})]
Direction = Annotated[str, BeforeValidator(_direction),
                      WithJsonSchema({"type": "string", "enum": ["ingress", "egress"]})]


def _addresses(v: Any, strict: bool = True) -> Any:
    """An address group's addresses, normalised (host bits cleared). ``strict`` (its create):
    CIDRs only, as Neutron's subnet_list validator; the add/remove actions take an address
    as its /32 or /128, as Neutron's plugin reads them."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise reason(f"'{shown(v)}' is not a list")
    out = []
    for a in v:
        if not isinstance(a, str) or strict and ("/" not in a or a.strip() != a):
            raise reason(f"'{shown(a)}' is not a valid IP subnet")
        try:
            out.append(str(ipaddress.ip_network(a.strip(), strict=False)))
        except ValueError:
            raise reason(f"'{shown(a)}' is not a valid IP subnet") from None
    return sorted(set(out), key=out.index)


Addresses = Annotated[list[str], BeforeValidator(_addresses)]
ActionAddresses = Annotated[list[str], BeforeValidator(lambda v: _addresses(v, strict=False))]

SG_ATTRS = STANDARD | {"name", "stateful", "security_group_rules", "shared"}
RULE_ATTRS = STANDARD | {"security_group_id", "direction", "ethertype", "protocol",
                         "port_range_min", "port_range_max", "remote_ip_prefix",
                         "remote_group_id", "remote_address_group_id", "normalized_cidr",
                         "belongs_to_default_sg"}
AG_ATTRS = STANDARD | {"name", "addresses"}


class SecurityGroupUpdate(Resource):
    ATTRS = SG_ATTRS
    METHOD = "PUT"
    name: Annotated[Name, BeforeValidator(_name_not_default)] = ""
    description: Str255 = ""
    stateful: Bool = True


class SecurityGroupCreate(SecurityGroupUpdate):
    METHOD = "POST"
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    tags: StrList = []


class SecurityGroupRuleUpdate(Resource):
    ATTRS = RULE_ATTRS
    METHOD = "PUT"
    description: Str255 = ""


class SecurityGroupRuleCreate(SecurityGroupRuleUpdate):
    METHOD = "POST"
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    security_group_id: UUID
    direction: Direction
    ethertype: Ethertype = "IPv4"
    protocol: Protocol = None
    port_range_min: PortValue = None
    port_range_max: PortValue = None
    remote_ip_prefix: Prefix = None
    # not checked as a UUID, as in Neutron: an unknown group, well-formed or not, is
    # SecurityGroupNotFound (404; Tempest's test_..._non_existent_remote_groupid)
    remote_group_id: Str255 | None = None
    remote_address_group_id: UUID | None = None


class AddressGroupUpdate(Resource):
    ATTRS = AG_ATTRS
    METHOD = "PUT"
    name: Name = ""
    description: Str255 = ""


class AddressGroupCreate(AddressGroupUpdate):
    METHOD = "POST"
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    addresses: Addresses = []


class AddressesRequest(BaseModel):
    """PUT /v2.0/address-groups/{id}/add_addresses (or remove_addresses)."""
    addresses: ActionAddresses

    @model_validator(mode="before")
    @classmethod
    def _body(cls, d: Any) -> Any:
        if not isinstance(d, dict) or "addresses" not in d:
            raise refuse("Unable to find 'addresses' in request body")
        return d


CreateSecurityGroupRequest = request("CreateSecurityGroupRequest", "security_group",
                                     SecurityGroupCreate, "security_groups")
UpdateSecurityGroupRequest = request("UpdateSecurityGroupRequest", "security_group",
                                     SecurityGroupUpdate)
CreateSecurityGroupRuleRequest = request("CreateSecurityGroupRuleRequest", "security_group_rule",
                                         SecurityGroupRuleCreate, "security_group_rules")
UpdateSecurityGroupRuleRequest = request("UpdateSecurityGroupRuleRequest", "security_group_rule",
                                         SecurityGroupRuleUpdate)
CreateAddressGroupRequest = request("CreateAddressGroupRequest", "address_group",
                                    AddressGroupCreate, "address_groups")
UpdateAddressGroupRequest = request("UpdateAddressGroupRequest", "address_group",
                                    AddressGroupUpdate)


class SecurityGroupRule(BaseModel):
    id: str
    project_id: str
    tenant_id: str
    description: str
    security_group_id: str
    direction: str
    ethertype: str
    protocol: str | None
    port_range_min: int | None
    port_range_max: int | None
    remote_ip_prefix: str | None
    normalized_cidr: str | None
    remote_group_id: str | None
    remote_address_group_id: str | None
    belongs_to_default_sg: bool | None
    revision_number: int
    created_at: str | None
    updated_at: str | None
    tags: list[str]


class SecurityGroup(BaseModel):
    id: str
    name: str
    description: str
    project_id: str
    tenant_id: str
    stateful: bool
    shared: bool
    security_group_rules: list[SecurityGroupRule]
    revision_number: int
    created_at: str | None
    updated_at: str | None
    tags: list[str]


class AddressGroup(BaseModel):
    id: str
    name: str
    description: str
    project_id: str
    tenant_id: str
    addresses: list[str]
    revision_number: int
    created_at: str | None
    updated_at: str | None
    tags: list[str]


AddressGroupOne = answer("AddressGroupOne", "address_group", AddressGroup)

