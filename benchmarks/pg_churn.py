"""Port + floating IP churn against one or two ``floatip serve --no-agent`` processes on one
database (issue 27): ``--clients`` clients for ``--seconds`` each loop create port, create
floating IP on it, delete the floating IP, delete the port, spread over the servers.
Reports requests/s, p50/p99/max of every request, the floating IP create's p99, 5xx, and
the CPU each part took per request (servers, PostgreSQL, this load generator): on a small
machine they share the cores, so a reader can judge the two-server ratio.

    python benchmarks/pg_churn.py [--db postgresql|sqlite] [--servers 1|2]
                                  [--clients 32] [--seconds 60] [--profile FILE]
    python benchmarks/pg_churn.py --all      (make bench: both databases, 1 and 2 servers,
                                              the issue's targets; bench-out/pg_churn.md)

PostgreSQL: a throw-away server (tests/pgserver.py). SQLite: a file in a temporary
directory. The clients are asyncio tasks of this one process, each with a kept-alive
HTTP/1.1 connection per server over asyncio streams: 0.14-0.3 ms of CPU per request, measured
and reported, on the cores the servers run on. ``--profile FILE``: py-spy
records the first server (collapsed stacks, GIL holders only)."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from api_clients import Client  # noqa: E402
from floatip.server import free_port  # noqa: E402

OUT = ROOT / "bench-out"
TICK = os.sysconf("SC_CLK_TCK")
TARGET_P99_MS, TARGET_RATIO = 250.0, 1.5


def start_servers(db: str, n: int, workers: int = 1) -> list[tuple[subprocess.Popen, str]]:
    out = []
    for i in range(n):
        port = free_port()
        argv = [sys.executable, "-m", "floatip.cli", "serve", "--no-agent", "--db", db,
                "--listen", f"127.0.0.1:{port}"]
        if workers > 1:
            argv += ["--workers", str(workers)]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


class Conn:
    """One kept-alive HTTP/1.1 connection (the server answers with a Content-Length)."""

    def __init__(self, url: str):
        host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = b"" if body is None else json.dumps(body).encode()
        self.writer.write(f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(data)}"
                          f"\r\n\r\n".encode() + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status, length = int(lines[0].split()[1]), 0
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length) if length else b""

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _ticks(pid: int) -> int:
    """CPU ticks of a process, with its waited-for children's."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15])
    except OSError:
        return 0


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (PostgreSQL's backends, --workers' processes)."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


class Cpu:
    """CPU seconds of process trees between ``start`` and ``stop``."""

    def __init__(self, roots: dict[str, list[int]]):
        self.roots = roots

    def sample(self) -> dict[str, dict[int, int]]:
        return {k: {p: _ticks(p) for r in roots for p in _tree(r)}
                for k, roots in self.roots.items()}

    def start(self) -> None:
        self.t0, self.s0, self.m0 = self._self(), self.sample(), self._machine()

    @staticmethod
    def _machine() -> int:
        """Busy ticks of every core (everything running on the machine)."""
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - v[4]  # but idle and iowait

    @staticmethod
    def _self() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def stop(self) -> dict[str, float]:
        s1 = self.sample()
        out = {k: sum(t - self.s0[k].get(p, 0) for p, t in s1[k].items()) / TICK
               for k in s1}
        out["load generator"] = self._self() - self.t0
        out["machine"] = (self._machine() - self.m0) / TICK
        return out


async def _churn(urls: list[str], ext: str, net: str, clients: int, seconds: float) -> dict:
    lat: list[float] = []
    fip_lat: list[float] = []
    errors = {"5xx": 0, "other": 0}
    stop = time.monotonic() + seconds

    async def one(i: int) -> None:
        conns = [Conn(u) for u in urls]
        n = i

        async def req(method, path, body=None):
            t0 = time.perf_counter()
            status, data = await c.request(method, path, body)
            took = time.perf_counter() - t0
            lat.append(took)
            if status >= 500:
                errors["5xx"] += 1
            elif status >= 400:
                errors["other"] += 1
            return status, data, took
        try:
            while time.monotonic() < stop:
                c = conns[n % len(conns)]
                n += 1
                status, data, _ = await req("POST", "/v2.0/ports", {"port": {"network_id": net}})
                if status != 201:
                    continue
                pid = json.loads(data)["port"]["id"]
                status, data, took = await req("POST", "/v2.0/floatingips", {"floatingip": {
                    "floating_network_id": ext, "port_id": pid}})
                fip_lat.append(took)
                if status == 201:
                    await req("DELETE", f"/v2.0/floatingips/{json.loads(data)['floatingip']['id']}")
                await req("DELETE", f"/v2.0/ports/{pid}")
        finally:
            for x in conns:
                x.close()
    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(clients)))
    wall = time.monotonic() - t0

    def pct(xs, p):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else float("nan")
    return {"requests": len(lat), "wall_s": wall, "req_per_s": round(len(lat) / wall, 1),
            "p50_ms": round(pct(lat, 0.5), 1), "p99_ms": round(pct(lat, 0.99), 1),
            "max_ms": round(max(lat) * 1000, 1) if lat else None,
            "fip_create_p99_ms": round(pct(fip_lat, 0.99), 1), **errors}


