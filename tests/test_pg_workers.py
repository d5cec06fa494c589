"""Issue 27: ``floatip serve --workers 2`` on PostgreSQL: two API processes answer on one
port (each connection is served by the process that owns its socket), the agent of the
first sees the changes made through either at once (its full pass only every 600 s), and
SIGTERM stops both. A real ``floatip serve``, PostgreSQL, namespaces, OVS."""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess

import pytest

from floatip import lab as L
from floatip.server import free_port
from cloud import wait_for
from pgserver import fresh_database
from test_pg_stop import _forget, _serve, _stop


def _sockets(port: int, remote: str) -> set[str]:
    """The inodes of 127.0.0.1:``port``'s sockets whose remote end is ``remote`` (hex)."""
    with open("/proc/net/tcp") as f:
        return {fields[9] for fields in (line.split() for line in f.readlines()[1:])
                if fields[1] == f"0100007F:{port:04X}" and fields[2] == remote}


def _listens(port: int, pid: int) -> bool:
    """``pid`` has a socket listening on the port (a worker that is up)."""
    return _holder(_sockets(port, "00000000:0000"), [pid]) is not None


def _owner(port: int, conn: http.client.HTTPConnection, pids: list[int]) -> int | None:
    """The process holding the server's end of ``conn`` (its socket's inode in its fds)."""
    return _holder(_sockets(port, f"0100007F:{conn.sock.getsockname()[1]:04X}"), pids)


def _holder(inodes: set[str], pids: list[int]) -> int | None:
    """The first of ``pids`` with one of the sockets ``inodes`` among its fds."""
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] in inodes:  # socket:[N]
                    return pid
            except OSError:
                continue
    return None


