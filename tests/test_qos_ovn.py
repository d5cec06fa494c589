"""Bandwidth limits on OVN: the NB QoS rows as Neutron's OVN driver writes them (the
external network's switch, from-lport/to-lport on the gateway port, the floating IP's
address, Neutron's priorities and external_ids, floatip's owner marker), gone with the
policy; on a real OVN deployment, through the API and the change feed, a TCP transfer
through the floating IP runs at the configured rate."""
from __future__ import annotations

from dataclasses import replace

import pytest

from floatip.backends.ovn.translate import OWNER, Options, translate
from test_ovn_translate import GW1, COMPUTE, by_table, state

OPTS = Options("floatip@qs")


def test_fip_and_gateway_rows():
    st = state()
    fip = next(iter(st.floatingips.values()))
    router = next(iter(st.routers.values()))
    gw = router.gateway
    st.floatingips[fip.id] = replace(fip, qos=(("egress", 2000, 0), ("ingress", 1000, 300)))
    st.routers[router.id] = replace(router, gateway_qos=(("egress", 5000, 0),))
    d = translate(st, OPTS, [GW1, COMPUTE])
    rows = {(r.columns["direction"], r.columns["match"]): r for r in by_table(d, "QoS")}
    res = f'is_chassis_resident("cr-lrp-{gw.port_id}")'
    out = rows[("from-lport", f'inport == "{gw.port_id}" && ip4.src == 203.0.113.50 && {res}')]
    inn = rows[("to-lport", f'outport == "{gw.port_id}" && ip4.dst == 203.0.113.50 && {res}')]
    gwr = rows[("from-lport", f'inport == "{gw.port_id}"')]
    assert len(rows) == 3
    assert out.columns["bandwidth"] == {"rate": 2000} and out.columns["priority"] == 2003
    assert inn.columns["bandwidth"] == {"rate": 1000, "burst": 300}
    assert gwr.columns["bandwidth"] == {"rate": 5000} and gwr.columns["priority"] == 2002
    for r in (out, inn, gwr):
        assert r.parent == f"ls:{gw.network_id}" and r.columns["external_ids"][OWNER] == \
            "floatip@qs"
    assert out.columns["external_ids"]["neutron:fip_id"] == fip.id and out.obj == f"fip:{fip.id}"
    assert gwr.columns["external_ids"]["neutron:router_id"] == router.id
    # no policy: no rows
    assert not by_table(translate(state(), OPTS, [GW1, COMPUTE]), "QoS")


@pytest.mark.kernel
@pytest.mark.ovn
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.filterwarnings("ignore:.*influxdb:DeprecationWarning")
def test_ovn_fip_rate(ovn):
    from test_e2e_backends import FIP, wait_for
    from test_ovn_backend import nbctl, ready_with_fip
    from test_qos_kernel import kbps, within
    d = ovn
    sc = ready_with_fip(d)
    vm = sc.ns["vm1"]
    free = kbps(d.upstream, vm, FIP, 5301)
    pol = sc.net.create_qos_policy(name="qs-ovn")
    sc.net.create_qos_bandwidth_limit_rule(pol, max_kbps=4000, max_burst_kbps=1000,
                                           direction="ingress")
    sc.net.update_ip(sc.fip, qos_policy_id=pol.id)
    wait_for(lambda: f"ip4.dst == {FIP}" in nbctl(d, "--columns=match", "list", "QoS"),
             what="the FIP's QoS row")
    assert d.wait_synced()
    got = kbps(d.upstream, vm, FIP, 5302, size=3_000_000)
    assert within(got, 4000) and free > 2 * 4000, (got, free)
    sc.net.update_ip(sc.fip, qos_policy_id=None)
    wait_for(lambda: FIP not in nbctl(d, "--columns=match", "list", "QoS"),
             what="the QoS row gone")
    sc.net.delete_qos_policy(pol)


@pytest.fixture
def ovn(tmp_path):
    from test_e2e_backends import ovn_deployment
    yield from ovn_deployment(tmp_path)