def churn(urls, ext, net, clients, seconds, cpu: Cpu | None = None) -> dict:
    if cpu is not None:
        cpu.start()
    res = asyncio.run(_churn(urls, ext, net, clients, seconds))
    if cpu is not None:
        used = cpu.stop()
        n = max(res["requests"], 1)
        machine = used.pop("machine")
        res["cpu_ms_per_request"] = {k: round(v * 1000 / n, 2) for k, v in used.items()}
        res["cores_busy"] = round(sum(used.values()) / res["wall_s"], 2)
        # what else ran on the machine meanwhile (other test suites on a shared host)
        res["cores_busy_others"] = round(max(machine - sum(used.values()), 0) / res["wall_s"], 2)
    return res


def _postmaster(pg) -> list[int]:
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        return [int(f.readline())]


def run(db: str, servers: int, clients: int, seconds: float, workers: int = 1,
        profile: str | None = None) -> dict:
    pg = ctx = None
    tmp = tempfile.mkdtemp(prefix="fp-churn-")
    if db == "postgresql":
        from pgserver import PgServer, fresh_database
        pg = PgServer().start()
        ctx = fresh_database(pg.url)
        url = ctx.__enter__()
    else:
        url = f"sqlite:///{tmp}/floatip.db"
    procs = []
    spy = None
    try:
        procs = start_servers(url, 1, workers)
        procs += start_servers(url, servers - 1, workers)
        ext, net = setup(procs[0][1])
        roots = {"servers": [p.pid for p, _ in procs]}
        if pg is not None:
            roots["postgresql"] = _postmaster(pg)
        if profile:
            spy = subprocess.Popen([shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy"),
                                    "record", "-p", str(procs[0][0].pid), "-d", str(int(seconds)),
                                    "-r", "50", "--gil", "--nonblocking", "-f", "raw",
                                    "-o", profile], stdout=subprocess.DEVNULL)
        res = churn([u for _, u in procs], ext, net, clients, seconds, Cpu(roots))
        if spy is not None:
            spy.wait(30)
        return {"db": db, "servers": servers, "workers": workers, "clients": clients,
                "seconds": seconds, **res}
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(30)
        if ctx is not None:
            ctx.__exit__(None, None, None)
        if pg is not None:
            pg.stop()


def table(rows: list[dict]) -> str:
    by = {(r["db"], r["servers"]): r for r in rows}
    lines = ["| database | servers | req/s | p50 / p99 / max (ms) | FIP create p99 (ms) | 5xx | "
             "CPU ms per request: servers / PostgreSQL / load generator | cores busy: these / "
             "other processes |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        c = r.get("cpu_ms_per_request", {})
        lines.append(f"| {r['db']} | {r['servers']} | {r['req_per_s']} | {r['p50_ms']} / "
                     f"{r['p99_ms']} / {r['max_ms']} | {r['fip_create_p99_ms']} | {r['5xx']} | "
                     f"{c.get('servers', '-')} / {c.get('postgresql', '-')} / "
                     f"{c.get('load generator', '-')} | {r.get('cores_busy', '-')} / "
                     f"{r.get('cores_busy_others', '-')} |")
    one, two = by.get(("postgresql", 1)), by.get(("postgresql", 2))
    if one:
        def mark(ok):
            return "met" if ok else "NOT met"
        lines += ["", f"Targets (issue 27, PostgreSQL, {one['clients']} clients x "
                      f"{one['seconds']:.0f} s, one run):",
                  f"- p99 <= {TARGET_P99_MS:.0f} ms: {one['p99_ms']} ms, "
                  f"{mark(one['p99_ms'] <= TARGET_P99_MS)}",
                  f"- floating IP create p99 <= {TARGET_P99_MS:.0f} ms: "
                  f"{one['fip_create_p99_ms']} ms, "
                  f"{mark(one['fip_create_p99_ms'] <= TARGET_P99_MS)}",
                  f"- 0 x 5xx: {one['5xx']}{' + ' + str(two['5xx']) if two else ''} "
                  f"(one server{' + two' if two else ''}), "
                  f"{mark(one['5xx'] == 0 and (not two or two['5xx'] == 0))}"]
        if two:
            ratio = two["req_per_s"] / one["req_per_s"]
            lines.append(f"- two servers >= {TARGET_RATIO}x one server's throughput: "
                         f"{ratio:.2f}x, {mark(ratio >= TARGET_RATIO)} "
                         f"(on {os.cpu_count()} cores shared by the servers, PostgreSQL and "
                         "the load generator: see their CPU per request)")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--servers", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="floatip serve --workers")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--profile", metavar="FILE", help="py-spy the first server into FILE")
    ap.add_argument("--all", action="store_true",
                    help="PostgreSQL and SQLite, 1 and 2 servers; the targets")
    a = ap.parse_args()
    if not a.all:
        print(json.dumps(run(a.db, a.servers, a.clients, a.seconds, a.workers, a.profile)))
        return
    rows = []
    for db in ("postgresql", "sqlite"):
        for n in (1, 2):
            rows.append(run(db, n, a.clients, a.seconds))
            print(json.dumps(rows[-1]), flush=True)
    md = table(rows)
    OUT.mkdir(exist_ok=True)
    (OUT / "pg_churn.md").write_text(md)
    (OUT / "pg_churn.json").write_text(json.dumps(rows, indent=2))
    print()
    print(md)


if __name__ == "__main__":
    main()
