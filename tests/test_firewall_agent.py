"""The agent's firewall pass (agent/firewall.py) on a real bridge: the desired state's
security groups and ports (core.model, as the API publishes them) -> flows, incrementally
per change, drift repaired by the full pass; and the conversion itself without root."""
from __future__ import annotations

import os
import random
from dataclasses import replace

import pytest

from floatip import lab as L
from floatip.agent.binding import Binder
from floatip.agent.firewall import FirewallAgent
from floatip.core.firewall import COOKIE_MASK, COOKIE_PREFIX, compile_all, fw_ports
from floatip.core.model import (AddressGroup, Network, Port, SecurityGroup, SecurityGroupRule,
                                State)

from fwprobe import wait_for

FIP, UPSTREAM = "203.0.113.84", "203.0.113.1"


def default_group(gid: str, extra=()) -> SecurityGroup:
    rules = [SecurityGroupRule("e4", "egress", "IPv4"), SecurityGroupRule("e6", "egress", "IPv6"),
             SecurityGroupRule("i4", "ingress", "IPv4", remote_group_id=gid),
             SecurityGroupRule("i6", "ingress", "IPv6", remote_group_id=gid), *extra]
    return SecurityGroup(gid, rules=tuple(rules))


def secured(state: State, groups: dict[str, SecurityGroup], names: dict[str, tuple]) -> State:
    """``state`` with port security on the named ports (port name -> group ids)."""
    ports = {pid: replace(p, port_security_enabled=True, security_groups=names[p.name])
             if p.name in names else p for pid, p in state.ports.items()}
    return replace(state, ports=ports, security_groups=groups)


# -- without root -----------------------------------------------------------------------

def test_state_to_firewall_ports():
    net = Network("n", local_vlan=7)
    sg = SecurityGroup("g", stateful=False, rules=(
        SecurityGroupRule("r1", "ingress", "IPv4", 6, 22, 22, remote_address_group_id="ag"),
        SecurityGroupRule("r2", "ingress", "IPv4", remote_group_id="g")))
    ports = {
        "vm": Port("vm", "n", (("s", "198.51.100.5"),), "FA:16:3E:00:00:05",
                   security_groups=("g",), port_security_enabled=True,
                   allowed_address_pairs=(("192.0.2.0/28", ""),)),
        "dhcp": Port("dhcp", "n", (("s", "198.51.100.2"),), "fa:16:3e:00:00:02",
                     device_owner="network:dhcp", port_security_enabled=True),
        "other": Port("other", "n", (("s", "198.51.100.6"),), "fa:16:3e:00:00:06",
                      security_groups=("g",), port_security_enabled=True)}
    state = State({"n": net}, ports=ports, security_groups={"g": sg},
                  address_groups={"ag": AddressGroup("ag", addresses=("203.0.113.0/24",
                                                                       "2001:db8::/64"))})
    fps, members = fw_ports(state, {"vm": 4, "dhcp": 5, "gone": 9})
    by = {p.id: p for p in fps}
    assert set(by) == {"vm", "dhcp"}                       # only ports on this bridge
    vm = by["vm"]
    assert vm.filtered and not by["dhcp"].filtered         # network:* ports are trusted
    assert vm.mac == "fa:16:3e:00:00:05" and vm.zone == 7 and not vm.stateful
    assert vm.pairs == (("192.0.2.0/28", None),)
    assert [r.remote_ip_prefix for r in vm.rules if r.protocol == 6] == ["203.0.113.0/24"]
    assert sorted(members["g"]) == ["192.0.2.0/28", "198.51.100.5", "198.51.100.6"]


# -- on a real bridge ---------------------------------------------------------------------

@pytest.fixture
def nat_driver():
    return "nftables"


