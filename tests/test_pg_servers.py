"""Issue 27: many API servers, one PostgreSQL, one agent. A floating IP created through the
server without the agent reaches the agent's kernel through the database (LISTEN/NOTIFY,
the change log the truth), not at the next full pass; 16 clients spread over both servers
create and delete port + floating IP pairs; afterwards the kernel holds exactly the
database's floating IPs, and the agent read the change feed as one contiguous run of
deltas (no gap, no repeat, no full read). Real PostgreSQL, namespaces, OVS, netfilter."""
from __future__ import annotations

import contextlib
import random
import re
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from floatip import lab as L
from floatip import store as S
from floatip.server import Server, free_port
from cloud import Cloud, ok
from pgserver import fresh_database

pytestmark = pytest.mark.kernel
SAMPLES = 9
LATENCY = 0.1  # the issue's: created through the server without the agent -> kernel (median)


@pytest.fixture(params=["local"])
def two(tmp_path, request):
    """Server A with the agent (its full pass only every 600 s), server B without. "remote":
    A has no agent either; the agent follows A over HTTP (its long poll)."""
    from floatip.dataplane.ovs import datapath_type
    lab = L.Lab(datapath_type())
    stack = contextlib.ExitStack()
    c = b = None
    try:
        url = stack.enter_context(fresh_database(request.getfixturevalue("pg_url")))
        c = Cloud(lab, tmp_path, interval=600, db_url=url, remote=request.param == "remote")
        b = Server(url, f"127.0.0.1:{free_port()}", agent=False).start()
        yield c, b
    finally:
        try:
            if b is not None:
                b.close()
            if c is not None:
                c.close()
        finally:
            left = lab.cleanup()
            stack.close()
        assert not left, f"could not clean up: {left}"


def _fips_in_kernel(ns: str) -> set[str]:
    out = L.sh("ip", "-n", ns, "-o", "-4", "addr", "show").stdout
    return set(re.findall(r"inet (203\.0\.113\.\d+)/32", out))


