"""``/floatip/v1/*``: what agents on other hosts (``floatip agent --server URL``) use: the
desired state, a long poll for changes, status reports, a wake-up."""
from __future__ import annotations

from fastapi import APIRouter, Query

from ..core.model import state_to_json
from ..service import agent_view
from ..store.database import Database
from .schemas.agents import Generation, StatusChanged, StatusReport
from .schemas.errors import NeutronErrorBody

ERR = {400: {"model": NeutronErrorBody}, 413: {"model": NeutronErrorBody},
       500: {"model": NeutronErrorBody}, 503: {"model": NeutronErrorBody}}


def router(db: Database) -> APIRouter:
    api = APIRouter()

    # -- agents on other hosts ------------------------------------------------------------
    @api.get("/floatip/v1/state")
    def agent_state():
        with db.tx(notify=False) as s:
            snap = agent_view.agent_snapshot(s)
        return {"generation": db.generation, "state": state_to_json(snap["state"]),
                "vm_ports": snap["vm_ports"], "known_routers": sorted(snap["known_routers"]),
                "fip_revisions": snap["fip_revisions"], "fip_status": snap["fip_status"],
                "router_status": snap["router_status"]}

    @api.get("/floatip/v1/changes", responses={200: {"model": Generation}, **ERR})
    def changes(generation: int = -1, timeout: float = Query(30.0, ge=0, le=3600)):
        """Long poll: returns at once if the server's generation differs from ``generation``,
        else when the next change commits, or after ``timeout`` seconds."""
        return {"generation": db.wait(generation, max(0.0, min(timeout, 55.0)))}

    @api.post("/floatip/v1/status", responses={200: {"model": StatusChanged}, **ERR})
    def status(body: StatusReport):
        d = body.model_dump(exclude_unset=True)
        with db.tx(notify=False) as s:
            n = agent_view.report_status(s, d.get("floatingips"), d.get("routers"),
                                         d.get("ports"))
        return {"changed": n}

    @api.post("/floatip/v1/sync", responses={200: {"model": Generation}, **ERR})
    def sync(full: bool = False):
        """Wake the agent now (``floatip port plug`` calls it after plugging); ``full=true``
        asks for a full pass that observes and repairs every router."""
        if full:
            for fn in list(db.resync_listeners):
                fn()
        db.notify()
        return {"generation": db.generation}

    return api
