"""``floatip serve --agent-process``: the kernel agent in a process of its own, fed by the
database and a wake pipe, reporting through the API's process. Real server, namespaces, OVS
and netfilter: the floating IP carries traffic with the right source, statuses, ``floatip
status`` and ``/metrics`` come from the child, a killed child is started again and repairs,
and nothing of it outlives the server."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import pytest

from floatip import lab as L
from cloud import Cloud, ok, wait_for
from pgserver import fresh_database

pytestmark = pytest.mark.kernel


@pytest.fixture(params=["sqlite", "postgresql"])
def cloud(tmp_path, request):
    """The child reads the same database as the API: a SQLite file or PostgreSQL."""
    from floatip.dataplane.ovs import datapath_type
    lab = L.Lab(datapath_type())
    c = None
    stack = contextlib.ExitStack()
    try:
        url = None
        if request.param == "postgresql":
            url = stack.enter_context(fresh_database(request.getfixturevalue("pg_url")))
        c = Cloud(lab, tmp_path, interval=30, agent_process=True, db_url=url)
        yield c
    finally:
        try:
            if c is not None and not getattr(c, "closed", False):
                c.close()
        finally:
            left = lab.cleanup()
            stack.close()
        assert not left, f"could not clean up: {left}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose (the server reaps it in wait())
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


def _fip_with_vm(c: Cloud, r: dict) -> tuple[dict, dict, str]:
    port, ns = c.vm(r)
    f = c.fip(port)
    return f, port, ns


def test_agent_process_programs_reports_and_restarts(cloud):
    c = cloud
    backend = c.server.backend
    child = backend.proc.pid
    assert child != os.getpid() and _alive(child)
    r = c.router("192.0.2.0/26")
    f, port, ns = _fip_with_vm(c, r)
    assert c.wait_for_agent(30)
    # its passes do not preempt the API's threads on wake-up; the API's process is as it was
    assert os.sched_getscheduler(child) == os.SCHED_BATCH
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
    c.status("floatingip", f["id"], "ACTIVE")
    c.status("router", r["id"], "ACTIVE")
    # traffic: the upstream reaches the VM at the FIP, and the VM's own traffic leaves as it
    srv = L.TcpServer(c.upstream, "203.0.113.1", 9090)
    try:
        assert c.reachable(f["floating_ip_address"])
        assert L.tcp_source(ns, "203.0.113.1", 9090) == f["floating_ip_address"]
    finally:
        srv.close()
    # floatip status and /metrics are the child's
    st = ok(c.api.get("/floatip/v1/agent"))["agent"]
    assert st["alive"] and st["routers"][r["id"]]["in_sync"], st
    assert st["routers"][r["id"]]["floating_ips"] == 1
    metrics = c.api.get("/metrics").text
    count = [ln for ln in metrics.splitlines()
             if ln.startswith('floatip_agent_pass_seconds_count{kind="incremental"}')]
    assert count and float(count[0].split()[-1]) >= 1, metrics
    assert "floatip_floatingips_programmed 1.0" in metrics
    agents = ok(c.api.get("/v2.0/agents"))["agents"]
    assert any(a["alive"] for a in agents if a["binary"] == "floatip-agent"), agents

    # the child killed: started again; it finds the kernel as it left it and repairs drift
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: backend.restarts == 1 and backend.proc.pid != child
             and backend.agent.alive, 20, "a new agent process")
    assert not _alive(child)
    qg = next(d for d in L.sh("ip", "-n", f"qrouter-{r['id']}", "-o", "link").stdout.split()
              if d.startswith("qg-")).split("@")[0]
    subprocess.run(["ip", "-n", f"qrouter-{r['id']}", "addr", "del",
                    f"{f['floating_ip_address']}/32", "dev", qg], check=True)
    f2, _, ns2 = _fip_with_vm(c, r)  # a change after the restart is applied too
    assert c.wait_for_agent(30)
    c.status("floatingip", f2["id"], "ACTIVE")
    ok(c.api.post("/floatip/v1/sync", params={"full": "true"}))
    assert c.reachable(f["floating_ip_address"])
    assert c.reachable(f2["floating_ip_address"])


def test_the_agent_process_ends_with_the_server(cloud):
    c = cloud
    child = c.server.backend.proc.pid
    r = c.router("192.0.2.64/26")
    assert c.wait_for_agent(30)
    c.status("router", r["id"], "ACTIVE")
    c.close()  # routers removed through the API (the child applies it), then the server
    c.closed = True
    assert not _alive(child)
    assert not c.server.backend.agent.alive
    assert not os.path.exists(f"/run/netns/qrouter-{r['id']}")
