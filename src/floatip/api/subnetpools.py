"""``/v2.0/subnetpools[/{id}]`` with ``add_prefixes``/``remove_prefixes``, and
``/v2.0/address-scopes[/{id}]``: Neutron's subnet pools and address scopes (one transaction
per request)."""
# no `from __future__ import annotations`: FastAPI reads the body types at definition time
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..service.address_scopes import scope_not_found
from ..service.policy import Policy
from ..service.subnetpools import SubnetPools, pool_not_found
from ..store.database import Database
from .links import page_body
from .resources import READ_ERRORS, WRITE_ERRORS, checked_query, ctx_of
from .schemas.base import clean_text
from .schemas.subnetpools import (AddressScopeList, AddressScopeOne, CreateAddressScopeRequest,
                                  CreateSubnetPoolRequest, PrefixesRequest, PrefixList,
                                  SubnetPoolList, SubnetPoolOne, UpdateAddressScopeRequest,
                                  UpdateSubnetPoolRequest)


def _id(text: str, missing) -> str:
    if clean_text(text) or len(text) > 255:  # text the database cannot compare: absent
        raise missing
    return text


def router(db: Database, policy: Policy) -> APIRouter:
    api = APIRouter()
    pools = SubnetPools(policy)
    scopes = pools.scopes
    tags = ["subnetpools"]
    coll = "/v2.0/subnetpools"
    item = coll + "/{pid}"

    def pool(pid: str) -> str:
        return _id(pid, pool_not_found(pid))

    @api.get(coll, tags=tags, response_model=None,
             responses={200: {"model": SubnetPoolList}, **READ_ERRORS})
    def list_pools(request: Request):
        query = checked_query(list(request.query_params.multi_items()))
        with db.read() as s:
            return JSONResponse(page_body(request, "subnetpools",
                                          pools.list(s, ctx_of(request), query)))

    @api.get(item, tags=tags, response_model=None,
             responses={200: {"model": SubnetPoolOne}, **READ_ERRORS})
    def show_pool(pid: str, request: Request):
        with db.read() as s:
            return JSONResponse({"subnetpool": pools.show(
                s, ctx_of(request), pool(pid), request.query_params.getlist("fields"))})

    @api.post(coll, tags=tags, status_code=201, response_model=None,
              responses={201: {"model": SubnetPoolOne}, **WRITE_ERRORS})
    def create_pool(request: Request, body: CreateSubnetPoolRequest):
        with db.tx() as s:
            return JSONResponse({"subnetpool": pools.create(
                s, ctx_of(request), body.subnetpool.attrs())}, status_code=201)

    @api.put(item, tags=tags, response_model=None,
             responses={200: {"model": SubnetPoolOne}, **WRITE_ERRORS})
    def update_pool(pid: str, request: Request, body: UpdateSubnetPoolRequest):
        with db.tx() as s:
            return JSONResponse({"subnetpool": pools.update(
                s, ctx_of(request), pool(pid), body.subnetpool.attrs())})

    @api.delete(item, tags=tags, status_code=204, response_class=Response,
                responses={204: {"description": "deleted"}, **WRITE_ERRORS})
    def delete_pool(pid: str, request: Request):
        with db.tx() as s:
            pools.delete(s, ctx_of(request), pool(pid))
        return Response(status_code=204)

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

    tags = ["address-scopes"]
    coll = "/v2.0/address-scopes"
    item = coll + "/{sid}"

    def scope(sid: str) -> str:
        return _id(sid, scope_not_found(sid))

    @api.get(coll, tags=tags, response_model=None,
             responses={200: {"model": AddressScopeList}, **READ_ERRORS})
    def list_scopes(request: Request):
        query = checked_query(list(request.query_params.multi_items()))
        with db.read() as s:
            return JSONResponse(page_body(request, "address_scopes",
                                          scopes.list(s, ctx_of(request), query)))

    @api.get(item, tags=tags, response_model=None,
             responses={200: {"model": AddressScopeOne}, **READ_ERRORS})
    def show_scope(sid: str, request: Request):
        with db.read() as s:
            return JSONResponse({"address_scope": scopes.show(
                s, ctx_of(request), scope(sid), request.query_params.getlist("fields"))})

    @api.post(coll, tags=tags, status_code=201, response_model=None,
              responses={201: {"model": AddressScopeOne}, **WRITE_ERRORS})
    def create_scope(request: Request, body: CreateAddressScopeRequest):
        with db.tx() as s:
            return JSONResponse({"address_scope": scopes.create(
                s, ctx_of(request), body.address_scope.attrs())}, status_code=201)

    @api.put(item, tags=tags, response_model=None,
             responses={200: {"model": AddressScopeOne}, **WRITE_ERRORS})
    def update_scope(sid: str, request: Request, body: UpdateAddressScopeRequest):
        with db.tx() as s:
            return JSONResponse({"address_scope": scopes.update(
                s, ctx_of(request), scope(sid), body.address_scope.attrs())})

    @api.delete(item, tags=tags, status_code=204, response_class=Response,
                responses={204: {"description": "deleted"}, **WRITE_ERRORS})
    def delete_scope(sid: str, request: Request):
        with db.tx() as s:
            scopes.delete(s, ctx_of(request), scope(sid))
        return Response(status_code=204)

    return api
