#!/usr/bin/env python3
"""``make bench``: floating IP port forwardings (issue 24) on this machine's kernel, per NAT
driver. Real namespaces, veths and OVS (the test suite's topology, tests/topo.py):
  kernel work      the 1,000th forwarding added to a router with 999: the agent's pass
                   (the change feed's path: the forwarding's delta into Desired, then
                   Reconciler; wall and CPU time) and the NAT step alone (p50 of --rounds)
  API -> TCP       ``floatip serve`` (API and agent): POST of the 1,000th forwarding sent
                   -> its SYN-ACK from the VM through the external port (a fresh SYN every
                   2 ms, non-blocking, so a SYN sent before the rule costs no timeout,
                   from a process of its own in the upstream namespace),
                   with where the time went: POST answered, the agent's pass ended (and
                   that pass's CPU time, the figure a busy machine does not change)
  conn/s           new UDP flows per second from outside through a forwarded port
                   (benchmarks/traffic.c, a raw-socket sender offering more than the path
                   carries: every packet a new conntrack entry), with 10 and with 1,000
                   forwardings, --tries rounds of 10, N, 10: median and spread of each,
                   N against the mean of its round's two 10s (median, quartiles), and the
                   10 vs 10 of the same rounds as the A/A control (the noise floor)
Targets: <= 2 ms kernel work, <= 20 ms API -> TCP, conn/s at 1,000 >= 95 % of at 10.
The machine's load average is printed beside the figures (wall times scale with it).
Everything is named pf<random> and removed at the end.
"""
from __future__ import annotations

import argparse
import errno
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from floatip import lab as L  # noqa: E402
from floatip.agent.desired import Desired  # noqa: E402
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
        # the agent's path: the n-th forwarding arrives as a delta of its own (Desired)
        want = Desired()
        want.load({"state": topo.state(), "generation": 0, "vm_ports": {},
                   "known_routers": set()})
        some = want.state.floatingips[fid].port_forwardings[0]
        nth = replace(some, id="pf-bench-nth", external_port_start=BASE + n - 1,
                      external_port_end=BASE + n - 1, floatingip_id=fid)
        passes, cpu, nat = [], [], []
        for i in range(rounds):   # add the n-th, then take it away again
            before = dict(dp.seconds)
            t0, c0 = time.perf_counter(), time.thread_time()
            changed = want.apply({"generation": 2 * i + 1, "upserts": {
                "port_forwardings": {nth.id: nth}}, "deletes": {}})
            rep = rec.sync(want.clean(), changed=changed["floatingips"],
                           forwarded=want.forwarded)
            passes.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
            assert rep.ok, rep.errors
            step = "nft" if driver == "nftables" else "iptables_restore"
            nat.append(dp.seconds.get(step, 0.0) - before.get(step, 0.0))
            changed = want.apply({"generation": 2 * i + 2, "upserts": {},
                                  "deletes": {"port_forwardings": [nth.id]}})
            assert rec.sync(want.clean(), changed=changed["floatingips"],
                            forwarded=want.forwarded).ok
        assert rec.sync(topo.state(), full=True).ok  # the document's state again
        out["pass_ms"] = statistics.median(passes) * 1e3
        out["pass_cpu_ms"] = statistics.median(cpu) * 1e3
        out["nat_ms"] = statistics.median(nat) * 1e3
        print(f"  {driver} 1 -> {n} forwardings: agent pass p50 {out['pass_ms']:.2f} ms "
              f"(CPU {out['pass_cpu_ms']:.2f} ms), NAT step p50 {out['nat_ms']:.2f} ms "
              f"[{load()}]", flush=True)
        # conn/s through a UDP forwarding, with 10 and with n forwardings: rounds of three
        # runs, 10, n, 10 again, so that the machine's drift (a linear one cancels) falls on
        # both alike; the second 10 against the first is the A/A control: the noise floor
        ns = topo.vms["a"]
        rates: dict = {10: [], n: []}
        ratios, control, sent, got_pct = [], [], [], []
        for _ in range(tries):
            run = []
            for count in (10, n, 10):
                fwd[:] = [pf(topo, BASE + i) for i in range(count - 1)] + \
                    [pf(topo, UDP_PORT, "udp", UDP_PORT)]
                assert rec.sync(topo.state(), changed={fid}).ok
                got, offered = conn_rate(traffic, topo.ns, topo.upstream, ns, secs)
                run.append(got)
                sent.append(offered)
                got_pct.append(got / offered if offered else 0.0)
            rates[10] += [run[0], run[2]]
            rates[n].append(run[1])
            if run[0] and run[2]:
                ratios.append(run[1] * 2 / (run[0] + run[2]))
                control.append(run[2] / run[0])
        out["conn_10"], out["conn_n"] = statistics.median(rates[10]), statistics.median(rates[n])
        out["conn_ratio"] = statistics.median(ratios) if ratios else 0.0
        out["conn_control"] = statistics.median(control) if control else 0.0
        print(f"  {driver} new UDP flows/s via a forwarded port ({tries} rounds of 10, {n}, "
              f"10): 10 forwardings median {out['conn_10'] / 1e3:.1f}k "
              f"({spread(rates[10])}), {n} forwardings median {out['conn_n'] / 1e3:.1f}k "
              f"({spread(rates[n])}); {n} vs the mean of its round's two 10s: median "
              f"{out['conn_ratio'] * 100:.0f} % (quartiles {quartiles(ratios)}); A/A control, "
              f"10 vs 10 in the same rounds: median {out['conn_control'] * 100:.0f} % "
              f"(quartiles {quartiles(control)}); the sender offered "
              f"{statistics.median(sent) / 1e3:.0f}k packets/s, the VM received "
              f"{statistics.median(got_pct) * 100:.0f} % of them [{load()}]", flush=True)
    finally:
        topo.close()
        dp.close()
        left = lab.cleanup()
        if left:
            print("could not remove:", left, file=sys.stderr)
    return out


