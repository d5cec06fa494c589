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

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.errors import NeutronError
from ..service.access import Access
from ..service.extensions import EXTENSIONS
from ..service.policy import Policy
from ..store.database import Database
from . import agent_list, agents, resources as resource_routes
from .auth import AuthMiddleware, AuthSettings
from .errors import neutron_error
from .resources import RESOURCES

log = logging.getLogger("floatip.api")


def create_app(db: Database, auth: AuthSettings | None = None,
               policy_file: str | None = None, backend=None) -> FastAPI:
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
        name, desc = EXTENSIONS[alias]
        return {"alias": alias, "name": name, "description": desc,
                "updated": "2026-11-26T00:00:00-00:00", "links": []}

    @app.get("/v2.0/extensions")
    def extensions():
        return {"extensions": [ext(a) for a in EXTENSIONS]}

    @app.get("/v2.0/extensions/{alias}")
    def extension(alias: str):
        if alias not in EXTENSIONS:
            raise NeutronError(f"Extension with alias {alias} does not exist",
                               "ExtensionNotFound", 404)
        return {"extension": ext(alias)}

    access = Access(Policy(policy_file))
    app.include_router(resource_routes.router(db, access))
    app.include_router(agents.router(db))
    app.include_router(agent_list.router(access.policy, backend))
    app.add_middleware(AuthMiddleware, settings=auth or AuthSettings())
    return app