@pytest.mark.kernel
def test_agent_pass_filters_by_the_states_groups_incrementally_and_repairs_drift(topo, lab):
    vm4 = topo.vm("vm4", "198.51.100.84")
    vm5 = topo.vm("vm5", "198.51.100.85")
    topo.fip(FIP, "vm4")
    topo.apply()
    base = topo.state()
    ids = {p.name: pid for pid, p in base.ports.items()}
    for name in ("vm4", "vm5"):   # as libvirt plugs a VM: the port id on the interface
        L.sh("ovs-vsctl", "set", "Interface", f"tp{name}{topo.sid}"[:15],
             f"external_ids:iface-id={ids[topo.port(name)]}")
    binder = Binder(topo.int_br, "test")
    fw = FirewallAgent(topo.int_br)
    try:
        assert wait_for(lambda: len(binder.ofports()) == 2, 10)
        ofports = binder.ofports()
        names = {topo.port("vm4"): ("sg",), topo.port("vm5"): ("sg",)}
        state = secured(base, {"sg": default_group("sg")}, names)
        lab.serve(vm4, port=22)
        lab.serve(vm4, port=8080)
        lab.serve(topo.upstream, port=8081)
        assert fw.sync(state, ofports, full=True) == {}
        assert wait_for(lambda: L.tcp_source(topo.upstream, FIP, 22, 1.0) is None, 4)
        assert wait_for(lambda: L.tcp_source(vm4, UPSTREAM, 8081, 1.0) == FIP, 8)
        assert wait_for(lambda: L.tcp_source(vm5, "198.51.100.84", 22, 1.0) is not None, 8)
        # a rule added: only the flows it touches are sent (one per port of the group)
        installed = {o: set(f) for o, f in fw.of.installed.items()}
        ssh = SecurityGroupRule("ssh", "ingress", "IPv4", 6, 22, 22, "0.0.0.0/0")
        state = secured(base, {"sg": default_group("sg", (ssh,))}, names)
        assert fw.sync(state, ofports, full=False) == {}
        diff = {o for o, f in fw.of.installed.items() if installed.get(o) != set(f)}
        assert diff == {f"port:{ids[topo.port('vm4')]}", f"port:{ids[topo.port('vm5')]}"}
        assert wait_for(lambda: L.tcp_source(topo.upstream, FIP, 22, 1.0) is not None, 8)
        assert L.tcp_source(topo.upstream, FIP, 8080, 1.0) is None
        # drift: a flow deleted by hand is back after the full pass
        of4 = ofports[ids[topo.port("vm4")]]
        L.sh("ovs-ofctl", "del-flows", topo.int_br, f"in_port={of4}")
        assert fw.sync(state, ofports, full=False) == {}   # an incremental pass trusts its record
        res_before = len(fw.of.observe())
        fw.sync(state, ofports, full=True)
        assert len(fw.of.observe()) == res_before + 1
        # port security off on vm5: its flows go, nothing of it stays
        ports = dict(state.ports)
        p5 = ports[ids[topo.port("vm5")]]
        ports[p5.id] = replace(p5, port_security_enabled=False, security_groups=())
        fw.sync(replace(state, ports=ports), ofports, full=False)
        dump = L.sh("ovs-ofctl", "dump-flows", topo.int_br).stdout
        assert p5.mac_address not in dump and f"in_port={ofports[p5.id]} " not in dump
    finally:
        binder.close()
        fw.of.remove_all()


@pytest.mark.kernel
def test_a_pass_told_which_ports_changed_sends_what_a_full_compile_would(lab):
    """The agent loop tells the firewall which ports and groups changed when nothing else
    did: such a pass looks at those ports and the ports of those groups only (a member add
    at 1,000 ports: well under 1 ms of Python) and must leave the bridge as a full compile
    of the state would."""
    br = lab.bridge(f"of{os.getpid() % 10000}{os.urandom(2).hex()}q")
    rnd = random.Random(22)
    egress = (SecurityGroupRule("e4", "egress", "IPv4"),)
    groups = {"web": default_group("web"), "db": SecurityGroup("db", rules=egress + (
        SecurityGroupRule("p", "ingress", "IPv4", 6, 5432, 5432, remote_group_id="web"),))}
    net = Network("n1", local_vlan=3)
    ports = {f"p{i}": Port(f"p{i}", "n1", (("s", f"198.51.100.{i + 10}"),),
                           f"fa:16:3e:00:00:{i:02x}", security_groups=("web",) if i % 2 else ("db",),
                           port_security_enabled=True) for i in range(12)}
    ofports = {pid: 100 + i for i, pid in enumerate(ports) if i < 8}   # 4 on other hosts
    fw = FirewallAgent(br)

    def state():
        return State(networks={"n1": net}, ports=dict(ports), security_groups=dict(groups))

    def bridge_cookies():
        out = L.sh("ovs-ofctl", "dump-flows", "--no-stats", br,
                   f"cookie={COOKIE_PREFIX:#x}/{COOKIE_MASK:#x}").stdout
        return {int(p[7:], 16) for line in out.splitlines()
                for p in line.replace(" ", ",").split(",") if p.startswith("cookie=")}

    try:
        assert fw.sync(state(), ofports, full=True) == {}
        for step in range(40):
            pid = rnd.choice(sorted(ports))
            p = ports[pid]
            change = rnd.choice(["groups", "address", "pair", "security", "rule"])
            gids = set()
            if change == "rule":   # a rule added to or removed from a group
                gid = rnd.choice(["web", "db"])
                g, gids = groups[gid], {gid}
                extra = SecurityGroupRule(f"r{step}", "ingress", "IPv4", 6, 1000 + step,
                                          1000 + step, remote_group_id=rnd.choice(["web", "db"]))
                groups[gid] = replace(g, rules=g.rules[:-1] if len(g.rules) > 3 and
                                      rnd.random() < .5 else g.rules + (extra,))
            elif change == "groups":
                p = replace(p, security_groups=rnd.choice([(), ("web",), ("db",), ("web", "db")]))
            elif change == "address":
                p = replace(p, fixed_ips=(("s", f"198.51.100.{rnd.randrange(10, 40)}"),))
            elif change == "pair":
                p = replace(p, allowed_address_pairs=((f"203.0.113.{rnd.randrange(1, 9)}", None),))
            else:
                p = replace(p, port_security_enabled=not p.port_security_enabled)
            ports[pid] = p
            st = state()
            touched = set() if change == "rule" else {pid}
            assert fw.sync(st, ofports, full=False, changed_ports=touched,
                           changed_groups=gids) == {}
            ref_ports, members = fw_ports(st, ofports)
            want = compile_all(ref_ports, members).flows
            assert {o: set(f) for o, f in fw.flows.items()} == \
                {o: set(f) for o, f in want.items() if f}, (step, change)
            assert bridge_cookies() == {f.cookie for fl in want.values() for f in fl}
    finally:
        fw.of.remove_all()
        fw.close()
