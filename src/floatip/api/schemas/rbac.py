"""Network RBAC policies: create and update bodies, the responses (Neutron's rbac-policies)."""
from __future__ import annotations

from pydantic import BaseModel

from .base import Resource, Str255, answer, request

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


CreateRbacPolicyRequest = request("CreateRbacPolicyRequest", "rbac_policy", RbacPolicyCreate)
UpdateRbacPolicyRequest = request("UpdateRbacPolicyRequest", "rbac_policy", RbacPolicyUpdate)


class RbacPolicy(BaseModel):
    id: str
    project_id: str
    tenant_id: str
    object_type: str
    object_id: str
    action: str
    target_tenant: str


RbacPolicyOne = answer("RbacPolicyOne", "rbac_policy", RbacPolicy)
RbacPolicyList = answer("RbacPolicyList", "rbac_policies", RbacPolicy, many=True)
