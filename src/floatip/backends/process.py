"""The kernel agent in a process of its own, beside the API (``floatip serve --agent-process``).

In one process the agent and the API share one interpreter lock: a full pass at 10,000
floating IPs (seconds of Python) delayed API writes, and every incremental pass took its
share from the requests. Here the agent is a child process that reads the desired state from
the same database itself (its own connection: a SQLite WAL reader or a PostgreSQL REPEATABLE
READ snapshot never blocks a writer) and is woken through a pipe after every commit. What it
must write goes to the parent: status reports (the parent's writers queue on its write lock;
a second writing process would sleep in SQLite's busy handler) and, after each pass, its
stats for ``floatip status``, ``/metrics`` and ``wait_synced``.

Pipes: the child's stdin carries its settings (one JSON line), then one byte per wake-up
("w", or "f" for a full pass); EOF ends it. Its messages come back as JSON lines on another
pipe. A child that dies is started again; it dies with the parent (PR_SET_PDEATHSIG)."""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from ..agent.loop import Agent, AgentStats, pass_summary
from ..core.errors import NeutronError
from ..core.layout import AgentConfig
from ..metadata.agent import metadata_hooks
from ..store.database import Database
from .base import AGENT_DOWN_TIME, l3_agent, wait_until
from .local import LocalSource

log = logging.getLogger("floatip.agent")
STATS = [f.name for f in dataclasses.fields(AgentStats)
         if f.name not in ("fip_status", "router_status")]  # per object: too big per pass


class AgentView:
    """The child's agent as the parent last heard of it: ``stats`` and ``status()``, what
    the in-process agent offers to the API, the metrics and the benchmarks."""

    def __init__(self, host: str, instance: str | None):
        self.host, self.instance = host, instance
        self.stats = AgentStats()
        self.last_status: dict = {}
        self.alive = False

    def status(self) -> dict:
        return {**{"host": self.host, "instance": self.instance, "routers": {}},
                **self.last_status, "alive": self.alive}


class ProcessBackend:
    name = "kernel"

    def __init__(self, db: Database, config: AgentConfig, *, interval: float = 30.0,
                 prune_scope: str = "all", host: str | None = None, **agent_options):
        if db.in_memory:
            raise NeutronError("--agent-process needs a database both processes can open: a "
                               "SQLite file or PostgreSQL, not an in-memory SQLite")
        self.db, self.source = db, LocalSource(db)
        self.settings = {"db": db.url, "token": db.token, "config": dataclasses.asdict(config),
                         "interval": interval, "prune_scope": prune_scope, "host": host,
                         "options": agent_options,
                         "log_level": logging.getLogger("floatip").getEffectiveLevel()}
        self.agent = AgentView(host or os.uname().nodename, config.instance)
        self.on_pass = None  # metrics: called with each pass's summary
        self.synced = threading.Condition()
        self.proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._write_lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self.restarts = 0
        self.interval, self.agent_down_time, self.started_at = \
            interval, AGENT_DOWN_TIME, None

    # -- the parent ------------------------------------------------------------------------
    def start(self) -> None:
        self.started_at = time.time()
        self.db.listeners.append(self.wake)
        self._supervisor = threading.Thread(target=self._supervise, name="floatip-agent-proc",
                                            daemon=True)
        self._supervisor.start()

    def _spawn(self) -> None:
        rfd, wfd = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.Popen([sys.executable, "-m", "floatip.backends.process", str(wfd)],
                                stdin=subprocess.PIPE, pass_fds=(wfd,), env=env,
                                start_new_session=False)
        os.close(wfd)
        proc.stdin.write(json.dumps(self.settings).encode() + b"\n")
        proc.stdin.flush()
        # wake-ups never block a request thread: with the pipe full, one is pending anyway
        os.set_blocking(proc.stdin.fileno(), False)
        self.proc, self._messages = proc, os.fdopen(rfd, "rb")
        self.agent.alive = True

    def _supervise(self) -> None:
        """Spawns from this thread: the child's death signal follows the thread that
        started it, and this one lives as long as the backend."""
        while not self._stopping.is_set():
            try:
                self._spawn()
            except OSError as e:
                log.error("agent process could not start: %s", e)
                self._stopping.wait(1.0)
                continue
            if self._stopping.is_set():  # stop() came while it started: EOF ends it
                self._end_input()
            for line in self._messages:
                try:
                    self._handle(json.loads(line))
                except Exception:  # noqa: BLE001 - one bad message must not stop the rest
                    log.exception("agent process message")
            self._messages.close()
            self.agent.alive = False
            code = self.proc.wait()
            with self.synced:
                self.synced.notify_all()
            if self._stopping.is_set():
                return
            log.error("agent process exited (%s); starting it again", code)
            self.restarts += 1
            self._stopping.wait(1.0)

    def _handle(self, msg: dict) -> None:
        if "report" in msg:
            r = msg["report"]
            self.source.report(r["floatingips"], r["routers"], r["ports"])
        elif "pass" in msg:
            p = msg["pass"]
            for k, v in p["stats"].items():
                setattr(self.agent.stats, k, v)
            self.agent.last_status = p["status"]
            if self.on_pass is not None:
                self.on_pass(p["summary"])
            with self.synced:
                self.synced.notify_all()

    def _send(self, byte: bytes) -> None:
        with self._write_lock:
            try:
                os.write(self.proc.stdin.fileno(), byte)
            except (OSError, ValueError, AttributeError):  # full, exiting or restarting
                pass

    def wake(self) -> None:
        self._send(b"w")

    def request_full(self) -> None:
        self._send(b"f")

    def stop(self) -> None:
        self._stopping.set()
        if self.wake in self.db.listeners:
            self.db.listeners.remove(self.wake)
        proc = self._end_input()
        if proc is not None:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._supervisor is not None:
            self._supervisor.join(timeout=10)

    def _end_input(self) -> subprocess.Popen | None:
        """EOF on the child's stdin: it stops its agent and exits."""
        with self._write_lock:
            proc = self.proc
            if proc is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
        return proc

    def wait_synced(self, generation: int, timeout: float) -> bool:
        return wait_until(self.synced, lambda: self.agent.stats.last_generation >= generation,
                          timeout)

    def agents(self) -> list[dict]:
        return [l3_agent(self.agent.host, self.agent.alive, self.agent.stats, self.started_at,
                         self.agent_down_time, self.interval)]


