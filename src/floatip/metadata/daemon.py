"""The metadata proxies and service of one agent in a process of their own, so that
169.254.169.254 keeps answering while the agent (and the server it runs in) restarts, and
after ``floatip demo --keep`` returns: Neutron's haproxy per router and its metadata agent
outlive the L3 agent too.

One process per agent (not per router, as Neutron's haproxy): a Python interpreter costs
~25 MB, a listener in a namespace a few kB; one process holds a listener in every router
namespace of the agent, and the service they relay to, answering from a table the agent
writes (``content.instance_table``: router -> fixed IP -> instance).

Its directory (``DIR``) holds ``config.json`` (0600: the Nova secret is never on a command
line), ``pid``, ``status.json`` (the generation of the config it applied and the routers it
could not serve) and the service's unix socket. The agent writes the config and sends
SIGHUP; a new agent finds the process by its pid file (a pid whose command line names this
directory) and adopts it. The process ends on SIGTERM, on a config without routers, or once
none of its routers' namespaces is left (whoever removed them).

``python -m floatip.metadata.daemon DIR``
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time

from .content import Instance, instance_from
from .proxy import Loop, MetadataProxies, _ns_inode, NS_PREFIX
from .service import MetadataService

log = logging.getLogger("floatip.metadata")
MODULE = "floatip.metadata.daemon"
CONFIG, STATUS, PID = "config.json", "status.json", "pid"


def write_json(path: str, doc: dict, mode: int = 0o600) -> None:
    """Whole when it appears (a reader never sees half of it)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    os.replace(tmp, path)


def read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Daemon:
    def __init__(self, d: str):
        self.dir = d
        self.table: dict[str, dict[str, dict]] = {}
        self.loop = Loop()
        self.service: MetadataService | None = None
        self.proxies: MetadataProxies | None = None
        self.mtime = None

    def lookup(self, router_id: str, ip: str) -> Instance | None:
        doc = self.table.get(router_id, {}).get(ip)
        return instance_from(doc) if doc is not None else None

    def reload(self) -> bool:
        """Read the config when it changed, (re)open the listeners; False: time to end."""
        path = os.path.join(self.dir, CONFIG)
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            return False
        cfg = None
        if mtime != self.mtime:
            cfg = read_json(path)
            if cfg is None:
                return True   # being replaced: next time
            self.mtime = mtime
            self.table = cfg.get("routers", {})
            if self.service is None:
                self.service = MetadataService(self.lookup, cfg["socket"], cfg.get("nova_url"),
                                               cfg.get("secret", ""))
                self.loop.call(self.service.start())
                self.proxies = MetadataProxies(self.loop, cfg["socket"],
                                               cfg.get("port", 9697))
        errors = self.proxies.sync(set(self.table))
        if cfg is not None:
            write_json(os.path.join(self.dir, STATUS),
                       {"generation": cfg.get("generation"), "errors": errors}, 0o644)
        # nothing left to serve: no router, or none of their namespaces (removed by hand,
        # by ``cleanup --orphans``, by a test's teardown)
        return bool(self.table) and any(_ns_inode(NS_PREFIX + r) is not None
                                        for r in self.table)

    def close(self) -> None:
        if self.proxies is not None:
            self.proxies.close()
        if self.service is not None:
            self.loop.call(self.service.stop())
        self.loop.stop()


def main(d: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s floatip-metadata %(levelname)s %(message)s")
    # the signals wait for the main thread's sigtimedwait: the loop thread never takes them
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGTERM, signal.SIGINT})
    daemon = Daemon(d)
    with open(os.path.join(d, PID + ".tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.replace(os.path.join(d, PID + ".tmp"), os.path.join(d, PID))
    empty_since = None
    try:
        while True:
            serving = daemon.reload()
            if serving:
                empty_since = None
            elif empty_since is None:
                empty_since = time.monotonic()
            elif time.monotonic() - empty_since > 2.0:  # a router being rebuilt comes back
                break
            sig = signal.sigtimedwait({signal.SIGHUP, signal.SIGTERM, signal.SIGINT}, 0.5)
            if sig is not None and sig.si_signo != signal.SIGHUP:
                break
    finally:
        daemon.close()
        log.info("metadata process for %s ends", d)
        # its directory goes with it, unless an agent already started another one there
        with contextlib.suppress(OSError), open(os.path.join(d, PID)) as f:
            if f.read().strip() == str(os.getpid()):
                shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1])
