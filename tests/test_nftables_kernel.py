"""The nftables driver and the agent's event path on real namespaces, OVS and netfilter."""
from __future__ import annotations

import re
import time

import pytest

from floatip import lab as L
from floatip.agent.reconciler import Reconciler
from floatip.dataplane.netns import nsexec


pytestmark = pytest.mark.kernel
FIP, FIP2 = "203.0.113.84", "203.0.113.86"


@pytest.fixture
def nft_topo(topo):
    if topo.config.nat_driver != "nftables":
        pytest.skip("nftables only")
    return topo


def handles(ns: str) -> dict[str, str]:
    """Handles of the table, its sets and chains and its static rules (not elements)."""
    text = nsexec(ns, ["nft", "-a", "list", "table", "ip", "floatip"]).stdout
    out = {}
    for line in text.splitlines():
        m = re.search(r"# handle (\d+)$", line)
        if m and "elements" not in line:
            out[line.split(" # handle")[0].strip()] = m.group(1)
    return out


def elements(ns: str, name: str) -> str:
    return nsexec(ns, ["nft", "list", "map", "ip", "floatip", name]).stdout


def test_event_path_adds_a_fip_as_elements_and_it_answers(topo):
    """A Reconciler adds the second floating IP without observing or rebuilding anything;
    the upstream reaches it, and the same state again makes no write."""
    topo.vm("vm4", "198.51.100.84")
    topo.vm("vm5", "198.51.100.85")
    topo.fip(FIP, "vm4")
    rec = Reconciler(topo.dp, topo.config)
    rep = rec.sync(topo.state())
    assert rep.ok, rep.errors
    assert L.ping_until(topo.upstream, FIP)
    before = handles(topo.ns) if topo.config.nat_driver == "nftables" else None
    topo.fip(FIP2, "vm5")
    rep = rec.sync(topo.state())
    assert rep.ok, rep.errors
    assert [s.action for s in rep.plan.steps] == [
        "nft" if topo.config.nat_driver == "nftables" else "iptables_restore", "add_fips"]
    assert rec.partial_syncs == 1 and rec.full_syncs == 1
    assert L.ping_until(topo.upstream, FIP2)
    if before is not None:
        assert handles(topo.ns) == before, "static rules were rebuilt"
        assert "203.0.113.86 : 198.51.100.85" in elements(topo.ns, "fip_dnat")
    # nothing changed: no write, whether planned from memory or from a full observe
    assert rec.sync(topo.state()).writes == 0
    assert rec.sync(topo.state(), full=True).writes == 0
    # and removing it again is an element delete, the address goes, the first FIP stays
    topo.fip(FIP2, False)
    rep = rec.sync(topo.state())
    assert rep.ok and rep.writes, rep.errors
    assert f"{FIP2}/32" not in L.sh("ip", "netns", "exec", topo.ns, "ip", "-4", "-o", "addr").stdout
    assert not L.ping(topo.upstream, FIP2, count=1, timeout=0.5)
    assert L.ping_until(topo.upstream, FIP)
    if before is not None:
        assert handles(topo.ns) == before
    assert rec.sync(topo.state(), full=True).writes == 0


def test_foreign_tables_are_never_touched(nft_topo):
    topo = nft_topo
    topo.vm("vm4", "198.51.100.84")
    topo.fip(FIP, "vm4")
    rec = Reconciler(topo.dp, topo.config)
    assert rec.sync(topo.state()).ok
    foreign = ("table ip other {\n\tchain c {\n\t\ttype nat hook prerouting priority -50; "
               "policy accept;\n\t\tip daddr 192.0.2.7 counter\n\t}\n}\n"
               "table inet floatip {\n\tset s {\n\t\ttype ipv4_addr\n\t}\n}\n")
    nsexec(topo.ns, ["nft", "-f", "-"], input=foreign)
    listing = {t: nsexec(topo.ns, ["nft", "list", "table", *t.split()]).stdout
               for t in ("ip other", "inet floatip")}
    topo.vm("vm5", "198.51.100.85")
    topo.fip(FIP2, "vm5")
    assert rec.sync(topo.state()).ok                   # event path
    topo.doc["routers"][0]["external_gateway_info"]["enable_snat"] = False
    assert rec.sync(topo.state()).ok                   # static change, partial sync
    assert rec.sync(topo.state(), full=True).writes == 0
    for t, text in listing.items():
        assert nsexec(topo.ns, ["nft", "list", "table", *t.split()]).stdout == text


def test_changes_behind_our_back_are_repaired_by_a_full_sync(nft_topo):
    topo = nft_topo
    topo.vm("vm4", "198.51.100.84")
    topo.fip(FIP, "vm4")
    rec = Reconciler(topo.dp, topo.config)
    assert rec.sync(topo.state()).ok
    nsexec(topo.ns, ["nft", "delete", "element", "ip", "floatip", "fip_dnat", "{ 203.0.113.84 }"])
    rep = rec.sync(topo.state(), full=True)
    assert rep.ok and [s.action for s in rep.plan.steps] == ["nft"]
    assert "add element ip floatip fip_dnat { 203.0.113.84 : 198.51.100.84 }" in rep.plan.steps[0].args[0]
    assert L.ping_until(topo.upstream, FIP)
    nsexec(topo.ns, ["nft", "delete", "table", "ip", "floatip"])
    rep = rec.sync(topo.state(), full=True)
    assert rep.ok and rep.writes == 1
    assert L.ping_until(topo.upstream, FIP)
    assert rec.sync(topo.state(), full=True).writes == 0


