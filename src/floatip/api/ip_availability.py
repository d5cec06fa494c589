"""``/v2.0/network-ip-availabilities[/{network_id}]``: Neutron's network-ip-availability
(read only)."""
# no `from __future__ import annotations`: FastAPI reads the route types at definition time
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..service.common import not_found
from ..service.ip_availability import list_availabilities, show_availability
from ..service.policy import Policy
from ..store.database import Database
from .resources import READ_ERRORS, checked_query, ctx_of
from .schemas.base import clean_text

TAGS = ["network-ip-availabilities"]


def router(db: Database, policy: Policy) -> APIRouter:
    api = APIRouter()
    coll = "/v2.0/network-ip-availabilities"

    @api.get(coll, tags=TAGS, response_model=None, responses=READ_ERRORS)
    def list_(request: Request):
        query = checked_query(list(request.query_params.multi_items()))
        with db.read() as s:
            return JSONResponse({"network_ip_availabilities": list_availabilities(
                s, policy, ctx_of(request), query)})

    @api.get(coll + "/{network_id}", tags=TAGS, response_model=None, responses=READ_ERRORS)
    def show(network_id: str, request: Request):
        if clean_text(network_id) or len(network_id) > 255:
            raise not_found("network", network_id)
        with db.read() as s:
            return JSONResponse({"network_ip_availability": show_availability(
                s, policy, ctx_of(request), network_id,
                request.query_params.getlist("fields"))})

    return api
