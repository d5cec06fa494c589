"""169.254.169.254 outlives the agent (issue 26, item 2): the router proxies and the metadata
service run in a process of their own, which a restarted agent adopts. A VM polls its
metadata every 50 ms while the agent process is killed and while the whole server is
restarted: every request is answered. Real server, namespaces, OVS and netfilter."""
from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import uuid

import httpx
import pytest

from floatip import lab as L
from floatip.dataplane.process import running
from floatip.metadata.agent import daemon_pid
from cloud import Cloud, ok, wait_for

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq needed")]


@pytest.fixture
def run_dir():
    d = f"/run/fp-op-{uuid.uuid4().hex[:6]}"   # others traverse it (dnsmasq as nobody)
    os.makedirs(d, mode=0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Poller:
    """GET a metadata path from a VM namespace every 50 ms; each answer recorded."""

    def __init__(self, ns: str, path: str):
        self.ns, self.path = ns, path
        self.results: list[tuple[float, int, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            status, body = L.http_get(self.ns, "169.254.169.254", self.path, timeout=5)
            self.results.append((time.monotonic(), status, body.strip()))
            self.stop.wait(0.05)

    def close(self) -> list[tuple[float, int, str]]:
        self.stop.set()
        self.thread.join(timeout=10)
        return self.results


def test_metadata_answers_while_the_agent_and_the_server_restart(tmp_path, run_dir):
    from floatip.dataplane.ovs import datapath_type
    from floatip.server import Server, free_port
    lab = L.Lab(datapath_type())
    c = Cloud(lab, tmp_path, run_dir=run_dir, metadata=True, agent_process=True)
    poller, pid, d = None, None, ""
    try:
        r = c.router("192.0.2.0/26")
        port, ns = c.vm(r)
        assert c.wait_for_agent(30)
        path = "/latest/meta-data/instance-id"
        wait_for(lambda: L.http_get(ns, "169.254.169.254", path) == (200, port["id"]), 20,
                 "the VM's metadata")
        d = os.path.join(run_dir, f"metadata-{c.server.instance}.sock.d")
        pid = daemon_pid(d)
        assert pid is not None and pid != c.server.backend.proc.pid

        poller = Poller(ns, path)
        wait_for(lambda: len(poller.results) >= 5, 10, "a few answers")
        # the agent process killed: its supervisor starts it again
        child, backend = c.server.backend.proc.pid, c.server.backend
        os.kill(child, signal.SIGKILL)
        wait_for(lambda: backend.restarts == 1 and backend.agent.alive, 20, "a new agent")
        assert c.wait_for_agent(30)
        n = len(poller.results)
        wait_for(lambda: len(poller.results) >= n + 5, 10, "answers after the agent restart")

        # the whole server stopped (API, agent) and started again on its database
        c.api.close()
        c.server.close()
        n = len(poller.results)
        wait_for(lambda: len(poller.results) >= n + 10, 10, "answers without a server")
        c.server = Server(c.server.db.url, f"127.0.0.1:{free_port()}", c.config,
                          prune_scope="known", agent_process=True,
                          agent_options={"dhcp": True, "metadata": True,
                                         "run_dir": run_dir}).start()
        c.api = httpx.Client(base_url=c.server.url, timeout=30)
        assert c.wait_for_agent(30)
        n = len(poller.results)
        wait_for(lambda: len(poller.results) >= n + 5, 10, "answers after the restart")
        results = poller.close()
        bad = [x for x in results if x[1:] != (200, port["id"])]
        assert not bad, f"{len(bad)} of {len(results)} requests failed: {bad[:5]}"
        assert len(results) >= 30

        # the new agent adopted the process (not a second one) and hands it new VMs
        assert daemon_pid(d) == pid
        port2, ns2 = c.vm(r)
        assert c.wait_for_agent(30)
        wait_for(lambda: L.http_get(ns2, "169.254.169.254", path) == (200, port2["id"]), 20,
                 "the new VM's metadata")
        # its secret file is the root's alone
        assert os.stat(os.path.join(d, "config.json")).st_mode & 0o077 == 0
        ok(c.api.get("/v2.0/routers"))
    finally:
        if poller is not None:
            poller.close()
        try:
            c.close()   # routers removed: the metadata process goes with the last one
        finally:
            left = lab.cleanup()
    wait_for(lambda: pid is None or not running(pid), 10, "the metadata process to end")
    assert not os.path.exists(d)
    assert not left, left
