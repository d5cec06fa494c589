"""The OpenFlow firewall on a real OVS bridge: the seed's topology (a router namespace with
SNAT and a floating IP, VMs on VLAN 3 of the integration bridge), security groups compiled
by core.firewall and installed by dataplane.firewall. Each attack is first shown to work
without the firewall, then to be blocked with it."""
from __future__ import annotations

import time

import pytest

from floatip import lab as L
from floatip.core.firewall import FwPort, Rule, compile_all, member_addresses
from floatip.dataplane.firewall import OpenFlowFirewall

from fwprobe import (IcmpV6Sink, UdpSink, link_local_ready, neigh_mac, send_arp, send_ra,
                     send_udp, wait_for)

pytestmark = pytest.mark.kernel
FIP, UPSTREAM = "203.0.113.84", "203.0.113.1"
VM4, VM5, VM6 = "198.51.100.84", "198.51.100.85", "198.51.100.86"
ROUTER_MAC_IP = "198.51.100.1"

EGRESS_ANY = (Rule("egress", "IPv4"), Rule("egress", "IPv6"))


def default_group(gid: str = "default") -> tuple[Rule, ...]:
    """Neutron's default group: egress anywhere, ingress from members of the group."""
    return EGRESS_ANY + (Rule("ingress", "IPv4", remote_group_id=gid),
                         Rule("ingress", "IPv6", remote_group_id=gid))


@pytest.fixture
def nat_driver():
    return "nftables"   # the firewall does not depend on the NAT driver: one run is enough


class FwLab:
    """The topology's VM ports with their groups; ``apply`` compiles and installs."""

    def __init__(self, topo):
        self.topo = topo
        self.fw = OpenFlowFirewall(topo.int_br)
        self.groups: dict[str, tuple[Rule, ...]] = {"default": default_group()}
        self.member_of: dict[str, list[str]] = {}
        self.pairs: dict[str, tuple] = {}
        self.extra_ips: dict[str, tuple[str, ...]] = {}
        self.stateful = True

    def vm(self, name: str, ip: str, groups=("default",)) -> str:
        ns = self.topo.vm(name, ip)
        self.member_of[name] = list(groups)
        return ns

    def mac(self, name: str) -> str:
        port = self.topo.port(name)
        return next(p.mac_address for p in self.topo.state().ports.values() if p.name == port)

    def ofport(self, name: str) -> int:
        dev = f"tp{name}{self.topo.sid}"[:15]
        return int(L.sh("ovs-vsctl", "get", "Interface", dev, "ofport").stdout)

    def ports(self) -> list[FwPort]:
        state = self.topo.state()
        out = []
        for name, groups in self.member_of.items():
            p = next(p for p in state.ports.values() if p.name == self.topo.port(name))
            out.append(FwPort(
                p.id, self.ofport(name), p.mac_address, 3,
                tuple(ip for _, ip in p.fixed_ips) + self.extra_ips.get(name, ()),
                self.pairs.get(name, ()), tuple(r for g in groups for r in self.groups[g]),
                self.stateful))
        return out

    def flows(self):
        ports = self.ports()
        members: dict[str, list[str]] = {}
        for name, p in zip(self.member_of, ports):
            for g in self.member_of[name]:
                members.setdefault(g, []).extend(member_addresses(p))
        return compile_all(ports, members)

    def apply(self):
        compiled = self.flows()
        assert not compiled.errors, compiled.errors
        res = self.fw.sync(compiled.flows)
        return res


@pytest.fixture
def fw(topo):
    f = FwLab(topo)
    yield f
    f.fw.remove_all()


def resent_until(send, seen, timeout: float = 10.0) -> bool:
    """Sends again until ``seen``: right after the firewall's flows go, vswitchd may still
    use the datapath flows cached from them for a moment (longer on a busy machine)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        send()
        if wait_for(seen, 0.5):
            return True
    return False


def reaches(ns: str, ip: str, port: int) -> bool:
    return L.tcp_source(ns, ip, port, timeout=1.0) is not None


def comes_through(ns: str, ip: str, port: int, timeout: float = 8.0) -> bool:
    """A connection succeeds before the deadline (a busy machine may lose a first SYN)."""
    return wait_for(lambda: reaches(ns, ip, port), timeout)


def blocked(ns: str, ip: str, port: int, timeout: float = 4.0) -> bool:
    """No connection gets through once the datapath's cached flows are revalidated."""
    return wait_for(lambda: not reaches(ns, ip, port), timeout)


