"""The agent's side of metadata: after each pass it hands the metadata process
(``metadata.daemon``: the router proxies and the service, in a process of their own that
outlives the agent) what to answer, starting it or adopting the one a previous agent left.
An ``Agent`` hook: the agent calls ``sync`` after each pass, ``close`` when it stops."""
from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time

from ..core.model import State
from ..dataplane.process import kill, pid_from_file
from .content import Instance, find_instance, instance_table
from .daemon import CONFIG, MODULE, PID, STATUS, read_json, write_json
from .proxy import PORT

_serial = itertools.count()
ACK_SECONDS = 10.0  # the process applies a config in ms; a busy host gets time


def daemon_pid(d: str) -> int | None:
    """The metadata process serving ``d``: its pid file names a live process whose command
    line is that of the process for ``d`` (a reused pid is another program's)."""
    return pid_from_file(os.path.join(d, PID), f"{MODULE}\0{d}\0".encode())


def stop_daemon(d: str) -> bool:
    """End the metadata process of ``d`` (by pid) and remove its files. True: one ran."""
    pid = daemon_pid(d)
    if pid is not None:
        kill(pid)
    shutil.rmtree(d, ignore_errors=True)
    return pid is not None


def daemons() -> list[tuple[int, str, str]]:
    """Every metadata process on this host: (pid, its directory, its owner: a server
    instance id, "agent", or "p<pid>-<n>" of an agent that did not keep it)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if MODULE.encode() in argv[:-1]:
            d = argv[argv.index(MODULE.encode()) + 1].decode(errors="replace")
            base = os.path.basename(d)
            if base.startswith("metadata-") and base.endswith(".sock.d") \
                    and daemon_pid(d) == int(name):
                found.append((int(name), d, base[len("metadata-"):-len(".sock.d")]))
    return found


class MetadataAgent:
    def __init__(self, socket_path: str, nova_url: str | None = None, secret: str = "",
                 port: int = PORT, keep: bool = False):
        """``socket_path``: the service's unix socket; the process' files are in
        ``socket_path + ".d"``. ``keep``: the process stays when the agent stops (an agent
        whose directory is stable, named by its server instance, adopts it again)."""
        self.socket_path, self.nova_url, self.secret, self.port = \
            socket_path, nova_url, secret, port
        self.dir, self.keep = socket_path + ".d", keep
        self.state = State()
        self.generation = 0
        self.written = False  # the process has the table of the last call
        self.cache: dict = {}  # instance_table's, between passes
        self.errors: dict[str, str] = {}  # the routers the process could not serve
        self.proc: subprocess.Popen | None = None  # one this agent started (reaped here)

    def lookup(self, router_id: str, ip: str) -> Instance | None:
        return find_instance(self.state, router_id, ip)

    def start(self) -> None:
        """Nothing to start: the process comes with the first router (``sync``)."""

    def sync(self, state: State, routers: set[str], full: bool = True) -> dict[str, str]:
        """Answer from ``state`` from now on; a proxy in each router of ``routers`` (those
        the last pass built), none elsewhere. Returns {router id: error}."""
        self.state = state
        table = instance_table(state, routers, self.cache)
        if not table:
            if self.written or daemon_pid(self.dir) is not None:
                stop_daemon(self.dir)
                self._reap()
            self.written, self.errors = False, {}
            return {}
        # handed over only when it changed (at 10,000 VMs the table is ~5 MB of JSON)
        if self.cache["changed"] or not self.written or daemon_pid(self.dir) is None:
            self.errors = self._hand_over(table)
        return dict(self.errors)

    def _hand_over(self, table: dict) -> dict[str, str]:
        """Write the config, start the process or signal it, wait until it applied it."""
        self.generation += 1
        gen = f"{os.getpid()}-{id(self)}-{self.generation}"
        cfg = {"generation": gen, "socket": self.socket_path, "nova_url": self.nova_url,
               "secret": self.secret, "port": self.port, "routers": table}
        deadline = time.monotonic() + ACK_SECONDS
        for _ in range(3):  # it may end between our look and our signal (routers gone)
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            write_json(os.path.join(self.dir, CONFIG), cfg)
            pid = daemon_pid(self.dir)
            if pid is None:
                self._spawn()
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGHUP)
            while time.monotonic() < deadline:
                st = read_json(os.path.join(self.dir, STATUS))
                if st is not None and st.get("generation") == gen:
                    self.written = True
                    return dict(st.get("errors") or {})
                if daemon_pid(self.dir) is None and (pid is not None or (
                        self.proc is not None and self.proc.poll() is not None)):
                    break   # the process we signalled or started is gone
                time.sleep(0.01)
        self.written = False
        return {rid: "metadata process did not answer" for rid in table}

    def _spawn(self) -> None:
        self._reap()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        with open(os.path.join(self.dir, "log"), "ab") as log:
            # a session of its own: no signal to the agent's group reaches it
            self.proc = subprocess.Popen([sys.executable, "-m", MODULE, self.dir],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env, start_new_session=True, close_fds=True)

    def _reap(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.proc = None

    def close(self) -> None:
        """The agent stops: the process stays (``keep``) and answers on from what it has,
        or goes with it."""
        if not self.keep:
            stop_daemon(self.dir)
            if self.proc is not None:
                self.proc.wait(timeout=10)
        self.proc = None


def metadata_hooks(run_dir: str, enabled: bool = True, nova_url: str | None = None,
                   secret: str = "", owner: str | None = None) -> list[MetadataAgent]:
    """The agent hook for metadata, or none. ``owner``: a name stable across restarts (the
    server instance's id; "agent" for ``floatip agent``): the process outlives the agent
    and the next one adopts it. Without, the name is unique to this process and hook
    (several agents may share a host and a run dir) and the process goes with the agent."""
    if not enabled:
        return []
    name = f"metadata-{owner}" if owner else f"metadata-p{os.getpid()}-{next(_serial)}"
    return [MetadataAgent(os.path.join(run_dir, name + ".sock"), nova_url, secret,
                          keep=owner is not None)]
