#!/usr/bin/env python3
"""``make bench``: both NAT drivers side by side, on this machine's kernel and OVS.

Measures, per driver (all agent-side times are the Reconciler's, which is what the agent
runs on a state change; the kernel has the change when sync() returns):
  +1 FIP   one floating IP added to a router that has N (p50/p99 over repeats), and -1
  bulk     0 -> N floating IPs in one state change
  resync   a full observe-and-plan with nothing to change at N (must make 0 writes)
  restart  a new agent facing R routers x F floating IPs already in place: 0 writes
  conn/s   new UDP connections per second through the router to the worst-case floating IP
           (the last rule for iptables) at N=10 and N=10000, and to the VM's own address
           without NAT (the baseline).
Prints a markdown table and writes bench-out/bench.md, bench.json and bench.png.
Everything lives in namespaces and bridges named fb<random>, removed at the end.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import pickle
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from floatip.agent.reconciler import Reconciler, reconcile  # noqa: E402
from floatip.dataplane.kernel import Dataplane  # noqa: E402
from floatip.dataplane.ovs import datapath_type  # noqa: E402
from floatip.lab import Lab, sh  # noqa: E402
from floatip.core.layout import AgentConfig, namespace_name  # noqa: E402
from floatip.core.model import (FloatingIP, Gateway, Interface, Network, Port, Router,  # noqa: E402
                                State, Subnet, stable_mac)

OUT = ROOT / "bench-out"
EXT = ipaddress.ip_network("100.64.0.0/12")       # external: upstream .1, gateways .2+
FIP_BASE = int(ipaddress.ip_address("100.65.0.0"))
TEN_BASE = int(ipaddress.ip_address("100.96.0.0"))  # tenant /18 per router
UP_IP = "100.64.0.1"
PORT = 9999


def ip(n: int) -> str:
    return str(ipaddress.ip_address(n))


def uid() -> str:
    return str(uuid.uuid4())


class World:
    """Desired states for R routers, each with up to F floating IPs (objects made once,
    so states that share them differ only where they should)."""

    def __init__(self, routers: int, fips_each: int, extra: int = 0):
        self.ext = Network(uid(), "ext", external=True, network_type="flat",
                           physical_network="physnet1")
        self.ext_sub = Subnet(uid(), self.ext.id, str(EXT), UP_IP)
        self.nets = {self.ext.id: self.ext}
        self.subs = {self.ext_sub.id: self.ext_sub}
        self.routers: dict[str, Router] = {}
        self.fips: list[list[tuple[Port, FloatingIP]]] = []
        stride = 16384 if routers == 1 else 8192
        for r in range(routers):
            net = Network(uid(), f"t{r}", network_type="vlan", segmentation_id=100 + r,
                          local_vlan=100 + r)
            base = TEN_BASE + r * 16384
            sub = Subnet(uid(), net.id, f"{ip(base)}/18", ip(base + 1))
            self.nets[net.id], self.subs[sub.id] = net, sub
            gw_port, itf_port = uid(), uid()
            router = Router(uid(), f"r{r}",
                            Gateway(self.ext.id, gw_port, self.ext_sub.id, ip(int(EXT[0]) + 2 + r),
                                    stable_mac(gw_port)),
                            (Interface(itf_port, sub.id, ip(base + 1), stable_mac(itf_port)),))
            self.routers[router.id] = router
            pairs = []
            for i in range(fips_each + extra):
                p = Port(uid(), net.id, ((sub.id, ip(base + 2 + i)),))
                pairs.append((p, FloatingIP(uid(), ip(FIP_BASE + r * stride + i), self.ext.id,
                                            p.id, ip(base + 2 + i))))
            self.fips.append(pairs)

    def state(self, n: int, also=()) -> State:
        pairs = [pr for per in self.fips for pr in per[:n]] + list(also)
        return State(self.nets, self.subs, {p.id: p for p, _ in pairs}, self.routers,
                     {f.id: f for _, f in pairs})

    def with_target(self, n: int, target, also=()) -> State:
        """N floating IPs on router 0 where the highest one is ``target``."""
        return self.state(n - 1, [target, *also])


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


class Bench:
    def __init__(self, args):
        self.args = args
        self.sid = uuid.uuid4().hex[:5]
        self.results: dict = {"machine": machine(), "drivers": {}}
        self.traffic = OUT / "traffic"

    # -- one router, N floating IPs ---------------------------------------------------
    def single_router(self, driver: str) -> dict:
        res: dict = {"fip": {}}
        sizes = self.args.sizes
        extra = self.args.repeats + 2
        w = World(1, max(sizes), extra)
        rid = next(iter(w.routers))
        s = f"{self.sid}{driver[0]}"
        int_br, ex_br = f"fb{s}i", f"fb{s}x"
        config = AgentConfig(int_br, {"physnet1": ex_br}, driver)
        lab = Lab(datapath_type())
        dp = Dataplane(driver)
        rec = Reconciler(dp, config)
        # the target: highest floating IP, fixed IP held by the "VM" namespace
        ten = next(n for n in w.nets.values() if not n.external)
        sub = next(x for x in w.subs.values() if x.network_id == ten.id)
        vm_ip = ip(int(ipaddress.ip_network(sub.cidr)[0]) + 16000)
        tgt_port = Port(uid(), ten.id, ((sub.id, vm_ip),))
        target = FloatingIP(uid(), ip(FIP_BASE + 16000), w.ext.id, tgt_port.id, vm_ip)
        tgt = (tgt_port, target)
        try:
            lab.bridge(int_br)
            lab.bridge(ex_br)
            rep = rec.sync(w.state(0), full=True)
            assert rep.ok, rep.errors
            for n in sizes:
                rec.sync(w.state(0))
                state_n = w.with_target(n, tgt)
                before = dict(dp.seconds)
                t0 = time.perf_counter()
                rep = rec.sync(state_n)
                bulk = time.perf_counter() - t0
                addr_s = dp.seconds.get("add_fips", 0) - before.get("add_fips", 0)
                assert rep.ok, rep.errors
                adds, dels, diffs, addr_parts = [], [], [], []
                for k in range(self.args.repeats):
                    p, f = w.fips[0][max(sizes) + k % extra]
                    st = w.with_target(n, tgt, [(p, f)])
                    # the API's event names what changed (the port and the floating IP)
                    a0 = dp.seconds.get("add_fips", 0)
                    t0 = time.perf_counter()
                    rep = rec.sync(st, changed={p.id, f.id})
                    adds.append(time.perf_counter() - t0)
                    addr_parts.append(dp.seconds.get("add_fips", 0) - a0)
                    assert rep.ok and rep.writes, rep.errors
                    t0 = time.perf_counter()
                    rep = rec.sync(state_n, changed={p.id, f.id})
                    dels.append(time.perf_counter() - t0)
                    assert rep.ok, rep.errors
                    # the same without the hint: the Reconciler compares the states itself
                    t0 = time.perf_counter()
                    rep = rec.sync(st)
                    diffs.append(time.perf_counter() - t0)
                    assert rep.ok and rep.writes, rep.errors
                    rec.sync(state_n)
                t0 = time.perf_counter()
                rep = rec.sync(state_n, full=True)
                resync = time.perf_counter() - t0
                assert rep.ok and rep.writes == 0, (rep.writes, rep.plan.steps[:3], rep.errors)
                row = {"bulk_s": bulk, "bulk_addresses_s": addr_s, "add_p50_ms": pct(adds, 50) * 1e3,
                       "add_nohint_p50_ms": pct(diffs, 50) * 1e3,
                       "add_address_p50_ms": pct(addr_parts, 50) * 1e3,
                       "add_p99_ms": pct(adds, 99) * 1e3, "del_p50_ms": pct(dels, 50) * 1e3,
                       "resync_s": resync}
                res["fip"][n] = row
                print(f"  {driver} N={n}: {fmt_row(row)}", flush=True)
        finally:
            try:
                reconcile(dp, State(), config, remove={rid})
            finally:
                dp.close()
                left = lab.cleanup()
                if left:
                    print("could not remove:", left, file=sys.stderr)
        return res

    def dataplane(self, driver: str) -> dict:
        """New connections per second through two routers that exist side by side, one with
        N=small and one with N=large floating IPs, flooded in turn (so the shared machine's
        load falls on both alike), each aimed at its worst-case entry (the highest floating
        IP: the last rule for iptables); and to the small router's VM without NAT."""
        small, large = min(self.args.conn_sizes), max(self.args.conn_sizes)
        w = World(2, 0)
        rids = list(w.routers)
        s = f"{self.sid}{driver[0]}"
        int_br, ex_br = f"fb{s}di", f"fb{s}dx"
        config = AgentConfig(int_br, {"physnet1": ex_br}, driver)
        lab = Lab(datapath_type())
        dp = Dataplane(driver)
        ports: dict = {}
        fips: dict = {}
        hosts = []
        for r, (rid, n) in enumerate(zip(rids, (small, large))):
            net = next(x for x in w.nets.values() if x.segmentation_id == 100 + r)
            sub = next(x for x in w.subs.values() if x.network_id == net.id)
            base = int(ipaddress.ip_network(sub.cidr)[0])
            for i in range(n):  # the last one is the target: highest address, the VM's ip
                fixed = ip(base + (16000 if i == n - 1 else 2 + i))
                p = Port(uid(), net.id, ((sub.id, fixed),))
                f = FloatingIP(uid(), ip(FIP_BASE + r * 32768 + (20000 if i == n - 1 else i)),
                               w.ext.id, p.id, fixed)
                ports[p.id], fips[f.id] = p, f
            hosts.append((rid, sub, ip(base + 16000), ip(FIP_BASE + r * 32768 + 20000)))
        state = State(w.nets, w.subs, ports, w.routers, fips)
        out: dict = {"n_small": small, "n_large": large}
        try:
            lab.bridge(int_br)
            lab.bridge(ex_br)
            up = lab.host(f"fb{s}du", ex_br, f"fb{s}dup", f"{UP_IP}/12")
            vms = []
            for r, (rid, sub, vm_ip, _) in enumerate(hosts):
                vms.append(lab.host(f"fb{s}d{r}", int_br, f"fb{s}dp{r}", f"{vm_ip}/18",
                                    sub.gateway_ip, tag=100 + r))
            sh("ip", "netns", "exec", up, "ip", "route", "add", hosts[0][2], "via",
               w.routers[rids[0]].gateway.ip_address)
            rep = Reconciler(dp, config).sync(state)
            assert rep.ok, rep.errors
            deadline = time.monotonic() + 60
            while dp.garp.busy() and time.monotonic() < deadline:
                time.sleep(0.2)  # gratuitous ARP rounds go through OVS too
            time.sleep(self.args.settle)
            tries: dict = {"small": [], "large": [], "baseline": []}
            for _ in range(self.args.conn_tries):
                for key, r, dst in (("small", 0, hosts[0][3]), ("large", 1, hosts[1][3]),
                                    ("baseline", 0, hosts[0][2])):
                    tries[key].append(round(self.conn_rate(namespace_name(rids[r]), up, vms[r],
                                                           dst)))
            out["tries"] = tries
            out.update({k: max(v) for k, v in tries.items()})
        finally:
            try:
                reconcile(dp, State(), config, remove=set(rids))
            finally:
                dp.close()
                left = lab.cleanup()
                if left:
                    print("could not remove:", left, file=sys.stderr)
        print(f"  {driver} conn/s: N={small} {out['small'] / 1e3:.1f}k, N={large} "
              f"{out['large'] / 1e3:.1f}k, no NAT {out['baseline'] / 1e3:.1f}k "
              f"(best of {self.args.conn_tries}, interleaved: {tries})", flush=True)
        return out

    def conn_rate(self, router_ns: str, up: str, vm: str, dst: str) -> float:
        sh("ip", "netns", "exec", router_ns, "conntrack", "-F", check=False)
        secs = self.args.conn_seconds
        recv = subprocess.Popen(["ip", "netns", "exec", vm, str(self.traffic), "recv", str(PORT),
                                 str(secs + 1.0)], stdout=subprocess.PIPE, text=True)
        try:
            assert recv.stdout.readline().strip() == "ready"
            send = subprocess.run(["ip", "netns", "exec", up, str(self.traffic), "send", dst,
                                   str(PORT), str(secs), "100.64.128.0"],
                                  capture_output=True, text=True, timeout=secs + 10)
            got = int(recv.communicate(timeout=secs + 10)[0].strip() or 0)
        finally:
            if recv.poll() is None:
                recv.kill()
                recv.wait()
        sent = int(send.stdout.strip() or 0)
        sh("ip", "netns", "exec", router_ns, "conntrack", "-F", check=False)
        self.last_sent = sent / secs
        return got / secs

    # -- restart: R routers x F floating IPs, nothing to change -----------------------
    def restart(self, driver: str) -> dict:
        r, f = self.args.restart
        w = World(r, f)
        s = f"{self.sid}{driver[0]}"
        int_br, ex_br = f"fb{s}I", f"fb{s}X"
        config = AgentConfig(int_br, {"physnet1": ex_br}, driver)
        lab = Lab(datapath_type())
        state = w.state(f)
        out = {"routers": r, "fips_each": f}
        try:
            lab.bridge(int_br)
            lab.bridge(ex_br)
            dp = Dataplane(driver)
            t0 = time.perf_counter()
            rep = Reconciler(dp, config).sync(state)
            out["create_s"] = time.perf_counter() - t0
            assert rep.ok, rep.errors
            dp.close()
            # a restart is a new process: no warm connection, cache or import
            blob = OUT / f"restart-{s}.pickle"
            blob.write_bytes(pickle.dumps((state, config)))
            t0 = time.perf_counter()
            child = subprocess.run([sys.executable, __file__, "--restart-child", str(blob)],
                                   capture_output=True, text=True, timeout=300)
            wall = time.perf_counter() - t0
            blob.unlink()
            if child.returncode:
                raise RuntimeError(f"restart child failed: {child.stderr[-2000:]}")
            got = json.loads(child.stdout.strip().splitlines()[-1])
            out["restart_s"] = got["seconds"]
            out["restart_process_s"] = wall
            out["restart_writes"] = got["writes"]
            assert not got["errors"] and got["writes"] == 0, got
        finally:
            dp = Dataplane(driver)
            try:
                reconcile(dp, State(), config, remove=set(w.routers))
            finally:
                dp.close()
                left = lab.cleanup()
                if left:
                    print("could not remove:", left, file=sys.stderr)
        print(f"  {driver} restart {r}x{f}: create {out['create_s']:.2f} s, restart "
              f"{out['restart_s']:.2f} s ({out['restart_process_s']:.2f} s with process start "
              f"and imports), {out['restart_writes']} writes", flush=True)
        return out

    def api(self, driver: str) -> dict:
        """API associate call returned -> first ping reply through the floating IP, with
        ``floatip serve``'s server and agent (benchmarks/api_latency.py)."""
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import api_latency
        got: dict = {}
        try:
            api_latency.ping_after_associate(self.args.api_rounds, driver, got)
        except Exception as e:  # noqa: BLE001 - the other figures still stand
            print(f"  {driver} API associate -> ping failed: {e}", file=sys.stderr)
            return {}
        out = {"ping_p50_ms": pct(got["ping"], 50) * 1e3, "ping_p99_ms": pct(got["ping"], 99) * 1e3,
               "agent_pass_p50_ms": pct(got["agent_pass"], 50) * 1e3}
        print(f"  {driver} API associate -> first ping: p50 {out['ping_p50_ms']:.1f} ms, "
              f"p99 {out['ping_p99_ms']:.1f} ms (agent pass p50 {out['agent_pass_p50_ms']:.1f} ms)",
              flush=True)
        return out

    def run(self) -> dict:
        OUT.mkdir(exist_ok=True)
        subprocess.run(["gcc", "-O2", "-o", str(self.traffic), str(ROOT / "benchmarks/traffic.c")],
                       check=True)
        for d in self.args.drivers:
            t0 = time.perf_counter()
            print(f"{d}:", flush=True)
            res = self.single_router(d)
            res["conn"] = self.dataplane(d)
            res["restart"] = self.restart(d)
            if self.args.api_rounds:
                res["api"] = self.api(d)
            res["seconds"] = time.perf_counter() - t0
            self.results["drivers"][d] = res
        return self.results