def load() -> str:
    return "load %.1f %.1f %.1f" % os.getloadavg()


def p99(xs: list[float]) -> float:
    """The 99th percentile (of fewer than 100 rounds: interpolated towards the max)."""
    return statistics.quantiles(xs, n=100, method="inclusive")[98] if len(xs) > 1 else xs[0]


def quartiles(xs: list[float]) -> str:
    """The first and third quartiles of ratios, as percentages."""
    if len(xs) < 2:
        return "n/a"
    q = statistics.quantiles(xs, n=4)
    return f"{q[0] * 100:.0f}-{q[2] * 100:.0f} %"


def spread(xs: list[float]) -> str:
    return f"{min(xs) / 1e3:.1f}k-{max(xs) / 1e3:.1f}k"


def conn_rate(traffic: Path, router_ns: str, up: str, vm: str,
              secs: float) -> tuple[float, float]:
    """(datagrams/s the VM received, packets/s the sender sent)."""
    L.sh("ip", "netns", "exec", router_ns, "conntrack", "-F", check=False)
    recv = subprocess.Popen(["ip", "netns", "exec", vm, str(traffic), "recv", str(UDP_PORT),
                             str(secs + 1.0)], stdout=subprocess.PIPE, text=True)
    try:
        assert recv.stdout.readline().strip() == "ready"
        snd = subprocess.run(["ip", "netns", "exec", up, str(traffic), "send", FIP,
                              str(UDP_PORT), str(secs), "100.64.128.0"], capture_output=True,
                             text=True, timeout=secs + 10)
        got = int(recv.communicate(timeout=secs + 10)[0].strip() or 0)
        offered = int(snd.stdout.strip() or 0)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    L.sh("ip", "netns", "exec", router_ns, "conntrack", "-F", check=False)
    return got / secs, offered / secs


