"""``GET /v2.0/agents`` (Neutron's ``agent`` extension): what realises the state, from the
backend (``Backend.agents()``) and the agents on other hosts that follow this server
(``heartbeats``). Admins see every agent; others get an empty list, as Neutron's
``get_agent`` policy gives them."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ..core.errors import NeutronError
from ..service.listing import select_fields
from ..service.policy import ADMIN, Policy
from .heartbeats import Heartbeats
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

    def visible(request: Request) -> list[dict]:
        ctx = getattr(request.state, "ctx", ADMIN)
        local = backend.agents() if backend is not None else []
        found = [_neutron_agent(a) for a in local + heartbeats.agents()]
        return [a for a in found if policy.check(ctx, "get_agent", a)]

    @api.get("/v2.0/agents", tags=["agents"], response_model=None,
             responses={200: {"model": AgentList}, **ERRORS})
    def list_agents(request: Request):
        fields = request.query_params.getlist("fields")
        wanted = {k: v for k, v in request.query_params.multi_items() if k != "fields"}
        items = [a for a in visible(request)
                 if all(str(a.get(k)).lower() == v.lower() for k, v in wanted.items() if k in a)]
        return {"agents": [select_fields(a, fields) for a in items]}

    @api.get("/v2.0/agents/{aid}", tags=["agents"], response_model=None,
             responses={200: {"model": OneAgent}, 404: {"model": NeutronErrorBody}, **ERRORS})
    def show_agent(aid: str, request: Request):
        for a in visible(request):
            if a["id"] == aid:
                return {"agent": a}
        raise NeutronError(f"Agent {aid} could not be found.", "AgentNotFound", 404)

    return api