def connect(ns: str, ip: str, port: int, timeout: float = 8.0) -> L.TcpClient:
    box = []
    assert wait_for(lambda: _try(box, ns, ip, port), timeout), f"{ip}:{port} never answered"
    return box[0]


def _try(box, ns, ip, port) -> bool:
    try:
        box.append(L.TcpClient(ns, ip, port))
        return True
    except OSError:
        return False


def test_default_group_drops_new_inbound_keeps_outbound_and_members(fw, lab):
    topo = fw.topo
    vm4, vm5 = fw.vm("vm4", VM4), fw.vm("vm5", VM5)
    vm6 = fw.vm("vm6", VM6, groups=("other",))
    fw.groups["other"] = EGRESS_ANY
    topo.fip(FIP, "vm4")
    topo.apply()
    lab.serve(vm4, port=8080)
    lab.serve(topo.upstream, port=8081)
    assert comes_through(topo.upstream, FIP, 8080)  # open before: the attack surface
    fw.apply()
    assert blocked(topo.upstream, FIP, 8080)   # new inbound through the FIP: dropped
    assert not L.ping(topo.upstream, FIP, count=2)
    assert comes_through(vm4, UPSTREAM, 8081)   # its own outbound and the replies
    assert L.tcp_source(vm4, UPSTREAM, 8081) == FIP
    assert comes_through(vm5, VM4, 8080)           # a member of its default group
    assert blocked(vm6, VM4, 8080)             # not a member
    assert comes_through(vm6, UPSTREAM, 8081)


def test_tcp_rule_opens_its_port_only_and_its_removal_cuts_the_connection(fw, lab):
    topo = fw.topo
    vm4 = fw.vm("vm4", VM4, groups=("default", "ssh"))
    fw.groups["ssh"] = ()
    topo.fip(FIP, "vm4")
    topo.apply()
    lab.serve(vm4, port=22)
    lab.serve(vm4, port=8080)
    fw.apply()
    assert blocked(topo.upstream, FIP, 22)
    fw.groups["ssh"] = (Rule("ingress", "IPv4", "tcp", 22, 22, "0.0.0.0/0"),)
    res = fw.apply()
    assert res.added and res.removed == 0          # the rule's flow only
    conn = connect(topo.upstream, FIP, 22)
    assert conn.echo("before")
    assert blocked(topo.upstream, FIP, 8080)
    fw.groups["ssh"] = ()
    res = fw.apply()
    assert res.removed == 1 and res.added == 0
    # the datapath's cached flows are revalidated within moments: poll, with a deadline
    conn.sock.settimeout(0.5)
    assert wait_for(lambda: not conn.echo("after"), 5), \
        "the removed rule's established connection survived"
    conn.close()
    assert blocked(topo.upstream, FIP, 22)


def test_remote_group_only_members_reach_and_a_member_add_is_one_flow(fw, lab):
    topo = fw.topo
    vm4 = fw.vm("vm4", VM4, groups=("web",))
    vm5 = fw.vm("vm5", VM5, groups=("client",))
    vm6 = fw.vm("vm6", VM6, groups=("other",))
    fw.groups.update(web=EGRESS_ANY + (Rule("ingress", "IPv4", "tcp", 8080, 8080,
                                            remote_group_id="client"),),
                     client=EGRESS_ANY, other=EGRESS_ANY)
    topo.apply()
    lab.serve(vm4, port=8080)
    fw.apply()
    assert comes_through(vm5, VM4, 8080)
    assert blocked(vm6, VM4, 8080)
    fw.member_of["vm6"].append("client")
    before = {o: set(f) for o, f in fw.fw.installed.items()}
    res = fw.apply()
    changed = {o for o, f in fw.fw.installed.items() if before.get(o) != set(f)}
    assert changed == {f"member:82:{VM6}/32"}, changed  # one member flow, no rule rewritten
    assert res.added == 1 and res.removed == 0
    assert comes_through(vm6, VM4, 8080)


def test_icmp_rule(fw):
    topo = fw.topo
    fw.vm("vm4", VM4, groups=("default", "icmp"))
    fw.groups["icmp"] = ()
    topo.fip(FIP, "vm4")
    topo.apply()
    fw.apply()
    assert not L.ping(topo.upstream, FIP, count=2)
    fw.groups["icmp"] = (Rule("ingress", "IPv4", "icmp", 8, None, "0.0.0.0/0"),)
    fw.apply()
    assert L.ping_until(topo.upstream, FIP)


