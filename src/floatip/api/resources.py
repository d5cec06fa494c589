"""Neutron's resource routes: list, show, create (also bulk), update, delete per collection,
and the router interface actions. One database transaction per request."""
from __future__ import annotations

from typing import Any, Callable

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from ..service.access import Access
from ..service.policy import ADMIN, Context
from ..store.database import Database

RESOURCES = {"networks": "network", "subnets": "subnet", "ports": "port", "routers": "router",
             "floatingips": "floatingip"}


def ctx_of(request: Request) -> Context:
    """The caller, from ``api.auth.AuthMiddleware`` (the app without it: an admin)."""
    return getattr(request.state, "ctx", ADMIN)


def router(db: Database, access: Access) -> APIRouter:
    api = APIRouter()

    def run(fn: Callable, *args, write: bool = True):
        with db.tx(notify=write) as s:
            return fn(s, *args)

    # -- collections --------------------------------------------------------------------
    def register(coll: str, kind: str) -> None:
        def list_(request: Request):
            items = run(access.list, ctx_of(request), kind,
                        list(request.query_params.multi_items()), write=False)
            return {coll: items}

        def show(rid: str, request: Request):
            return {kind: run(access.show, ctx_of(request), kind, rid,
                              request.query_params.getlist("fields"), write=False)}

        def create(request: Request, body: Any = Body(None)):
            ctx = ctx_of(request)
            if isinstance(body, dict) and isinstance(body.get(coll), list):  # bulk create
                with db.tx() as s:
                    items = [access.create(s, ctx, kind, {kind: item}) for item in body[coll]]
                return JSONResponse({coll: items}, status_code=201)
            return JSONResponse({kind: run(access.create, ctx, kind, body)}, status_code=201)

        def update(rid: str, request: Request, body: Any = Body(None)):
            return {kind: run(access.update, ctx_of(request), kind, rid, body)}

        def delete(rid: str, request: Request):
            run(access.delete, ctx_of(request), kind, rid)
            return Response(status_code=204)

        for path in (f"/v2.0/{coll}", f"/v2.0/{coll}.json"):
            api.add_api_route(path, list_, methods=["GET"], name=f"list_{coll}")
            api.add_api_route(path, create, methods=["POST"], name=f"create_{kind}")
        api.add_api_route(f"/v2.0/{coll}/{{rid}}", show, methods=["GET"], name=f"show_{kind}")
        api.add_api_route(f"/v2.0/{coll}/{{rid}}", update, methods=["PUT"], name=f"update_{kind}")
        api.add_api_route(f"/v2.0/{coll}/{{rid}}", delete, methods=["DELETE"],
                          name=f"delete_{kind}")

    # The router actions come before the generic routes so {rid} does not swallow them.
    @api.put("/v2.0/routers/{rid}/add_router_interface")
    def add_router_interface(rid: str, request: Request, body: Any = Body(None)):
        return run(access.router_interface, ctx_of(request), "add", rid, body)

    @api.put("/v2.0/routers/{rid}/remove_router_interface")
    def remove_router_interface(rid: str, request: Request, body: Any = Body(None)):
        return run(access.router_interface, ctx_of(request), "remove", rid, body)

    for coll, kind in RESOURCES.items():
        register(coll, kind)

    return api