def fmt_row(row) -> str:
    s = (f"bulk {row['bulk_s'] * 1e3:.1f} ms ({row['bulk_addresses_s'] * 1e3:.0f} ms addresses), +1 p50 {row['add_p50_ms']:.2f} ms "
         f"[address {row['add_address_p50_ms']:.2f}] "
         f"p99 {row['add_p99_ms']:.2f} ms (no hint p50 {row['add_nohint_p50_ms']:.2f}), -1 p50 {row['del_p50_ms']:.2f} ms, "
         f"resync {row['resync_s'] * 1e3:.0f} ms")
    if "conn_per_s" in row:
        s += f", {row['conn_per_s'] / 1e3:.0f}k conn/s"
    return s


def machine() -> dict:
    ovs = sh("ovs-vsctl", "--version", check=False).stdout.split("\n")[0]
    nft = sh("nft", "--version", check=False).stdout.strip()
    ipt = sh("iptables", "--version", check=False).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    return {"cpus": os.cpu_count(), "cpu": cpu, "kernel": os.uname().release, "ovs": ovs,
            "datapath": datapath_type(), "nft": nft, "iptables": ipt}


TARGETS = "nftables targets: +1 FIP <= 2 ms p50 at N=10000; bulk 10000 <= 1 s; " \
          "conn/s at N=10000 >= 95 % of N=10; 100x100 no-change restart <= 2 s"