class _Arrivals:
    """When each floating IP's /32 appeared on the router's gateway: the kernel's own
    address events (``ip monitor``), stamped as they come. Polling ``ip addr`` every 2 ms
    instead started a process 500 times a second in the test's own process, beside the
    servers and the agent it measures: on a 2-core machine it took the CPU they needed."""

    def __init__(self, ns: str):
        self.seen: dict[str, float] = {}
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(["ip", "-n", ns, "-o", "-4", "monitor", "address"],
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(0.2)  # listening before the first create

    def _read(self) -> None:
        for line in self.proc.stdout:
            m = re.search(r"inet (203\.0\.113\.\d+)/32", line)
            if m and not line.startswith("Deleted"):
                with self.cond:
                    self.seen.setdefault(m.group(1), time.monotonic())
                    self.cond.notify_all()

    def wait(self, address: str, timeout: float) -> float | None:
        """When ``address`` appeared (monotonic), or None after ``timeout`` seconds."""
        with self.cond:
            self.cond.wait_for(lambda: address in self.seen, timeout)
            return self.seen.pop(address, None)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_two_servers_one_agent(two):
    c, b = two
    r = c.router("192.0.2.0/24")
    port, _vm = c.vm(r)
    assert c.wait_for_agent(30)
    ns = f"qrouter-{r['id']}"
    agent = c.agent
    # the agent's reads of the feed, in order
    reads: list[tuple[int, int, bool]] = []
    source = agent.backend
    real_delta = source.delta

    def delta(since):
        d = real_delta(since)
        reads.append((since, d["generation"], bool(d.get("full"))))
        return d
    source.delta = delta
    bapi = httpx.Client(base_url=b.url, timeout=60)
    arrivals = _Arrivals(ns)
    try:
        # through B, whose process has no agent: the agent hears of it from PostgreSQL
        # (through A, the agent's own process, for comparison). From before the POST to
        # the /32 on the gateway: the request, the commit, the notification, the agent's
        # read and its apply.
        took: dict[str, list[float]] = {}
        for name, api in (("A", c.api), ("B", bapi)) * SAMPLES:  # interleaved
            t0 = time.monotonic()
            f = ok(api.post("/v2.0/floatingips", json={"floatingip": {
                "floating_network_id": c.ext["id"], "port_id": port["id"]}}),
                201)["floatingip"]
            at = arrivals.wait(f["floating_ip_address"], 10)
            assert at is not None, f"the agent did not hear of {name}'s"
            took.setdefault(name, []).append(at - t0)
            ok(api.delete(f"/v2.0/floatingips/{f['id']}"), 204)
            assert c.wait_for_agent(30)
        for name, t in took.items():
            print(f"create through {name} -> in the agent's kernel: median "
                  f"{statistics.median(t) * 1000:.0f} ms, max {max(t) * 1000:.0f} ms "
                  f"({len(t)} samples)")
        assert statistics.median(took["B"]) <= LATENCY, took["B"]

        # 16 clients over both servers: port + floating IP pairs, every other one deleted
        urls = [c.server.url, b.url]

        def client(i: int) -> list[str]:
            rnd = random.Random(i)
            kept = []
            with httpx.Client(timeout=60) as h:
                for n in range(6):
                    pick = lambda: urls[rnd.randrange(2)]  # noqa: E731
                    p = ok(h.post(pick() + "/v2.0/ports", json={"port": {
                        "network_id": r["net"]["id"]}}), 201)["port"]
                    f = ok(h.post(pick() + "/v2.0/floatingips", json={"floatingip": {
                        "floating_network_id": c.ext["id"], "port_id": p["id"]}}),
                        201)["floatingip"]
                    if n % 2:
                        ok(h.delete(pick() + f"/v2.0/floatingips/{f['id']}"), 204)
                        ok(h.delete(pick() + f"/v2.0/ports/{p['id']}"), 204)
                    else:
                        kept.append(f["floating_ip_address"])
            return kept
        t0 = time.monotonic()
        with ThreadPoolExecutor(16) as ex:
            kept = {a for got in ex.map(client, range(16)) for a in got}
        print(f"16 clients x 6 pairs over two servers: {time.monotonic() - t0:.1f} s")
        assert len(kept) == 48
        assert c.wait_for_agent(60)
        # database == kernel
        with c.server.db.read() as s:
            want = {f.floating_ip_address for f in S.fips_where(s) if f.fixed_port_id}
        assert want == kept
        deadline = time.monotonic() + 10
        while _fips_in_kernel(ns) != want:
            assert time.monotonic() < deadline, \
                (sorted(want - _fips_in_kernel(ns)), sorted(_fips_in_kernel(ns) - want))
            time.sleep(0.05)
        # every change seen once: one contiguous run of deltas, never a full read, and
        # every change recorded lies inside it
        assert reads and not any(full for _, _, full in reads)
        for (_, prev, _), (since, _, _) in zip(reads, reads[1:]):
            assert since == prev
        with c.server.db.read() as s:
            gens = {g for (g,) in s.execute(S.select_changes(reads[0][0])
                                            .with_only_columns(S.Change.generation))}
        assert gens and max(gens) <= reads[-1][1]
        print(f"agent: {len(reads)} delta reads for {len(gens)} committed changes")
    finally:
        source.delta = real_delta
        bapi.close()
        arrivals.close()


@pytest.mark.parametrize("two", ["remote"], indirect=True)
def test_a_remote_agent_long_polling_one_server_hears_the_other(two):
    """``floatip agent --server A``: a floating IP created through B reaches it through A's
    long poll, which PostgreSQL's notification wakes (else it answered at its 25 s timeout)."""
    c, b = two
    r = c.router("192.0.2.0/24")
    port, _vm = c.vm(r)
    assert c.wait_for_agent(30)
    ns = f"qrouter-{r['id']}"
    arrivals = _Arrivals(ns)
    with httpx.Client(base_url=b.url, timeout=60) as bapi:
        took = []
        for _ in range(3):
            t0 = time.monotonic()
            f = ok(bapi.post("/v2.0/floatingips", json={"floatingip": {
                "floating_network_id": c.ext["id"], "port_id": port["id"]}}),
                201)["floatingip"]
            at = arrivals.wait(f["floating_ip_address"], 10)
            assert at is not None, "the remote agent did not hear of B's"
            took.append(at - t0)
            ok(bapi.delete(f"/v2.0/floatingips/{f['id']}"), 204)
            assert c.wait_for_agent(30)
    arrivals.close()
    print(f"create through B -> remote agent following A -> kernel: median "
          f"{statistics.median(took) * 1000:.0f} ms, max {max(took) * 1000:.0f} ms")
