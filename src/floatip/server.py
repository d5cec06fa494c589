"""``floatip serve``: the API and one backend in one process. The backend is where the
desired state leaves the API (``backends.base.Backend``): the kernel backend (this host's
agent) or none (``--no-agent``: the API alone, agents on other hosts follow it)."""
from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import os
import ipaddress
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import replace

import uvicorn

from .api.app import create_app
from .api.auth import AuthSettings
from .backends.base import AGENT_DOWN_TIME
from .backends.kernel import KernelBackend
from .backends.local import LocalSource
from .backends.ovn import OvnBackend, OvnConfig
from .backends.process import ProcessBackend
from .core.errors import NeutronError
from .agent.loop import pass_summary
from .api.heartbeats import merge as merge_agents
from .core.layout import AgentConfig
from .dataplane.process import running, start_ticks
from .metrics import families
from .store.database import Database
from .store.queries import generation, instance_id

DEFAULT_DB = "sqlite:////var/lib/floatip/floatip.db"
INSTANCES_DIR = "/run/floatip/instances"
STOP_SECONDS = 20.0   # a stop that takes longer ends the process anyway
READY_SECONDS = 60.0  # serve --workers: the first serves once its workers listen, or then
log = logging.getLogger("floatip.server")


def _path(instance: str, kind: str = "pid") -> str:
    return os.path.join(INSTANCES_DIR, f"{instance}.{kind}")


def _record(instance: str) -> str | None:
    try:
        with open(_path(instance)) as f:
            return f.read().strip()
    except OSError:
        return None


def _started(instance: str) -> tuple[int, int] | None:
    """``INSTANCE.started``: the pid and start time of the server that wrote the record.
    Beside the pid file, not in it: a server of an older version reads the pid file as
    one number (and would take another form for a dead instance's)."""
    try:
        with open(_path(instance, "started")) as f:
            pid, ticks = f.read().split()
        return int(pid), int(ticks)
    except (OSError, ValueError):
        return None


def instance_alive(instance: str) -> bool:
    """A server instance runs on this host: its pid file names a live process (not a
    zombie), and one that started when the server that wrote it did (a later process
    that reuses the pid is not it)."""
    try:
        pid = int(_record(instance) or "")
    except ValueError:
        return False
    started = _started(instance)
    return running(pid) and (started is None or started[0] != pid
                             or start_ticks(pid) == started[1])


def instance_stopped(instance: str) -> bool:
    """Stopped on purpose (SIGTERM/SIGINT: a restart, an upgrade): ``INSTANCE.stopped``,
    beside the pid files and never a pid file itself, so nothing that prunes dead pid
    files takes it for one."""
    return os.path.exists(_path(instance, "stopped"))


def instance_gone(instance: str) -> bool:
    """Neither running nor stopped on purpose (killed, or never here): its routers are
    orphans. The routers a server stopped on purpose left keep forwarding until it is
    back."""
    return not instance_stopped(instance) and not instance_alive(instance)


def server_state(instance: str | None) -> str:
    """For ``floatip show``: whether the server instance that owns a router runs here."""
    if not instance:
        return "unknown"
    return "running" if instance_alive(instance) else \
        "stopped" if instance_stopped(instance) else "dead: floatip cleanup --orphans"


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise NeutronError(f"--listen {listen!r}: HOST:PORT expected")
    return host or "127.0.0.1", int(port)


