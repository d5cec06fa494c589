"""``GET /v2.0/agents`` (Neutron's ``agent`` extension): what realises the state, from the
backend (``Backend.agents()``) and the agents on other hosts that follow this server
(``heartbeats``). Admins see every agent; others get an empty list, as Neutron's
``get_agent`` policy gives them. Admins may change an agent's ``admin_state_up`` and
``description`` and delete it; a deleted agent shows again once it reports again (a
pass, a poll), as a Neutron agent registers again. Both are kept in memory, as the
agents' heartbeats are."""
from __future__ import annotations

import threading
import uuid
from datetime import datetime, timezone

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from ..core.errors import NeutronError
from ..service.listing import select_fields
from ..service.policy import ADMIN, Policy
from .heartbeats import Heartbeats
from .schemas.agents import UpdateAgentRequest
from .schemas.errors import NeutronErrorBody

STARTED = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _neutron_agent(a: dict) -> dict:
    host = a.get("host") or "localhost"
    binary = a.get("binary") or "floatip-agent"
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"floatip-agent:{host}:{binary}")),
            "agent_type": a.get("agent_type", "L3 agent"), "binary": binary, "host": host,
            "topic": "l3_agent", "alive": bool(a.get("alive")), "admin_state_up": True,
            "availability_zone": "nova", "description": None,
            "created_at": a.get("started") or STARTED, "started_at": a.get("started") or STARTED,
            "heartbeat_timestamp": a.get("heartbeat") or now,
            "configurations": {k: v for k, v in a.items() if k in ("passes", "last_error")},
            "resources_synced": None}


class Agent(BaseModel):
    id: str
    agent_type: str
    binary: str
    host: str
    topic: str
    alive: bool
    admin_state_up: bool
    availability_zone: str | None
    description: str | None
    created_at: str
    started_at: str
    heartbeat_timestamp: str
    configurations: dict
    resources_synced: bool | None


class AgentList(BaseModel):
    agents: list[Agent]


class OneAgent(BaseModel):
    agent: Agent


ERRORS = {code: {"model": NeutronErrorBody} for code in (400, 401, 403, 500)}


def router(policy: Policy, backend, heartbeats: Heartbeats) -> APIRouter:
    api = APIRouter()

    lock = threading.Lock()
    changed: dict[str, dict] = {}   # id -> what an admin set
    deleted: dict[str, tuple] = {}  # id -> its last report when deleted

    def report(raw: dict) -> tuple:
        return raw.get("heartbeat"), raw.get("passes")

    def visible(request: Request) -> list[dict]:
        ctx = getattr(request.state, "ctx", ADMIN)
        # ``serve --workers N``: every API process' agents (app.state.all_agents), so that
        # each answers alike
        gather = getattr(request.app.state, "all_agents", None)
        raws = gather() if gather is not None else \
            (backend.agents() if backend is not None else []) + heartbeats.agents()
        found = []
        with lock:
            for raw in raws:
                a = _neutron_agent(raw)
                if a["id"] in deleted:
                    if deleted[a["id"]] == report(raw):
                        continue
                    del deleted[a["id"]]  # it reported again: listed anew
                a.update(changed.get(a["id"], {}))
                found.append((a, raw))
        return [(a, raw) for a, raw in found if policy.check(ctx, "get_agent", a)]

    def one(aid: str, request: Request) -> tuple[dict, dict]:
        for a, raw in visible(request):
            if a["id"] == aid:
                return a, raw
        raise NeutronError(f"Agent {aid} could not be found.", "AgentNotFound", 404)

    @api.get("/v2.0/agents", tags=["agents"], response_model=None,
             responses={200: {"model": AgentList}, **ERRORS})
    def list_agents(request: Request):
        fields = request.query_params.getlist("fields")
        wanted = {k: v for k, v in request.query_params.multi_items() if k != "fields"}
        items = [a for a, _ in visible(request)
                 if all(str(a.get(k)).lower() == v.lower() for k, v in wanted.items() if k in a)]
        return {"agents": [select_fields(a, fields) for a in items]}

    @api.get("/v2.0/agents/{aid}", tags=["agents"], response_model=None,
             responses={200: {"model": OneAgent}, 404: {"model": NeutronErrorBody}, **ERRORS})
    def show_agent(aid: str, request: Request):
        return {"agent": one(aid, request)[0]}

    @api.put("/v2.0/agents/{aid}", tags=["agents"], response_model=None,
             responses={200: {"model": OneAgent}, 404: {"model": NeutronErrorBody}, **ERRORS})
    def update_agent(aid: str, request: Request, body: UpdateAgentRequest):
        a, _ = one(aid, request)
        policy.require(getattr(request.state, "ctx", ADMIN), "update_agent", a)
        with lock:
            changed.setdefault(aid, {}).update(body.agent.attrs())
            return {"agent": {**a, **changed[aid]}}

    @api.delete("/v2.0/agents/{aid}", tags=["agents"], status_code=204, response_model=None,
                responses={204: {"description": "deleted"}, 404: {"model": NeutronErrorBody},
                           **ERRORS})
    def delete_agent(aid: str, request: Request):
        a, raw = one(aid, request)
        policy.require(getattr(request.state, "ctx", ADMIN), "delete_agent", a)
        with lock:
            deleted[aid] = report(raw)
            changed.pop(aid, None)
        return Response(status_code=204)

    return api
