#!/usr/bin/env python3
"""Where a port forwarding POST's time goes, on a floating IP with N forwardings (issue 24):
the HTTP request as a client sees it (``floatip serve``'s API, agent off, SQLite or the
given database URL) beside the service call alone in this process (policy, queries, the
floating IP and port reads, the row written, the body built; one transaction), and a
cProfile of the service calls (top functions by cumulative time). The machine's load is
printed beside the figures."""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402

from floatip.server import Server, free_port  # noqa: E402
from floatip.service.access import Access  # noqa: E402
from floatip.service.policy import Context, Policy  # noqa: E402
from floatip.service.port_forwardings import PortForwardings  # noqa: E402
from floatip.service.quotas import Quotas  # noqa: E402


def load() -> str:
    return "load %.1f %.1f %.1f" % os.getloadavg()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--db", default="", help="database URL (default: a fresh SQLite file)")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="pfe-prof-") as tmp:
        srv = Server(a.db or f"sqlite:///{tmp}/floatip.db", f"127.0.0.1:{free_port()}",
                     agent=False).start()
        try:
            run(srv, a)
        finally:
            srv.close()


def run(srv: Server, a) -> None:
    proj = f"pfe-{uuid.uuid4().hex[:8]}"
    h = {"X-Project-Id": proj, "X-Roles": "member,reader"}
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        def post(path, kind, body, headers=h):
            r = c.post(path, json={kind: body}, headers=headers)
            assert r.status_code == 201, r.text
            return r.json()[kind]
        ext = post("/v2.0/networks", "network", {"name": "pfe-ext", "router:external": True},
                   headers={})
        post("/v2.0/subnets", "subnet", {"network_id": ext["id"], "cidr": "203.0.113.0/24",
                                         "ip_version": 4}, headers={})
        net = post("/v2.0/networks", "network", {"name": "pfe"})
        sub = post("/v2.0/subnets", "subnet", {"network_id": net["id"],
                                               "cidr": "198.51.100.0/24", "ip_version": 4})
        r = post("/v2.0/routers", "router", {"name": "pfe", "external_gateway_info": {
            "network_id": ext["id"]}})
        c.put(f"/v2.0/routers/{r['id']}/add_router_interface", json={"subnet_id": sub["id"]},
              headers=h).raise_for_status()
        vm = post("/v2.0/ports", "port", {"network_id": net["id"]})
        fip = post("/v2.0/floatingips", "floatingip", {"floating_network_id": ext["id"]})
        path = f"/v2.0/floatingips/{fip['id']}/port_forwardings"
        for i in range(a.n - 1):
            post(path, "port_forwarding", {"protocol": "tcp", "internal_port_id": vm["id"],
                                           "internal_port": 10000 + i, "external_port": 20000 + i})
        body = {"protocol": "tcp", "internal_port_id": vm["id"], "internal_port": 9999,
                "external_port": 65000}
        http = []
        for _ in range(a.rounds):
            t0 = time.perf_counter()
            pid = post(path, "port_forwarding", body)["id"]
            http.append(time.perf_counter() - t0)
            c.delete(f"{path}/{pid}", headers=h).raise_for_status()
    # the same call without HTTP: the service in one transaction, as the route runs it
    policy = Policy(None)
    pfs = PortForwardings(policy, Access(policy, Quotas(policy, None)))
    ctx = Context(project_id=proj, user_id="pfe", roles=frozenset({"member", "reader"}))
    svc, prof = [], cProfile.Profile()
    for _ in range(a.rounds):
        t0 = time.perf_counter()
        prof.enable()
        with srv.db.tx() as s:
            pid = pfs.create(s, ctx, fip["id"], dict(body))["id"]
        prof.disable()
        svc.append(time.perf_counter() - t0)
        with srv.db.tx() as s:
            pfs.delete(s, ctx, fip["id"], pid)

    def ms(xs):
        return f"p50 {statistics.median(xs) * 1e3:.1f} ms (min {min(xs) * 1e3:.1f}, " \
               f"max {max(xs) * 1e3:.1f})"
    print(f"POST of forwarding {a.n} on one floating IP ({srv.db.engine.dialect.name}): "
          f"HTTP {ms(http)}; service call and commit alone {ms(svc)} [{load()}]")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(a.top)


if __name__ == "__main__":
    main()
