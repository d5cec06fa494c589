"""QoS policies and bandwidth limit rules: create and update bodies, the responses
(Neutron's qos, qos-bw-limit-direction, qos-default)."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, WithJsonSchema

from .base import (INT_MAX, Bool, Name, Resource, Str255, answer, reason, request, shown,
                   _integer, _list)

POLICY_ATTRS = frozenset({"id", "project_id", "tenant_id", "name", "description", "shared",
                          "is_default", "rules", "tags", "revision_number", "created_at",
                          "updated_at"})
RULE_ATTRS = frozenset({"id", "tenant_id", "project_id", "max_kbps", "max_burst_kbps",
                        "direction", "qos_policy_id", "type"})
DIRECTIONS = ("egress", "ingress")


def _kbps(v: Any) -> Any:
    """neutron-lib's range [0, INT_MAX] after convert_to_int."""
    v = _integer(v)
    if v < 0:
        raise reason(f"'{v}' is too small - must be at least '0'")
    return v


def _direction(v: Any) -> Any:
    if v not in DIRECTIONS:
        raise reason(f"'{shown(v)}' is not in {list(DIRECTIONS)}")
    return v


Kbps = Annotated[int, BeforeValidator(_kbps),
                 WithJsonSchema({"type": "integer", "minimum": 0, "maximum": INT_MAX})]
Direction = Annotated[str, BeforeValidator(_direction),
                      WithJsonSchema({"type": "string", "enum": list(DIRECTIONS)})]


class PolicyUpdate(Resource):
    ATTRS = POLICY_ATTRS
    METHOD = "PUT"
    name: Name = ""
    description: Str255 = ""
    shared: Bool = False
    is_default: Bool = False


class PolicyCreate(PolicyUpdate):
    METHOD = "POST"
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    tags: Annotated[list[Str255], BeforeValidator(_list("list"))] = []


class BandwidthLimitRuleUpdate(Resource):
    ATTRS = RULE_ATTRS
    METHOD = "PUT"
    max_kbps: Kbps = 0
    max_burst_kbps: Kbps = 0
    direction: Direction = "egress"


class BandwidthLimitRuleCreate(BandwidthLimitRuleUpdate):
    METHOD = "POST"
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    max_kbps: Kbps


CreatePolicyRequest = request("CreatePolicyRequest", "policy", PolicyCreate)
UpdatePolicyRequest = request("UpdatePolicyRequest", "policy", PolicyUpdate)
CreateRuleRequest = request("CreateRuleRequest", "bandwidth_limit_rule", BandwidthLimitRuleCreate)
UpdateRuleRequest = request("UpdateRuleRequest", "bandwidth_limit_rule", BandwidthLimitRuleUpdate)


class BandwidthLimitRule(BaseModel):
    id: str
    max_kbps: int
    max_burst_kbps: int
    direction: str


class PolicyRule(BandwidthLimitRule):
    qos_policy_id: str
    type: str


class Policy(BaseModel):
    id: str
    name: str
    description: str
    shared: bool
    is_default: bool
    project_id: str
    tenant_id: str
    rules: list[PolicyRule]
    tags: list[str]
    revision_number: int
    created_at: str
    updated_at: str


PolicyOne = answer("PolicyOne", "policy", Policy)
PolicyList = answer("PolicyList", "policies", Policy, many=True)
RuleOne = answer("RuleOne", "bandwidth_limit_rule", BandwidthLimitRule)
RuleList = answer("RuleList", "bandwidth_limit_rules", BandwidthLimitRule, many=True)