class Server:
    """The API (uvicorn, in a thread or in the foreground) plus, optionally, the agent."""

    def __init__(self, db_url: str = DEFAULT_DB, listen: str = "127.0.0.1:9696",
                 config: AgentConfig = AgentConfig(), *, agent: bool = True,
                 interval: float = 30.0, prune_scope: str = "all", host: str | None = None,
                 agent_options: dict | None = None, backend: str = "kernel",
                 ovn: OvnConfig | dict | None = None, auth: AuthSettings | None = None,
                 policy_file: str | None = None, agent_process: bool = False,
                 quotas: dict[str, int] | None = None,
                 agent_down_time: float = AGENT_DOWN_TIME):
        """``backend``: "kernel" (this host's agent) or "ovn" (``ovn``: NB/SB addresses and
        options, see backends.ovn.OvnConfig); ``agent=False``: none. ``agent_process``: the
        kernel agent runs in a process of its own (backends.process), not in a thread
        (an in-memory SQLite database, which no other process can open, keeps the thread).
        ``quotas``: default limits per resource (Neutron's where not given).
        ``agent_down_time``: the kernel agent is alive (``/v2.0/agents``) while a pass
        finished within so many seconds (Neutron's default 75)."""
        self.host, self.port = parse_listen(listen)
        auth = auth or AuthSettings()
        if auth.strategy == "noauth" and not is_loopback(self.host):
            raise NeutronError(f"auth_strategy = noauth lets every caller act as admin: it is "
                               f"allowed only on a loopback address, not {self.host}. Set "
                               f"auth_strategy = keystone (and its keystone_authtoken section) "
                               f"or listen on 127.0.0.1.")
        self.db = Database(db_url)
        with self.db.tx(notify=False) as s:
            self.instance = instance_id(s)  # stable: kept in the database
        config = replace(config, instance=self.instance)
        if not agent:
            self.backend = None
        elif backend == "ovn":
            self.backend = OvnBackend(LocalSource(self.db), {"interval": interval, **(
                ovn.__dict__ if isinstance(ovn, OvnConfig) else dict(ovn or {}))})
        elif backend == "kernel" and agent_process and not self.db.in_memory:
            self.backend = ProcessBackend(self.db, config, interval=interval,
                                          prune_scope=prune_scope, host=host,
                                          **(agent_options or {}))
        elif backend == "kernel":
            self.backend = KernelBackend(LocalSource(self.db), config, interval=interval,
                                         prune_scope=prune_scope, host=host,
                                         **(agent_options or {}))
        else:
            raise NeutronError(f"backend {backend!r}: kernel or ovn")
        if hasattr(self.backend, "agent_down_time"):
            self.backend.agent_down_time = agent_down_time
        self.app = create_app(self.db, auth, policy_file, self.backend, quotas)
        if hasattr(self.backend, "agent_down_time"):  # the gauge as /v2.0/agents says
            self.app.state.metrics.alive_source = \
                lambda: any(a["alive"] for a in self.backend.agents())
        self.app.state.backend = self.backend
        self.app.state.instance = self.instance
        if self.backend is not None:
            self.db.resync_listeners.append(self.backend.request_full)
            m = self.app.state.metrics
            if isinstance(self.backend, ProcessBackend):  # summaries from its process
                self.backend.on_pass = m.observe
            elif getattr(self.backend, "agent", None) is not None:  # the kernel backend's
                self.backend.agent.on_pass = lambda *a: m.observe(pass_summary(*a))
            elif isinstance(self.backend, OvnBackend):   # its passes by kind
                self.backend.on_pass = m.passed
            m.watch_generation(self.db_generation)
        self.uvicorn = uvicorn.Server(uvicorn.Config(self.app, host=self.host, port=self.port,
                                                     log_level="warning", access_log=False,
                                                     # open long polls end, not wait
                                                     timeout_graceful_shutdown=5))
        self.thread: threading.Thread | None = None
        self.registered = False  # this server wrote the instance record
        self.siblings: Siblings | None = None  # serve --workers N: the other processes

    @property
    def agent(self):
        """The kernel backend's agent (tests and the demo read its stats)."""
        return getattr(self.backend, "agent", None)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _register(self) -> None:
        """A pid file per running instance: ``cleanup --orphans`` removes the routers of
        instances without one. Those of servers that were killed go now: they said nothing
        (their pid is dead), piled up, and a reused pid would make one look alive."""
        try:
            os.makedirs(INSTANCES_DIR, exist_ok=True)
            for name in os.listdir(INSTANCES_DIR):
                if name.endswith(".pid") and instance_gone(name[:-4]):
                    os.unlink(os.path.join(INSTANCES_DIR, name))
                    with contextlib.suppress(OSError):
                        os.unlink(_path(name[:-4], "started"))
            # several servers of one database (one instance) on a host: the record names
            # the one with the agent, whose routers are here; one without takes it only
            # while no other running server holds it
            if self.backend is not None or not instance_alive(self.instance):
                self._write_record()
                self.registered = True
        except OSError:
            pass

    def _write_record(self) -> None:
        me = os.getpid()
        for kind, text in (("started", f"{me} {start_ticks(me)}"), ("pid", str(me))):
            path = _path(self.instance, kind)
            with open(path + ".tmp", "w") as f:  # whole when it appears: never read empty
                f.write(text)
            os.replace(path + ".tmp", path)
        with contextlib.suppress(OSError):
            os.unlink(_path(self.instance, "stopped"))

    def _unregister(self, stopped: bool = False) -> None:
        """The pid file goes; ``stopped``: a marker says the instance was stopped on
        purpose (``instance_gone`` is False). Only the record this server wrote, while it
        still names this process."""
        if not self.registered or _record(self.instance) != str(os.getpid()):
            return
        self.registered = False
        try:
            if stopped:
                with open(_path(self.instance, "stopped"), "w"):
                    pass
            os.unlink(_path(self.instance))
            os.unlink(_path(self.instance, "started"))
        except OSError:
            pass

    def _tune_interpreter(self) -> None:
        """The API and the agent share one interpreter; two things made an API write wait
        for the agent (a PUT during a full pass at 3,000 FIPs: 200 ms -> 58 ms max):
        - a full garbage collection walked every object alive since start (modules, the
          app, its schemas and policy: ~10^6 objects): 120-170 ms with every thread
          stopped. They live as long as the process: frozen, out of the collector's walk;
        - a thread back from the database waits for the GIL up to the switch interval
          (5 ms) each time while the agent computes: tens of times per request.
        Without the agent in this interpreter (--no-agent, the agent in its own process) the
        switch interval stays: with the request threads forced off the GIL every 0.5 ms a
        server took 7.7 and 9.6 ms of CPU per request, 7.3 and 6.7 without
        (benchmarks/pg_churn.py, 32 clients, a busy machine)."""
        gc.collect()
        gc.freeze()
        if self.backend is not None and not isinstance(self.backend, ProcessBackend):
            sys.setswitchinterval(0.0005)

    def run(self, workers: int = 1, worker: bool = False) -> None:
        """Foreground: until SIGINT/SIGTERM, then the full stop (``close``), bounded.
        uvicorn catches both signals while it serves, and after its own shutdown raises the
        signal again with the handlers it found: SIGTERM's default would end the process
        before ``close`` (the agent not stopped, the record left naming a pid that may be
        reused). The handlers it finds are these, which only ask it to exit.
        ``workers``: this process and ``workers - 1`` more (``Workers``) serve the API on
        one port; ``worker``: this is one of those (it ends with its parent)."""
        def _exit(_sig, _frame):
            self.uvicorn.should_exit = True
        old = {sig: signal.signal(sig, _exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        if worker:
            _die_with_parent()
            workers = 1
        self._register()
        self._tune_interpreter()
        extra = None
        try:
            sockets = None
            if workers > 1 or worker:
                sockets = [reuse_port_socket(self.host, self.port)]
                self._join(os.getppid() if worker else os.getpid())
            if workers > 1:
                extra = Workers(workers - 1)
                extra.wait_listening(self.port, lambda: self.uvicorn.should_exit)
            if self.backend is not None:
                self.backend.start()
            self.uvicorn.run(sockets=sockets)
        finally:
            watchdog = threading.Timer(STOP_SECONDS, self._stop_overdue)
            watchdog.daemon = True
            watchdog.start()
            if extra is not None:
                extra.stop()
            if self.siblings is not None:
                self.siblings.close()
            self.close(stopped=True)
            watchdog.cancel()
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _join(self, first: int) -> None:
        """One of ``serve --workers N``'s processes (``first``: the pid of the one started
        by hand): ``/metrics`` and ``/v2.0/agents`` answer for all of them, whichever
        process a connection lands on."""
        m, state = self.app.state.metrics, self.app.state

        def own_agents() -> dict:
            return {"local": self.backend.agents() if self.backend is not None else [],
                    "heartbeats": state.heartbeats.agents()}

        def own_status() -> dict | None:  # /floatip/v1/agent's (floatip status)
            agent = getattr(self.backend, "agent", None)
            return None if agent is None else \
                {**agent.status(), "alive": any(a["alive"] for a in self.backend.agents())}
        try:
            self.siblings = Siblings(first, {"metrics": lambda: families(m.registry),
                                             "agents": own_agents, "status": own_status})
        except OSError as e:  # its name taken: this process answers for itself
            log.warning("API processes cannot share /metrics and /v2.0/agents: %s", e)
            return
        m.others = lambda: self.siblings.ask("metrics")
        state.all_agents = lambda: merge_agents([own_agents(),
                                                 *self.siblings.ask("agents")])
        state.sibling_agent = lambda: next(
            (st for st in self.siblings.ask("status") if st is not None), None)

    def _stop_overdue(self) -> None:
        log.error("stop took more than %.0f s: exiting without it", STOP_SECONDS)
        self._unregister(stopped=True)
        os._exit(1)

    def start(self) -> "Server":
        """Background thread (tests, demo); returns once the API answers."""
        self._register()
        self._tune_interpreter()
        if self.backend is not None:
            self.backend.start()
        self.thread = threading.Thread(target=self.uvicorn.run, name="floatip-api", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.uvicorn.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.close()
                raise NeutronError(f"API did not start on {self.url}")
            time.sleep(0.02)
        return self

    def close(self, stopped: bool = False) -> None:
        """``stopped``: a stop on purpose (``run``'s signal), whose record stays saying so."""
        self.uvicorn.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
            self.thread = None
        if self.backend is not None:
            self.backend.stop()
        self.db.close()
        self._unregister(stopped)

    def db_generation(self) -> int:
        with self.db.read() as s:
            return generation(s)

    def wait_for_agent(self, timeout: float = 30.0) -> bool:
        """Block until the backend realised everything committed so far."""
        if self.backend is None:
            return True
        with self.db.tx(notify=False) as s:
            want = generation(s)
        return self.backend.wait_synced(want, timeout)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port) with SO_REUSEPORT: the workers of one
    ``floatip serve --workers N`` each listen on one of their own and the kernel spreads
    new connections over them (one shared socket would let the first process to wake
    accept a whole burst of them)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def _die_with_parent() -> None:
    """A worker gets SIGTERM (its clean stop) when the ``serve`` that started it ends,
    even killed."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent ended before that
        os.kill(os.getpid(), signal.SIGTERM)


class Siblings:
    """The API processes of one ``serve --workers N`` ask each other for what only each
    knows (its request counters, the agent of the first, the remote agents that polled
    it): each listens on a unix socket in the abstract namespace,
    ``@floatip-workers-<first pid>-<own pid>``, found in /proc/net/unix. Asked when a
    client asks, not published now and then: a count is exact as soon as its request
    ended. Abstract: nothing on disk to remove after a kill, no run directory the API's
    user must be able to write. Only a process of this user (or root) gets an answer.
    One JSON answer per connection: ``answers[request line]()``."""

    PREFIX = "floatip-workers-"

    def __init__(self, first: int, answers: dict, timeout: float = 2.0):
        self.prefix = f"{self.PREFIX}{first}-"
        self.name = f"{self.prefix}{os.getpid()}"
        self.answers, self.timeout = answers, timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind("\0" + self.name)
        self.sock.listen(64)
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name="floatip-siblings")
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            with conn:
                try:
                    conn.settimeout(self.timeout)
                    if not _same_user(conn):
                        continue
                    what = conn.makefile("rb").readline().strip().decode()
                    conn.sendall(json.dumps(self.answers[what](), default=str).encode())
                except Exception as e:  # noqa: BLE001 - the asker goes on without ours
                    log.warning("answering another API process failed: %s", e)

    def peers(self) -> list[str]:
        """The other processes' socket names (listening and accepted sockets both carry
        the name: counted once)."""
        with open("/proc/net/unix") as f:
            names = {line.split()[-1][1:] for line in f
                     if f" @{self.prefix}" in line}
        return sorted(names - {self.name})

    def ask(self, what: str) -> list:
        """Each other process' answer; one that does not answer (ending, being started
        again) is left out."""
        out = []
        for name in self.peers():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                    c.settimeout(self.timeout)
                    c.connect("\0" + name)
                    if not _same_user(c):  # a name anyone could have taken
                        raise OSError("held by another user")
                    c.sendall(what.encode() + b"\n")
                    c.shutdown(socket.SHUT_WR)
                    data = b"".join(iter(lambda: c.recv(65536), b""))
                out.append(json.loads(data))
            except (OSError, ValueError) as e:
                log.info("API process %s did not answer %s: %s", name, what, e)
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=5)


def _same_user(conn: socket.socket) -> bool:
    """The process at the other end of a unix socket runs as this one's user, or root."""
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return uid in (0, os.geteuid())