class Prober:
    """A fresh non-blocking SYN to ip:port every ``every`` seconds from this process'
    namespace; ``wait`` returns when one is answered (a SYN-ACK: the connection is made).
    Sockets are made beforehand, so the loop only connects. Run as ``--probe IP:PORT``
    in the upstream namespace: prints "ready", then the time (``time.perf_counter``, the
    system's monotonic clock) of the first answer."""

    def __init__(self, ip: str, port: int, pool: int = 100, every: float = 0.002):
        self.addr, self.every = (ip, port), every
        self.pool = [self._socket() for _ in range(pool)]

    @staticmethod
    def _socket() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        return s

    def wait(self, deadline: float) -> float:
        sel = selectors.DefaultSelector()
        live: list[socket.socket] = []
        try:
            next_at = 0.0
            while True:
                now = time.perf_counter()
                if now > deadline:
                    raise RuntimeError("no TCP through the new forwarding in time")
                if now >= next_at:
                    s = self.pool.pop() if self.pool else self._socket()
                    live.append(s)
                    if s.connect_ex(self.addr) not in (0, errno.EINPROGRESS):
                        s.close()
                    else:
                        sel.register(s, selectors.EVENT_WRITE)
                    next_at = now + self.every
                for key, _ in sel.select(timeout=max(0.0, next_at - time.perf_counter())):
                    s = key.fileobj
                    sel.unregister(s)
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                        return time.perf_counter()
        finally:
            sel.close()
            for s in live + self.pool:
                s.close()


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
                agent = d.wait_synced.__self__.agent   # the Server's in-process agent
                passes: list[tuple] = []   # (end, CPU seconds, phases, full) of each pass
                hook = agent.on_pass

                def record(a, full, secs, report):
                    passes.append((time.perf_counter(), a.stats.last_cpu_seconds,
                                   dict(a.stats.last_phases), full))
                    if hook is not None:
                        hook(a, full, secs, report)
                agent.on_pass = record
                lat, posted, applied, cpu, phases = [], [], [], [], []
                for _ in range(rounds):
                    # the prober in a process of its own: in this one it waited for the
                    # GIL behind the server's threads (the API and the agent)
                    probe = subprocess.Popen(
                        ["ip", "netns", "exec", d.upstream, sys.executable, __file__,
                         "--probe", f"{fip['floating_ip_address']}:{BASE + n}"],
                        stdout=subprocess.PIPE, text=True)
                    assert probe.stdout.readline().strip() == "ready"
                    passes.clear()
                    t0 = time.perf_counter()
                    pid = make(BASE + n)
                    posted.append(time.perf_counter() - t0)
                    lat.append(float(probe.communicate(timeout=30)[0]) - t0)
                    assert d.wait_synced()
                    mine = [p for p in passes if p[0] >= t0]
                    if mine:
                        applied.append(mine[0][0] - t0)
                        cpu.append(mine[0][1])
                        phases.append(mine[0][2])
                    c.delete(f"{path}/{pid}").raise_for_status()
                    assert d.wait_synced()
                    time.sleep(0.2)
                agent.on_pass = hook
                out["api_tcp_ms"] = statistics.median(lat) * 1e3
                out["api_pass_cpu_ms"] = statistics.median(cpu) * 1e3
                print(f"  API POST of forwarding {n} -> first SYN answered through it: p50 "
                      f"{out['api_tcp_ms']:.1f} ms, p99 {p99(lat) * 1e3:.1f} ms (max "
                      f"{max(lat) * 1e3:.1f} ms, {len(lat)} rounds); POST answered p50 "
                      f"{statistics.median(posted) * 1e3:.1f} ms, p99 "
                      f"{p99(posted) * 1e3:.1f} ms, the agent's "
                      f"pass ended p50 {statistics.median(applied) * 1e3:.1f} ms, that pass's "
                      f"CPU p50 {out['api_pass_cpu_ms']:.2f} ms [{load()}]", flush=True)
                print("  that pass's phases p50: " + ", ".join(
                    f"{k} {statistics.median(p[k] for p in phases) * 1e3:.1f} ms"
                    for k in (phases[0] if phases else ())), flush=True)
                for x in c.get(path).json()["port_forwardings"]:
                    c.delete(f"{path}/{x['id']}")
        finally:
            gen.close()
    return out


def probe(target: str) -> None:
    ip, _, port = target.rpartition(":")
    p = Prober(ip, int(port))
    print("ready", flush=True)
    print(f"{p.wait(time.perf_counter() + 15):.6f}", flush=True)


def main() -> None:
    if sys.argv[1:2] == ["--probe"]:
        return probe(sys.argv[2])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=1000, help="forwardings on the router")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--seconds", type=float, default=1.5, help="per conn/s run")
    p.add_argument("--tries", type=int, default=12, help="conn/s rounds of 10, N, 10")
    p.add_argument("--drivers", default="nftables,iptables")
    p.add_argument("--no-api", action="store_true")
    p.add_argument("--no-kernel", action="store_true", help="the API -> TCP figure only")
    a = p.parse_args()
    OUT.mkdir(exist_ok=True)
    traffic = OUT / "traffic"
    subprocess.run(["gcc", "-O2", "-o", str(traffic), str(ROOT / "benchmarks/traffic.c")],
                   check=True)
    rows = {}
    for driver in [] if a.no_kernel else a.drivers.split(","):
        print(f"{driver}:", flush=True)
        rows[driver] = kernel(driver, a.n, a.rounds, traffic, a.seconds, a.tries)
    if not a.no_api:
        rows["api"] = api("nftables", a.n, max(5, a.rounds // 2))
    print("\n| port forwardings, N=%d | %s |" % (a.n, " | ".join(rows)))
    print("|---|" + "---|" * len(rows))
    for key, label in (("nat_ms", "kernel work for the N-th (NAT step, ms)"),
                       ("pass_ms", "agent pass for the N-th (ms)"),
                       ("pass_cpu_ms", "agent pass for the N-th, CPU (ms)"),
                       ("conn_10", "new UDP flows/s, 10 forwardings (median)"),
                       ("conn_n", "new UDP flows/s, N forwardings (median)"),
                       ("conn_ratio", "N vs 10 forwardings, median of rounds (%)"),
                       ("conn_control", "A/A control: 10 vs 10, median of rounds (%)"),
                       ("api_tcp_ms", "API -> first TCP (ms)"),
                       ("api_pass_cpu_ms", "API -> TCP: the agent pass's CPU (ms)")):
        print(f"| {label} | " + " | ".join(
            f"{r[key]:.2f}" if key in r and key.endswith("ms") else
            f"{r[key] * 100:.0f}" if key in r and key in ("conn_ratio", "conn_control") else
            (f"{r[key] / 1e3:.1f}k" if key in r else "") for r in rows.values()) + " |")
    print(load())


if __name__ == "__main__":
    main()