def table(results: dict) -> str:
    drivers = list(results["drivers"])
    m = results["machine"]
    lines = [f"Machine: {m['cpus']} cores ({m['cpu']}), kernel {m['kernel']}, {m['ovs']} "
             f"({m['datapath']} datapath), {m['nft']}, {m['iptables']}", "",
             "| N FIPs | " + " | ".join(f"{d} +1 FIP p50 / p99 (ms) [/32 address p50]"
                                       for d in drivers) + " | "
             + " | ".join(f"{d} +1 FIP, state diffed, p50 (ms)" for d in drivers) + " | "
             + " | ".join(f"{d} -1 FIP p50 (ms)" for d in drivers) + " | "
             + " | ".join(f"{d} bulk 0→N (s) [of which /32 addresses]" for d in drivers) + " | "
             + " | ".join(f"{d} full resync, no change (s)" for d in drivers) + " |",
             "|---:|" + "---:|" * (5 * len(drivers))]
    sizes = sorted({int(n) for d in drivers for n in results["drivers"][d]["fip"]})
    for n in sizes:
        rows = [results["drivers"][d]["fip"].get(n) or results["drivers"][d]["fip"].get(str(n))
                for d in drivers]
        lines.append(f"| {n} | " + " | ".join(f"{r['add_p50_ms']:.2f} / {r['add_p99_ms']:.2f} "
                                              f"[{r['add_address_p50_ms']:.2f}]" for r in rows)
                     + " | " + " | ".join(f"{r['add_nohint_p50_ms']:.2f}" for r in rows)
                     + " | " + " | ".join(f"{r['del_p50_ms']:.2f}" for r in rows)
                     + " | " + " | ".join(f"{r['bulk_s']:.3f} [{r['bulk_addresses_s']:.3f}]"
                                          for r in rows)
                     + " | " + " | ".join(f"{r['resync_s']:.3f}" for r in rows) + " |")
    lines += ["", "| | " + " | ".join(drivers) + " |", "|---|" + "---:|" * len(drivers)]
    c0 = results["drivers"][drivers[0]]["conn"]
    lo, hi = c0["n_small"], c0["n_large"]
    lines.append(f"| new conn/s via FIP, N={lo} (worst-case entry) | " + " | ".join(
        f"{results['drivers'][d]['conn']['small'] / 1e3:.1f}k" for d in drivers) + " |")
    lines.append(f"| new conn/s via FIP, N={hi} (worst-case entry) | " + " | ".join(
        f"{results['drivers'][d]['conn']['large'] / 1e3:.1f}k" for d in drivers) + " |")
    lines.append(f"| conn/s N={hi} vs N={lo} | " + " | ".join(
        f"{100 * results['drivers'][d]['conn']['large'] / results['drivers'][d]['conn']['small']:.0f} %"
        for d in drivers) + " |")
    lines.append("| new conn/s to the VM without NAT (baseline) | " + " | ".join(
        f"{results['drivers'][d]['conn']['baseline'] / 1e3:.1f}k" for d in drivers) + " |")
    rs = results["drivers"][drivers[0]]["restart"]
    rf = f"{rs.get('routers', 100)} routers x {rs.get('fips_each', 100)} FIPs"
    lines.append(f"| restart, {rf}, nothing to change, new process (s) | " + " | ".join(
        f"{results['drivers'][d]['restart']['restart_s']:.2f}" for d in drivers) + " |")
    lines.append(f"| create {rf} from nothing (s) | " + " | ".join(
        f"{results['drivers'][d]['restart']['create_s']:.2f}" for d in drivers) + " |")
    if all(results["drivers"][d].get("api") for d in drivers):
        lines.append("| API associate returned → first ping reply via the FIP, p50 / p99 (ms) | "
                     + " | ".join(f"{results['drivers'][d]['api']['ping_p50_ms']:.1f} / "
                                  f"{results['drivers'][d]['api']['ping_p99_ms']:.1f}"
                                  for d in drivers) + " |")
    else:
        lines.append("| API associate → first ping | not measured (--api-rounds 0 or failed) |")
    lines += ["", "conn/s: two routers side by side (N small and large), one-second UDP floods taken in turn, best of 5 each (the machine is shared); +1/-1 FIP: "
              "the agent's event path (Reconciler.sync with the changed ids), kernel has it "
              "when the call returns; \"state diffed\": the same without the ids.", "", TARGETS]
    return "\n".join(lines) + "\n"


