"""The OVN backend follows the change feed (issue 11 with issue 8's design): after the first
pass, changes made through the API reach the Northbound through incremental passes that
compare only the objects they touch, with no full pass; drift nobody reported is still
repaired by the periodic full pass."""
from __future__ import annotations

import json

import pytest

from floatip import lab as L
from floatip.backends.ovn.translate import KEY, OBJECT, OWNER, lr_name
from test_e2e_backends import FIP, Scenario, assert_checks, ovn_deployment, wait_for
from test_ovn_backend import nbctl, ready_with_fip

pytestmark = [pytest.mark.kernel, pytest.mark.ovn,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*influxdb:DeprecationWarning")]


def _deployment(tmp_path, interval: float):
    yield from ovn_deployment(tmp_path, interval=interval)


@pytest.fixture
def ovn_no_resync(tmp_path):
    """No periodic full pass within the test."""
    yield from _deployment(tmp_path, interval=3600)


@pytest.fixture
def ovn_resync(tmp_path):
    """A full pass every 3 seconds."""
    yield from _deployment(tmp_path, interval=3)


def nat_of(d, lr: str) -> dict[str, str]:
    """external IP -> logical IP of the router's dnat_and_snat rows."""
    out = {}
    for line in nbctl(d, "lr-nat-list", lr).splitlines()[1:]:
        cols = line.split()
        if cols and cols[0] == "dnat_and_snat":
            out[cols[1]] = cols[2]
    return out


def test_changes_reach_the_northbound_without_a_full_pass(ovn_no_resync):
    d = ovn_no_resync
    lab, backend = d.extra
    wait_for(lambda: backend.stats.full_passes == 1, what="the first (full) pass")
    incremental = backend.stats.incremental_passes
    # networks, subnets, a router with its gateway and interface, ports: all incremental
    sc = Scenario(d)
    net = sc.net
    lr = lr_name(sc.router.id)
    wait_for(lambda: net.get_router(sc.router.id).status == "ACTIVE", what="router ACTIVE")
    assert d.wait_synced()
    assert "snat" in nbctl(d, "lr-nat-list", lr)
    assert backend.stats.full_passes == 1
    scopes = []
    backend.on_pass = lambda kind, seconds: scopes.append((kind, backend.stats.last_scope))

    # a floating IP: its NAT row, ACTIVE once the chassis caught up, and traffic
    fip = net.create_ip(floating_network_id=sc.ext.id, floating_ip_address=FIP,
                        port_id=sc.ports["vm1"].id)
    wait_for(lambda: nat_of(d, lr).get(FIP) == sc.ports["vm1"].fixed_ips[0]["ip_address"],
             what="the FIP's NAT row")
    wait_for(lambda: net.get_ip(fip.id).status == "ACTIVE", what="floating IP ACTIVE")
    assert_checks(sc.checks("vm1", "vm2"))
    # moved to vm2: the same row now points at vm2
    net.update_ip(fip, port_id=sc.ports["vm2"].id)
    wait_for(lambda: nat_of(d, lr).get(FIP) == sc.ports["vm2"].fixed_ips[0]["ip_address"],
             what="the NAT row moved")
    assert d.wait_synced()
    assert_checks(sc.checks("vm2", "vm1"))
    # a new port: its LSP; admin down: disabled; deleted: gone
    port = net.create_port(network_id=sc.tenant.id, name="extra")
    wait_for(lambda: port.mac_address in nbctl(d, "lsp-get-addresses", port.id, check=False),
             what="the new port's LSP")
    net.update_port(port, is_admin_state_up=False)
    wait_for(lambda: nbctl(d, "lsp-get-enabled", port.id) == "disabled", what="LSP disabled")
    net.delete_port(port)
    wait_for(lambda: port.id not in nbctl(d, "lsp-list", f"neutron-{sc.tenant.id}"),
             what="the LSP removed")
    # the floating IP deleted: its NAT row goes, the router's other rows stay
    net.delete_ip(fip)
    wait_for(lambda: FIP not in nat_of(d, lr), what="the NAT row removed")
    assert d.wait_synced()
    assert "snat" in nbctl(d, "lr-nat-list", lr)

    assert backend.stats.full_passes == 1, "a full pass ran"
    assert backend.stats.incremental_passes > incremental
    # each incremental pass compared a handful of objects, never everything
    sizes = [n for kind, n in scopes if kind == "incremental"]
    assert sizes and max(sizes) <= 4 and -1 not in sizes, scopes
    assert {kind for kind, _ in scopes} == {"incremental"}, scopes


def test_periodic_full_pass_repairs_drift_nobody_reported(ovn_resync):
    d = ovn_resync
    lab, backend = d.extra
    sc = ready_with_fip(d)
    lr = lr_name(sc.router.id)
    # the backend is not told of drift on its rows (as when it was disconnected): the full
    # pass every 3 s finds it
    real = backend.nb._cb
    backend.nb._cb = lambda reason: None if reason.startswith("drift:") else real(reason)
    try:
        full = backend.stats.full_passes
        nbctl(d, "lr-nat-del", lr, "dnat_and_snat", FIP)
        nbctl(d, "ls-add", f"{lab.tag}-stale", "--", "set", "Logical_Switch",
              f"{lab.tag}-stale", f'external_ids:"{OWNER}"="{backend.config.owner}"',
              f'external_ids:"{KEY}"=ls:stale', f'external_ids:"{OBJECT}"=network:stale')
        # a pass woken by NB_Global's own updates may repair it sooner, from the rows'
        # events: what must hold is that the periodic full pass comes, and after it nothing
        # drifted remains
        wait_for(lambda: backend.stats.full_passes > full, timeout=30,
                 what="a periodic full pass")
        wait_for(lambda: FIP in nat_of(d, lr), timeout=30, what="the NAT row back")
        wait_for(lambda: f"{lab.tag}-stale" not in nbctl(d, "ls-list"), timeout=30,
                 what="the stale switch removed")
        assert backend.stats.last_error is None, backend.stats.last_error
    finally:
        backend.nb._cb = real
    assert d.wait_synced()
    wait_for(lambda: L.ping(d.upstream, FIP, timeout=0.3), what="ping after the repair")
    assert_checks(sc.checks("vm1", "vm2"))


def test_ipv6_subnets_reach_the_northbound_and_break_nothing(ovn_no_resync):
    """IPv6 on OVN is addresses only (no RA/DHCPv6 yet): an IPv6 subnet on the tenant
    network behind the router and a port with both versions. Their addresses are in the NB
    rows, NAT stays IPv4, the router stays ACTIVE and the floating IP keeps working."""
    d = ovn_no_resync
    lab, backend = d.extra
    sc = ready_with_fip(d)
    net = sc.net
    lr = lr_name(sc.router.id)
    sub6 = net.create_subnet(network_id=sc.tenant.id, cidr="2001:db8:1::/64", ip_version=6,
                             ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    net.add_interface_to_router(sc.router, subnet=sub6.id)
    port = net.create_port(network_id=sc.tenant.id, name="dual")
    v6 = [f["ip_address"] for f in port.fixed_ips if ":" in f["ip_address"]]
    assert v6, port.fixed_ips
    wait_for(lambda: v6[0] in nbctl(d, "lsp-get-addresses", port.id, check=False),
             what="the port's IPv6 address in its LSP")
    wait_for(lambda: "2001:db8:1::" in nbctl(d, "--bare", "--columns=networks", "list",
                                             "Logical_Router_Port"),
             what="the router's IPv6 address on an LRP")
    assert d.wait_synced()
    assert net.get_router(sc.router.id).status == "ACTIVE"
    assert backend.stats.last_error is None, backend.stats.last_error
    assert ":" not in nbctl(d, "lr-nat-list", lr)
    assert_checks(sc.checks("vm1", "vm2"))
    net.delete_port(port)
    net.remove_interface_from_router(sc.router, subnet_id=sub6.id)


def test_a_row_deleted_while_the_northbound_was_down_comes_back_after_the_reconnect(
        ovn_no_resync):
    """The NB restarts with a row of ours gone (changed in its file while the server was
    down): the refill after the reconnect tells no deletion, so the backend runs a full
    pass on reconnecting, and the row comes back without waiting for the periodic one."""
    d = ovn_no_resync
    lab, backend = d.extra
    sc = ready_with_fip(d)
    lr = lr_name(sc.router.id)
    nat = nbctl(d, "--bare", "--columns=_uuid", "find", "NAT", f"external_ip={FIP}")
    full = backend.stats.full_passes
    txn = ["OVN_Northbound", {"op": "mutate", "table": "Logical_Router",
                              "where": [["name", "==", lr]],
                              "mutations": [["nat", "delete", ["set", [["uuid", nat]]]]]}]
    lab.restart_db("nb", while_down=lambda path: L.sh("ovsdb-tool", "transact", path,
                                                      json.dumps(txn)))
    assert FIP not in nat_of(d, lr)
    wait_for(lambda: FIP in nat_of(d, lr), timeout=40, what="the NAT row back")
    # the refill's notifications may wake an incremental pass first (it puts the row back
    # when its router is told): the full pass the reconnect asks for follows
    wait_for(lambda: backend.stats.full_passes > full, timeout=10,
             what="the full pass after the reconnect")
    assert d.wait_synced()
    wait_for(lambda: L.ping(d.upstream, FIP, timeout=0.3), what="ping after the repair")