def test_many_fips_in_one_change(topo):
    """Hundreds of floating IPs at once: one NAT transaction, addresses in batches."""
    topo.vm("vm4", "198.51.100.84")
    rec = Reconciler(topo.dp, topo.config)
    assert rec.sync(topo.state()).ok
    for i in range(2, 202):
        if i in (64, 84):  # 198.51.100.84 is vm4's; 203.0.113.84 is FIP
            continue
        topo.doc["ports"].append({"name": f"p{i}-{topo.sid}", "network": f"ten-{topo.sid}",
                                  "fixed_ip": f"198.51.100.{i}"})
        topo.doc["floatingips"].append({"floating_ip_address": f"203.0.113.{i + 20}",
                                        "port": f"p{i}-{topo.sid}"})
    topo.fip(FIP, "vm4")
    want = len(topo.doc["floatingips"])
    rep = rec.sync(topo.state())
    assert rep.ok, rep.errors
    nat = [s for s in rep.plan.steps if s.phase == "nat"]
    assert len(nat) == 1
    fips = [s for s in rep.plan.steps if s.action == "add_fips"]
    assert len(fips) == 1 and len(fips[0].args[2]) == want
    addrs = L.sh("ip", "netns", "exec", topo.ns, "ip", "-4", "-o", "addr").stdout
    assert addrs.count("/32 ") == want
    assert L.ping_until(topo.upstream, FIP)
    assert rec.sync(topo.state(), full=True).writes == 0
    topo.doc["floatingips"] = []
    rep = rec.sync(topo.state())
    assert rep.ok, rep.errors
    addrs = L.sh("ip", "netns", "exec", topo.ns, "ip", "-4", "-o", "addr").stdout
    assert "/32 " not in addrs
    assert rec.sync(topo.state(), full=True).writes == 0


def test_conntrack_entries_are_deleted_in_process(topo, lab):
    """ctnetlink (no conntrack process) deletes the flows of an address, both directions."""
    from floatip.dataplane.conntrack import CtNetlink
    topo.vm("vm4", "198.51.100.84")
    topo.fip(FIP, "vm4")
    topo.apply()
    lab.serve(topo.vms["vm4"], port=8080)
    lab.serve(topo.upstream, port=8081)
    inbound = L.TcpClient(topo.upstream, FIP, 8080)
    outbound = L.TcpClient(topo.vms["vm4"], "203.0.113.1", 8081)
    assert inbound.echo("in") and outbound.seen == FIP

    def flows():
        return nsexec(topo.ns, ["conntrack", "-L"], check=False).stdout

    assert flows().count(FIP) >= 2
    time.sleep(0.3)  # delayed ACKs out first: a late packet would open a fresh entry
    ct = CtNetlink(topo.ns)
    try:
        assert ct.delete_by_address([FIP]) >= 2
        assert ct.delete_by_address(["192.0.2.99"]) == 0
    finally:
        ct.close()
    assert "198.51.100.84" not in flows()
    inbound.close()
    outbound.close()


def test_flows_opened_before_the_fip_get_its_dnat(topo):
    """A packet to a floating IP that arrives while it is gone opens an un-NATed flow; when
    the floating IP comes back, that flow is cleared, so the next packet is DNATed."""
    import socket
    from floatip.dataplane.netns import run_in_netns
    topo.vm("vm4", "198.51.100.84")
    topo.fip(FIP, "vm4")
    rec = Reconciler(topo.dp, topo.config)
    assert rec.sync(topo.state()).ok

    def udp(ns, addr):
        def make():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(addr)
            s.settimeout(1.0)
            return s
        return run_in_netns(ns, make)

    rx = udp(topo.vms["vm4"], ("0.0.0.0", 7777))
    tx = udp(topo.upstream, ("203.0.113.1", 5555))
    try:
        assert L.ping_until(topo.upstream, FIP)
        tx.sendto(b"first", (FIP, 7777))
        assert rx.recv(100) == b"first"
        # upstream keeps the router's MAC for the address, as a busy peer would
        mac = L.sh("ip", "netns", "exec", topo.upstream, "ip", "neigh", "show", FIP).stdout.split()
        mac = mac[mac.index("lladdr") + 1]
        L.sh("ip", "netns", "exec", topo.upstream, "ip", "neigh", "replace", FIP, "lladdr", mac,
             "dev", "eth0", "nud", "permanent")
        topo.fip(FIP, False)
        assert rec.sync(topo.state()).ok
        deadline = time.monotonic() + 3  # the old flow is cut by the flusher's next batch
        while topo.dp.flusher.busy() and time.monotonic() < deadline:
            time.sleep(0.02)
        tx.sendto(b"late", (FIP, 7777))
        time.sleep(0.2)
        stale = nsexec(topo.ns, ["conntrack", "-L", "-d", FIP, "-p", "udp"], check=False).stdout
        assert "dport=7777" in stale and "198.51.100.84" not in stale, stale
        topo.fip(FIP, "vm4")
        assert rec.sync(topo.state()).ok
        deadline = time.monotonic() + 3  # the un-NATed flow is cut by the flusher's batch
        while topo.dp.flusher.busy() and time.monotonic() < deadline:
            time.sleep(0.02)
        tx.sendto(b"again", (FIP, 7777))
        assert rx.recv(100) == b"again"
    finally:
        rx.close()
        tx.close()
