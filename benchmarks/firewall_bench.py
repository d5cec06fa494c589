#!/usr/bin/env python3
"""``make bench``: the OpenFlow firewall (security groups) on this machine's OVS.

A router with a floating IP to a server VM and a client VM (real namespaces, the test
suite's topology), plus N synthetic filtered ports with R rules in all on the same
integration bridge (their flows are installed; their ofports do not exist). Measures:
  rule -> enforced   a rule opening a new TCP port on the server added to the state; from
                     the agent's firewall pass (agent/firewall.py, told the changed group as
                     the agent loop does) until the first connection through the floating
                     IP succeeds (p50/p99)
  pass only          the same without the traffic: compile + the flow mods
  member add         the client's port joins a remote group of M ports that the server's
                     rule names (a pass told the changed port, as the agent loop does when
                     only ports changed); until the client connects; the flows changed
  carriers           one flow mod on the same bridge (10k+ flows) by ``ovs-ofctl`` (its
                     process start alone, then the whole run: connect, negotiate, flow
                     mod, barrier) and by the agent's kept connection (dataplane.openflow)
  conn/s             new connections per second from outside through the floating IP:
                     benchmarks/traffic.c (C, sendmmsg) sends UDP datagrams each from a new
                     source port/address, so each one is a new conntrack entry in the
                     router and in the firewall's zone; the server counts what arrives.
                     Without port security, then behind a group of 10 rules, alternating,
                     same datapath, same run; with the datapath's upcalls per connection
Where the time of a change goes: the agent's Python (fw_ports + compile), the flow mods
(encoding, vswitchd's classifier, the barrier), and from their return until the first
connection succeeds (the datapath revalidated, the handshake).
Prints a markdown table. Everything is named fw<random> and removed at the end.
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from floatip import lab as L  # noqa: E402
from floatip.lab import Lab  # noqa: E402
from floatip.agent.binding import Binder  # noqa: E402
from floatip.agent.firewall import FirewallAgent  # noqa: E402
from floatip.dataplane.kernel import Dataplane  # noqa: E402
from floatip.dataplane.ovs import datapath_type  # noqa: E402
from floatip.dataplane import openflow  # noqa: E402
from floatip.core.firewall import COOKIE_PREFIX  # noqa: E402
from floatip.core.model import Port, SecurityGroup, SecurityGroupRule  # noqa: E402
from topo import Topo  # noqa: E402

FIP = "203.0.113.84"
OUT = ROOT / "benchmarks" / "out"
UDP_PORT = 7999
EGRESS = (SecurityGroupRule("e4", "egress", "IPv4"), SecurityGroupRule("e6", "egress", "IPv6"))

def connects(ns: str, ip: str, port: int, timeout: float = 0.2) -> bool:
    return L.tcp_source(ns, ip, port, timeout) is not None


def until(cond, deadline: float = 10.0) -> float:
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > deadline:
            raise RuntimeError("not enforced within the deadline")
    return time.perf_counter() - t0


def lookups() -> tuple[int, int]:
    """(hit, missed) of the datapath's flow cache (``dpctl/show``): a miss is an upcall."""
    out = L.sh("ovs-appctl", "dpctl/show", f"{datapath_type()}@ovs-{datapath_type()}",
               check=False).stdout
    m = re.search(r"lookups: hit:(\d+) missed:(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


class Timed:
    """Wraps the firewall's ``ovs-ofctl`` step to time it apart from the Python pass."""

    def __init__(self, of):
        self.of, self.last = of, 0.0
        self._apply = of.apply
        of.apply = self

    def __call__(self, changed):
        t0 = time.perf_counter()
        try:
            return self._apply(changed)
        finally:
            self.last = time.perf_counter() - t0


def carriers(bridge: str, conn, n: int = 30) -> list[tuple]:
    """One flow (in table 59, which nothing resubmits to) added and removed ``n`` times by
    each carrier; p50s."""
    def p50(fn):
        xs = []
        for k in range(n):
            t0 = time.perf_counter()
            fn(k)
            xs.append(time.perf_counter() - t0)
        return f"{statistics.median(xs) * 1000:.2f} ms"
    cookie = COOKIE_PREFIX | 0xFFFF0000
    line = "add cookie={c:#x},table=59,priority=1,ip,nw_src=192.0.2.{k},actions=drop\n"
    ofctl = ["ovs-ofctl", "add-flows", bridge, "-"]
    rows = [("ovs-ofctl process start", "`ovs-ofctl --version`",
             p50(lambda k: subprocess.run(["ovs-ofctl", "--version"], capture_output=True)), ""),
            ("ovs-ofctl, one flow mod", "spawn, connect, negotiate, flow mod, barrier",
             p50(lambda k: subprocess.run(ofctl, input=line.format(c=cookie + k, k=k % 250),
                                          text=True, check=True)), "the old carrier")]
    subprocess.run(["ovs-ofctl", "del-flows", bridge, f"cookie={cookie:#x}/0xffffffffffff0000"])
    mods = lambda k: [openflow.flow_add(cookie + k, 59, 1, f"ip,nw_src=192.0.2.{k % 250}",  # noqa
                                        "drop")]
    t0 = time.perf_counter()
    for k in range(200):
        openflow.flow_add(cookie + k, 59, 1, f"ip,nw_src=198.51.{k}.0/24", "drop")
    enc = (time.perf_counter() - t0) / 200
    rows += [("kept connection, one flow mod", "encode + flow mod + barrier",
              p50(lambda k: conn.transact(mods(k), False)),
              f"encoding alone {enc * 1000:.2f} ms per flow"),
             ("kept connection, bundle", "delete + add, atomic commit, barrier",
              p50(lambda k: conn.transact([openflow.flow_delete(cookie + k), *mods(k + n)],
                                          True)), "")]
    subprocess.run(["ovs-ofctl", "del-flows", bridge, f"cookie={cookie:#x}/0xffffffffffff0000"])
    return rows


def udp_rate(traffic: Path, up: str, vm: str, secs: float) -> float:
    """Datagrams per second the VM received, each a new connection (traffic.c)."""
    recv = subprocess.Popen(["ip", "netns", "exec", vm, str(traffic), "recv", str(UDP_PORT),
                             str(secs + 1.0)], stdout=subprocess.PIPE, text=True)
    try:
        assert recv.stdout.readline().strip() == "ready"
        subprocess.run(["ip", "netns", "exec", up, str(traffic), "send", FIP, str(UDP_PORT),
                        str(secs), "100.64.128.0"], capture_output=True, text=True,
                       timeout=secs + 10, check=True)
        got = int(recv.communicate(timeout=secs + 10)[0].strip() or 0)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    return got / secs


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def synthetic(base, net: str, n_ports: int, n_rules: int, group: int):
    """``n_ports`` filtered ports over 100 groups holding ``n_rules`` rules in all, and a
    remote group "big" of ``group`` more ports (not on the bridge: members only)."""
    per = max(0, n_rules // 100 - 2)
    groups = {f"g{g}": SecurityGroup(f"g{g}", rules=EGRESS + tuple(
        SecurityGroupRule(f"g{g}r{j}", "ingress", "IPv4", 6, 1000 + j, 1000 + j,
                          f"10.{g}.{j % 250}.0/24") for j in range(per))) for g in range(100)}
    groups["big"] = SecurityGroup("big", rules=EGRESS)
    ports, ofports = dict(base.ports), {}
    for i in range(n_ports):
        pid = f"synth-{i}"
        ports[pid] = Port(pid, net, (("s", f"10.200.{i // 250}.{i % 250 + 1}"),),
                          "fa:16:3f:%02x:%02x:%02x" % (i >> 16, (i >> 8) & 255, i & 255),
                          security_groups=(f"g{i % 100}",), port_security_enabled=True)
        ofports[pid] = 10000 + i
    for i in range(group):
        pid = f"member-{i}"
        ports[pid] = Port(pid, net, (("s", f"10.201.{i // 250}.{i % 250 + 1}"),),
                          security_groups=("big",), port_security_enabled=True)
    return groups, ports, ofports


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=1000)
    ap.add_argument("--rules", type=int, default=10000)
    ap.add_argument("--group", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    lab = Lab(datapath_type())
    dp = Dataplane("nftables")
    binder = fw = None
    rows = []
    try:
        t = Topo(lab, dp, "nftables")
        srv, cli = t.vm("srv", "198.51.100.84"), t.vm("cli", "198.51.100.85")
        t.fip(FIP, "srv")
        t.apply()
        base = t.state()
        ids = {p.name: pid for pid, p in base.ports.items()}
        sid, cid = ids[t.port("srv")], ids[t.port("cli")]
        for name in ("srv", "cli"):
            L.sh("ovs-vsctl", "set", "Interface", f"tp{name}{t.sid}"[:15],
                 f"external_ids:iface-id={ids[t.port(name)]}")
        binder = Binder(t.int_br, "bench")
        until(lambda: len(binder.ofports()) == 2)
        net = base.ports[sid].network_id
        groups, ports, ofports = synthetic(base, net, a.ports, a.rules, a.group)
        ofports.update(binder.ofports())
        srv_rules = list(EGRESS)
        groups["srv"] = SecurityGroup("srv", rules=tuple(srv_rules))
        ports[sid] = replace(ports[sid], port_security_enabled=True, security_groups=("srv",))
        fw = FirewallAgent(t.int_br)
        ofctl = Timed(fw.of)

        def state():
            return replace(base, ports=ports, security_groups=dict(groups))
        t0 = time.perf_counter()
        fw.sync(state(), ofports, full=True)
        first = time.perf_counter() - t0
        # the changes below are measured on a settled bridge, not while vswitchd still
        # revalidates after the 100,000-flow bundle
        L.sh("ovs-appctl", "revalidator/wait", check=False)
        n_flows = len(fw.of.observe())
        n_rules = sum(len(g.rules) for g in groups.values())
        rows.append(("first full pass", f"{a.ports} ports, {n_rules} rules, "
                     f"{n_flows} flows", f"{first * 1000:.0f} ms", ""))
        # rule create -> enforced
        enforced, passes = [], []
        for k in range(a.samples):
            port = 20000 + k
            lab.serve(srv, port=port)
            srv_rules.append(SecurityGroupRule(f"r{k}", "ingress", "IPv4", 6, port, port,
                                               "0.0.0.0/0"))
            groups["srv"] = SecurityGroup("srv", rules=tuple(srv_rules))
            st = state()
            t0 = time.perf_counter()
            fw.sync(st, ofports, full=False, changed_ports=set(), changed_groups={"srv"})
            passes.append(time.perf_counter() - t0)
            until(lambda: connects(t.upstream, FIP, port))
            enforced.append(time.perf_counter() - t0)
        ms = lambda xs: f"p50 {pct(xs, .5) * 1000:.1f} ms, p99 {pct(xs, .99) * 1000:.1f} ms"  # noqa
        rows.append(("rule create -> enforced (FIP, first conn.)", f"{a.ports} ports, "
                     f"{n_rules} rules", ms(enforced), "target p50 <= 50 ms"))
        rows.append(("  of which the firewall pass", "compile + flow mods", ms(passes), ""))
        # member add to a remote group
        lab.serve(srv, port=9000)
        srv_rules.append(SecurityGroupRule("rg", "ingress", "IPv4", 6, 9000, 9000,
                                           remote_group_id="big"))
        groups["srv"] = SecurityGroup("srv", rules=tuple(srv_rules))
        fw.sync(state(), ofports, full=False)
        adds, changed, py, of = [], [], [], []
        for k in range(max(5, a.samples)):
            before = {c for f in fw.of.installed.values() for c in f}
            ports[cid] = replace(ports[cid], security_groups=("big",))
            t0 = time.perf_counter()
            fw.sync(state(), ofports, full=False, changed_ports={cid})
            of.append(ofctl.last)
            py.append(time.perf_counter() - t0 - ofctl.last)
            until(lambda: connects(cli, "198.51.100.84", 9000))
            adds.append(time.perf_counter() - t0)
            after = {c for f in fw.of.installed.values() for c in f}
            changed.append(len(before ^ after))
            ports[cid] = replace(ports[cid], security_groups=())
            fw.sync(state(), ofports, full=False, changed_ports={cid})
            until(lambda: not connects(cli, "198.51.100.84", 9000, 0.3))
        rows.append((f"member add -> enforced (group of {a.group})", "client joins",
                     ms(adds), "target p50 <= 20 ms"))
        rows.append(("  of which the agent's Python", "the changed port only (as the loop "
                     "tells it)", ms(py), ""))
        rows.append(("  of which the flow mods", "kept connection", ms(of), ""))
        rows.append(("  flows changed per member add", "", f"{max(changed)}",
                     "does not grow with the group"))
        rows += carriers(t.int_br, fw.of.conn)
        # new connections/s through the FIP: without port security, then behind 10 rules
        OUT.mkdir(parents=True, exist_ok=True)
        traffic = OUT / "traffic"
        subprocess.run(["gcc", "-O2", "-o", str(traffic), str(ROOT / "benchmarks/traffic.c")],
                       check=True)
        lab.serve(srv, port=8080)
        ten = tuple(SecurityGroupRule(f"t{j}", "ingress", "IPv4", 6, 7000 + j, 7000 + j,
                                      "0.0.0.0/0") for j in range(9)) + (
            SecurityGroupRule("t9", "ingress", "IPv4", 17, UDP_PORT, UDP_PORT, "0.0.0.0/0"),
            SecurityGroupRule("t10", "ingress", "IPv4", 6, 8080, 8080, "0.0.0.0/0"))
        rate: dict[str, list[float]] = {}
        miss: dict[str, list[float]] = {}
        for _ in range(a.rounds):
            for label, secure in (("no port security", False), ("10 rules", True)):
                ports[sid] = replace(ports[sid], port_security_enabled=secure)
                groups["srv"] = SecurityGroup("srv", rules=ten)
                fw.sync(state(), ofports, full=False)
                until(lambda: connects(t.upstream, FIP, 8080))
                L.sh("ip", "netns", "exec", t.ns, "conntrack", "-F", check=False)
                h0, m0 = lookups()
                r = udp_rate(traffic, t.upstream, srv, a.seconds)
                h1, m1 = lookups()
                rate.setdefault(label, []).append(r)
                miss.setdefault(label, []).append((m1 - m0) / max(1.0, r * a.seconds))
        med = {k: statistics.median(v) for k, v in rate.items()}
        ratio = med["10 rules"] / med["no port security"]
        for label in ("no port security", "10 rules"):
            rows.append(("new connections/s through the FIP (UDP, C client)" if
                         label.startswith("no") else "", label,
                         f"{med[label]:.0f}", f"median of {a.rounds} x {a.seconds:.0f} s "
                         f"({', '.join(f'{x:.0f}' for x in rate[label])}); "
                         f"{statistics.median(miss[label]):.2f} upcalls per connection"))
        rows[-1] = rows[-1][:3] + (f"{ratio * 100:.0f} % (target >= 80 %); " + rows[-1][3],)
    finally:
        if fw is not None:
            fw.of.remove_all()
            fw.close()
        if binder is not None:
            binder.close()
        try:
            t.close()
        except Exception:  # noqa: BLE001
            pass
        lab.cleanup()
        dp.close()
    ovs = subprocess.run(["ovs-vsctl", "--version"], capture_output=True, text=True).stdout
    print(f"\n### OpenFlow firewall ({datapath_type()} datapath, OVS {ovs.split()[3]})\n")
    load = open("/proc/loadavg").read().split()[:3]
    print(f"machine load (1/5/15 min) at the end: {' '.join(load)}\n")
    print("| measure | setting | result | note |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