def test_ipv6_rule_and_neighbour_discovery(fw, lab):
    topo = fw.topo
    vm4 = fw.vm("vm4", VM4, groups=("v6",))
    vm5 = fw.vm("vm5", VM5, groups=("other",))
    fw.groups.update(v6=EGRESS_ANY + (Rule("ingress", "IPv6", "tcp", 8080, 8080, "::/0"),),
                     other=EGRESS_ANY)
    topo.apply()
    L.Lab.add_ipv6(vm4, "2001:db8:1::84/64")
    L.Lab.add_ipv6(vm5, "2001:db8:1::85/64")
    fw.extra_ips.update(vm4=("2001:db8:1::84",), vm5=("2001:db8:1::85",))
    lab.serve(vm4, "::", 8080)
    lab.serve(vm4, "::", 8081)
    fw.apply()
    assert comes_through(vm5, "2001:db8:1::84", 8080)  # ND works through it
    assert blocked(vm5, "2001:db8:1::84", 8081)
    assert blocked(vm5, VM4, 8080)   # an IPv6 rule opens no IPv4


def test_forged_source_address_does_not_leave_through_the_victims_fip(fw):
    topo = fw.topo
    fw.vm("vm4", VM4)
    vm5 = fw.vm("vm5", VM5)
    topo.fip(FIP, "vm4")
    topo.apply()
    sink = UdpSink(topo.upstream, 9999)
    try:
        send_udp(vm5, VM4, UPSTREAM, 9999, b"forged-before")
        assert wait_for(lambda: sink.seen(b"forged-before"), 5)  # leaves as the victim's FIP
        assert sink.seen(b"forged-before")[0] == FIP
        fw.apply()
        send_udp(vm5, VM5, UPSTREAM, 9999, b"own")
        assert wait_for(lambda: sink.seen(b"own"), 5)
        send_udp(vm5, VM4, UPSTREAM, 9999, b"forged-after")
        assert not wait_for(lambda: sink.seen(b"forged-after"), 1.0)
    finally:
        sink.close()


def test_another_vms_mac_is_blocked(fw):
    topo = fw.topo
    fw.vm("vm4", VM4)
    vm5 = fw.vm("vm5", VM5)
    topo.apply()
    fw.apply()
    sink = UdpSink(topo.upstream, 9999)
    try:
        L.sh("ip", "netns", "exec", vm5, "ip", "link", "set", "eth0", "address", fw.mac("vm4"))
        send_udp(vm5, VM5, UPSTREAM, 9999, b"stolen-mac", count=5)
        assert not wait_for(lambda: sink.seen(b"stolen-mac"), 1.0)
        fw.fw.remove_all()   # the same frames without the firewall: they pass
        assert resent_until(lambda: send_udp(vm5, VM5, UPSTREAM, 9999, b"stolen-mac-open"),
                            lambda: sink.seen(b"stolen-mac-open"))
    finally:
        sink.close()


def test_arp_and_gratuitous_arp_for_another_vms_address_are_blocked(fw):
    topo = fw.topo
    vm4, vm5 = fw.vm("vm4", VM4), fw.vm("vm5", VM5)
    topo.apply()
    fw.apply()
    ns, mac4, mac5 = topo.ns, fw.mac("vm4"), fw.mac("vm5")
    assert L.ping_until(vm4, ROUTER_MAC_IP)
    assert neigh_mac(ns, VM4) == mac4
    router_mac = neigh_mac(vm4, ROUTER_MAC_IP)
    send_arp(vm5, "eth0", mac5, VM4, ROUTER_MAC_IP, router_mac)          # reply to the router
    send_arp(vm5, "eth0", mac5, VM4, VM4, op=1)                          # gratuitous
    assert not wait_for(lambda: neigh_mac(ns, VM4) == mac5, 1.0)
    assert neigh_mac(ns, VM4) == mac4
    fw.fw.remove_all()   # without the firewall the router believes it
    assert resent_until(lambda: send_arp(vm5, "eth0", mac5, VM4, ROUTER_MAC_IP, router_mac),
                        lambda: neigh_mac(ns, VM4) == mac5)