# -- the child ---------------------------------------------------------------------------
class PipeSource(LocalSource):
    """Reads from its own connection to the database; reports go to the parent."""

    def __init__(self, db: Database, out):
        super().__init__(db)
        self.out, self.lock = out, threading.Lock()

    def send(self, msg: dict) -> None:
        data = json.dumps(msg, separators=(",", ":")).encode() + b"\n"
        with self.lock:
            self.out.write(data)
            self.out.flush()

    def report(self, floatingips, routers, ports) -> None:
        self.send({"report": {"floatingips": floatingips, "routers": routers, "ports": ports}})

    def watch(self, wake, stop) -> None:
        """Woken by the parent through stdin (``child_main``) after its commits, and by its
        own database: on PostgreSQL other processes' commits (LISTEN; the parent's are
        ignored, the pipe brought them) and a second look at changes held back."""
        super().watch(wake, stop)


def child_main(fd: int) -> None:
    try:  # die with the parent, however it ends
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    stdin = sys.stdin.buffer
    s = json.loads(stdin.readline())
    logging.basicConfig(level=s["log_level"], stream=sys.stderr,
                        format="%(asctime)s agent-process %(levelname)s %(message)s")
    opts = dict(s["options"])
    hooks = metadata_hooks(opts.get("run_dir", "/run/floatip"), opts.pop("metadata", True),
                           opts.pop("nova_metadata_url", None), opts.pop("metadata_secret", ""),
                           owner=s["config"].get("instance"))
    source = PipeSource(Database(s["db"], migrate_schema=False, checkpoints=False,
                                 token=s.get("token")),
                        os.fdopen(fd, "wb"))
    agent = Agent(source, AgentConfig(**s["config"]), interval=s["interval"],
                  prune_scope=s["prune_scope"], host=s["host"], hooks=hooks, **opts)

    def on_pass(a, full, seconds, report):
        source.send({"pass": {"summary": pass_summary(a, full, seconds, report),
                              "stats": {k: getattr(a.stats, k) for k in STATS},
                              "status": a.status()}})
    agent.on_pass = on_pass
    # Woken by the API's commit, the agent landed on the API's CPU and ran its pass first,
    # holding the response back by the pass (~6 ms at 10,000 FIPs on one router).
    # SCHED_BATCH keeps its share of the CPU and gives up preempting on wake-up: the pass
    # runs once the API's thread blocks, or on an idle CPU. Its programs (dnsmasq, radvd)
    # inherit it: they answer VMs, not the API. Quick 1x10,000 runs: create -> first TCP
    # 13.0-13.5 ms before, 11.0-11.7 ms after (p50, 80 samples each).
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    agent.start()
    try:
        while True:
            got = stdin.read1(4096)
            if not got:
                break
            if b"f" in got:
                agent.request_full()
            agent.wake.set()
    finally:
        agent.stop()


if __name__ == "__main__":
    child_main(int(sys.argv[1]))
