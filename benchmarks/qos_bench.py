"""Bandwidth limits on a router's qg- device at scale (kernel backend, ``dataplane/tc.py``):
N rate-limited addresses in both directions set up at once, then the N+1st added, one
removed, and the observation those incremental changes start with. Its own namespace and
veth (unique names), removed after.

    python benchmarks/qos_bench.py --addresses 1000
"""
from __future__ import annotations

import argparse
import ipaddress
import subprocess
import time
import uuid

from floatip.dataplane import tc
from floatip.dataplane.netns import nsexec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--addresses", type=int, default=1000)
    n = ap.parse_args().addresses
    tag = uuid.uuid4().hex[:6]
    ns, qg = f"qsb{tag}", f"qg-qsb{tag}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        nsexec(ns, ["ip", "link", "add", qg, "type", "veth", "peer", "name", f"qsp{tag}"])
        nsexec(ns, ["ip", "link", "set", qg, "up"])
        addrs = [str(ipaddress.ip_address("100.64.0.10") + i) for i in range(n + 1)]
        want = tuple(sorted((a, d, 1000, 0) for a in addrs[:n] for d in ("egress", "ingress")))
        t = time.perf_counter()
        cmds = tc.apply(ns, qg, want, False, False)
        print(f"{n} addresses, both directions: {cmds} tc/ip commands in "
              f"{time.perf_counter() - t:.2f} s")
        more = tuple(sorted(want + ((addrs[n], "egress", 1000, 0),
                                    (addrs[n], "ingress", 1000, 0))))
        t = time.perf_counter()
        cmds = tc.apply(ns, qg, more, True, True)
        print(f"the {n + 1}th address: {cmds} commands, "
              f"{1000 * (time.perf_counter() - t):.0f} ms (observe + apply)")
        t = time.perf_counter()
        tc.observe(ns, qg, True, True)
        print(f"observing {2 * (n + 1)} classes: {1000 * (time.perf_counter() - t):.0f} ms")
        t = time.perf_counter()
        cmds = tc.apply(ns, qg, want, True, True)
        print(f"one address removed: {cmds} commands, "
              f"{1000 * (time.perf_counter() - t):.0f} ms")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
