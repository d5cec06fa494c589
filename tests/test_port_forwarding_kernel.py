"""Port forwardings on real namespaces, veths, OVS and netfilter, once per NAT driver: from
the upstream namespace, two VMs behind one floating IP on different ports, a port range
(N-N and N-1), and a forwarding removed cuts its connections and only its own. The passes
after the first go through the agent's Reconciler as the API's change feed drives it."""
from __future__ import annotations

import time
import uuid

import pytest

from floatip import lab as L
from floatip.agent.desired import Desired
from floatip.agent.reconciler import Reconciler, Report
from floatip.core.layout import router_layouts
from floatip.core.model import PortForwarding
from floatip.dataplane.netns import nsexec

pytestmark = pytest.mark.kernel
FIP = "203.0.113.90"


def addresses(ns: str) -> str:
    return L.sh("ip", "netns", "exec", ns, "ip", "-4", "-o", "addr").stdout


def connects(ns: str, port: int) -> str | None:
    """The source the server behind ``FIP:port`` saw, or None."""
    return L.tcp_source(ns, FIP, port, timeout=1.5)


def wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def test_forwardings_two_vms_ranges_and_removal(topo, lab, nat_driver):
    topo.vm("a", "198.51.100.84")
    topo.vm("b", "198.51.100.85")
    fwd = [{"protocol": "tcp", "internal_port_name": topo.port("a"), "internal_port": 8080,
            "external_port": 2222},
           {"protocol": "tcp", "internal_port_name": topo.port("b"), "internal_port": 8081,
            "external_port": 2223},
           # N-N: 9000..9002 -> a's 7000..7002; N-1: 9100..9105 -> b's 8081
           {"protocol": "tcp", "internal_port_name": topo.port("a"),
            "internal_port_range": "7000:7002", "external_port_range": "9000:9002"},
           {"protocol": "tcp", "internal_port_name": topo.port("b"), "internal_port": 8081,
            "external_port_range": "9100:9105"}]
    topo.doc["floatingips"].append({"floating_ip_address": FIP, "port": None,
                                    "port_forwardings": fwd})
    rec = Reconciler(topo.dp, topo.config)
    report = rec.sync(topo.state(), full=True)
    assert report.ok, report.errors
    for ns, port in (("a", 8080), ("b", 8081), ("a", 7001), ("a", 7002)):
        lab.serve(topo.vms[ns], port=port)
    assert f"{FIP}/32" in addresses(topo.ns)  # the floating IP on qg-, as Neutron's
    up = topo.upstream
    # each external port reaches its VM, with the client's own address (no SNAT inbound)
    assert connects(up, 2222) == "203.0.113.1"
    assert connects(up, 2223) == "203.0.113.1"
    assert connects(up, 9001) and connects(up, 9002)   # port i to port i
    assert connects(up, 9000) is None                  # a listens on 7001, 7002 only
    assert connects(up, 9103) and connects(up, 9105)   # the range to one port
    assert connects(up, 9106) is None and connects(up, 2224) is None
    # a forwarding removed cuts its connection, not the others' (the event path)
    to_a, to_b = L.TcpClient(up, FIP, 2222), L.TcpClient(up, FIP, 2223)
    assert to_a.echo("one") and to_b.echo("one")
    fip = next(f for f in topo.state().floatingips.values() if f.floating_ip_address == FIP)
    del fwd[0]
    report = rec.sync(topo.state(), changed={fip.id})
    assert report.ok, report.errors
    assert connects(up, 2222) is None
    to_a.sock.settimeout(1.5)
    assert not to_a.echo("after"), "a connection survived its forwarding's removal"
    assert to_b.echo("still"), "another forwarding's connection was cut"
    to_a.close()
    to_b.close()
    assert connects(up, 2223) == "203.0.113.1"
    # the last one gone, so is the floating IP's address
    fwd.clear()
    topo.doc["floatingips"][-1]["port_forwardings"] = []
    report = rec.sync(topo.state(), changed={fip.id})
    assert report.ok, report.errors
    assert wait_for(lambda: f"{FIP}/32" not in addresses(topo.ns), 2.0)
    assert connects(up, 2223) is None
    text = nsexec(topo.ns, ["iptables-save"] if nat_driver == "iptables"
                  else ["nft", "list", "ruleset"]).stdout
    assert FIP not in text


