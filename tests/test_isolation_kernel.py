"""Reconciler and dataplane halves of issue 8 on real namespaces, OVS and netfilter, once
per NAT driver: a floating IP deleted and re-created within one pass stays programmed, and
an OVS step that fails is filed under its router while the other routers are built."""
from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from floatip import lab as L
from floatip.agent.reconciler import Reconciler
from floatip.core.layout import router_layouts
from floatip.core.plan import plan
from floatip.dataplane.kernel import Dataplane

from topo import TEST_INSTANCE, Topo

pytestmark = pytest.mark.kernel
FIP = "203.0.113.84"


def kernel_has(topo, nat_driver: str, fip: str, fixed: str) -> bool:
    """What a fresh reader finds: the /32 on the gateway device and the NAT mapping."""
    addrs = L.sh("ip", "netns", "exec", topo.ns, "ip", "-o", "-4", "addr").stdout
    dp = Dataplane(nat_driver, instance=TEST_INSTANCE)
    try:
        facts = dp.observe({topo.router_id}).namespaces[topo.ns]
    finally:
        dp.close()
    return f"{fip}/32" in addrs and facts.fip_map.get(fip) == fixed


def test_fip_deleted_and_recreated_in_one_pass_stays_programmed(topo, nat_driver):
    topo.vm("vm4", "198.51.100.84")
    topo.fip(FIP, "vm4")
    rec = Reconciler(topo.dp, topo.config)
    state = topo.state()
    assert rec.sync(state, full=True).ok
    assert kernel_has(topo, nat_driver, FIP, "198.51.100.84")
    (old,) = state.floatingips.values()
    new_id = str(uuid.uuid4())
    again = replace(state, floatingips={new_id: replace(old, id=new_id)})
    report = rec.sync(again)  # the event path: floating IPs only, nothing observed
    assert report.ok and rec.partial_syncs == 1
    assert kernel_has(topo, nat_driver, FIP, "198.51.100.84")
    assert rec.fips[topo.router_id] == {FIP: "198.51.100.84"}
    assert L.ping_until(topo.upstream, FIP)


def test_ovs_step_error_is_filed_under_its_router(topo, lab, dataplane, nat_driver):
    other = Topo(lab, dataplane, nat_driver, vlan=4)
    try:
        layouts = {**router_layouts(topo.state(), topo.config),
                   **router_layouts(other.state(), other.config)}
        p = plan(layouts, dataplane.observe(), dataplane.nat)
        ovs = [s for s in p.steps if s.action == "add_port"]
        assert {s.router for s in ovs} == {topo.router_id, other.router_id}
        # the first router's external bridge is deleted by hand before the pass runs: its
        # OVS steps fail (once, the error was filed under the bridge and the router stayed
        # ACTIVE; the other routers of the batch failed with it)
        L.sh("ovs-vsctl", "del-br", topo.ex_br)
        res = dataplane.apply(p)
        assert set(res.errors) == {topo.ns}, res.errors
        assert "add_port" in res.errors[topo.ns]
        # the other router, in the same OVS batch, was built all the same
        links = L.sh("ip", "netns", "exec", other.ns, "ip", "-o", "link").stdout
        assert "qg-" in links and "qr-" in links
        # with its bridge back, the next pass builds the first one
        lab.bridge(topo.ex_br)
        from floatip.agent.reconciler import reconcile
        assert reconcile(dataplane, topo.state(), topo.config).ok
    finally:
        other.close()


def test_connected_route_deleted_by_hand_is_restored_by_the_next_pass(topo, nat_driver):
    """Issue 26: the subnet route the kernel made with the interface's address, deleted by
    hand, left the router ACTIVE and its subnet unreachable; the next full pass puts it back
    (the address and the floating IPs stay)."""
    topo.vm("vm4", "198.51.100.84")
    topo.fip(FIP, "vm4")
    rec = Reconciler(topo.dp, topo.config)
    assert rec.sync(topo.state(), full=True).ok

    def routes() -> str:
        return L.sh("ip", "netns", "exec", topo.ns, "ip", "-4", "route").stdout

    line = next(x for x in routes().splitlines() if x.startswith("198.51.100.0/24"))
    dev = line.split(" dev ")[1].split()[0]
    L.sh("ip", "netns", "exec", topo.ns, "ip", "route", "del", "198.51.100.0/24", "dev", dev)
    assert "198.51.100.0/24" not in routes()
    report = rec.sync(topo.state(), full=True)
    assert report.ok
    restored = next(x for x in routes().splitlines() if x.startswith("198.51.100.0/24"))
    assert f"dev {dev}" in restored and "proto kernel" in restored and "src 198.51.100.1" \
        in restored, restored
    assert kernel_has(topo, nat_driver, FIP, "198.51.100.84")
    assert L.ping_until(topo.upstream, FIP)
    # converged: another pass plans nothing for it
    dp = topo.dp
    p = plan(router_layouts(topo.state(), topo.config), dp.observe({topo.router_id}), dp.nat)
    assert [s for s in p.steps if s.router == topo.router_id] == []
