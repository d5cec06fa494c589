"""The seed's scenario on real namespaces, veths, OVS and netfilter, once per NAT driver."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from floatip import lab as L
from floatip.cli import demo
from floatip.agent.reconciler import reconcile
from floatip.dataplane.kernel import Dataplane
from floatip.dataplane.netns import nsexec

from topo import TEST_INSTANCE, Topo

pytestmark = pytest.mark.kernel
FIP, FIP2, NOT_FIP, ROUTER_IP = "203.0.113.84", "203.0.113.86", "203.0.113.85", "203.0.113.11"
PORT = 8080


@pytest.fixture
def seed(topo):
    """vm4 with a floating IP, vm5 without, as in the seed."""
    topo.vm("vm4", "198.51.100.84")
    topo.vm("vm5", "198.51.100.85")
    topo.fip(FIP, "vm4")
    topo.apply()
    return topo


def conntrack(ns: str, ip: str) -> str:
    """conntrack entries in ``ns`` with ``ip`` as original or reply destination."""
    a = nsexec(ns, ["conntrack", "-L", "-d", ip], check=False).stdout
    b = nsexec(ns, ["conntrack", "-L", "-q", ip], check=False).stdout
    return (a + b).strip()


def addresses(ns: str) -> str:
    return L.sh("ip", "netns", "exec", ns, "ip", "-4", "-o", "addr").stdout


def nat_text(ns: str, driver: str) -> str:
    if driver == "iptables":
        return nsexec(ns, ["iptables-save"]).stdout
    return nsexec(ns, ["nft", "list", "ruleset"]).stdout


def test_seed_checks_a_to_e(seed, lab):
    vm4, vm5 = seed.vms["vm4"], seed.vms["vm5"]
    checks = demo.run_checks(seed.upstream, vm4, vm5, FIP, ROUTER_IP, NOT_FIP, "203.0.113.1", lab)
    failed = [f"({c.key}) {c.text}: {c.detail}" for c in checks if not c.ok]
    assert not failed, failed
    assert len(checks) == 5


def test_second_apply_makes_zero_writes(seed):
    before = seed.dp.writes
    report = seed.apply()
    assert report.plan.steps == []
    assert report.writes == 0 and seed.dp.writes == before
    # and a fresh process (new sessions, nothing cached) agrees
    dp = Dataplane(seed.config.nat_driver, instance=TEST_INSTANCE)
    try:
        assert reconcile(dp, seed.state(), seed.config).writes == 0
    finally:
        dp.close()


def test_layout_matches_neutron(seed, nat_driver):
    ns = seed.ns
    addrs = addresses(ns)
    lay = seed.apply().layouts[seed.router_id]
    qg = lay.gateway_device.name
    qr = next(d.name for d in lay.devices if d.role == "qr")
    assert qg.startswith("qg-") and len(qg) == 14 and qr.startswith("qr-")
    assert f"{qg}    inet {ROUTER_IP}/24" in addrs and f"{qg}    inet {FIP}/32" in addrs
    assert f"{qr}    inet 198.51.100.1/24" in addrs
    route = L.sh("ip", "netns", "exec", ns, "ip", "route", "show", "default").stdout
    assert f"default via 203.0.113.1 dev {qg}" in route
    for key, want in [("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.arp_ignore", "1"),
                      ("net.ipv4.conf.all.arp_announce", "2"),
                      ("net.ipv4.conf.all.promote_secondaries", "1"),
                      ("net.netfilter.nf_conntrack_tcp_be_liberal", "1")]:
        got = L.sh("ip", "netns", "exec", ns, "sysctl", "-n", key).stdout.strip()
        assert got == want, key
    tag = L.sh("ovs-vsctl", "get", "Port", qr, "tag").stdout.strip()
    assert tag == "3"
    ids = L.sh("ovs-vsctl", "get", "Interface", qr, "external_ids").stdout
    assert "iface-id" in ids and "floatip-router" in ids
    assert L.sh("ovs-vsctl", "port-to-br", qg).stdout.strip() == seed.ex_br
    rules = nat_text(ns, nat_driver)
    assert "198.51.100.84" in rules and FIP in rules


def test_fip_removal_cuts_everything(seed, lab, nat_driver):
    vm4 = seed.vms["vm4"]
    lab.serve(vm4, port=PORT)
    conn = L.TcpClient(seed.upstream, FIP, PORT)
    assert conn.seen == "203.0.113.1" and conn.echo("hello")
    assert conntrack(seed.ns, FIP)
    seed.fip(FIP, False)
    seed.apply()
    assert f"{FIP}/32" not in addresses(seed.ns)
    assert FIP not in nat_text(seed.ns, nat_driver)
    # No flow is NATed to vm4 any more, within the flusher's batch window (0.1 s). (A late
    # packet of the old flow, e.g. a delayed ACK arriving after a fast apply, may leave a
    # fresh un-NATed entry: that one is harmless.)
    assert wait_for(lambda: "198.51.100.84" not in conntrack(seed.ns, FIP), 2.0)
    conn.sock.settimeout(1.5)
    assert not conn.echo("after"), "an established connection survived FIP removal"
    conn.close()
    assert not L.ping(seed.upstream, FIP, count=2)
    # vm4 still reaches out, now through the router's SNAT
    lab.serve(seed.upstream, port=PORT + 1)
    assert L.tcp_source(vm4, "203.0.113.1", PORT + 1) == ROUTER_IP


def wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def test_removed_fips_flows_are_cut_in_one_batch_and_a_comeback_keeps_its_new_flows(seed, lab):
    """Removals close together share one conntrack dump (each walks the host's whole table);
    a floating IP that comes back, to another VM, before its batch ran has its old flows cut
    before its new DNAT exists, and its new flows are left alone."""
    vm4, vm5 = seed.vms["vm4"], seed.vms["vm5"]
    seed.fip(FIP2, "vm5")
    seed.apply()
    lab.serve(vm4, port=PORT)
    lab.serve(vm5, port=PORT)
    a, b = L.TcpClient(seed.upstream, FIP, PORT), L.TcpClient(seed.upstream, FIP2, PORT)
    assert a.echo("a") and b.echo("b")
    flusher = seed.dp.flusher
    flusher.drain()  # the adds' batch; then its thread waits again, and takes the new window
    time.sleep(3 * flusher.window)
    flusher.window = 5.0  # both removals and the comeback land in one window
    try:
        dumps = flusher.dumps
        seed.fip(FIP, False)
        seed.apply()
        seed.fip(FIP2, False)
        seed.apply()
        assert flusher.busy() and flusher.dumps == dumps, "the flows wait for their batch"
        seed.fip(FIP, "vm5")  # back, to another VM: the batch runs before its new DNAT
        seed.apply()
        assert flusher.dumps == dumps + 1, "one dump for both removals"
        assert "198.51.100.84" not in conntrack(seed.ns, FIP)
        new = L.TcpClient(seed.upstream, FIP, PORT)
        assert new.seen == "203.0.113.1" and new.echo("new")
        assert "198.51.100.85" not in conntrack(seed.ns, FIP2), "FIP2's flows are cut"
        flusher.drain()  # the comeback's batch of un-NATed flows: its DNATed one stays
        assert not flusher.busy() and flusher.dumps == dumps + 2
        new.sock.settimeout(1.5)
        assert new.echo("still"), "the new flow of the floating IP that came back survived"
        a.sock.settimeout(1.5)
        assert not a.echo("old"), "the old flow to vm4 is cut"
        for c in (a, b, new):
            c.close()
    finally:
        flusher.window = 0.1


def test_fip_moved_to_another_port(seed, lab):
    vm4, vm5 = seed.vms["vm4"], seed.vms["vm5"]
    s4, s5 = lab.serve(vm4, port=PORT), lab.serve(vm5, port=PORT)
    old = L.TcpClient(seed.upstream, FIP, PORT)
    assert old.echo("x") and s4.peers == ["203.0.113.1"]
    seed.fip(FIP, "vm5")
    seed.apply()
    assert L.tcp_source(seed.upstream, FIP, PORT) == "203.0.113.1"
    assert s5.peers == ["203.0.113.1"], "new connections must reach the new VM"
    old.sock.settimeout(1.5)
    assert not old.echo("y"), "the old flow to vm4 must be cut"
    old.close()
    lab.serve(seed.upstream, port=PORT + 1)
    assert L.tcp_source(vm5, "203.0.113.1", PORT + 1) == FIP
    assert L.tcp_source(vm4, "203.0.113.1", PORT + 1) == ROUTER_IP


def test_router_removal_leaves_nothing_else_touched(seed, lab):
    ns = seed.ns
    ports_before = set(L.sh("ovs-vsctl", "list-ports", seed.int_br).stdout.split())
    report = seed.remove_router()
    assert report.ok
    assert ns not in L.sh("ip", "netns", "list").stdout
    remaining = set(L.sh("ovs-vsctl", "list-ports", seed.int_br).stdout.split()) | \
        set(L.sh("ovs-vsctl", "list-ports", seed.ex_br).stdout.split())
    assert not any(p.startswith(("qr-", "qg-")) for p in remaining)
    # the VMs' and upstream's ports, bridges and namespaces are all still there
    assert {p for p in ports_before if not p.startswith("qr-")} <= remaining
    for host in (seed.upstream, *seed.vms.values()):
        assert L.ping(host, "127.0.0.1")
    assert seed.dp.observe().namespaces.get(ns) is None
    assert reconcile(seed.dp, seed.state().__class__(), seed.config,
                     remove=seed.removed).writes == 0


def test_two_routers_with_the_same_tenant_cidr(lab, dataplane, nat_driver):
    a = Topo(lab, dataplane, nat_driver)
    b = Topo(lab, dataplane, nat_driver)
    try:
        # both on the same tenant CIDR; b on its own bridges, external .12 and FIP .87
        b.doc["routers"][0]["external_gateway_info"]["ip_address"] = "203.0.113.12"
        for t, fip in ((a, FIP), (b, "203.0.113.87")):
            t.vm("vm4", "198.51.100.84")
            t.fip(fip, "vm4")
            t.apply()
        for t, fip, gw in ((a, FIP, ROUTER_IP), (b, "203.0.113.87", "203.0.113.12")):
            lab.serve(t.vms["vm4"], port=PORT)
            lab.serve(t.upstream, port=PORT + 1)
            assert L.tcp_source(t.upstream, fip, PORT) == "203.0.113.1"
            assert L.tcp_source(t.vms["vm4"], "203.0.113.1", PORT + 1) == fip
        assert a.ns != b.ns
    finally:
        a.close()
        b.close()


def test_foreign_namespace_and_rules_are_never_touched(seed, lab, nat_driver):
    from floatip.core.layout import namespace_name
    from floatip.core.model import stable_id
    # a qrouter- namespace floatip did not make (say, a real Neutron's), one of them with the
    # very name a desired router would use
    foreign = namespace_name(stable_id("router", f"other-{seed.sid}"))
    L.sh("ip", "netns", "add", foreign)
    lab.namespaces.append(foreign)
    # someone's own rule in our router namespace, in a built-in chain and a chain of their own
    L.sh("ip", "netns", "exec", seed.ns, "iptables", "-N", "site-local")
    L.sh("ip", "netns", "exec", seed.ns, "iptables", "-A", "FORWARD", "-s", "192.0.2.99/32",
         "-j", "site-local")
    L.sh("ip", "netns", "exec", foreign, "ip", "link", "set", "lo", "up")
    seed.fip(FIP2, "vm5")
    seed.apply()
    seed.fip(FIP2, False)
    seed.apply()
    saved = L.sh("ip", "netns", "exec", seed.ns, "iptables-save").stdout
    assert "-A FORWARD -s 192.0.2.99/32 -j site-local" in saved and ":site-local" in saved
    # a desired router whose namespace exists but is not floatip's is refused, not adopted
    seed.doc["routers"].append({"name": f"other-{seed.sid}"})
    report = reconcile(seed.dp, seed.state(), seed.config)
    assert stable_id("router", f"other-{seed.sid}") in report.errors
    assert L.sh("ip", "netns", "exec", foreign, "ip", "-o", "link").stdout.count("\n") == 1
    # pruning removes floatip's routers only
    from floatip.core.model import State
    reconcile(seed.dp, State(), seed.config, prune=False, remove={seed.router_id})
    assert foreign in L.sh("ip", "netns", "list").stdout


def test_drift_is_repaired(seed, nat_driver):
    ns = seed.ns
    qg = seed.apply().layouts[seed.router_id].gateway_device.name
    L.sh("ip", "netns", "exec", ns, "ip", "addr", "del", f"{FIP}/32", "dev", qg)
    L.sh("ip", "netns", "exec", ns, "ip", "route", "del", "default")
    if nat_driver == "iptables":
        L.sh("ip", "netns", "exec", ns, "iptables", "-t", "nat", "-F", "floatip-l3-PREROUTING")
    else:
        L.sh("ip", "netns", "exec", ns, "nft", "flush", "table", "ip", "floatip")
    L.sh("ovs-vsctl", "set", "Port", qg, "tag=99")
    dp = Dataplane(nat_driver, instance=TEST_INSTANCE)  # a restarted agent sees the drift
    try:
        report = reconcile(dp, seed.state(), seed.config)
        assert report.ok and report.writes >= 4
        assert reconcile(dp, seed.state(), seed.config).writes == 0
    finally:
        dp.close()
    assert L.ping_until(seed.upstream, FIP)


def test_gratuitous_arp_announces_the_floating_ip(seed):
    """The upstream host (arp_accept=1) learns the FIP's MAC without asking for it."""
    qg = seed.apply().layouts[seed.router_id].gateway_device
    L.sh("ip", "netns", "exec", seed.upstream, "ip", "neigh", "flush", "all")
    seed.fip(FIP2, "vm5")
    seed.apply()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        neigh = L.sh("ip", "netns", "exec", seed.upstream, "ip", "neigh", "show", FIP2).stdout
        if qg.mac in neigh:
            break
        time.sleep(0.1)
    assert qg.mac in neigh, neigh


def test_cli_dry_run_prints_commands_and_changes_nothing(topo, tmp_path):
    import yaml
    topo.vm("vm4", "198.51.100.84")
    topo.fip(FIP, "vm4")
    f = tmp_path / "state.yaml"
    f.write_text(yaml.safe_dump(topo.doc))
    base = [sys.executable, "-m", "floatip.cli.main", "--integration-bridge", topo.int_br,
            "--bridge-mapping", f"physnet1:{topo.ex_br}", "--nat-driver", topo.config.nat_driver]
    out = subprocess.run(base + ["apply", "--local", str(f), "--dry-run"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"ip netns add {topo.ns}" in text
    assert f"ovs-vsctl -- --may-exist add-port {topo.int_br} qr-" in text
    assert f"ip netns exec {topo.ns} ip route replace default via 203.0.113.1 dev qg-" in text
    assert f"ip -4 addr add {FIP}/32" in text
    assert "DNAT" in text or "dnat" in text
    assert topo.ns not in L.sh("ip", "netns", "list").stdout, "dry run changed the kernel"
    # apply for real, then diff says nothing is left to do, and show lists the router
    out = subprocess.run(base + ["apply", "--local", str(f)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    out = subprocess.run(base + ["diff", "--local", str(f)], capture_output=True, text=True)
    assert out.returncode == 0 and "nothing to change" in out.stdout
    out = subprocess.run(base + ["show", "--json"], capture_output=True, text=True)
    shown = {r["router_id"]: r for r in json.loads(out.stdout)["routers"]}
    assert shown[topo.router_id]["floating_ips"] == [{"floating_ip": FIP,
                                                      "fixed_ip": "198.51.100.84"}]
    out = subprocess.run(base + ["teardown", str(f)], capture_output=True, text=True)
    assert out.returncode == 0 and topo.ns not in L.sh("ip", "netns", "list").stdout


def test_extra_routes_are_programmed_and_removed(seed):
    """A router route (Neutron's extra routes) to 192.0.2.0/24 via vm5, which holds 192.0.2.1."""
    vm5 = seed.vms["vm5"]
    L.sh("ip", "netns", "exec", vm5, "ip", "addr", "add", "192.0.2.1/32", "dev", "lo")
    assert not L.ping(seed.ns, "192.0.2.1")
    seed.doc["routers"][0]["routes"] = [{"destination": "192.0.2.0/24",
                                         "nexthop": "198.51.100.85"}]
    seed.apply()
    shown = L.sh("ip", "netns", "exec", seed.ns, "ip", "route", "show", "192.0.2.0/24").stdout
    assert "via 198.51.100.85" in shown
    assert L.ping_until(seed.ns, "192.0.2.1")
    assert seed.apply().writes == 0
    seed.doc["routers"][0]["routes"] = []
    seed.apply()
    assert L.sh("ip", "netns", "exec", seed.ns, "ip", "route", "show", "192.0.2.0/24").stdout == ""


def test_bad_file_is_rejected_with_a_clear_error(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("networks:\n  - name: ext\n    router:external: true\nsubnets:\n"
                 "  - name: s\n    network: ext\n    cidr: 203.0.113.0/24\n"
                 "    gateway_ip: 198.51.100.1\n")
    out = subprocess.run([sys.executable, "-m", "floatip.cli.main", "apply", "--local", str(f),
                          "--dry-run"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "InvalidIpForSubnet" in out.stderr and "198.51.100.1" in out.stderr
