"""Neutron's resource routes: list, show, create (also bulk), update, delete per collection,
and the router interface actions. One database transaction per request. Bodies are the typed
models of ``schemas`` (FastAPI validates them; ``app`` answers a refusal as Neutron does);
the service layer gets the validated attributes as a plain dict."""
# no `from __future__ import annotations`: FastAPI reads each route's body type from the
# closures below at definition time
import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..core.errors import NeutronError
from ..service import sg_access
from ..service.access import Access
from ..service.common import not_found
from ..service.policy import ADMIN, Context
from .. import store as S
from ..store.database import Database
from .links import page_body
from .schemas import SCHEMAS
from .schemas.base import clean_text
from .schemas.errors import NeutronErrorBody
from .schemas.routers import InterfaceRequest, RouterInterface
from .schemas.security_groups import AddressesRequest, AddressGroupOne

RESOURCES = {"networks": "network", "subnets": "subnet", "ports": "port", "routers": "router",
             "floatingips": "floatingip", "security-groups": "security_group",
             "security-group-rules": "security_group_rule",
             "address-groups": "address_group"}

ERR = {"model": NeutronErrorBody}
# 401, 403: keystone, policy; 404: a list's marker the caller cannot see (get_marker_obj)
LIST_ERRORS = {400: ERR, 401: ERR, 403: ERR, 404: ERR, 500: ERR, 503: ERR}
READ_ERRORS = LIST_ERRORS
WRITE_ERRORS = {**READ_ERRORS, 409: ERR, 412: ERR, 413: ERR}
PAGING = [("fields", {"type": "array", "items": {"type": "string"}},
           "attributes to show (repeatable)"),
          ("limit", {"type": "integer", "minimum": 0},
           "at most this many (0: all); the body's <collection>_links hold the next and "
           "previous pages"),
          ("marker", {"type": "string", "format": "uuid"}, "start after this id (with a limit)"),
          ("page_reverse", {"type": "boolean"}, "the page before the marker"),
          ("sort_key", {"type": "array", "items": {"type": "string"}},
           "sort by these attributes, then id (repeatable; one sort_dir each)"),
          ("sort_dir", {"type": "array", "items": {"type": "string", "enum": ["asc", "desc"]}},
           "asc or desc, one per sort_key")]


def checked_id(kind: str, rid: str) -> str:
    """An id from the path: text the database can compare, else the resource is not found."""
    if clean_text(rid) or len(rid) > 255:
        raise not_found(kind, rid)
    return rid


def checked_query(query: list[tuple[str, str]]) -> list[tuple[str, str]]:
    for k, v in query:
        if clean_text(k) or clean_text(v):
            raise NeutronError(f"Invalid filter {k!r}: NUL characters and invalid Unicode are "
                               "not allowed", "HTTPBadRequest", 400)
    return query


def list_parameters(kind: str) -> list[dict]:
    """The query filters of a collection: every attribute of the resource (repeatable: any of
    the values matches), and paging."""
    item = SCHEMAS[kind].item
    params = [{"name": f.alias or n, "in": "query", "required": False,
               "description": "filter: resources whose attribute equals one of the values",
               "schema": {"type": "array", "items": {"type": "string", "maxLength": 255}},
               "style": "form", "explode": True}
              for n, f in item.model_fields.items()]
    if kind == "port":
        params.append({"name": "fixed_ips", "in": "query", "required": False,
                       "description": "ip_address=ADDR or subnet_id=ID",
                       "schema": {"type": "array", "items": {"type": "string"}},
                       "style": "form", "explode": True})
    names = {p["name"] for p in params}
    params += [{"name": n, "in": "query", "required": False, "description": d, "schema": s,
                **({"style": "form", "explode": True} if s["type"] == "array" else {})}
               for n, s, d in PAGING if n not in names]
    return params


def if_match(request: Request) -> int | None:
    """The revision an ``If-Match: revision_number=N`` header constrains a change to."""
    key, _, number = request.headers.get("if-match", "").partition("=")
    try:
        return int(number) if key.strip() == "revision_number" else None
    except ValueError:
        return None


def constrained(fn: Callable, kind: str, expected: int | None) -> Callable:
    """``fn`` (an update or delete) in its transaction, refused as Neutron's revision plugin
    does when the row's revision was not ``expected`` (412; the change rolls back)."""
    if expected is None:
        return fn

    def run(s, ctx, kind_, rid, *rest):
        row = S.get(s, S.MODELS[kind], rid)
        before = row.revision_number if row is not None else None
        out = fn(s, ctx, kind_, rid, *rest)  # not found, not allowed: those answers first
        if before != expected:
            raise NeutronError(f"Constrained to {expected}, but current revision is {before}",
                               "RevisionNumberConstraintFailed", 412)
        return out
    return run


# The database work of a request runs in a thread (the event loop never waits on it). The
# endpoints are async and hand it to this pool themselves: FastAPI's hop for a sync
# endpoint (anyio's worker threads: a capacity limiter, a cancel scope, a Python Condition
# per hand-off) cost ~0.1 ms of the loop's CPU per request. As many threads as anyio's
# default limiter (40, the engine's pool plus overflow).
_POOL: ThreadPoolExecutor | None = None


async def in_thread(fn: Callable, *args):
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=40, thread_name_prefix="floatip-api")
    return await asyncio.get_running_loop().run_in_executor(_POOL, fn, *args)


def ctx_of(request: Request) -> Context:
    """The caller, from ``api.auth.AuthMiddleware`` (the app without it: an admin)."""
    return getattr(request.state, "ctx", ADMIN)