def _call(port: int, method: str, path: str, body: dict | None = None):
    """One request on a new connection: (answer, the connection, still open)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, json.dumps(body) if body is not None else None,
                 {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    assert r.status < 300, data
    return json.loads(data) if data else None, conn


def _by_process(port: int, pids: list[int], path: str, headers: dict | None = None,
                each: int = 2) -> dict[int, list]:
    """``GET path`` on new connections until each process answered ``each`` times: pid ->
    its answers (bodies)."""
    got: dict[int, list] = {}
    for _ in range(200):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200, body
        got.setdefault(_owner(port, conn, pids), []).append(body.decode())
        conn.close()
        if all(len(got.get(p, [])) >= each for p in pids):
            return got
    raise AssertionError(f"not every process answered {path}: {sorted(got)}")


def _counter(text: str, name: str, **labels) -> float:
    """The sample ``name{labels}`` of a /metrics answer (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _same_agents_and_metrics(port: int, pids: list[int], sfx: str, routers: int) -> None:
    """``/v2.0/agents`` and ``/metrics`` answer the same whichever process serves them:
    the first process' agent and a remote agent that polled one process only, listed by
    all; request counters that add up every process' requests."""
    remote = f"remote-{sfx}"
    for _ in range(100):  # a remote agent's poll, served by a worker (not the first)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        owner = wait_for(lambda: _owner(port, conn, pids), 10, "the connection accepted")
        if owner != pids[0]:
            conn.request("GET", "/floatip/v1/state", headers={"X-Floatip-Agent-Host": remote})
            assert conn.getresponse().read()
            conn.close()
            break
        conn.close()
    else:
        raise AssertionError("no connection reached a worker")
    agents = _by_process(port, pids, "/v2.0/agents")
    lists = {pid: [sorted((a["host"], a["binary"], a["alive"]) for a in json.loads(b)[
        "agents"]) for b in bodies] for pid, bodies in agents.items()}
    first = lists[pids[0]][0]
    assert all(x == first for answers in lists.values() for x in answers), lists
    hosts = [h for h, _, alive in first if alive]
    assert remote in hosts and len(hosts) == 2, first  # this host's agent and the remote
    # floatip status (/floatip/v1/agent): the first process' agent, from every process
    status = _by_process(port, pids, "/floatip/v1/agent")
    seen = {(st["agent"] or {}).get("host") for bodies in status.values()
            for st in map(json.loads, bodies)}
    assert seen == {h for h in hosts if h != remote}, status
    # GETs of the networks, counted per process, then every /metrics answer: their sum
    served = {}
    for _ in range(40):
        _, conn = _call(port, "GET", "/v2.0/networks")
        owner = _owner(port, conn, pids)
        served[owner] = served.get(owner, 0) + 1
        conn.close()
        if len(served) == len(pids) and min(served.values()) >= 3:
            break
    assert set(served) == set(pids), served
    total = sum(served.values())

    def counts(text):
        return (_counter(text, "floatip_api_requests_total", method="GET",
                         route="/v2.0/networks", code="200"),
                _counter(text, "floatip_api_requests_total", method="POST",
                         route="/v2.0/routers", code="201"),
                _counter(text, "floatip_agent_alive"))
    # (a request's count is made just after its answer went: a moment to settle)
    wait_for(lambda: counts(_by_process(port, pids, "/metrics", each=1)[pids[0]][0])[0]
             == total, 10, "the counters of every process")
    scraped = _by_process(port, pids, "/metrics")
    found = {pid: [counts(t) for t in texts] for pid, texts in scraped.items()}
    assert all(c == (total, routers, 1) for cs in found.values() for c in cs), \
        (served, routers, found)
    print(f"GET /v2.0/networks per process: {served}; every /metrics of "
          f"{ {p: len(t) for p, t in scraped.items()} } says {total}")


def test_first_serves_once_its_worker_listens(pg_url):
    """A client that connects as soon as ``serve --workers 2`` answers can land on either
    process: serving before its worker listened, the first process kept every kept-alive
    connection made meanwhile (pg_churn's 32 clients: all on it, the worker idle)."""
    port = free_port()
    proc = instance = None
    try:
        with fresh_database(pg_url) as url:
            proc = _serve(["serve", "--no-agent", "--db", url, "--listen",
                           f"127.0.0.1:{port}", "--workers", "2"], port)
            instance = _call(port, "GET", "/floatip/v1/agent")[0]["instance"]
            kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
            assert len(kids) == 1, kids
            assert _listens(port, int(kids[0])), "the first process served before its worker"
            _stop(proc, signal.SIGTERM)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if instance:
            _forget(instance)


@pytest.mark.kernel
def test_two_workers_serve_one_agent_sees_both(pg_url):
    from floatip.dataplane.ovs import datapath_type
    lab = L.Lab(datapath_type())
    sfx = os.urandom(3).hex()
    int_br, ex_br = lab.bridge(f"pg{sfx}i"), lab.bridge(f"pg{sfx}e")
    port = free_port()
    proc = instance = None
    try:
        with fresh_database(pg_url) as url:
            proc = _serve(["--integration-bridge", int_br, "--bridge-mapping",
                           f"physnet1:{ex_br}", "serve", "--agent", "--agent-process",
                           "--interval", "600", "--prune", "known", "--no-dhcp",
                           "--no-metadata", "--db", url, "--listen", f"127.0.0.1:{port}",
                           "--workers", "2"], port)
            instance = _call(port, "GET", "/floatip/v1/agent")[0]["instance"]
            kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
            workers = [int(p) for p in kids
                       if "--worker" in open(f"/proc/{p}/cmdline").read().split("\0")]
            assert len(workers) == 1, kids
            # the first process serves only once its worker listens: clients that connect
            # as soon as it answers are spread over both (before, it answered while the
            # worker was still importing, and kept every connection made meanwhile)
            assert _listens(port, workers[0]), "the first process served before its worker"
            ext = _call(port, "POST", "/v2.0/networks", {"network": {
                "name": f"pg-ext-{sfx}", "router:external": True,
                "provider:network_type": "flat",
                "provider:physical_network": "physnet1"}})[0]["network"]
            _call(port, "POST", "/v2.0/subnets", {"subnet": {
                "network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4,
                "enable_dhcp": False}})
            # routers, each made on a new connection, until both processes made some
            made: dict[int, list[str]] = {}
            for i in range(40):
                r, conn = _call(port, "POST", "/v2.0/routers", {"router": {
                    "name": f"pg-r-{sfx}-{i}", "external_gateway_info": {
                        "network_id": ext["id"]}}})
                rid = r["router"]["id"]
                lab.namespaces.append(f"qrouter-{rid}")  # removed by the lab at the end
                made.setdefault(_owner(port, conn, [proc.pid, *workers]), []).append(rid)
                conn.close()
                if len(made.get(proc.pid, [])) >= 2 and len(made.get(workers[0], [])) >= 2:
                    break
            assert set(made) == {proc.pid, workers[0]}, made
            print(f"routers made by the first process: {len(made[proc.pid])}, "
                  f"by the worker: {len(made[workers[0]])}")
            # every router in the kernel long before the agent's next full pass (600 s)
            for rid in (x for rids in made.values() for x in rids):
                wait_for(lambda: os.path.exists(f"/run/netns/qrouter-{rid}"), 60,
                         f"qrouter-{rid} made by the agent")
            _same_agents_and_metrics(port, [proc.pid, *workers], sfx,
                                     sum(len(r) for r in made.values()))
            _stop(proc, signal.SIGTERM)
            wait_for(lambda: not os.path.exists(f"/proc/{workers[0]}") or open(
                f"/proc/{workers[0]}/stat").read().split(") ", 1)[1][0] == "Z", 15,
                "the worker ended with the server")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if instance:
            _forget(instance)
        left = lab.cleanup()
        assert not left, f"could not clean up: {left}"
