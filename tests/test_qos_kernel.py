"""Bandwidth limits of a floating IP and of a router's gateway on real namespaces, veths,
OVS and tc: a TCP transfer through the floating IP, from the upstream namespace, runs at
the configured rate (within 10 %) in each direction, and well above it (twice, on a busy machine) without a policy and
after it is detached; a removed limit leaves no class or filter; drift (a class deleted by
hand) is repaired by the full pass. Once per NAT driver; the passes after the first go
through the agent's Reconciler as the API's change feed drives it."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from floatip.agent.reconciler import Reconciler
from floatip.core.layout import device_name
from floatip.core.tc import ifb_name
from floatip.dataplane.netns import nsexec

pytestmark = pytest.mark.kernel
FIP = "203.0.113.91"
RATE = 2000        # kbit/s
SIZE = 1_000_000   # bytes: 4 s at RATE

# the receiver: the rate of the bytes after the first 64 KiB (past the burst and slow start)
RECEIVER = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1200)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1)
print("ready", flush=True)
c, _ = s.accept(); n = 0; t0 = None
while True:
    b = c.recv(65536)
    if not b:
        break
    n += len(b)
    if t0 is None and n >= 65536:
        t0, n0 = time.monotonic(), n
print((n - n0) * 8 / 1000 / (time.monotonic() - t0), flush=True)
"""
SENDER = r"""
import socket, sys
c = socket.socket(); c.settimeout(30)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1200)  # fits OVN's overlay MTU
c.connect((sys.argv[1], int(sys.argv[2])))
c.sendall(b"x" * int(sys.argv[3])); c.close()
"""


def kbps(src_ns: str, dst_ns: str, dst_ip: str, port: int, size: int = SIZE) -> float:
    """A TCP transfer of ``size`` bytes from ``src_ns`` to ``dst_ip`` (in ``dst_ns``): kbit/s."""
    rx = subprocess.Popen(["ip", "netns", "exec", dst_ns, sys.executable, "-c", RECEIVER,
                           str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert rx.stdout.readline().strip() == "ready"
        subprocess.run(["ip", "netns", "exec", src_ns, sys.executable, "-c", SENDER, dst_ip,
                        str(port), str(size)], check=True, timeout=60)
        out = float(rx.communicate(timeout=60)[0].strip())
        print(f"{src_ns}->{dst_ip}: {out:.0f} kbit/s")
        return out
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()


def with_limits(state, fip_limits=(), gw_limits=()):
    fid = next(f.id for f in state.floatingips.values() if f.floating_ip_address == FIP)
    state.floatingips[fid] = replace(state.floatingips[fid], qos=tuple(fip_limits))
    rid = next(iter(state.routers))
    state.routers[rid] = replace(state.routers[rid], gateway_qos=tuple(gw_limits))
    return state, fid, rid


def tc_text(ns: str, dev: str) -> str:
    return "".join(nsexec(ns, ["tc", what, "show", "dev", dev], check=False).stdout
                   for what in ("class", "filter"))


def within(measured: float, rate: int) -> bool:
    return abs(measured - rate) <= 0.1 * rate


def test_fip_rate_each_direction_and_detached(topo, nat_driver):
    vm = topo.vm("a", "198.51.100.86")
    topo.fip(FIP, "a")
    rec = Reconciler(topo.dp, topo.config)
    state, fid, rid = with_limits(topo.state())
    assert rec.sync(state, full=True).ok
    up = topo.upstream
    qg = device_name("qg-", topo.state().routers[rid].gateway.port_id)
    # without a policy: well above the limit in both directions
    free_in, free_out = kbps(up, vm, FIP, 5201), kbps(vm, up, "203.0.113.1", 5202)
    assert free_in > 2 * RATE and free_out > 2 * RATE, (free_in, free_out)
    # the policy: ingress RATE, egress 3/4 of it (the event path)
    limits = (("egress", RATE * 3 // 4, 100), ("ingress", RATE, 100))
    state, _, _ = with_limits(topo.state(), limits)
    report = rec.sync(state, changed={fid})
    assert report.ok, report.errors
    assert any(s.action == "set_qos" for s in report.plan.steps)
    got_in, got_out = kbps(up, vm, FIP, 5203), kbps(vm, up, "203.0.113.1", 5204)
    assert within(got_in, RATE), got_in
    assert within(got_out, RATE * 3 // 4), got_out
    # a limit changed in place
    state, _, _ = with_limits(topo.state(), (("egress", RATE, 100),))
    assert rec.sync(state, changed={fid}).ok
    assert within(kbps(vm, up, "203.0.113.1", 5205), RATE)
    assert kbps(up, vm, FIP, 5206) > 2 * RATE  # the ingress limit is gone
    assert "ifb" not in nsexec(topo.ns, ["ip", "-d", "link"]).stdout
    # drift: the qdisc deleted by hand comes back with the full pass
    nsexec(topo.ns, ["tc", "qdisc", "del", "dev", qg, "root"])
    assert rec.sync(state, full=True).ok
    assert within(kbps(vm, up, "203.0.113.1", 5207), RATE)
    # and the ingress redirect's filter
    state, _, _ = with_limits(topo.state(), (("egress", RATE, 100), ("ingress", RATE, 100)))
    assert rec.sync(state, changed={fid}).ok
    nsexec(topo.ns, ["tc", "filter", "del", "dev", qg, "parent", "ffff:"])
    assert rec.sync(state, full=True).ok
    assert within(kbps(up, vm, FIP, 5209), RATE)
    state, _, _ = with_limits(topo.state(), (("egress", RATE, 100),))
    assert rec.sync(state, changed={fid}).ok
    # detached: no class, no filter, no ifb; full speed
    state, _, _ = with_limits(topo.state())
    assert rec.sync(state, changed={fid}).ok
    assert "htb" not in tc_text(topo.ns, qg) and ifb_name(qg) not in \
        nsexec(topo.ns, ["ip", "link"]).stdout
    assert kbps(vm, up, "203.0.113.1", 5208) > 2 * RATE


def test_gateway_rate(topo, nat_driver):
    """qos-gateway-ip: the router's SNAT traffic (its gateway address) is limited."""
    vm = topo.vm("b", "198.51.100.87")
    topo.fip(FIP, None)
    rec = Reconciler(topo.dp, topo.config)
    state, _, rid = with_limits(topo.state(), (), (("egress", RATE, 100),
                                                   ("ingress", RATE, 100)))
    assert rec.sync(state, full=True).ok
    assert within(kbps(vm, topo.upstream, "203.0.113.1", 5211), RATE)
    # the floating IP on the same router is not limited by the gateway's policy
    topo.fip(FIP, "b")
    state, fid, _ = with_limits(topo.state(), (), (("egress", RATE, 100),))
    assert rec.sync(state, full=True).ok
    assert kbps(topo.upstream, vm, FIP, 5212) > 2 * RATE
