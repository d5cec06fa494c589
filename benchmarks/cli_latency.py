#!/usr/bin/env python3
"""``make bench``: the wall time of one CLI call, ``floatip network list`` beside ``openstack
network list`` (noauth, ``--os-endpoint``), against the same local server (SQLite, no agent,
a free loopback port) holding a few networks. Each call is a new process, as a script or a
person runs it; p50/p90 over ``--runs`` calls after one warm-up call each (which fills the OS's
page cache and Python's bytecode caches). Also the CPU time (user + system) of a call: on a
busy machine wall time is mostly waiting for a core.

    python benchmarks/cli_latency.py [--runs 20] [--networks 20]

Prints a markdown table and writes bench-out/cli_latency.md and .json. Target: floatip's
p50 <= 0.3 s (it was 2.6-2.8 s when every call imported the server).
"""
from __future__ import annotations

import argparse
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

from floatip.client import Client  # noqa: E402
from floatip.server import Server, free_port  # noqa: E402

OUT = ROOT / "bench-out"
BIN = Path(sys.executable).parent


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall and CPU seconds of one call (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        sys.exit(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.decode()[-2000:]}")
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20, help="calls per CLI")
    ap.add_argument("--networks", type=int, default=20, help="networks the server holds")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="fb-cli-")
    srv = Server(f"sqlite:///{tmp}/floatip.db", f"127.0.0.1:{free_port()}", agent=False).start()
    try:
        with Client(srv.url) as c:
            for i in range(args.networks):
                c.create("network", name=f"fb-cli-{i}")
        env = {**os.environ, "FLOATIP_URL": srv.url, "PYTHONWARNINGS": "ignore"}
        env.pop("OS_CLOUD", None)
        clis = {"floatip network list": [str(BIN / "floatip"), "network", "list"],
                "openstack network list": [str(BIN / "openstack"), "--os-auth-type", "none",
                                           "--os-endpoint", srv.url, "network", "list"]}
        samples: dict[str, dict[str, list[float]]] = {}
        for name, cmd in clis.items():
            timed(cmd, env)  # warm-up
            samples[name] = {"wall": [], "cpu": []}
        for _ in range(args.runs):  # interleaved: a busy spell hits both alike
            for name, cmd in clis.items():
                wall, cpu = timed(cmd, env)
                samples[name]["wall"].append(wall)
                samples[name]["cpu"].append(cpu)
    finally:
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)
    ours, theirs = samples["floatip network list"], samples["openstack network list"]
    rows = [(name, pct(s["wall"], 50), pct(s["wall"], 90), pct(s["cpu"], 50))
            for name, s in samples.items()]
    load = os.getloadavg()[0]
    lines = [f"CLI call wall time, {args.runs} calls each, {args.networks} networks, "
             f"load average {load:.1f} on {os.cpu_count()} CPUs",
             "", "| call | p50 wall | p90 wall | p50 CPU |", "|---|---|---|---|"]
    lines += [f"| `{n}` | {w50:.3f} s | {w90:.3f} s | {c50:.3f} s |" for n, w50, w90, c50 in rows]
    ratio = pct(theirs["wall"], 50) / pct(ours["wall"], 50)
    lines += ["", f"openstack / floatip, p50 wall: {ratio:.1f}x; floatip p50 target <= 0.3 s: "
              f"{'met' if pct(ours['wall'], 50) <= 0.3 else 'NOT met'}"]
    print("\n".join(lines))
    OUT.mkdir(exist_ok=True)
    (OUT / "cli_latency.md").write_text("\n".join(lines) + "\n")
    (OUT / "cli_latency.json").write_text(json.dumps({"runs": args.runs, "load": load,
                                                      "samples": samples}, indent=1))


if __name__ == "__main__":
    main()
