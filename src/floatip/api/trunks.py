"""``/v2.0/trunks[/{id}]`` and their ``add_subports`` / ``remove_subports`` /
``get_subports`` actions: Neutron's trunk extension, API only (one transaction per
request)."""
# no `from __future__ import annotations`: FastAPI reads the body types at definition time
from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from ..service.access import Access
from ..service.trunks import Trunks, not_found
from ..store.database import Database
from .links import page_body
from .resources import READ_ERRORS, WRITE_ERRORS, checked_query, ctx_of
from .schemas.base import clean_text
from .schemas.trunks import (CreateTrunkRequest, SubPorts, TrunkList, TrunkOne,
                             UpdateTrunkRequest)

TAGS = ["trunks"]


def _id(text: str) -> str:
    if clean_text(text) or len(text) > 255:  # text the database cannot compare: absent
        raise not_found(text)
    return text


def router(db: Database, access: Access) -> APIRouter:
    api = APIRouter()
    trunks = Trunks(access.policy, access)
    coll = "/v2.0/trunks"
    item = coll + "/{tid}"

    @api.get(coll, tags=TAGS, response_model=None,
             responses={200: {"model": TrunkList}, **READ_ERRORS})
    def list_(request: Request):
        query = checked_query(list(request.query_params.multi_items()))
        with db.read() as s:
            return JSONResponse(page_body(request, "trunks",
                                          trunks.list(s, ctx_of(request), query)))

    @api.get(item, tags=TAGS, response_model=None,
             responses={200: {"model": TrunkOne}, **READ_ERRORS})
    def show(tid: str, request: Request):
        with db.read() as s:
            return JSONResponse({"trunk": trunks.show(
                s, ctx_of(request), _id(tid), request.query_params.getlist("fields"))})

    @api.post(coll, tags=TAGS, status_code=201, response_model=None,
              responses={201: {"model": TrunkOne}, **WRITE_ERRORS})
    def create(request: Request, body: CreateTrunkRequest):
        with db.tx(notify=False) as s:  # nothing an agent acts on
            return JSONResponse({"trunk": trunks.create(s, ctx_of(request),
                                                        body.trunk.attrs())}, status_code=201)

    @api.put(item, tags=TAGS, response_model=None,
             responses={200: {"model": TrunkOne}, **WRITE_ERRORS})
    def update(tid: str, request: Request, body: UpdateTrunkRequest):
        with db.tx(notify=False) as s:
            return JSONResponse({"trunk": trunks.update(s, ctx_of(request), _id(tid),
                                                        body.trunk.attrs())})

    @api.delete(item, tags=TAGS, status_code=204, response_class=Response,
                responses={204: {"description": "deleted"}, **WRITE_ERRORS})
    def delete(tid: str, request: Request):
        with db.tx(notify=False) as s:
            trunks.delete(s, ctx_of(request), _id(tid))
        return Response(status_code=204)

    @api.put(item + "/add_subports", tags=TAGS, response_model=None,
             responses={200: {"model": TrunkOne}, **WRITE_ERRORS})
    def add_subports(tid: str, request: Request, body: Any = Body(None)):
        with db.tx(notify=False) as s:
            return JSONResponse(trunks.add_subports(s, ctx_of(request), _id(tid), body))

    @api.put(item + "/remove_subports", tags=TAGS, response_model=None,
             responses={200: {"model": TrunkOne}, **WRITE_ERRORS})
    def remove_subports(tid: str, request: Request, body: Any = Body(None)):
        with db.tx(notify=False) as s:
            return JSONResponse(trunks.remove_subports(s, ctx_of(request), _id(tid), body))

    @api.get(item + "/get_subports", tags=TAGS, response_model=None,
             responses={200: {"model": SubPorts}, **READ_ERRORS})
    def get_subports(tid: str, request: Request):
        with db.read() as s:
            return JSONResponse(trunks.get_subports(s, ctx_of(request), _id(tid)))

    return api
