#!/usr/bin/env python3
"""``make bench``: floating IP port forwardings (issue 24) on this machine's kernel, per NAT
driver. Real namespaces, veths and OVS (the test suite's topology, tests/topo.py):
  kernel work      the 1,000th forwarding added to a router with 999: the agent's pass
                   (Reconciler, the change feed's path) and the NAT step alone (p50 of -n)
  API -> TCP       ``floatip serve`` (API and agent): POST of the 1,000th forwarding
                   returned -> the first TCP connection through its external port (p50)
  conn/s           new UDP flows per second from outside through a forwarded port
                   (benchmarks/traffic.c: every packet a new conntrack entry), with 10
                   and with 1,000 forwardings on the router (best of --tries, interleaved)
Targets: <= 2 ms kernel work, <= 20 ms API -> TCP, conn/s at 1,000 >= 95 % of at 10.
Everything is named pf<random> and removed at the end.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from floatip import lab as L  # noqa: E402
from floatip.agent.reconciler import Reconciler  # noqa: E402
from floatip.dataplane.kernel import Dataplane  # noqa: E402
from floatip.dataplane.ovs import datapath_type  # noqa: E402
from floatip.lab import Lab  # noqa: E402
from topo import Topo  # noqa: E402

FIP = "203.0.113.90"
VM_PORT, UDP_PORT, BASE = 8080, 5353, 20000
OUT = ROOT / "benchmarks" / "out"


def pf(topo: Topo, ext: int, proto: str = "tcp", internal: int = VM_PORT) -> dict:
    return {"protocol": proto, "internal_port_name": topo.port("a"), "internal_port": internal,
            "external_port": ext}


def kernel(driver: str, n: int, rounds: int, traffic: Path, secs: float, tries: int) -> dict:
    lab = Lab(datapath_type())
    dp = Dataplane(driver)
    topo = Topo(lab, dp, driver)
    out: dict = {}
    try:
        topo.vm("a", "198.51.100.84")
        fwd = [pf(topo, BASE + i) for i in range(n - 1)]
        topo.doc["floatingips"].append({"floating_ip_address": FIP, "port": None,
                                        "port_forwardings": fwd})
        rec = Reconciler(dp, topo.config)
        assert rec.sync(topo.state(), full=True).ok
        fid = next(iter(topo.state().floatingips))
        passes, nat = [], []
        for _ in range(rounds):   # add the n-th, then take it away again
            fwd.append(pf(topo, BASE + n - 1))
            state = topo.state()
            before = dict(dp.seconds)
            t0 = time.perf_counter()
            rep = rec.sync(state, changed={fid})
            passes.append(time.perf_counter() - t0)
            assert rep.ok, rep.errors
            step = "nft" if driver == "nftables" else "iptables_restore"
            nat.append(dp.seconds.get(step, 0.0) - before.get(step, 0.0))
            fwd.pop()
            assert rec.sync(topo.state(), changed={fid}).ok
        out["pass_ms"] = statistics.median(passes) * 1e3
        out["nat_ms"] = statistics.median(nat) * 1e3
        print(f"  {driver} 1 -> {n} forwardings: agent pass p50 {out['pass_ms']:.2f} ms, "
              f"NAT step p50 {out['nat_ms']:.2f} ms", flush=True)
        # conn/s through a UDP forwarding, with 10 and with n forwardings
        ns = topo.vms["a"]
        rates: dict = {10: [], n: []}
        for _ in range(tries):
            for count in (10, n):
                fwd[:] = [pf(topo, BASE + i) for i in range(count - 1)] + \
                    [pf(topo, UDP_PORT, "udp", UDP_PORT)]
                assert rec.sync(topo.state(), changed={fid}).ok
                rates[count].append(conn_rate(traffic, topo.ns, topo.upstream, ns, secs))
        out["conn_10"], out["conn_n"] = max(rates[10]), max(rates[n])
        print(f"  {driver} new UDP flows/s via a forwarded port: 10 forwardings "
              f"{out['conn_10'] / 1e3:.1f}k, {n} forwardings {out['conn_n'] / 1e3:.1f}k "
              f"({out['conn_n'] / out['conn_10'] * 100:.0f} %; tries {rates})", flush=True)
    finally:
        topo.close()
        dp.close()
        left = lab.cleanup()
        if left:
            print("could not remove:", left, file=sys.stderr)
    return out


def conn_rate(traffic: Path, router_ns: str, up: str, vm: str, secs: float) -> float:
    L.sh("ip", "netns", "exec", router_ns, "conntrack", "-F", check=False)
    recv = subprocess.Popen(["ip", "netns", "exec", vm, str(traffic), "recv", str(UDP_PORT),
                             str(secs + 1.0)], stdout=subprocess.PIPE, text=True)
    try:
        assert recv.stdout.readline().strip() == "ready"
        subprocess.run(["ip", "netns", "exec", up, str(traffic), "send", FIP, str(UDP_PORT),
                        str(secs), "100.64.128.0"], capture_output=True, text=True,
                       timeout=secs + 10)
        got = int(recv.communicate(timeout=secs + 10)[0].strip() or 0)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    L.sh("ip", "netns", "exec", router_ns, "conntrack", "-F", check=False)
    return got / secs


def api(driver: str, n: int, rounds: int) -> dict:
    """``floatip serve`` with its agent: the n-th forwarding's POST -> first TCP through it."""
    import httpx
    from test_e2e_backends import Scenario, _kernel
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="pf-bench-") as tmp:
        gen = _kernel(Path(tmp))
        d = next(gen)
        try:
            if driver != "nftables":
                print("  (API -> TCP measured with the server's default NAT driver)")
            sc = Scenario(d)
            vm = sc.ports["vm1"]
            d.lab.serve(sc.ns["vm1"], port=VM_PORT)
            with httpx.Client(base_url=d.url, timeout=60) as c:
                ext = c.post("/v2.0/floatingips", json={"floatingip": {
                    "floating_network_id": sc.ext.id, "floating_ip_address": "203.0.113.60"}})
                fip = ext.json()["floatingip"]
                path = f"/v2.0/floatingips/{fip['id']}/port_forwardings"

                def make(port: int) -> str:
                    r = c.post(path, json={"port_forwarding": {
                        "protocol": "tcp", "internal_port_id": vm.id,
                        "internal_port": VM_PORT, "external_port": port}})
                    assert r.status_code == 201, r.text
                    return r.json()["port_forwarding"]["id"]
                # one internal socket per forwarding (Neutron's rule): VM ports 1..n-1
                for i in range(n - 1):
                    r = c.post(path, json={"port_forwarding": {
                        "protocol": "tcp", "internal_port_id": vm.id,
                        "internal_port": 30000 + i, "external_port": BASE + i}})
                    assert r.status_code == 201, r.text
                assert d.wait_synced()
                lat = []
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    pid = make(BASE + n)
                    while L.tcp_source(d.upstream, fip["floating_ip_address"], BASE + n,
                                       0.05) is None:
                        if time.perf_counter() - t0 > 10:
                            raise RuntimeError("no TCP through the new forwarding in 10 s")
                    lat.append(time.perf_counter() - t0)
                    c.delete(f"{path}/{pid}").raise_for_status()
                    assert d.wait_synced()
                    time.sleep(0.2)
                out["api_tcp_ms"] = statistics.median(lat) * 1e3
                print(f"  API POST of forwarding {n} -> first TCP through it: p50 "
                      f"{out['api_tcp_ms']:.1f} ms (max {max(lat) * 1e3:.1f} ms)", flush=True)
                for x in c.get(path).json()["port_forwardings"]:
                    c.delete(f"{path}/{x['id']}")
        finally:
            gen.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=1000, help="forwardings on the router")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--seconds", type=float, default=2.0, help="per conn/s try")
    p.add_argument("--tries", type=int, default=3)
    p.add_argument("--drivers", default="nftables,iptables")
    p.add_argument("--no-api", action="store_true")
    a = p.parse_args()
    OUT.mkdir(exist_ok=True)
    traffic = OUT / "traffic"
    subprocess.run(["gcc", "-O2", "-o", str(traffic), str(ROOT / "benchmarks/traffic.c")],
                   check=True)
    rows = {}
    for driver in a.drivers.split(","):
        print(f"{driver}:", flush=True)
        rows[driver] = kernel(driver, a.n, a.rounds, traffic, a.seconds, a.tries)
    if not a.no_api:
        rows["api"] = api("nftables", a.n, max(5, a.rounds // 2))
    print("\n| port forwardings, N=%d | %s |" % (a.n, " | ".join(rows)))
    print("|---|" + "---|" * len(rows))
    for key, label in (("nat_ms", "kernel work for the N-th (NAT step, ms)"),
                       ("pass_ms", "agent pass for the N-th (ms)"),
                       ("conn_10", "new UDP flows/s, 10 forwardings"),
                       ("conn_n", "new UDP flows/s, N forwardings"),
                       ("api_tcp_ms", "API -> first TCP (ms)")):
        print(f"| {label} | " + " | ".join(
            f"{r[key]:.2f}" if key in r and key.endswith("ms") else
            (f"{r[key] / 1e3:.1f}k" if key in r else "") for r in rows.values()) + " |")


if __name__ == "__main__":
    main()
