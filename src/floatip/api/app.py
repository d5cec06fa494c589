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
from fastapi.openapi.utils import get_openapi
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import metrics
from ..core.errors import NeutronError
from ..service.access import Access
from ..service.extensions import EXTENSIONS
from ..service.policy import Policy
from ..service.quotas import Quotas
from ..store.database import Database
from . import (agent_list, agents, events, ip_availability, port_forwardings, qos,
               quotas as quota_routes, rbac, tags, trunks, ui)
from . import subnetpools
from . import resources as resource_routes
from .heartbeats import Heartbeats
from .auth import AuthMiddleware, AuthSettings
from .errors import from_validation, neutron_error
from .resources import RESOURCES
from .schemas.errors import NeutronErrorBody

log = logging.getLogger("floatip.api")

MAX_BODY = 1024 * 1024  # bytes; Neutron's default max_request_body_size is 114688


class BodyLimit:
    """Refuses a request body over ``limit`` bytes with 413 before anything parses it.
    (Starlette's RequestBodyLimitMiddleware answers in plain text, not Neutron's body.)
    A body without a Content-Type is JSON, as Neutron reads it (clients send PUTs without
    one; FastAPI would not parse them)."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if b"content-type" not in headers:
            # in place: the metrics middleware outside reads the matched route from it
            scope["headers"] = [*scope["headers"], (b"content-type", b"application/json")]
        length = headers.get(b"content-length", b"0")
        too_big = not length.isdigit() or int(length) > self.limit
        received, total, msg = [], 0, {"more_body": True}
        while not too_big:
            msg = await receive()
            received.append(msg)
            total += len(msg.get("body", b""))
            too_big = total > self.limit
            if msg["type"] != "http.request" or not msg.get("more_body"):
                break
        if too_big:
            # read (and drop) the rest, so the client, still sending, reads the answer
            while total < 64 * self.limit and msg.get("more_body"):
                msg = await receive()
                total += len(msg.get("body", b""))
            response = neutron_error("HTTPRequestEntityTooLarge", f"Request body too large: "
                                     f"the limit is {self.limit} bytes.", 413)
            return await response(scope, receive, send)

        async def replay():
            return received.pop(0) if received else await receive()
        await self.app(scope, replay, send)


def _openapi(app: FastAPI) -> dict:
    """FastAPI's document without its 422 answers: refusals here are Neutron's 400."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description,
                          routes=app.routes)
        for ops in doc["paths"].values():
            for op in ops.values():
                op.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            doc.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = doc
    return app.openapi_schema


def _request_id(req: Request) -> str:
    return getattr(req.state, "request_id", None) or "req-unknown"


def _what(req: Request) -> str:
    return f"{req.method} {req.url.path}"


def create_app(db: Database, auth: AuthSettings | None = None,
               policy_file: str | None = None, backend=None,
               quotas: dict[str, int] | None = None) -> FastAPI:
    """``quotas``: the default limits ({"network": 100, ...}; Neutron's where not given)."""
    app = FastAPI(title="floatip", description="Neutron v2.0 API for floating IPs",
                  version="2.0", docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.db = db

    @app.exception_handler(NeutronError)
    async def _neutron(_req: Request, e: NeutronError):
        return neutron_error(e.type, e.message, e.code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(req: Request, e: RequestValidationError):
        path = req.url.path
        enveloped = path.startswith("/v2.0/") and not path.endswith("_interface")
        return neutron_error(*from_validation(list(e.errors()), enveloped))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, e: StarletteHTTPException):
        typ = {404: "HTTPNotFound", 405: "HTTPMethodNotAllowed",
               413: "HTTPRequestEntityTooLarge"}.get(e.status_code, "HTTPError")
        return neutron_error(typ, str(e.detail), e.status_code)

    @app.exception_handler(IntegrityError)
    async def _integrity(req: Request, e: IntegrityError):
        # a constraint the rules above did not foresee, typically a concurrent change
        # (a port deleted while a floating IP was being associated with it)
        log.warning("%s %s: integrity error: %s", _request_id(req), _what(req), e.orig)
        return neutron_error("Conflict", "The request conflicts with a concurrent change; "
                             "nothing was changed. Retry it.", 409)

    @app.exception_handler(OperationalError)
    async def _db_down(req: Request, e: OperationalError):
        log.error("%s %s: database error: %s", _request_id(req), _what(req), e.orig)
        return neutron_error("ServiceUnavailable", "The database is not available; nothing "
                             "was changed.", 503)

    @app.exception_handler(Exception)
    async def _crash(req: Request, e: Exception):
        # outside the request middleware (Starlette's ServerErrorMiddleware): the id is the
        # one it put in the request's state, named in the log, the body and the header
        rid = _request_id(req)
        log.exception("%s %s: request failed", rid, _what(req))
        return neutron_error("InternalServerError", f"Request failed: internal server error "
                             f"({type(e).__name__})", 500, request_id=rid)

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

    @app.get("/v2.0/extensions/{alias}", responses={404: {"model": NeutronErrorBody}})
    def extension(alias: str):
        if alias not in EXTENSIONS:
            raise NeutronError(f"Extension with alias {alias} does not exist",
                               "ExtensionNotFound", 404)
        return {"extension": ext(alias)}

    policy = Policy(policy_file)
    access = Access(policy, Quotas(policy, quotas))
    app.include_router(resource_routes.router(db, access))
    app.include_router(quota_routes.router(db, access.quotas))
    app.include_router(tags.router(db, access.policy))
    app.include_router(port_forwardings.router(db, access))
    app.include_router(qos.router(db, access.policy))
    app.include_router(rbac.router(db, access))
    app.include_router(subnetpools.router(db, access.policy))
    app.include_router(ip_availability.router(db, access.policy))
    app.include_router(trunks.router(db, access))
    heartbeats = app.state.heartbeats = Heartbeats()  # serve --workers: shared (server.py)
    app.include_router(agents.router(db, heartbeats))
    app.include_router(agent_list.router(access.policy, backend, heartbeats))
    app.include_router(events.router(db))
    app.include_router(ui.router(db, access))
    app.openapi = lambda: _openapi(app)
    # outermost first to run: who is calling, then the body limit
    app.add_middleware(BodyLimit)
    app.add_middleware(AuthMiddleware, settings=auth or AuthSettings())
    metrics.install(app)  # /metrics and per-route latency
    return app
