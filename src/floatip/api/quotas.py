"""Neutron's quota routes (extensions ``quotas`` and ``quota_details``):

    GET    /v2.0/quotas                      projects with limits set (get_quota)
    GET    /v2.0/quotas/project              the caller's project (and the deprecated /tenant)
    GET    /v2.0/quotas/{project_id}         its limits (another project's: get_quota)
    PUT    /v2.0/quotas/{project_id}         {"quota": {"network": 10}} (update_quota)
    DELETE /v2.0/quotas/{project_id}         back to the defaults (delete_quota)
    GET    /v2.0/quotas/{project_id}/default the defaults
    GET    /v2.0/quotas/{project_id}/details limit, used, reserved (another project's: admins)
"""
# no `from __future__ import annotations`: FastAPI reads the body's type at definition time
from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from ..core.errors import NeutronError
from ..service.quotas import Quotas
from ..store.database import Database
from .resources import LIST_ERRORS, READ_ERRORS, WRITE_ERRORS, ctx_of
from .schemas.base import clean_text

TAGS = ["quotas"]


def _project(pid: str) -> str:
    """A project id from the path: text the database can compare."""
    if clean_text(pid) or len(pid) > 255:
        raise NeutronError("The resource could not be found.", "HTTPNotFound", 404)
    return pid


def router(db: Database, quotas: Quotas) -> APIRouter:
    api = APIRouter()

    @api.get("/v2.0/quotas", tags=TAGS, responses=LIST_ERRORS)
    def list_quotas(request: Request):
        with db.read() as s:
            return JSONResponse({"quotas": quotas.list(s, ctx_of(request))})

    @api.post("/v2.0/quotas", tags=TAGS, responses={501: READ_ERRORS[400]},
              include_in_schema=False)
    def create_quota():
        raise NeutronError("POST requests are not supported on this resource.",
                           "HTTPNotImplemented", 501)

    # before /{project_id}, which would take them
    @api.get("/v2.0/quotas/project", tags=TAGS, responses=READ_ERRORS)
    def own_project(request: Request):
        return quotas.own_project(ctx_of(request))

    @api.get("/v2.0/quotas/tenant", tags=TAGS, responses=READ_ERRORS, deprecated=True)
    def own_tenant(request: Request):
        return quotas.own_project(ctx_of(request), "tenant")

    @api.get("/v2.0/quotas/{project_id}", tags=TAGS, responses=READ_ERRORS)
    def show_quota(project_id: str, request: Request):
        with db.read() as s:
            return {"quota": quotas.show(s, ctx_of(request), _project(project_id))}

    @api.get("/v2.0/quotas/{project_id}/default", tags=TAGS, responses=READ_ERRORS)
    def default_quota(project_id: str, request: Request):
        return {"quota": quotas.default(ctx_of(request), _project(project_id))}

    @api.get("/v2.0/quotas/{project_id}/details", tags=TAGS, responses=READ_ERRORS)
    def quota_details(project_id: str, request: Request):
        with db.read() as s:
            return {"quota": quotas.details(s, ctx_of(request), _project(project_id))}

    @api.put("/v2.0/quotas/{project_id}", tags=TAGS, responses=WRITE_ERRORS)
    def update_quota(project_id: str, request: Request, body: Any = Body(None)):
        with db.tx(notify=False) as s:  # nothing an agent acts on
            return {"quota": quotas.update(s, ctx_of(request), _project(project_id), body)}

    @api.delete("/v2.0/quotas/{project_id}", tags=TAGS, status_code=204,
                responses=WRITE_ERRORS)
    def delete_quota(project_id: str, request: Request):
        with db.tx(notify=False) as s:
            quotas.delete(s, ctx_of(request), _project(project_id))
        return Response(status_code=204)

    return api