class Workers:
    """``floatip serve --workers N``: N - 1 more API processes (``serve`` with the same
    command line and ``--worker``: no agent, this server's port), started again when one
    ends on its own. They share the database: a commit through any of them reaches the
    agent through PostgreSQL's LISTEN/NOTIFY, as between separate servers."""

    def __init__(self, n: int):
        self.argv = [sys.executable, "-m", "floatip.cli", *sys.argv[1:], "--worker"]
        self.stopping = threading.Event()
        self.procs = [self._spawn() for _ in range(n)]
        self._thread = threading.Thread(target=self._watch, daemon=True,
                                        name="floatip-workers")
        self._thread.start()

    def _spawn(self):
        return subprocess.Popen(self.argv, stdin=subprocess.DEVNULL)

    def wait_listening(self, port: int, stop=lambda: False,
                       timeout: float = READY_SECONDS) -> bool:
        """Until each worker listens on ``port`` (or ended, or ``stop()``): the first
        process serves only then. Serving before, it took every connection a client opened
        meanwhile: kept alive, they stay with it (pg_churn's 32 clients: all on the first
        process, the worker idle while its imports took the CPU the first needed)."""
        deadline = time.monotonic() + timeout
        while not stop():
            waiting = [p.pid for p in self.procs
                       if p.poll() is None and not _listening(p.pid, port)]
            if not waiting:
                return True
            if time.monotonic() > deadline:
                log.warning("API workers %s not listening after %.0f s: serving without "
                            "them", waiting, timeout)
                return False
            time.sleep(0.05)
        return False

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            for i, p in enumerate(self.procs):
                if p.poll() is not None and not self.stopping.is_set():
                    log.error("API worker %d ended (exit %s): starting it again", p.pid,
                              p.returncode)
                    self.procs[i] = self._spawn()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: each worker's own clean stop; killed if it takes longer."""
        self.stopping.set()
        self._thread.join(timeout=5)
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _listening(pid: int, port: int) -> bool:
    """``pid`` holds a socket listening on TCP ``port`` (/proc/net/tcp*: state 0A)."""
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(name) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return False
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return True
    return False


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
