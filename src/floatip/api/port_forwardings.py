"""``/v2.0/floatingips/{id}/port_forwardings[/{pf_id}]``: Neutron's floating IP port
forwardings (list, show, create, update, delete; one transaction per request)."""
# no `from __future__ import annotations`: FastAPI reads the body types at definition time
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ..service.access import Access
from ..service.port_forwardings import PortForwardings, pf_not_found
from ..store.database import Database
from .crud import checked
from .resources import READ_ERRORS, WRITE_ERRORS, checked_id, checked_query, ctx_of
from .schemas.port_forwardings import (CreatePortForwardingRequest, PortForwardingList,
                                       PortForwardingOne, UpdatePortForwardingRequest)

TAGS = ["port-forwardings"]


def router(db: Database, access: Access) -> APIRouter:
    api = APIRouter()
    pfs = PortForwardings(access.policy, access)
    coll = "/v2.0/floatingips/{fid}/port_forwardings"
    item = coll + "/{pid}"

    def pf_id(pid: str) -> str:
        return checked(pid, pf_not_found(pid))

    @api.get(coll, tags=TAGS, response_model=None,
             responses={200: {"model": PortForwardingList}, **READ_ERRORS})
    def list_(fid: str, request: Request):
        query = checked_query(list(request.query_params.multi_items()))
        with db.read() as s:
            return JSONResponse({"port_forwardings": pfs.list(
                s, ctx_of(request), checked_id("floatingip", fid), query)})

    @api.get(item, tags=TAGS, response_model=None,
             responses={200: {"model": PortForwardingOne}, **READ_ERRORS})
    def show(fid: str, pid: str, request: Request):
        fields = request.query_params.getlist("fields")
        with db.read() as s:
            return JSONResponse({"port_forwarding": pfs.show(
                s, ctx_of(request), checked_id("floatingip", fid), pf_id(pid), fields)})

    @api.post(coll, tags=TAGS, status_code=201, response_model=None,
              responses={201: {"model": PortForwardingOne}, **WRITE_ERRORS})
    def create(fid: str, request: Request, body: CreatePortForwardingRequest):
        with db.tx() as s:
            return JSONResponse({"port_forwarding": pfs.create(
                s, ctx_of(request), checked_id("floatingip", fid),
                body.port_forwarding.attrs())}, status_code=201)

    @api.put(item, tags=TAGS, response_model=None,
             responses={200: {"model": PortForwardingOne}, **WRITE_ERRORS})
    def update(fid: str, pid: str, request: Request, body: UpdatePortForwardingRequest):
        with db.tx() as s:
            return JSONResponse({"port_forwarding": pfs.update(
                s, ctx_of(request), checked_id("floatingip", fid), pf_id(pid),
                body.port_forwarding.attrs())})

    @api.delete(item, tags=TAGS, status_code=204, response_class=Response,
                responses={204: {"description": "deleted"}, **WRITE_ERRORS})
    def delete(fid: str, pid: str, request: Request):
        with db.tx() as s:
            pfs.delete(s, ctx_of(request), checked_id("floatingip", fid), pf_id(pid))
        return Response(status_code=204)

    return api
