"""API clients for the benchmarks, one process each (they do not share the server's
interpreter), started before the clock runs: each imports httpx only, says "ready", waits
for "go" on stdin, does its work and prints one JSON line. Spawned multiprocessing workers
re-imported the benchmark (floatip, SQLAlchemy, pyroute2): 8 of them took ~6 s of the
measured time on 2 cores.

    python api_clients.py URL  < {"op": "pairs", "ext": ID, "nets": [...], "idx": [...]}
    python api_clients.py URL  < {"op": "delete", "pairs": [[port, fip], ...]}
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx


def make_pairs(c: httpx.Client, ext: str, nets: list[str], idx: list[int]) -> dict:
    """Port + floating IP pairs; the POST floatingip latencies."""
    out, lat = [], []
    for i in idx:
        r = c.post("/v2.0/ports", json={"port": {"network_id": nets[i % len(nets)]}})
        r.raise_for_status()
        pid = r.json()["port"]["id"]
        t0 = time.perf_counter()
        r = c.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": ext,
                                                             "port_id": pid}})
        r.raise_for_status()
        lat.append(time.perf_counter() - t0)
        out.append((pid, r.json()["floatingip"]["id"]))
    return {"pairs": out, "lat": lat}


def delete_pairs(c: httpx.Client, pairs: list) -> dict:
    for pid, fid in pairs:
        c.delete(f"/v2.0/floatingips/{fid}").raise_for_status()
        c.delete(f"/v2.0/ports/{pid}").raise_for_status()
    return {}


def main() -> None:
    job = json.loads(sys.stdin.readline())
    with httpx.Client(base_url=sys.argv[1], timeout=120) as c:
        print("ready", flush=True)
        sys.stdin.readline()  # go
        if job["op"] == "pairs":
            res = make_pairs(c, job["ext"], job["nets"], job["idx"])
        else:
            res = delete_pairs(c, job["pairs"])
    print(json.dumps(res), flush=True)


def run(url: str, jobs: list[dict]) -> tuple[list[dict], float]:
    """One client process per job, all started, then let go together: (their results,
    seconds from "go" until the last finished)."""
    procs = [subprocess.Popen([sys.executable, __file__, url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in jobs]
    try:
        for p, job in zip(procs, jobs):
            p.stdin.write(json.dumps(job) + "\n")
            p.stdin.flush()
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a client did not start")
        t0 = time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        out = []
        for p in procs:
            line = p.stdout.readline()
            if p.wait() != 0 or not line:
                raise RuntimeError("a client failed")
            out.append(json.loads(line))
        return out, time.perf_counter() - t0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
