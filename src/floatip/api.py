"""The Neutron v2.0 API (the subset floating IPs need) on FastAPI.

One database transaction per request (``Database.tx``); errors leave as Neutron's body
``{"NeutronError": {"type", "message", "detail"}}`` with Neutron's status code. Handlers are
plain functions, so FastAPI runs them in its thread pool and the event loop never blocks on
the database.

Besides Neutron's paths, ``/floatip/v1/*`` serves agents that run on other hosts
(``floatip agent --server URL``): the desired state, a long poll for changes, status reports.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import service as svc
from .model import NeutronError
from .store import Database

log = logging.getLogger("floatip.api")

RESOURCES = {"networks": "network", "subnets": "subnet", "ports": "port", "routers": "router",
             "floatingips": "floatingip"}


def neutron_error(type_: str, message: str, code: int) -> JSONResponse:
    return JSONResponse({"NeutronError": {"type": type_, "message": message, "detail": ""}},
                        status_code=code)


def create_app(db: Database) -> FastAPI:
    app = FastAPI(title="floatip", description="Neutron v2.0 API for floating IPs",
                  version="2.0", docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.db = db

    @app.exception_handler(NeutronError)
    async def _neutron(_req: Request, e: NeutronError):
        return neutron_error(e.type, e.message, e.code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        return neutron_error("BadRequest", "Malformed request body: "
                             + str(first.get("msg", "invalid JSON")), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, e: StarletteHTTPException):
        typ = {404: "HTTPNotFound", 405: "HTTPMethodNotAllowed"}.get(e.status_code, "HTTPError")
        return neutron_error(typ, str(e.detail), e.status_code)

    @app.exception_handler(IntegrityError)
    async def _integrity(_req: Request, e: IntegrityError):
        # a constraint the rules above did not foresee, typically a concurrent change
        # (a port deleted while a floating IP was being associated with it)
        log.warning("integrity error: %s", e.orig)
        return neutron_error("Conflict", "The request conflicts with a concurrent change; "
                             "nothing was changed. Retry it.", 409)

    @app.exception_handler(OperationalError)
    async def _db_down(_req: Request, e: OperationalError):
        log.error("database error: %s", e.orig)
        return neutron_error("ServiceUnavailable", "The database is not available; nothing "
                             "was changed.", 503)

    @app.exception_handler(Exception)
    async def _crash(_req: Request, e: Exception):
        log.exception("request failed")
        return neutron_error("InternalServerError", f"Request failed: internal server error "
                             f"({type(e).__name__})", 500)

    def run(fn: Callable, *args, write: bool = True):
        with db.tx(notify=write) as s:
            return fn(s, *args)

    # -- discovery --------------------------------------------------------------------
    @app.get("/")
    def versions(request: Request):
        base = str(request.base_url).rstrip("/")
        return {"versions": [{"id": "v2.0", "status": "CURRENT",
                              "links": [{"rel": "self", "href": f"{base}/v2.0/"}]}]}

    @app.get("/v2.0")
    @app.get("/v2.0/")
    def resources(request: Request):
        base = str(request.base_url).rstrip("/")
        return {"resources": [{"name": single, "collection": coll,
                               "links": [{"rel": "self", "href": f"{base}/v2.0/{coll}"}]}
                              for coll, single in RESOURCES.items()]}

    def ext(alias: str) -> dict:
        name, desc = svc.EXTENSIONS[alias]
        return {"alias": alias, "name": name, "description": desc,
                "updated": "2026-11-26T00:00:00-00:00", "links": []}

    @app.get("/v2.0/extensions")
    def extensions():
        return {"extensions": [ext(a) for a in svc.EXTENSIONS]}

    @app.get("/v2.0/extensions/{alias}")
    def extension(alias: str):
        if alias not in svc.EXTENSIONS:
            raise NeutronError(f"Extension with alias {alias} does not exist",
                               "ExtensionNotFound", 404)
        return {"extension": ext(alias)}

    # -- resources --------------------------------------------------------------------
    def register(coll: str, kind: str) -> None:
        def list_(request: Request):
            items = run(svc.list_resources, kind, list(request.query_params.multi_items()),
                        write=False)
            return {coll: items}

        def show(rid: str, request: Request):
            return {kind: run(svc.show, kind, rid, request.query_params.getlist("fields"),
                              write=False)}

        def create(body: Any = Body(None)):
            if isinstance(body, dict) and isinstance(body.get(coll), list):  # bulk create
                with db.tx() as s:
                    items = [svc.CREATE[kind](s, {kind: item}) for item in body[coll]]
                return JSONResponse({coll: items}, status_code=201)
            return JSONResponse({kind: run(svc.CREATE[kind], body)}, status_code=201)

        def update(rid: str, body: Any = Body(None)):
            return {kind: run(svc.UPDATE[kind], rid, body)}

        def delete(rid: str):
            run(svc.DELETE[kind], rid)
            return Response(status_code=204)

        for path in (f"/v2.0/{coll}", f"/v2.0/{coll}.json"):
            app.add_api_route(path, list_, methods=["GET"], name=f"list_{coll}")
            app.add_api_route(path, create, methods=["POST"], name=f"create_{kind}")
        app.add_api_route(f"/v2.0/{coll}/{{rid}}", show, methods=["GET"], name=f"show_{kind}")
        app.add_api_route(f"/v2.0/{coll}/{{rid}}", update, methods=["PUT"], name=f"update_{kind}")
        app.add_api_route(f"/v2.0/{coll}/{{rid}}", delete, methods=["DELETE"],
                          name=f"delete_{kind}")

    # The router actions come before the generic routes so {rid} does not swallow them.
    @app.put("/v2.0/routers/{rid}/add_router_interface")
    def add_router_interface(rid: str, body: Any = Body(None)):
        return run(svc.add_router_interface, rid, body)

    @app.put("/v2.0/routers/{rid}/remove_router_interface")
    def remove_router_interface(rid: str, body: Any = Body(None)):
        return run(svc.remove_router_interface, rid, body)

    for coll, kind in RESOURCES.items():
        register(coll, kind)

    # -- agents on other hosts ------------------------------------------------------------
    @app.get("/floatip/v1/state")
    def agent_state():
        with db.tx(notify=False) as s:
            snap = svc.agent_snapshot(s)
        return {"generation": db.generation, "state": svc.state_to_json(snap["state"]),
                "vm_ports": snap["vm_ports"], "known_routers": sorted(snap["known_routers"]),
                "fip_revisions": snap["fip_revisions"], "fip_status": snap["fip_status"],
                "router_status": snap["router_status"]}

    @app.get("/floatip/v1/changes")
    def changes(generation: int = -1, timeout: float = 30.0):
        """Long poll: returns at once if the server's generation differs from ``generation``,
        else when the next change commits, or after ``timeout`` seconds."""
        return {"generation": db.wait(generation, max(0.0, min(timeout, 55.0)))}

    @app.post("/floatip/v1/status")
    def status(body: Any = Body(None)):
        if not isinstance(body, dict):
            raise NeutronError("status report must be an object")
        with db.tx(notify=False) as s:
            n = svc.report_status(s, body.get("floatingips"), body.get("routers"),
                                  body.get("ports"))
        return {"changed": n}

    @app.post("/floatip/v1/sync")
    def sync(full: bool = False):
        """Wake the agent now (``floatip port plug`` calls it after plugging); ``full=true``
        asks for a full pass that observes and repairs every router."""
        if full:
            for fn in list(db.resync_listeners):
                fn()
        db.notify()
        return {"generation": db.generation}

    return app
