"""Network RBAC policies: create and update bodies, the responses (Neutron's rbac-policies)."""
from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from .base import Resource, Str255, envelope

ATTRS = frozenset({"id", "project_id", "tenant_id", "object_type", "object_id", "action",
                   "target_tenant"})


class RbacPolicyUpdate(Resource):
    ATTRS = ATTRS
    METHOD = "PUT"
    target_tenant: Str255 = ""


class RbacPolicyCreate(RbacPolicyUpdate):
    METHOD = "POST"
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    object_type: Str255
    object_id: Str255
    action: Str255


class CreateRbacPolicyRequest(BaseModel):
    rbac_policy: RbacPolicyCreate
    _envelope = model_validator(mode="before")(
        classmethod(lambda cls, d: envelope(d, "rbac_policy")))


class UpdateRbacPolicyRequest(BaseModel):
    rbac_policy: RbacPolicyUpdate
    _envelope = model_validator(mode="before")(
        classmethod(lambda cls, d: envelope(d, "rbac_policy")))


class RbacPolicy(BaseModel):
    id: str
    project_id: str
    tenant_id: str
    object_type: str
    object_id: str
    action: str
    target_tenant: str


class RbacPolicyOne(BaseModel):
    rbac_policy: RbacPolicy


class RbacPolicyList(BaseModel):
    rbac_policies: list[RbacPolicy] = Field(default_factory=list)
