"""Port + floating IP churn against one or two ``floatip serve --no-agent`` processes on one
database (issue 27): ``--clients`` clients for ``--seconds`` each loop create port, create
floating IP on it, delete the floating IP, delete the port, spread over the servers.
Reports requests/s, p50/p99/max of every request, the floating IP create's p99, and 5xx.

    python benchmarks/pg_churn.py [--db postgresql|sqlite] [--servers 1|2]
                                  [--clients 32] [--seconds 60]

PostgreSQL: a throw-away server (tests/pgserver.py). SQLite: a file in a temporary
directory. Clients are threads of this process over kept-alive HTTP/1.1 connections (the
standard library's http.client, as benchmarks/api_clients.py)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from api_clients import Client  # noqa: E402
from floatip.server import free_port  # noqa: E402


def start_servers(db: str, n: int) -> list[tuple[subprocess.Popen, str]]:
    out = []
    for i in range(n):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "floatip.cli", "serve", "--no-agent",
                                 "--db", db, "--listen", f"127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                Client(url, timeout=2).get("/v2.0/networks").raise_for_status()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"server {i} did not start")
                time.sleep(0.1)
        out.append((proc, url))
        # the first one migrated the schema; the second one starts on it
    return out


def setup(url: str) -> tuple[str, str]:
    c = Client(url)
    ext = c.post("/v2.0/networks", json={"network": {"name": "bench-ext",
                                                     "router:external": True}}).json()["network"]
    c.post("/v2.0/subnets", json={"subnet": {"network_id": ext["id"], "cidr": "100.64.0.0/16",
                                             "ip_version": 4, "enable_dhcp": False}}
           ).raise_for_status()
    net = c.post("/v2.0/networks", json={"network": {"name": "bench-net"}}).json()["network"]
    sub = c.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"],
                                                   "cidr": "10.0.0.0/16",
                                                   "ip_version": 4}}).json()["subnet"]
    # a floating IP on a port needs a router from the port's subnet to the external network
    r = c.post("/v2.0/routers", json={"router": {"name": "bench-r", "external_gateway_info": {
        "network_id": ext["id"]}}}).json()["router"]
    c.request("PUT", f"/v2.0/routers/{r['id']}/add_router_interface",
              {"subnet_id": sub["id"]}).raise_for_status()
    c.close()
    return ext["id"], net["id"]


def churn(urls: list[str], ext: str, net: str, clients: int, seconds: float) -> dict:
    lat: list[float] = []
    fip_lat: list[float] = []
    errors = {"5xx": 0, "other": 0}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def one(i: int) -> None:
        conns = [Client(u) for u in urls]
        mine, fips, bad5, bad = [], [], 0, 0
        n = i
        while time.monotonic() < stop:
            c = conns[n % len(conns)]
            n += 1

            def req(method, path, body=None):
                nonlocal bad5, bad
                t0 = time.perf_counter()
                r = c.request(method, path, body)
                mine.append(time.perf_counter() - t0)
                if r.status_code >= 500:
                    bad5 += 1
                elif r.status_code >= 400:
                    bad += 1
                return r, mine[-1]
            r, _ = req("POST", "/v2.0/ports", {"port": {"network_id": net}})
            if r.status_code != 201:
                continue
            pid = r.json()["port"]["id"]
            r, took = req("POST", "/v2.0/floatingips", {"floatingip": {
                "floating_network_id": ext, "port_id": pid}})
            fips.append(took)
            if r.status_code == 201:
                req("DELETE", f"/v2.0/floatingips/{r.json()['floatingip']['id']}")
            req("DELETE", f"/v2.0/ports/{pid}")
        with lock:
            lat.extend(mine)
            fip_lat.extend(fips)
            errors["5xx"] += bad5
            errors["other"] += bad
        for c in conns:
            c.close()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0

    def pct(xs, p):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else float("nan")
    return {"requests": len(lat), "req_per_s": round(len(lat) / wall, 1),
            "p50_ms": round(pct(lat, 0.5), 1), "p99_ms": round(pct(lat, 0.99), 1),
            "max_ms": round(max(lat) * 1000, 1) if lat else None,
            "fip_create_p99_ms": round(pct(fip_lat, 0.99), 1), **errors}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--servers", type=int, default=1)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60)
    a = ap.parse_args()
    pg = None
    tmp = tempfile.mkdtemp(prefix="fp-churn-")
    if a.db == "postgresql":
        from pgserver import PgServer, fresh_database
        pg = PgServer().start()
        ctx = fresh_database(pg.url)
        url = ctx.__enter__()
    else:
        ctx, url = None, f"sqlite:///{tmp}/floatip.db"
    servers = []
    try:
        servers = start_servers(url, 1)
        servers += start_servers(url, a.servers - 1)
        ext, net = setup(servers[0][1])
        res = churn([u for _, u in servers], ext, net, a.clients, a.seconds)
        print(json.dumps({"db": a.db, "servers": a.servers, "clients": a.clients,
                          "seconds": a.seconds, **res}))
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(30)
        if ctx is not None:
            ctx.__exit__(None, None, None)
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