def test_dhcp_server_reply_and_router_advertisement_from_a_vm_are_blocked(fw):
    topo = fw.topo
    vm4, vm5 = fw.vm("vm4", VM4), fw.vm("vm5", VM5)
    topo.apply()
    assert wait_for(lambda: link_local_ready(vm5) and link_local_ready(vm4), 10)
    sink, ra = UdpSink(vm4, 68), IcmpV6Sink(vm4)
    try:
        fw.apply()
        send_udp(vm5, VM5, "255.255.255.255", 68, b"offer-after", sport=67)
        send_ra(vm5)
        assert not wait_for(lambda: sink.seen(b"offer-after") or 134 in ra.types, 1.0)
        fw.fw.remove_all()
        assert resent_until(
            lambda: (send_udp(vm5, VM5, "255.255.255.255", 68, b"offer-before", sport=67),
                     send_ra(vm5)),
            lambda: sink.seen(b"offer-before") and 134 in ra.types)
    finally:
        sink.close()
        ra.close()


def test_allowed_address_pairs_let_exactly_the_listed_addresses_through(fw):
    topo = fw.topo
    fw.vm("vm4", VM4)
    vm5 = fw.vm("vm5", VM5)
    fw.pairs["vm5"] = (("198.51.100.96/30", None), ("198.51.100.90", None))
    topo.apply()
    fw.apply()
    sink = UdpSink(topo.upstream, 9999)
    try:
        for src in ("198.51.100.90", "198.51.100.97", "198.51.100.91", "198.51.100.95"):
            send_udp(vm5, src, UPSTREAM, 9999, src.encode())
        assert wait_for(lambda: sink.seen(b"198.51.100.90") and sink.seen(b"198.51.100.97"), 5)
        assert not sink.seen(b"198.51.100.91") and not sink.seen(b"198.51.100.95")
    finally:
        sink.close()


def test_removed_port_leaves_no_flow_and_drift_is_repaired(fw):
    topo = fw.topo
    fw.vm("vm4", VM4)
    fw.vm("vm5", VM5)
    topo.apply()
    fw.apply()
    mac5, of5 = fw.mac("vm5"), fw.ofport("vm5")
    dump = lambda: L.sh("ovs-ofctl", "dump-flows", topo.int_br).stdout   # noqa: E731
    assert mac5 in dump() and f"reg5=0x{of5:x}" in dump()
    # drift: one flow deleted by hand comes back on the full pass
    L.sh("ovs-ofctl", "del-flows", topo.int_br, f"in_port={of5}")
    assert f"in_port={of5} " not in dump()
    res = fw.apply()
    assert res.added >= 1 and mac5 in dump()
    del fw.member_of["vm5"]
    fw.apply()
    text = dump()
    assert mac5 not in text and f"reg5=0x{of5:x}" not in text and f"in_port={of5}" not in text
    # and nothing of floatip's is left when the firewall goes
    fw.fw.remove_all()
    assert "0xf1a7" not in dump()


def test_stateless_group_needs_rules_for_the_replies_too(fw, lab):
    """A stateless group (``stateful: false``) matches each packet on its own, without
    conntrack, as Neutron's: an ingress rule lets a connection's packets in, but its replies
    leave only with an egress rule; the VM's own connection needs an ingress rule for its
    replies. The same rules in a stateful group need neither."""
    topo = fw.topo
    vm4 = fw.vm("vm4", VM4, groups=("web",))
    fw.groups["web"] = (Rule("ingress", "IPv4", "tcp", 8080, 8080, "0.0.0.0/0"),)
    topo.fip(FIP, "vm4")
    topo.apply()
    lab.serve(vm4, port=8080)
    lab.serve(topo.upstream, port=8081)
    fw.apply()
    assert comes_through(topo.upstream, FIP, 8080)   # stateful: conntrack lets replies out
    fw.stateful = False
    fw.apply()
    assert blocked(topo.upstream, FIP, 8080)   # the SYN gets in, the SYN-ACK does not out
    fw.groups["web"] += (Rule("egress", "IPv4", "tcp"),)
    fw.apply()
    assert comes_through(topo.upstream, FIP, 8080)   # the replies by the egress rule
    assert not reaches(topo.upstream, FIP, 8081)     # nothing else comes in
    # outbound: the egress rule lets the SYN out, the answer's destination port is vm4's
    # ephemeral one, which no ingress rule opens
    assert blocked(vm4, UPSTREAM, 8081)
    fw.groups["web"] += (Rule("ingress", "IPv4", "tcp", None, None, "0.0.0.0/0"),)
    fw.apply()
    assert comes_through(vm4, UPSTREAM, 8081)
    assert L.tcp_source(vm4, UPSTREAM, 8081) == FIP
