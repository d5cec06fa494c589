"""Port forwardings through openstacksdk on both backends (the kernel agent behind the API,
and OVN on two chassis), from the upstream namespace: two VMs behind one floating IP on
different ports, an N-N port range, a forwarding removed stops answering (on the kernel its
established connection is cut too), the last one removed and the floating IP is silent."""
from __future__ import annotations

import pytest

from floatip import lab as L
from test_e2e_backends import FIP, Scenario, _kernel, ovn_deployment, wait_for

pytestmark = [pytest.mark.kernel,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*influxdb:DeprecationWarning")]


@pytest.fixture(params=["kernel", "ovn"])
def deployment(request, tmp_path):
    if request.param == "ovn":
        from conftest import _ovn_ready
        why = _ovn_ready()
        if why:
            pytest.skip(why)
        yield from ovn_deployment(tmp_path, prefix="pf")
    else:
        yield from _kernel(tmp_path)


def answers(d, port: int) -> str | None:
    return L.tcp_source(d.upstream, FIP, port, timeout=1.0)


def lbs(d, fip_id: str) -> list[str]:
    lab, _ = d.extra
    out = L.sh("ovn-nbctl", f"--db={lab.nb}", "--bare", "--columns=name", "find",
               "Load_Balancer", f"external_ids:neutron\\:fip_id={fip_id}").stdout
    return sorted(out.split())


def test_forwardings_on_both_backends(deployment):
    d = deployment
    sc = Scenario(d)
    net = sc.net
    vm1, vm2 = sc.ports["vm1"], sc.ports["vm2"]
    for name, port in (("vm1", 8080), ("vm2", 8081), ("vm1", 7001)):
        d.lab.serve(sc.ns[name], port=port)
    fip = net.create_ip(floating_network_id=sc.ext.id, floating_ip_address=FIP)
    one = net.create_floating_ip_port_forwarding(
        fip, protocol="tcp", internal_port_id=vm1.id, internal_port=8080, external_port=2222,
        internal_ip_address=vm1.fixed_ips[0]["ip_address"])
    net.create_floating_ip_port_forwarding(
        fip, protocol="tcp", internal_port_id=vm2.id, internal_port=8081, external_port=2223,
        internal_ip_address=vm2.fixed_ips[0]["ip_address"])
    net.create_floating_ip_port_forwarding(
        fip, protocol="tcp", internal_port_id=vm1.id, internal_port_range="7000:7002",
        external_port_range="9000:9002", internal_ip_address=vm1.fixed_ips[0]["ip_address"])
    assert d.wait_synced()
    if d.name == "ovn":  # Neutron's rows: a load balancer per protocol on the router
        assert lbs(d, fip.id) == [f"pf-floatingip-{fip.id}-tcp"]
    wait_for(lambda: answers(d, 2222), what="the first forwarding answers")
    assert answers(d, 2223) == "203.0.113.1"   # vm2, with the client's own address
    assert answers(d, 2222) == "203.0.113.1"
    assert answers(d, 9001)                    # 9001 -> 7001
    assert answers(d, 9002) is None            # nobody on 7002
    conn = L.TcpClient(d.upstream, FIP, 2222)
    assert conn.echo("one")
    net.delete_floating_ip_port_forwarding(fip, one.id)
    assert d.wait_synced()
    wait_for(lambda: answers(d, 2222) is None, what="the removed forwarding silent")
    if d.name == "kernel":  # conntrack entries of the forwarding deleted
        conn.sock.settimeout(1.5)
        assert not conn.echo("after"), "a connection survived its forwarding's removal"
    conn.close()
    assert answers(d, 2223) == "203.0.113.1"
    if d.name == "ovn":  # its VIP removed from the load balancer, the others' kept
        lab, _ = d.extra
        vips = L.sh("ovn-nbctl", f"--db={lab.nb}", "--bare", "--columns=vips", "find",
                    "Load_Balancer", f"name=pf-floatingip-{fip.id}-tcp").stdout
        keys = {v.partition("=")[0] for v in vips.split()}
        assert keys == {f"{FIP}:{p}" for p in (2223, 9000, 9001, 9002)}, vips
    for pf in list(net.floating_ip_port_forwardings(fip)):
        net.delete_floating_ip_port_forwarding(fip, pf.id)
    assert d.wait_synced()
    wait_for(lambda: answers(d, 2223) is None, what="the floating IP silent")
    assert net.get_ip(fip.id).router_id is None
    if d.name == "ovn":
        assert lbs(d, fip.id) == []  # destroyed, not left behind
    net.delete_ip(fip)


def test_ovn_hairpin_through_forwarded_port(tmp_path):
    """On OVN a VM reaches another VM through the floating IP's forwarded port: the load
    balancer is on the router's internal switch too, as Neutron's OVN driver puts it (on the
    router only, the VM's packet to the floating IP never met it)."""
    gen = ovn_deployment(tmp_path, prefix="pff")
    d = next(gen)
    try:
        sc = Scenario(d)
        net = sc.net
        d.lab.serve(sc.ns["vm1"], port=8080)
        fip = net.create_ip(floating_network_id=sc.ext.id, floating_ip_address=FIP)
        net.create_floating_ip_port_forwarding(
            fip, protocol="tcp", internal_port_id=sc.ports["vm1"].id, internal_port=8080,
            external_port=2222, internal_ip_address=sc.ports["vm1"].fixed_ips[0]["ip_address"])
        assert d.wait_synced()
        lab, _ = d.extra

        def on_switch() -> list[str]:
            nbctl = ("ovn-nbctl", f"--db={lab.nb}", "--bare")
            held = L.sh(*nbctl, "--columns=load_balancer", "list", "Logical_Switch",
                        f"neutron-{sc.tenant.id}").stdout.split()
            return sorted(L.sh(*nbctl, "--columns=name", "list", "Load_Balancer",
                               u).stdout.strip() for u in held)
        assert on_switch() == [f"pf-floatingip-{fip.id}-tcp"]
        wait_for(lambda: answers(d, 2222), what="the forwarding answers from outside")
        vm2_ip = sc.ports["vm2"].fixed_ips[0]["ip_address"]
        # from vm2, on the same network as vm1: through FIP:2222, seen with its own address
        wait_for(lambda: L.tcp_source(sc.ns["vm2"], FIP, 2222, timeout=1.0) == vm2_ip,
                 what="vm2 reaches vm1 through the floating IP's forwarded port")
        conn = L.TcpClient(sc.ns["vm2"], FIP, 2222)
        assert conn.echo("hairpin")
        conn.close()
        # the forwardings removed: the load balancer is destroyed, gone from the switch too
        for pf in list(net.floating_ip_port_forwardings(fip)):
            net.delete_floating_ip_port_forwarding(fip, pf.id)
        assert d.wait_synced()
        assert on_switch() == []
        net.delete_ip(fip)
    finally:
        gen.close()
