"""``/v2.0/rbac-policies[/{id}]``: Neutron's network RBAC policies (one transaction per
request)."""
# no `from __future__ import annotations`: FastAPI reads the body types at definition time
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..service.access import Access
from ..service.rbac import Rbac, not_found
from ..store.database import Database
from .links import page_body
from .resources import READ_ERRORS, WRITE_ERRORS, checked_query, ctx_of
from .schemas.base import clean_text
from .schemas.rbac import (CreateRbacPolicyRequest, RbacPolicyList, RbacPolicyOne,
                           UpdateRbacPolicyRequest)

TAGS = ["rbac-policies"]


def _id(text: str) -> str:
    if clean_text(text) or len(text) > 255:  # text the database cannot compare: absent
        raise not_found(text)
    return text


def router(db: Database, access: Access) -> APIRouter:
    api = APIRouter()
    rbac = Rbac(access.policy, access)
    coll = "/v2.0/rbac-policies"
    item = coll + "/{rid}"

    @api.get(coll, tags=TAGS, response_model=None,
             responses={200: {"model": RbacPolicyList}, **READ_ERRORS})
    def list_(request: Request):
        query = checked_query(list(request.query_params.multi_items()))
        with db.read() as s:
            return JSONResponse(page_body(request, "rbac_policies",
                                          rbac.list(s, ctx_of(request), query)))

    @api.get(item, tags=TAGS, response_model=None,
             responses={200: {"model": RbacPolicyOne}, **READ_ERRORS})
    def show(rid: str, request: Request):
        with db.read() as s:
            return JSONResponse({"rbac_policy": rbac.show(
                s, ctx_of(request), _id(rid), request.query_params.getlist("fields"))})

    @api.post(coll, tags=TAGS, status_code=201, response_model=None,
              responses={201: {"model": RbacPolicyOne}, **WRITE_ERRORS})
    def create(request: Request, body: CreateRbacPolicyRequest):
        with db.tx() as s:
            return JSONResponse({"rbac_policy": rbac.create(
                s, ctx_of(request), body.rbac_policy.attrs())}, status_code=201)

    @api.put(item, tags=TAGS, response_model=None,
             responses={200: {"model": RbacPolicyOne}, **WRITE_ERRORS})
    def update(rid: str, request: Request, body: UpdateRbacPolicyRequest):
        with db.tx() as s:
            return JSONResponse({"rbac_policy": rbac.update(
                s, ctx_of(request), _id(rid), body.rbac_policy.attrs())})

    @api.delete(item, tags=TAGS, status_code=204, response_class=Response,
                responses={204: {"description": "deleted"}, **WRITE_ERRORS})
    def delete(rid: str, request: Request):
        with db.tx() as s:
            rbac.delete(s, ctx_of(request), _id(rid))
        return Response(status_code=204)

    return api
