"""``/v2.0/trunks[/{id}]`` and their ``add_subports`` / ``remove_subports`` /
``get_subports`` actions: Neutron's trunk extension, API only (one transaction per
request)."""
# no `from __future__ import annotations`: FastAPI reads the body types at definition time
from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from ..service.access import Access
from ..service.trunks import Trunks, not_found
from ..store.database import Database
from .crud import crud
from .resources import READ_ERRORS, WRITE_ERRORS, ctx_of
from .schemas.trunks import (CreateTrunkRequest, SubPorts, TrunkList, TrunkOne,
                             UpdateTrunkRequest)

TAGS = ["trunks"]


def router(db: Database, access: Access) -> APIRouter:
    api = APIRouter()
    trunks = Trunks(access.policy, access)
    item = "/v2.0/trunks/{tid}"
    the = crud(api, db, trunks, coll="/v2.0/trunks", param="tid", key="trunk", plural="trunks",
               create=CreateTrunkRequest, update=UpdateTrunkRequest, one=TrunkOne,
               listed=TrunkList, missing=not_found, tags=TAGS,
               notify=False)  # nothing an agent acts on

    @api.put(item + "/add_subports", tags=TAGS, response_model=None,
             responses={200: {"model": TrunkOne}, **WRITE_ERRORS})
    def add_subports(tid: str, request: Request, body: Any = Body(None)):
        with db.tx(notify=False) as s:
            return JSONResponse(trunks.add_subports(s, ctx_of(request), the(tid), body))

    @api.put(item + "/remove_subports", tags=TAGS, response_model=None,
             responses={200: {"model": TrunkOne}, **WRITE_ERRORS})
    def remove_subports(tid: str, request: Request, body: Any = Body(None)):
        with db.tx(notify=False) as s:
            return JSONResponse(trunks.remove_subports(s, ctx_of(request), the(tid), body))

    @api.get(item + "/get_subports", tags=TAGS, response_model=None,
             responses={200: {"model": SubPorts}, **READ_ERRORS})
    def get_subports(tid: str, request: Request):
        with db.read() as s:
            return JSONResponse(trunks.get_subports(s, ctx_of(request), the(tid)))

    return api
