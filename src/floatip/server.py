"""``floatip serve``: the API and the agent in one process; ``floatip agent --server URL``:
the agent alone, following a remote API.

The agent wakes on an event — set in-process after each committed change (or, remotely, when
a long poll returns a new generation), and by OVSDB notifications about VM interfaces — and
also every ``interval`` seconds. Each wake is one full pass: desired state -> ``reconcile(...,
prune=True)`` -> VM port tags -> statuses (FIP ACTIVE/ERROR/DOWN, router ACTIVE/ERROR/DOWN,
port binding) reported back.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field

from .layout import AgentConfig
from .model import InvalidState, NeutronError, State, validate

log = logging.getLogger("floatip.agent")
DEFAULT_DB = "sqlite:////var/lib/floatip/floatip.db"


# ---------------------------------------------------------------------------------------
# Backends: where the agent reads the desired state and reports statuses

class LocalBackend:
    def __init__(self, db):
        self.db = db

    def snapshot(self) -> dict:
        from . import service as svc
        with self.db.tx(notify=False) as s:
            return svc.agent_snapshot(s)

    def report(self, floatingips, routers, ports) -> None:
        from . import service as svc
        with self.db.tx(notify=False) as s:
            svc.report_status(s, floatingips, routers, ports)

    def watch(self, wake: threading.Event, stop: threading.Event) -> None:
        self.db.listeners.append(wake.set)


class RemoteBackend:
    def __init__(self, url: str):
        from .client import Client
        self.client = Client(url)
        self.url = url

    def snapshot(self) -> dict:
        from . import service as svc
        doc = self.client.agent_state()
        return {"generation": doc["generation"], "state": svc.state_from_json(doc["state"]),
                "vm_ports": doc["vm_ports"], "known_routers": set(doc["known_routers"]),
                "fip_revisions": doc.get("fip_revisions", {})}

    def report(self, floatingips, routers, ports) -> None:
        self.client.report(floatingips=floatingips, routers=routers, ports=ports)

    def watch(self, wake: threading.Event, stop: threading.Event) -> None:
        def loop():
            from .client import Client
            c = Client(self.url)
            gen = -1
            while not stop.is_set():
                try:
                    new = c.changes(gen, timeout=25)
                except NeutronError as e:
                    log.warning("long poll: %s", e)
                    stop.wait(2)
                    continue
                if new != gen:
                    gen = new
                    wake.set()
        threading.Thread(target=loop, name="floatip-watch", daemon=True).start()


# ---------------------------------------------------------------------------------------

class ScopedDataplane:
    """The dataplane as seen by an agent that prunes only routers its database knows (live
    or deleted): other floatip routers on the host (another server, ``apply --local``,
    tests) are invisible to it and so never removed."""

    def __init__(self, dp, known: set[str]):
        self.dp, self.known = dp, known

    def observe(self, scope=None):
        obs = self.dp.observe(scope)
        obs.namespaces = {ns: f for ns, f in obs.namespaces.items() if f.router_id in self.known}
        obs.ports = {n: p for n, p in obs.ports.items() if p.router_id in self.known}
        return obs

    def __getattr__(self, name):
        return getattr(self.dp, name)


@dataclass
class AgentStats:
    passes: int = 0
    last_seconds: float = 0.0
    last_error: str | None = None
    last_generation: int = -1
    fip_status: dict[str, str] = field(default_factory=dict)


class Agent:
    def __init__(self, backend, config: AgentConfig, *, interval: float = 30.0,
                 prune_scope: str = "all", host: str | None = None, bind_ports: bool = True):
        if prune_scope not in ("all", "known"):
            raise NeutronError(f"prune scope {prune_scope!r}: all or known")
        self.backend, self.config = backend, config
        self.interval, self.prune_scope = interval, prune_scope
        self.host = host or socket.gethostname()
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.passes_done = threading.Condition()
        self.stats = AgentStats()
        self._dp = None
        self.binder = None
        if bind_ports:
            from .binding import Binder
            self.binder = Binder(config.integration_bridge, self.host, self.wake.set)
        self.thread: threading.Thread | None = None

    @property
    def dp(self):
        if self._dp is None:
            from .dataplane import Dataplane
            self._dp = Dataplane(self.config.nat_driver)
        return self._dp

    def start(self) -> "Agent":
        self.backend.watch(self.wake, self.stop_event)
        self.wake.set()
        self.thread = threading.Thread(target=self.run, name="floatip-agent", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        if self.binder is not None:
            self.binder.close()
        if self._dp is not None:
            self._dp.close()
            self._dp = None

    def run(self) -> None:
        backoff = 0.2
        while not self.stop_event.is_set():
            self.wake.wait(timeout=self.interval)
            if self.stop_event.is_set():
                break
            self.wake.clear()
            try:
                self.sync()
                backoff = 0.2
            except Exception as e:  # noqa: BLE001 - the agent must survive and retry
                log.exception("agent pass failed")
                self.stats.last_error = str(e)
                if self._dp is not None:
                    try:
                        self._dp.close()
                    except Exception:  # noqa: BLE001
                        pass
                    self._dp = None
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 10)
                self.wake.set()

    def _without_broken_routers(self, state: State) -> tuple[State, dict[str, str]]:
        """Routers this agent cannot lay out (e.g. a gateway on a physical network without a
        bridge mapping here) are left out of the pass and reported ERROR, so one of them does
        not stop every other router."""
        from dataclasses import replace
        from .layout import router_layouts
        broken = {}
        for rid, r in state.routers.items():
            try:
                router_layouts(replace(state, routers={rid: r}, floatingips={}), self.config)
            except NeutronError as e:
                broken[rid] = e.message
        if broken:
            log.error("routers left out: %s", broken)
            state = replace(state, routers={k: v for k, v in state.routers.items()
                                            if k not in broken})
        return state, broken

    def sync(self) -> None:
        from .agent import reconcile
        t0 = time.perf_counter()
        snap = self.backend.snapshot()
        state: State = snap["state"]
        fip_status: dict[str, str] = {}
        router_status: dict[str, str] = {}
        try:
            validate(state)
        except InvalidState as e:
            log.error("desired state is invalid, not applied: %s", e)
            self.stats.last_error = str(e)
            self.backend.report({f: "ERROR" for f in state.floatingips},
                                {r: "ERROR" for r in state.routers}, {})
            return
        state, broken = self._without_broken_routers(state)
        dp = self.dp
        view = ScopedDataplane(dp, snap["known_routers"]) if self.prune_scope == "known" else dp
        report = reconcile(view, state, self.config, prune=True)
        report.errors.update(broken)
        state = snap["state"]
        for rid, r in state.routers.items():
            router_status[rid] = "ERROR" if rid in report.errors else \
                ("ACTIVE" if r.admin_state_up else "DOWN")
        for fid, f in state.floatingips.items():
            router = state.router_for_fip(f)
            if router is None or not router.admin_state_up:
                fip_status[fid] = "DOWN"
            else:
                fip_status[fid] = "ERROR" if router.id in report.errors else "ACTIVE"
        ports = self.binder.sync(snap["vm_ports"]) if self.binder is not None else {}
        revisions = snap.get("fip_revisions", {})
        self.backend.report({f: [st, revisions[f]] if f in revisions else st
                             for f, st in fip_status.items()}, router_status, ports)
        self.stats.passes += 1
        self.stats.last_seconds = time.perf_counter() - t0
        self.stats.last_generation = snap["generation"]
        self.stats.last_error = "; ".join(f"{k}: {v}" for k, v in report.errors.items()) or None
        self.stats.fip_status = fip_status
        if report.plan.steps or report.errors:
            log.info("pass: %d step(s), %d error(s) in %.1f ms", len(report.plan.steps),
                     len(report.errors), self.stats.last_seconds * 1000)
        with self.passes_done:
            self.passes_done.notify_all()


# ---------------------------------------------------------------------------------------
# Server

def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise NeutronError(f"--listen {listen!r}: HOST:PORT expected")
    return host or "127.0.0.1", int(port)


class Server:
    """The API (uvicorn, in a thread or in the foreground) plus, optionally, the agent."""

    def __init__(self, db_url: str = DEFAULT_DB, listen: str = "127.0.0.1:9696",
                 config: AgentConfig = AgentConfig(), *, agent: bool = True,
                 interval: float = 30.0, prune_scope: str = "all", host: str | None = None):
        import uvicorn
        from .api import create_app
        from .store import Database
        self.host, self.port = parse_listen(listen)
        self.db = Database(db_url)
        self.app = create_app(self.db)
        self.agent = Agent(LocalBackend(self.db), config, interval=interval,
                           prune_scope=prune_scope, host=host) if agent else None
        self.uvicorn = uvicorn.Server(uvicorn.Config(self.app, host=self.host, port=self.port,
                                                     log_level="warning", access_log=False))
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def run(self) -> None:
        """Foreground: until SIGINT/SIGTERM."""
        if self.agent is not None:
            self.agent.start()
        try:
            self.uvicorn.run()
        finally:
            self.close()

    def start(self) -> "Server":
        """Background thread (tests, demo); returns once the API answers."""
        if self.agent is not None:
            self.agent.start()
        self.thread = threading.Thread(target=self.uvicorn.run, name="floatip-api", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.uvicorn.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.close()
                raise NeutronError(f"API did not start on {self.url}")
            time.sleep(0.02)
        return self

    def close(self) -> None:
        self.uvicorn.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
            self.thread = None
        if self.agent is not None:
            self.agent.stop()
        self.db.close()

    def wait_for_agent(self, timeout: float = 30.0) -> bool:
        """Block until the agent finished a pass that reflects everything committed so far."""
        if self.agent is None:
            return True
        deadline = time.monotonic() + timeout
        with self.db.tx(notify=False) as s:
            from .store import generation
            want = generation(s)
        with self.agent.passes_done:
            while self.agent.stats.last_generation < want or self.agent.wake.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.agent.passes_done.wait(min(left, 0.5))
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
