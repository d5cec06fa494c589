"""radvd in router namespaces, supervised like the DHCP dnsmasqs: one per router that has
interfaces on subnets with an IPv6 RA mode, its files in ``<run dir>/ra/<router id>/``
(radvd.conf, pid, log). Started when missing or dead, sent SIGHUP when its configuration
changed (radvd rereads it), ended by pid when no longer wanted or with its router."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import time

from . import process
from .netns import NETNS_DIR, DataplaneError

log = logging.getLogger("floatip.radvd")
ENV_KEY = "FLOATIP_ROUTER"


class Radvd:
    def __init__(self, run_dir: str = "/run/floatip", binary: str | None = None):
        self.dir = os.path.join(run_dir, "ra")
        self.binary = binary or shutil.which("radvd") or "/usr/sbin/radvd"
        self.starts = 0   # radvd processes started (tests: a dead one is started again)

    def conf_dir(self, router_id: str) -> str:
        return os.path.join(self.dir, router_id)

    def _pid(self, router_id: str) -> int | None:
        d = self.conf_dir(router_id)
        return process.pid_from_file(os.path.join(d, "pid"), f"{d}/radvd.conf".encode())

    @staticmethod
    def _in(pid: int, ns: str) -> bool:
        """Whether the process runs in the namespace now named ``ns`` (one deleted by hand
        lives on while radvd holds it, and nobody hears it there)."""
        try:
            return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"{NETNS_DIR}/{ns}").st_ino
        except OSError:
            return False

    def serving(self, router_id: str, ns: str) -> bool:
        """A radvd of the router runs in ``ns``: a pid file read and two stats, for the
        check each pass makes on routers it otherwise trusts."""
        pid = self._pid(router_id)
        return pid is not None and self._in(pid, ns)

    def observe(self, router_id: str, ns: str) -> tuple[str | None, bool]:
        """(the configuration a live radvd of the router reads in ``ns``, or None; whether
        files or a process of a radvd that does not serve there are left)."""
        d = self.conf_dir(router_id)
        if not os.path.isdir(d):
            return None, False
        pid = self._pid(router_id)
        if pid is None or not self._in(pid, ns):
            return None, True
        try:
            with open(os.path.join(d, "radvd.conf")) as f:
                return f.read(), False
        except OSError:
            return None, True

    def ensure(self, ns: str, router_id: str, conf: str) -> None:
        d = self.conf_dir(router_id)
        os.makedirs(d, mode=0o755, exist_ok=True)
        # radvd refuses a configuration file others may write
        changed = process.write_if_changed(os.path.join(d, "radvd.conf"), conf, 0o644)
        pid = self._pid(router_id)
        if pid is not None and not self._in(pid, ns):
            process.kill(pid)
            pid = None
        if pid is not None:
            if changed:
                os.kill(pid, signal.SIGHUP)
            return
        try:
            os.unlink(os.path.join(d, "pid"))  # a dead one's
        except FileNotFoundError:
            pass
        argv = [self.binary, "-C", f"{d}/radvd.conf", "-p", f"{d}/pid",
                "-m", "logfile", "-l", f"{d}/log"]
        process.start(ns, argv, {ENV_KEY: router_id}, f"radvd for router {router_id}")
        self.starts += 1
        deadline = time.monotonic() + 5  # the daemon writes its pid file after the fork
        while self._pid(router_id) is None:
            if time.monotonic() > deadline:
                raise DataplaneError(f"radvd for router {router_id} did not stay up: "
                                     f"{self._log_tail(d)}")
            time.sleep(0.01)
        log.info("radvd started for router %s", router_id)

    @staticmethod
    def _log_tail(d: str) -> str:
        try:
            with open(os.path.join(d, "log")) as f:
                return f.read()[-300:].strip()
        except OSError:
            return "no log"

    def stop(self, router_id: str) -> None:
        pid = self._pid(router_id)
        if pid is not None:
            process.kill(pid)
        shutil.rmtree(self.conf_dir(router_id), ignore_errors=True)
