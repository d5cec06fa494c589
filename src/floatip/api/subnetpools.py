"""``/v2.0/subnetpools[/{id}]`` with ``add_prefixes``/``remove_prefixes``, and
``/v2.0/address-scopes[/{id}]``: Neutron's subnet pools and address scopes (one transaction
per request)."""
# no `from __future__ import annotations`: FastAPI reads the body types at definition time
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..service.address_scopes import scope_not_found
from ..service.policy import Policy
from ..service.subnetpools import SubnetPools, pool_not_found
from ..store.database import Database
from .crud import crud
from .resources import WRITE_ERRORS, ctx_of
from .schemas.subnetpools import (AddressScopeList, AddressScopeOne, CreateAddressScopeRequest,
                                  CreateSubnetPoolRequest, PrefixesRequest, PrefixList,
                                  SubnetPoolList, SubnetPoolOne, UpdateAddressScopeRequest,
                                  UpdateSubnetPoolRequest)


def router(db: Database, policy: Policy) -> APIRouter:
    api = APIRouter()
    pools = SubnetPools(policy)
    tags = ["subnetpools"]
    item = "/v2.0/subnetpools/{pid}"
    pool = crud(api, db, pools, coll="/v2.0/subnetpools", param="pid", key="subnetpool",
                plural="subnetpools", create=CreateSubnetPoolRequest,
                update=UpdateSubnetPoolRequest, one=SubnetPoolOne, listed=SubnetPoolList,
                missing=pool_not_found, tags=tags, name="pool")

    @api.put(item + "/add_prefixes", tags=tags, response_model=None,
             responses={200: {"model": PrefixList}, **WRITE_ERRORS})
    def add_prefixes(pid: str, request: Request, body: PrefixesRequest):
        with db.tx() as s:
            return JSONResponse(pools.add_prefixes(s, ctx_of(request), pool(pid),
                                                   body.prefixes))

    @api.put(item + "/remove_prefixes", tags=tags, response_model=None,
             responses={200: {"model": PrefixList}, **WRITE_ERRORS})
    def remove_prefixes(pid: str, request: Request, body: PrefixesRequest):
        with db.tx() as s:
            return JSONResponse(pools.remove_prefixes(s, ctx_of(request), pool(pid),
                                                      body.prefixes))

    crud(api, db, pools.scopes, coll="/v2.0/address-scopes", param="sid", key="address_scope",
         plural="address_scopes", create=CreateAddressScopeRequest,
         update=UpdateAddressScopeRequest, one=AddressScopeOne, listed=AddressScopeList,
         missing=scope_not_found, tags=["address-scopes"], name="scope")
    return api