def router(db: Database, access: Access) -> APIRouter:
    api = APIRouter()

    def run(fn: Callable, *args, write: bool = True):
        with db.tx() if write else db.read() as s:  # a read takes no write lock
            return fn(s, *args)

    # -- collections --------------------------------------------------------------------
    def register(coll: str, kind: str) -> None:
        schemas = SCHEMAS[kind]
        tag = [coll]
        key = coll.replace("-", "_")  # the body's key: security_groups

        def list_sync(request: Request):
            query = checked_query(list(request.query_params.multi_items()))
            if kind == "security_group":  # the caller's default group, on first use
                sg_access.ensure_default_for(db, access, ctx_of(request))
            # plain JSON (here and in show, create, update: the bodies are JSON types
            # already): FastAPI's jsonable_encoder walk of 10,000 bodies costs more than
            # the query (the schema stays documented in /openapi.json)
            return JSONResponse(page_body(request, key, run(
                access.list, ctx_of(request), kind, query, write=False)))

        async def list_(request: Request):
            return await in_thread(list_sync, request)

        def show_sync(rid: str, request: Request):
            fields = checked_query([("fields", f) for f in request.query_params.getlist(
                "fields")])
            if kind == "security_group":
                sg_access.ensure_default_for(db, access, ctx_of(request))
            return JSONResponse({kind: run(access.show, ctx_of(request), kind,
                                           checked_id(kind, rid), [f for _, f in fields],
                                           write=False)})

        async def show(rid: str, request: Request):
            return await in_thread(show_sync, rid, request)

        def create_sync(request: Request, body):
            ctx = ctx_of(request)
            many = getattr(body, key)
            if many is not None:  # bulk create: all or nothing
                with db.tx() as s:
                    items = [access.create(s, ctx, kind, item.attrs()) for item in many]
                return JSONResponse({key: items}, status_code=201)
            return JSONResponse({kind: run(access.create, ctx, kind,
                                           getattr(body, kind).attrs())}, status_code=201)

        async def create(request: Request, body: schemas.create):
            return await in_thread(create_sync, request, body)

        def update_sync(rid: str, request: Request, body):
            return JSONResponse({kind: run(constrained(access.update, kind, if_match(request)),
                                           ctx_of(request), kind, checked_id(kind, rid),
                                           getattr(body, kind).attrs())})

        async def update(rid: str, request: Request, body: schemas.update):
            return await in_thread(update_sync, rid, request, body)

        def delete_sync(rid: str, request: Request):
            run(constrained(access.delete, kind, if_match(request)), ctx_of(request), kind,
                checked_id(kind, rid))
            return Response(status_code=204)

        async def delete(rid: str, request: Request):
            return await in_thread(delete_sync, rid, request)

        for path in (f"/v2.0/{coll}", f"/v2.0/{coll}.json"):
            api.add_api_route(path, list_, methods=["GET"], name=f"list_{coll}", tags=tag,
                              response_model=None, responses={200: {"model": schemas.listed},
                                                               **LIST_ERRORS},
                              openapi_extra={"parameters": list_parameters(kind)},
                              include_in_schema=not path.endswith(".json"))
            api.add_api_route(path, create, methods=["POST"], name=f"create_{kind}", tags=tag,
                              status_code=201, response_model=None,
                              responses={201: {"model": schemas.one | schemas.many},
                                         **WRITE_ERRORS},
                              include_in_schema=not path.endswith(".json"))
        item_path = f"/v2.0/{coll}/{{rid}}"
        api.add_api_route(item_path, show, methods=["GET"], name=f"show_{kind}", tags=tag,
                          response_model=None, responses={200: {"model": schemas.shown},
                                                          **READ_ERRORS},
                          openapi_extra={"parameters": [p for p in list_parameters(kind)
                                                        if p["name"] == "fields"]})
        api.add_api_route(item_path, update, methods=["PUT"], name=f"update_{kind}", tags=tag,
                          response_model=None, responses={200: {"model": schemas.one},
                                                          **WRITE_ERRORS})
        api.add_api_route(item_path, delete, methods=["DELETE"], name=f"delete_{kind}",
                          tags=tag, status_code=204, response_model=None,
                          responses={204: {"description": "deleted"}, **WRITE_ERRORS})

    # The router actions come before the generic routes so {rid} does not swallow them.
    interface_docs = {"response_model": None, "tags": ["routers"],
                      "responses": {200: {"model": RouterInterface}, **WRITE_ERRORS}}

    @api.put("/v2.0/routers/{rid}/add_router_interface", **interface_docs)
    def add_router_interface(rid: str, request: Request, body: InterfaceRequest):
        return run(access.router_interface, ctx_of(request), "add", checked_id("router", rid),
                   body.model_dump(exclude_unset=True))

    @api.put("/v2.0/routers/{rid}/remove_router_interface", **interface_docs)
    def remove_router_interface(rid: str, request: Request, body: InterfaceRequest):
        return run(access.router_interface, ctx_of(request), "remove",
                   checked_id("router", rid), body.model_dump(exclude_unset=True))

    ag_docs = {"response_model": None, "tags": ["address-groups"],
               "responses": {200: {"model": AddressGroupOne}, **WRITE_ERRORS}}

    @api.put("/v2.0/address-groups/{rid}/add_addresses", **ag_docs)
    def add_addresses(rid: str, request: Request, body: AddressesRequest):
        return JSONResponse(run(sg_access.address_action, access, ctx_of(request), "add",
                                checked_id("address_group", rid), body.addresses))

    @api.put("/v2.0/address-groups/{rid}/remove_addresses", **ag_docs)
    def remove_addresses(rid: str, request: Request, body: AddressesRequest):
        return JSONResponse(run(sg_access.address_action, access, ctx_of(request), "remove",
                                checked_id("address_group", rid), body.addresses))

    for coll, kind in RESOURCES.items():
        register(coll, kind)

    return api