def _fip(results, d, n):
    f = results["drivers"][d]["fip"]
    return f.get(n) or f.get(str(n))


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    drivers = list(results["drivers"])
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.5))
    for i, d in enumerate(drivers):
        f = results["drivers"][d]["fip"]
        ns = sorted(int(n) for n in f)
        c = f"C{i}"
        ax[0].plot(ns, [_fip(results, d, n)["add_p50_ms"] for n in ns], "o-", color=c,
                   label=f"{d} p50")
        ax[0].plot(ns, [_fip(results, d, n)["add_p99_ms"] for n in ns], "x--", color=c,
                   label=f"{d} p99")
        ax[0].plot(ns, [_fip(results, d, n)["add_address_p50_ms"] for n in ns], ":", color=c,
                   label=f"{d}: the /32 address (kernel)")
        ax[1].plot(ns, [_fip(results, d, n)["bulk_s"] for n in ns], "o-", color=c, label=d)
        ax[1].plot(ns, [_fip(results, d, n)["bulk_addresses_s"] for n in ns], ":", color=c,
                   label=f"{d}: the /32 addresses")
    ax[0].axhline(2, color="gray", lw=0.8, ls=":")
    ax[1].axhline(1, color="gray", lw=0.8, ls=":")
    for a, t, y in ((ax[0], "+1 floating IP (agent side)", "ms"), (ax[1], "bulk 0 → N", "s")):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("floating IPs on the router (N)")
        a.set_ylabel(y)
        a.set_title(t)
        a.legend(fontsize=7)
    labels, vals, colors = [], [], []
    for i, d in enumerate(drivers):
        c = results["drivers"][d]["conn"]
        for key, lab in (("small", f"N={c['n_small']}"), ("large", f"N={c['n_large']}"),
                         ("baseline", "no NAT")):
            labels.append(f"{d}\n{lab}")
            vals.append(c[key] / 1e3)
            colors.append("gray" if key == "baseline" else f"C{i}")
    ax[2].bar(range(len(vals)), vals, color=colors)
    ax[2].set_xticks(range(len(vals)), labels, fontsize=8)
    ax[2].set_ylabel("thousand new connections / s")
    ax[2].set_title("new UDP connections through the router")
    m = results["machine"]
    fig.suptitle(f"floatip bench: {m['cpus']} cores, kernel {m['kernel']}, OVS {m['datapath']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def restart_child(path: str) -> int:
    """The agent starting afresh: connect, observe everything, plan, find nothing to do."""
    state, config = pickle.loads(Path(path).read_bytes())
    t0 = time.perf_counter()
    dp = Dataplane(config.nat_driver)
    try:
        rep = Reconciler(dp, config).sync(state)
        secs = time.perf_counter() - t0
    finally:
        dp.close()
    print(json.dumps({"seconds": secs, "writes": rep.writes, "errors": rep.errors}))
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--restart-child":
        return restart_child(sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--drivers", nargs="+", default=["nftables", "iptables"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[10, 100, 1000, 10000])
    ap.add_argument("--conn-sizes", nargs="+", type=int, default=[10, 10000])
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--conn-seconds", type=float, default=1.0)
    ap.add_argument("--settle", type=float, default=0.5)
    ap.add_argument("--conn-tries", type=int, default=5)
    ap.add_argument("--api-rounds", type=int, default=10,
                    help="associate -> first ping rounds through `floatip serve` (0: skip)")
    ap.add_argument("--restart", nargs=2, type=int, default=[100, 100], metavar=("R", "F"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("make bench needs root (namespaces, OVS, netfilter)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    results = Bench(args).run()
    results["seconds"] = time.perf_counter() - t0
    md = table(results)
    OUT.mkdir(exist_ok=True)
    (OUT / "bench.md").write_text(md)
    (OUT / "bench.json").write_text(json.dumps(results, indent=2))
    plot(results, OUT / "bench.png")
    print()
    print(md)
    print(f"bench took {results['seconds']:.0f} s; wrote {OUT}/bench.md, bench.json, bench.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