def test_one_forwarding_added_or_removed_is_its_own_element(topo, lab, nat_driver):
    """A floating IP with many forwardings; one more arrives as a delta of that forwarding
    alone (``Desired``): the pass writes that forwarding only (one element / its chain), the
    layout it keeps is the one a full layout gives, and its removal cuts only its port."""
    topo.vm("a", "198.51.100.84")
    many = [{"protocol": "tcp", "internal_port_name": topo.port("a"), "internal_port": 7000 + i,
             "external_port": 3000 + i} for i in range(60)]
    topo.doc["floatingips"].append({"floating_ip_address": FIP, "port": None,
                                    "port_forwardings": many})
    rec = Reconciler(topo.dp, topo.config)
    d = Desired()
    d.load({"state": topo.state(), "generation": 0, "vm_ports": {}, "known_routers": set()})
    assert rec.sync(d.clean(), full=True).ok
    fip = next(iter(d.state.floatingips.values()))
    rid = topo.router_id
    lab.serve(topo.vms["a"], port=8080)
    lab.serve(topo.vms["a"], port=7003)
    up = topo.upstream
    pf = PortForwarding(id=f"pfe-{uuid.uuid4()}", protocol="tcp", external_port_start=2222,
                        external_port_end=2222, internal_ip_address="198.51.100.84",
                        internal_port_start=8080, internal_port_end=8080,
                        internal_port_id=fip.port_forwardings[0].internal_port_id,
                        floatingip_id=fip.id)

    def delta(gen: int, **kw) -> Report:
        changed = d.apply({"generation": gen, "upserts": {}, "deletes": {}, **kw})
        assert d.forwarded == {fip.id: {pf.id}}
        report = rec.sync(d.clean(), changed=changed["floatingips"], forwarded=d.forwarded)
        assert report.ok, report.errors
        # what was laid out is what a full layout of the new state gives
        assert rec.layouts[rid] == router_layouts(d.clean(), topo.config)[rid]
        return report

    report = delta(1, upserts={"port_forwardings": {pf.id: pf}})
    assert [s.action for s in report.plan.steps] == [
        "nft" if nat_driver == "nftables" else "iptables_restore"]
    script = report.plan.steps[0].args[0]
    if nat_driver == "nftables":  # one element added, nothing else
        assert script.count(":") == 1 and script.startswith("add element"), script
    else:  # its chain and the jump to it, no other forwarding's rules
        assert "--dport 2222" in script and "--dport 3001" not in script, script
    assert connects(up, 2222) == "203.0.113.1"
    assert connects(up, 3003) == "203.0.113.1"
    report = delta(2, deletes={"port_forwardings": [pf.id]})
    assert sorted(s.action for s in report.plan.steps) == sorted(
        ["flush_forwards", "nft" if nat_driver == "nftables" else "iptables_restore"])
    assert connects(up, 2222) is None
    assert connects(up, 3003) == "203.0.113.1"
    # nothing drifted: a full pass finds nothing to do
    assert rec.sync(d.clean(), full=True, dry_run=True).plan.steps == []


def test_a_bad_forwarding_is_left_out_alone_with_its_reason(topo, lab, nat_driver):
    """Forwardings the kernel cannot hold (a file may hold them; the API refuses them): an
    external port overlapping another's, an internal address on no subnet of the router.
    Each is left out with its reason; the router and the other forwardings work. A delta
    that makes an applied forwarding the loser of an overlap takes it out and puts the
    winner in, and the layout kept is the one a full layout gives."""
    topo.vm("a", "198.51.100.84")
    topo.vm("b", "198.51.100.85")
    # of two overlapping, the one with the greater id is left out
    fwd = [{"id": "pfe-1", "protocol": "tcp", "internal_port_name": topo.port("a"),
            "internal_port": 8080, "external_port": 2222},
           {"id": "pfe-2", "protocol": "tcp", "internal_port_name": topo.port("b"),
            "internal_port": 8081, "external_port": 2223},
           {"id": "pfe-3", "protocol": "tcp", "internal_port_name": topo.port("b"),
            "internal_port": 8081, "external_port_range": "2222:2223"},    # overlaps both
           {"id": "pfe-4", "protocol": "tcp", "internal_port_name": topo.port("a"),
            "internal_port": 8080, "internal_ip_address": "192.0.2.77",
            "external_port": 2224}]  # off the router
    topo.doc["floatingips"].append({"floating_ip_address": FIP, "port": None,
                                    "port_forwardings": fwd})
    d = Desired()
    d.load({"state": topo.state(), "generation": 0, "vm_ports": {}, "known_routers": set()})
    fip = next(iter(d.state.floatingips.values()))
    bad = d.invalid_pfs[fip.id]
    assert set(bad) == {"pfe-3", "pfe-4"}, bad
    assert "overlap port forwarding pfe-1" in bad["pfe-3"]
    assert "192.0.2.77 is on no subnet of router" in bad["pfe-4"]
    rec = Reconciler(topo.dp, topo.config)
    report = rec.sync(d.clean(), full=True)
    assert report.ok, report.errors
    for ns, port in (("a", 8080), ("b", 8081)):
        lab.serve(topo.vms[ns], port=port)
    up = topo.upstream
    assert wait_for(lambda: connects(up, 2222) == "203.0.113.1", 3)
    assert connects(up, 2223) == "203.0.113.1"
    # a forwarding whose id sorts first takes 2222 over (to b's 9999, where nobody
    # listens): the one applied is taken out
    first = PortForwarding(id="-pfe-first", protocol="tcp", external_port_start=2222,
                           external_port_end=2222, internal_ip_address="198.51.100.85",
                           internal_port_start=9999, internal_port_end=9999,
                           internal_port_id=fip.port_forwardings[0].internal_port_id,
                           floatingip_id=fip.id)
    changed = d.apply({"generation": 1, "upserts": {"port_forwardings": {first.id: first}},
                       "deletes": {}})
    assert "overlap port forwarding -pfe-first" in d.invalid_pfs[fip.id]["pfe-1"]
    assert d.forwarded[fip.id] == {first.id, "pfe-1"}
    report = rec.sync(d.clean(), changed=changed["floatingips"], forwarded=d.forwarded)
    assert report.ok, report.errors
    assert rec.layouts[topo.router_id] == router_layouts(d.clean(), topo.config)[topo.router_id]
    assert connects(up, 2222) is None and connects(up, 2223) == "203.0.113.1"
    assert rec.sync(d.clean(), full=True, dry_run=True).plan.steps == []
