"""The seam where desired state leaves the API.

A ``Backend`` realises the desired state somewhere (this host's kernel, an OVN deployment) and
writes statuses back; the server holds exactly one. A ``StateSource`` is where a backend reads
the desired state and reports to: the in-process database (``LocalSource``) or a floatip API
on another host (``RemoteSource``). A new backend is one new module or package here that
implements ``Backend``; nothing above this layer changes.
"""
from __future__ import annotations

import threading
import time
from typing import Protocol


class StateSource(Protocol):
    def snapshot(self) -> dict:
        """``{"generation", "state": core.model.State, "vm_ports", "known_routers",
        "fip_revisions", "fip_status", "router_status"}``, read consistently."""

    def report(self, floatingips: dict, routers: dict, ports: dict) -> None:
        """Statuses: FIP id -> status or [status, revision]; router id -> status;
        port id -> {"status", "host"}."""

    def watch(self, wake: threading.Event, stop: threading.Event) -> None:
        """Set ``wake`` after every committed change, until ``stop`` is set."""


class Backend(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def request_full(self) -> None:
        """Observe and repair everything at the next pass, not only what changed."""

    def wait_synced(self, generation: int, timeout: float) -> bool:
        """Block until the state of ``generation`` is realised; False on timeout."""

    def agents(self) -> list[dict]:
        """What realises the state, for ``GET /v2.0/agents``: one dict per agent/chassis."""


def wait_until(cond: threading.Condition, done, timeout: float) -> bool:
    """Wait on ``cond`` (notified after each pass) until ``done()``; False on timeout."""
    deadline = time.monotonic() + timeout
    with cond:
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            cond.wait(min(left, 0.5))
    return True


AGENT_DOWN_TIME = 75.0  # Neutron's agent_down_time: seconds without a pass = dead


def agent_alive(running: bool, last_pass_at: float, started_at: float, down_time: float,
                interval: float = 0.0) -> bool:
    """Neutron's liveness: a pass finished within ``down_time`` (a new agent has that long
    for its first). An agent that fails every pass (a crash loop), hangs, or whose process
    is gone is dead, whatever its thread does. The periodic full pass runs every
    ``interval``: a quiet agent with a longer interval is not dead between two."""
    if not running:
        return False
    last = last_pass_at or started_at
    return time.time() - last <= max(down_time, 2 * interval)


def l3_agent(host: str, alive: bool, stats, started_at: float | None = None,
             down_time: float = AGENT_DOWN_TIME, interval: float = 0.0) -> dict:
    """This host's agent for ``GET /v2.0/agents`` (``stats``: agent.loop.AgentStats;
    ``alive``: its thread or process runs)."""
    started_at = started_at or time.time()
    beat = stats.last_pass_at or started_at
    return {"agent_type": "L3 agent", "binary": "floatip-agent", "host": host,
            "alive": agent_alive(alive, stats.last_pass_at, started_at, down_time, interval),
            "passes": stats.passes, "last_error": stats.last_error,
            "heartbeat": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(beat)),
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started_at))}
