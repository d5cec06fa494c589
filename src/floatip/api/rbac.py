"""``/v2.0/rbac-policies[/{id}]``: Neutron's network RBAC policies (one transaction per
request)."""
from fastapi import APIRouter

from ..service.access import Access
from ..service.rbac import Rbac, not_found
from ..store.database import Database
from .crud import crud
from .schemas.rbac import (CreateRbacPolicyRequest, RbacPolicyList, RbacPolicyOne,
                           UpdateRbacPolicyRequest)


def router(db: Database, access: Access) -> APIRouter:
    api = APIRouter()
    crud(api, db, Rbac(access.policy, access), coll="/v2.0/rbac-policies", param="rid",
         key="rbac_policy", plural="rbac_policies", create=CreateRbacPolicyRequest,
         update=UpdateRbacPolicyRequest, one=RbacPolicyOne, listed=RbacPolicyList,
         missing=not_found, tags=["rbac-policies"])
    return api
