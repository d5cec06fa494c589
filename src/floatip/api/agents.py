"""``/floatip/v1/*``: what agents on other hosts (``floatip agent --server URL``) use: the
desired state, a long poll that returns the changes (like a watch), status reports, a
wake-up.

Long polls are coroutines waiting on an asyncio event, not worker threads: a thousand
waiting agents cost no thread each, and ``GET /v2.0/networks`` stays as fast as with none.
They are bounded (``MAX_LONG_POLLS``); beyond, a clear 503 tells the agent to come back.
"""
from __future__ import annotations

import asyncio
import time
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from ..core.errors import NeutronError
from ..core.model import objects_to_json, state_to_json
from ..service import agent_view
from ..store.database import Database
from .heartbeats import HEADER, Heartbeats
from .schemas.agents import Generation, Id, PortStatus, Status, StatusChanged, StatusReport
from .schemas.base import Int, Str
from .schemas.errors import NeutronErrorBody

ERR = {400: {"model": NeutronErrorBody}, 413: {"model": NeutronErrorBody},
       500: {"model": NeutronErrorBody}, 503: {"model": NeutronErrorBody}}
MAX_LONG_POLLS = 512


class FipReport(BaseModel):
    """A floating IP's status with its reason, about the association the agent programmed."""
    model_config = ConfigDict(extra="forbid")
    status: Status
    reason: Str(1000) | None = None
    revision: Int | None = None
    port_id: Str(64) | None = None
    fixed_ip: Str(64) | None = None


class RouterReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status
    reason: Str(1000) | None = None
    repaired: Str(1000) | None = None  # what a full pass put back (drift), for the history


class AgentReport(StatusReport):
    """``StatusReport``, plus the forms with a reason (``status_reason``)."""
    floatingips: dict[Id, Status | tuple[Status, Int] | FipReport] | None = None
    routers: dict[Id, Status | RouterReport] | None = None
    ports: dict[Id, PortStatus] | None = None


def snapshot_json(snap: dict) -> dict:
    return {"generation": snap["generation"], "full": True,
            "state": state_to_json(snap["state"]),
            "vm_ports": snap["vm_ports"], "known_routers": sorted(snap["known_routers"]),
            **{k: snap[k] for k in ("fip_revisions", "fip_status", "router_status",
                                    "fip_reason", "router_reason")}}


def delta_json(d: dict) -> dict:
    if d.get("full"):
        return snapshot_json(d)
    return {**d, "upserts": objects_to_json(d["upserts"])}


class Waiters:
    """asyncio events set (from any thread) after every committed change."""

    def __init__(self, db: Database):
        self.events: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.active = 0
        db.listeners.append(self.wake)

    def wake(self) -> None:
        for loop, ev in list(self.events):
            loop.call_soon_threadsafe(ev.set)

    async def wait(self, timeout: float) -> None:
        ev = asyncio.Event()
        key = (asyncio.get_running_loop(), ev)
        self.events.add(key)
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self.events.discard(key)


def router(db: Database, heartbeats: Heartbeats) -> APIRouter:
    api = APIRouter()
    waiters = Waiters(db)

    def read_snapshot() -> dict:
        with db.read() as s:
            return snapshot_json(agent_view.agent_snapshot(s))

    def read_delta(since: int) -> dict:
        with db.read() as s:
            d = agent_view.agent_delta(s, since)
        if d.get("held"):  # committed changes behind a writer still running: soon again
            db.notify_soon()
        return delta_json(d)

    def read_position() -> int:
        with db.read() as s:
            now, held = agent_view.agent_position(s)
        if held:
            db.notify_soon()
        return now

    # -- agents on other hosts ------------------------------------------------------------
    @api.get("/floatip/v1/state")
    async def agent_state(request: Request):
        """Everything, read in one consistent transaction."""
        heartbeats.beat(request.headers.get(HEADER))
        return await run_in_threadpool(read_snapshot)

    @api.get("/floatip/v1/changes", responses={200: {"model": Generation}, **ERR})
    async def changes(request: Request, generation: int = -1,
                      timeout: float = Query(30.0, ge=0, le=3600), objects: bool = False):
        """Long poll. Returns at once when something committed after ``generation``, else
        at the next commit, or after ``timeout`` seconds. With ``objects=true`` the answer
        carries the changed objects (``agent_view.agent_delta``); without, the generation
        only."""
        heartbeats.beat(request.headers.get(HEADER))
        if waiters.active >= MAX_LONG_POLLS:
            raise NeutronError(f"Too many agents waiting for changes ({MAX_LONG_POLLS}); "
                               "retry in a few seconds", "ServiceUnavailable", 503)
        waiters.active += 1
        try:
            deadline = time.monotonic() + max(0.0, min(timeout, 55.0))
            start = db.generation  # a wake-up (POST /floatip/v1/sync) also answers
            while True:
                local = db.generation
                if objects:
                    doc = await run_in_threadpool(read_delta, generation)
                    gen = doc["generation"]
                else:  # the feed's generation, as a delta answers it (on PostgreSQL a
                    # transaction id, not this process' count of commits)
                    doc = None
                    gen = await run_in_threadpool(read_position)
                left = deadline - time.monotonic()
                if gen != generation or left <= 0 or (objects and local != start):
                    return doc if doc is not None else {"generation": gen}
                if db.generation == local:
                    await waiters.wait(left)
        finally:
            waiters.active -= 1

    @api.get("/floatip/v1/agent")
    def agent_status(request: Request):
        """This server's agent: per router in sync or not, last pass, repairs, errors."""
        backend = getattr(request.app.state, "backend", None)
        agent = getattr(backend, "agent", None)
        st = agent.status() if agent is not None else None
        if st is not None:  # alive as /v2.0/agents says: a pass within the agent-down time
            st["alive"] = any(a.get("alive") for a in backend.agents())
        elif getattr(request.app.state, "sibling_agent", None) is not None:
            st = request.app.state.sibling_agent()  # serve --workers: the first process'
        return {"instance": getattr(request.app.state, "instance", None), "agent": st}

    @api.post("/floatip/v1/status", responses={200: {"model": StatusChanged}, **ERR})
    def status(body: AgentReport, request: Request):
        heartbeats.beat(request.headers.get(HEADER))
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
