"""``GET /floatip/v1/events``: the history of status changes and repairs, newest first.
A project sees its own objects' events, admins (and the agents' service user) all."""
from __future__ import annotations

from fastapi import APIRouter, Query, Request

from ..service.policy import ADMIN
from ..store import events as E
from ..store.database import Database
from .schemas.errors import NeutronErrorBody

ERR = {"model": NeutronErrorBody}


def router(db: Database) -> APIRouter:
    api = APIRouter()

    @api.get("/floatip/v1/events", responses={400: ERR, 401: ERR})
    def events(request: Request,
               object_id: str | None = Query(None, alias="object", max_length=36),
               limit: int = Query(100, ge=1, le=1000)):
        """Events of one object (``object=ID``) or of every object the caller may see."""
        ctx = getattr(request.state, "ctx", ADMIN)
        scope = None if ctx.is_admin or ctx.agent else ctx.project_id
        with db.read() as s:
            rows = E.listing(s, object_id, scope, limit)
        for r in rows:
            r["at"] = r["at"].strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"events": rows}

    return api
