"""OVN backend specifics on two chassis: hand-made drift comes back, stale owned rows go,
rows of other owners are never touched, a router no gateway chassis can carry is ERROR,
the chassis are listed as agents, and distributed floating IPs leave from the VM's own
chassis."""
from __future__ import annotations

import pytest

from floatip import lab as L
from floatip.backends.ovn.translate import KEY, OBJECT, OWNER, fip_mac, lr_name
from test_e2e_backends import (FIP, UPSTREAM_IP, Scenario, assert_checks, ovn_deployment,
                               source_seen, unreachable, wait_for)

pytestmark = [pytest.mark.kernel, pytest.mark.ovn,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*influxdb:DeprecationWarning")]


@pytest.fixture
def ovn(tmp_path):
    yield from ovn_deployment(tmp_path)


@pytest.fixture
def ovn_distributed(tmp_path):
    yield from ovn_deployment(tmp_path, distributed=True)


def nbctl(d, *args, check=True) -> str:
    lab, _ = d.extra
    return L.sh("ovn-nbctl", f"--db={lab.nb}", *args, check=check).stdout.strip()


def ready_with_fip(d) -> Scenario:
    sc = Scenario(d)
    fip = sc.net.create_ip(floating_network_id=sc.ext.id, floating_ip_address=FIP,
                           port_id=sc.ports["vm1"].id)
    wait_for(lambda: sc.net.get_ip(fip.id).status == "ACTIVE", what="floating IP ACTIVE")
    assert d.wait_synced()
    wait_for(lambda: L.ping(d.upstream, FIP, timeout=0.3), what="ping through the FIP")
    sc.fip = fip
    return sc


def test_drift_comes_back_stale_goes_foreign_stays(ovn):
    d = ovn
    lab, backend = d.extra
    sc = ready_with_fip(d)
    lr = lr_name(sc.router.id)
    # rows of others: a switch without a marker, one of another floatip, a route on our router
    nbctl(d, "ls-add", f"{lab.tag}-foreign")
    nbctl(d, "ls-add", f"{lab.tag}-other", "--", "set", "Logical_Switch", f"{lab.tag}-other",
          'external_ids:"floatip:owner"=floatip@elsewhere', 'external_ids:"floatip:key"=ls:x',
          'external_ids:"floatip:object"=network:x')
    nbctl(d, "lr-route-add", lr, "100.64.9.0/24", "198.51.100.11")
    # drift: the floating IP's NAT deleted by hand comes back without being asked
    nbctl(d, "lr-nat-del", lr, "dnat_and_snat", FIP)
    wait_for(lambda: FIP in nbctl(d, "lr-nat-list", lr), what="the FIP's NAT row back")
    assert d.wait_synced()
    wait_for(lambda: L.ping(d.upstream, FIP, timeout=0.3), what="ping after the repair")
    # a changed column is put back
    vm1 = sc.ports["vm1"]
    nbctl(d, "lsp-set-addresses", vm1.id, "fa:16:3e:00:00:99 198.51.100.99")
    wait_for(lambda: vm1.mac_address in nbctl(d, "lsp-get-addresses", vm1.id),
             what="the port's addresses back")
    # a row carrying our marker that nothing wants goes
    nbctl(d, "ls-add", f"{lab.tag}-stale", "--", "set", "Logical_Switch", f"{lab.tag}-stale",
          f'external_ids:"{OWNER}"="{backend.config.owner}"', f'external_ids:"{KEY}"=ls:stale',
          f'external_ids:"{OBJECT}"=network:stale')
    wait_for(lambda: f"{lab.tag}-stale" not in nbctl(d, "ls-list"), what="stale row removed")
    full = backend.stats.full_passes
    backend.request_full()
    wait_for(lambda: backend.stats.full_passes > full, what="a full pass")
    assert d.wait_synced()
    switches = nbctl(d, "ls-list")
    assert f"{lab.tag}-foreign" in switches and f"{lab.tag}-other" in switches
    assert "100.64.9.0/24" in nbctl(d, "lr-route-list", lr)
    assert_checks(sc.checks("vm1", "vm2"))
    # cleanup of the foreign rows is the test's own business
    nbctl(d, "lr-route-del", lr, "100.64.9.0/24")
    nbctl(d, "ls-del", f"{lab.tag}-foreign")
    nbctl(d, "ls-del", f"{lab.tag}-other")


def test_router_without_gateway_chassis_is_error_and_agents_list_chassis(ovn):
    d = ovn
    lab, backend = d.extra
    sc = Scenario(d)
    net = sc.net
    odd = net.create_network(name="odd", is_router_external=True, provider_network_type="flat",
                             provider_physical_network="nomap")
    net.create_subnet(network_id=odd.id, cidr="192.0.2.0/24", ip_version=4)
    odd_router = net.create_router(name="odd", external_gateway_info={"network_id": odd.id})
    wait_for(lambda: net.get_router(odd_router.id).status == "ERROR", what="odd router ERROR")
    wait_for(lambda: net.get_router(sc.router.id).status == "ACTIVE", what="router ACTIVE")
    agents = {a["host"]: a for a in backend.agents()}
    assert set(agents) == {c.name for c in lab.chassis}
    assert agents[lab.gateway.name]["agent_type"] == "OVN Controller Gateway agent"
    assert agents[lab.chassis[1].name]["agent_type"] == "OVN Controller agent"
    # a chassis is alive once it catches up with nb_cfg or reported within agent_down_time; on a
    # busy machine ovn-controller may lag a freshly raised nb_cfg for a moment
    wait_for(lambda: all(a["alive"] for a in backend.agents()), timeout=60,
             what="every chassis alive")
    net.delete_router(odd_router)


def test_backend_rides_out_a_restart_of_the_central_databases(ovn):
    d = ovn
    lab, backend = d.extra
    sc = Scenario(d)
    wait_for(lambda: sc.net.get_router(sc.router.id).status == "ACTIVE", what="router ACTIVE")
    lab.restart_db("nb")
    lab.restart_db("sb")
    fip = sc.net.create_ip(floating_network_id=sc.ext.id, floating_ip_address=FIP,
                           port_id=sc.ports["vm1"].id)
    wait_for(lambda: sc.net.get_ip(fip.id).status == "ACTIVE", timeout=40,
             what="floating IP ACTIVE after the restart")
    assert d.wait_synced()
    assert_checks(sc.checks("vm1", "vm2"))


def link_packets(d, i: int) -> int:
    """Packets both ways on chassis ``i``'s external link, counted at the upstream's end."""
    stats = "/sys/class/net/ch%d/statistics/" % (i + 1)
    return sum(int(L.sh("ip", "netns", "exec", d.upstream, "cat", stats + what).stdout)
               for what in ("rx_packets", "tx_packets"))


def test_distributed_fip_leaves_from_the_vm_chassis(ovn_distributed):
    d = ovn_distributed
    lab, backend = d.extra
    sc = ready_with_fip(d)
    lr = lr_name(sc.router.id)
    nat = nbctl(d, "--bare", "--columns=external_mac,logical_port", "find", "NAT",
                f"external_ip={FIP}")
    assert fip_mac(sc.fip.id) in nat and sc.ports["vm1"].id in nat
    # upstream learned the FIP at the FIP's own MAC, which only the VM's chassis uses ...
    L.sh("ip", "netns", "exec", d.upstream, "ip", "neigh", "flush", "dev", "br0")
    assert L.ping(d.upstream, FIP, count=1, timeout=1) or L.ping(d.upstream, FIP)
    neigh = L.sh("ip", "netns", "exec", d.upstream, "ip", "neigh", "show", FIP).stdout
    assert fip_mac(sc.fip.id) in neigh
    # ... and the packets cross the VM's chassis' external link, not the gateway's
    before = (link_packets(d, 0), link_packets(d, 1))
    assert L.ping(d.upstream, FIP, count=20, timeout=1)
    after = (link_packets(d, 0), link_packets(d, 1))
    vm_link, gw_link = after[1] - before[1], after[0] - before[0]
    assert vm_link >= 40, (before, after)   # 20 requests in, 20 replies out
    # the gateway's link carries only background: the GARPs OVN sends (in bursts after
    # a change) and broadcasts
    assert gw_link * 2 < vm_link, (before, after)
    assert source_seen(d, sc.ns["vm1"]) == FIP
    # the VM without a floating IP still leaves through the gateway chassis (SNAT)
    assert source_seen(d, sc.ns["vm2"]) == sc.router_ip
    assert_checks(sc.checks("vm1", "vm2"))
    sc.net.update_ip(sc.fip, port_id=None)
    assert d.wait_synced()
    wait_for(lambda: unreachable(d, FIP), what="FIP unreachable after disassociate")
    assert FIP not in nbctl(d, "lr-nat-list", lr)
    _ = UPSTREAM_IP


def test_demo_on_ovn_keep_and_teardown():
    """``floatip demo --backend ovn --keep``: checks (a)-(g) pass (f: vm4 reads its floating
    IP from 169.254.169.254 through its chassis' metadata namespace), the named namespaces are
    there to probe after the demo returned; ``--teardown`` removes everything."""
    from conftest import KERNEL_SKIP, _ovn_ready
    from floatip.cli import demo_ovn
    why = KERNEL_SKIP or _ovn_ready()
    if why:
        pytest.skip(why)
    try:
        res, names = demo_ovn.run(keep=True, log=lambda m: None)
        assert {c.key for c in res.checks} == set("abcdefg")
        assert res.checks and all(c.ok for c in res.checks), \
            [(c.key, c.detail) for c in res.checks if not c.ok]
        listed = L.sh("ip", "netns", "list").stdout
        for ns in [names["upstream"], *names["vms"].values(),
                   *[c["namespace"] for c in names["chassis"]]]:
            assert ns in listed
        # the routers live in the OVN databases: still answering without the API server
        assert L.ping(names["upstream"], names["addresses"]["floating_ip"], count=2)
    finally:
        assert demo_ovn.teardown() == []
    listed = L.sh("ip", "netns", "list").stdout
    assert demo_ovn.NAME not in listed


@pytest.fixture
def ovn_two_gateways(tmp_path):
    yield from ovn_deployment(tmp_path, chassis=3, gateways=2)


def sbctl(d, *args) -> str:
    lab, _ = d.extra
    return L.sh("ovn-sbctl", f"--db={lab.sb}", *args).stdout.strip()


def test_gateway_fails_over_to_the_second_gateway_chassis(ovn_two_gateways):
    """Two gateway chassis: the router's gateway port is scheduled on both with
    priorities, bound on the higher; that chassis dies (ovs-vswitchd and ovn-controller
    stop, BFD goes silent) and the other takes the port over, the floating IP answering
    through its external link. Then the dead chassis is removed from the SB and the
    backend schedules the port on the survivor alone."""
    d = ovn_two_gateways
    lab, backend = d.extra
    sc = ready_with_fip(d)
    gw_port = backend.desired.state.routers[sc.router.id].gateway.port_id
    lrp = f"lrp-{gw_port}"
    prios = {}
    for line in nbctl(d, "lrp-get-gateway-chassis", lrp).splitlines():
        name, prio = line.split()
        prios[name.removeprefix(lrp + "_")] = int(prio)
    gateways = {c.name: c for c in lab.chassis if c.gateway}
    assert set(prios) == set(gateways) and sorted(prios.values()) == [1, 2]
    active = max(prios, key=prios.get)
    standby = min(prios, key=prios.get)

    def bound_on() -> str | None:
        uuid = sbctl(d, "--bare", "--columns=chassis", "find", "Port_Binding",
                     f"logical_port=cr-{lrp}")
        return sbctl(d, "--bare", "--columns=name", "list", "Chassis", uuid) if uuid else None
    wait_for(lambda: bound_on() == active, what="gateway port on the higher priority")
    lab.stop_chassis(gateways[active])
    wait_for(lambda: bound_on() == standby, timeout=60, what="failover to the standby")
    wait_for(lambda: L.ping(d.upstream, FIP, timeout=0.5), timeout=30,
             what="ping through the FIP after the failover")
    standby_link = lab.chassis.index(gateways[standby])
    before = link_packets(d, standby_link)
    assert L.ping(d.upstream, FIP, count=5, timeout=1)
    assert link_packets(d, standby_link) - before >= 10
    assert source_seen(d, sc.ns["vm1"]) == FIP
    # the dead chassis removed for good: its Gateway_Chassis row goes
    sbctl(d, "chassis-del", active)
    wait_for(lambda: active not in nbctl(d, "lrp-get-gateway-chassis", lrp),
             what="the dead chassis unscheduled")
    assert standby in nbctl(d, "lrp-get-gateway-chassis", lrp)
    assert d.wait_synced()


DOWN_TIME = 6.0   # the agent-down time of the test below: nb_cfg raised every 3 s


@pytest.fixture
def ovn_three(tmp_path):
    yield from ovn_deployment(tmp_path, chassis=3, agent_down_time=DOWN_TIME)


def test_a_dead_chassis_keeps_no_other_object_down(ovn_three):
    """A chassis that is neither the router's gateway nor the VM's dies and stays in the
    Southbound: it holds hv_cfg back, yet a floating IP made meanwhile turns ACTIVE (its
    gateway chassis and its VM's chassis caught up), and once it has not reported within
    the agent-down time it is listed alive: false while the others stay alive."""
    import httpx
    d = ovn_three
    lab, backend = d.extra
    sc = Scenario(d)
    wait_for(lambda: sc.net.get_router(sc.router.id).status == "ACTIVE", what="router ACTIVE")
    assert d.wait_synced()
    dead = lab.chassis[1]
    assert not dead.gateway and dead is not lab.chassis[-1]   # VMs are on the last one
    lab.stop_chassis(dead)
    fip = sc.net.create_ip(floating_network_id=sc.ext.id, floating_ip_address=FIP,
                           port_id=sc.ports["vm1"].id)
    wait_for(lambda: sc.net.get_ip(fip.id).status == "ACTIVE", timeout=20,
             what="floating IP ACTIVE with a dead chassis in the Southbound")
    nb_cfg, hv_cfg = backend.nb.cfg()
    assert hv_cfg < backend.stats.nb_cfg <= nb_cfg   # hv_cfg alone would have kept it DOWN

    def alive() -> dict[str, bool]:
        body = httpx.get(d.url + "/v2.0/agents").json()["agents"]
        return {a["host"]: a["alive"] for a in body}
    wait_for(lambda: alive().get(dead.name) is False, timeout=DOWN_TIME * 4,
             what="the dead chassis listed alive: false")
    assert alive() == {c.name: c is not dead for c in lab.chassis}
    assert d.wait_synced()
    wait_for(lambda: L.ping(d.upstream, FIP, timeout=0.3), what="ping through the FIP")
    # a change after it was declared dead waits for nobody either
    sc.net.update_ip(fip, port_id=sc.ports["vm2"].id)
    assert d.wait_synced(timeout=15)
    wait_for(lambda: sc.net.get_ip(fip.id).status == "ACTIVE", what="moved FIP ACTIVE")
    assert_checks(sc.checks("vm2", "vm1"))
