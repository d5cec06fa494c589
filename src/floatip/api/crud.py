"""The five routes of a Neutron collection served by its own service (rbac-policies, trunks,
subnet pools, address scopes, QoS policies): list, show, create, update, delete, one
transaction each, answered as plain JSON. ``resources`` serves the core kinds its own way
(bulk create, If-Match, filters in the OpenAPI)."""
# no `from __future__ import annotations`: FastAPI reads the body types at definition time
from typing import Any, Callable

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from ..store.database import Database
from .links import page_body
from .resources import READ_ERRORS, WRITE_ERRORS, checked_query, ctx_of
from .schemas.base import clean_text


def checked(text: str, missing: Exception) -> str:
    """An id from the path: text the database can compare, else ``missing`` (a 404)."""
    if clean_text(text) or len(text) > 255:
        raise missing
    return text


def crud(api: APIRouter, db: Database, svc: Any, *, coll: str, param: str, key: str,
         plural: str, create: type[BaseModel], update: type[BaseModel],
         one: type[BaseModel], listed: type[BaseModel],
         missing: Callable[[str], Exception], tags: list[str], name: str = "",
         notify: bool = True) -> Callable[[str], str]:
    """Adds ``coll`` and ``coll/{param}`` to ``api``: ``svc``'s list, show, create, update and
    delete (``svc.show(s, ctx, id, fields)`` and so on), bodies ``{key: ...}`` and
    ``{plural: [...]}``. ``name``: the operations' suffix (``list_{name}s``, ``show_{name}``;
    none: ``list_``, ``show``); ``notify=False``: nothing an agent acts on. Returns the id
    check, ``missing(id)`` for text the database cannot compare, for the collection's actions."""
    item = f"{coll}/{{{param}}}"

    def the(text: str) -> str:
        return checked(text, missing(text))

    def list_(request: Request):
        query = checked_query(list(request.query_params.multi_items()))
        with db.read() as s:
            return JSONResponse(page_body(request, plural, svc.list(s, ctx_of(request), query)))

    def show(request: Request, id_: str = Path(alias=param)):
        with db.read() as s:
            return JSONResponse({key: svc.show(s, ctx_of(request), the(id_),
                                               request.query_params.getlist("fields"))})

    def create_(request: Request, body: create):
        with db.tx(notify=notify) as s:
            return JSONResponse({key: svc.create(s, ctx_of(request), getattr(body, key).attrs())},
                                status_code=201)

    def update_(request: Request, body: update, id_: str = Path(alias=param)):
        with db.tx(notify=notify) as s:
            return JSONResponse({key: svc.update(s, ctx_of(request), the(id_),
                                                 getattr(body, key).attrs())})

    def delete(request: Request, id_: str = Path(alias=param)):
        with db.tx(notify=notify) as s:
            svc.delete(s, ctx_of(request), the(id_))
        return Response(status_code=204)

    ops = ([f"list_{name}s"] + [f"{verb}_{name}" for verb in ("show", "create", "update",
                                                                "delete")]
           if name else ["list_", "show", "create", "update", "delete"])
    api.add_api_route(coll, list_, methods=["GET"], name=ops[0], tags=tags, response_model=None,
                      responses={200: {"model": listed}, **READ_ERRORS})
    api.add_api_route(item, show, methods=["GET"], name=ops[1], tags=tags,
                      response_model=None, responses={200: {"model": one}, **READ_ERRORS})
    api.add_api_route(coll, create_, methods=["POST"], name=ops[2], tags=tags,
                      status_code=201, response_model=None,
                      responses={201: {"model": one}, **WRITE_ERRORS})
    api.add_api_route(item, update_, methods=["PUT"], name=ops[3], tags=tags,
                      response_model=None, responses={200: {"model": one}, **WRITE_ERRORS})
    api.add_api_route(item, delete, methods=["DELETE"], name=ops[4], tags=tags,
                      status_code=204, response_class=Response,
                      responses={204: {"description": "deleted"}, **WRITE_ERRORS})
    return the
