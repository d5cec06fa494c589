"""The firewall's own OpenFlow connection (dataplane.openflow) on real OVS bridges: it
installs exactly what ``ovs-ofctl`` installs from the same flow text, keeps one connection
across changes and opens a new one after the bridge (its vswitchd socket) went away, a
bundle is all or nothing, and a flow the switch refuses fails its owner alone."""
from __future__ import annotations

import os
import subprocess

import pytest

from floatip import lab as L
from floatip.core.firewall import COOKIE_MASK, COOKIE_PREFIX, Flow, FwPort, Rule, base_flows, compile_port, member_flows, \
    used_conjunctions
from floatip.dataplane import firewall as F
from floatip.dataplane.openflow import Connection, OpenFlowError, flow_add, flow_delete

pytestmark = pytest.mark.kernel


@pytest.fixture
def bridges():
    lab = L.Lab()
    tag = f"of{os.getpid() % 10000}{os.urandom(2).hex()}"
    try:
        yield lambda n: lab.bridge(f"{tag}{n}")
    finally:
        lab.cleanup()


def dump(br: str) -> list[str]:
    """floatip's flows on ``br`` (not the bridge's own NORMAL flow)."""
    out = L.sh("ovs-ofctl", "dump-flows", "--no-stats", br,
               f"cookie={COOKIE_PREFIX:#x}/{COOKIE_MASK:#x}").stdout
    return sorted(line.strip() for line in out.splitlines())


def every_kind_of_flow() -> list[Flow]:
    """A port with each kind of rule the firewall writes, a stateless one, the base flows
    and remote-group members (conjunctions)."""
    p = FwPort("p1", 7, "fa:16:3e:00:00:01", 3, ("198.51.100.5", "2001:db8::5"),
               pairs=(("198.51.100.128/25", None), ("192.0.2.2", "fa:16:3e:00:00:09")),
               rules=(Rule("ingress", "IPv4", "tcp", 22, 22, "0.0.0.0/0"),
                      Rule("ingress", "IPv4", "tcp", 1000, 1999, "203.0.113.0/24"),
                      Rule("ingress", "IPv6", "udp", 53, 53, "2001:db8::/32"),
                      Rule("ingress", "IPv4", "icmp", 8, 0), Rule("ingress", "IPv6", "icmp", 128),
                      Rule("egress", "IPv4"), Rule("egress", "IPv6", 132),
                      Rule("ingress", "IPv4", "tcp", 80, 80, remote_group_id="g1"),
                      Rule("egress", "IPv6", None, remote_group_id="g1")))
    q = FwPort("p2", 8, "fa:16:3e:00:00:02", 4, ("198.51.100.6",), stateful=False,
               rules=(Rule("ingress", "IPv4", "udp", 5000, 5000),
                      Rule("egress", "IPv4", "tcp", 443, 443)))
    members = {"g1": ["198.51.100.5", "2001:db8::5", "198.51.100.128/25"]}
    flows = base_flows() + compile_port(p)[0] + compile_port(q)[0]
    for fl in member_flows(members, used_conjunctions([p, q])).values():
        flows += fl
    return flows


def test_the_connection_installs_what_ovs_ofctl_installs(bridges):
    a, b = bridges("a"), bridges("b")
    flows = every_kind_of_flow()
    subprocess.run(["ovs-ofctl", "add-flows", a, "-"], input="".join(f.add_line() + "\n" for f in flows),
        text=True, check=True)
    conn = Connection(b)
    try:
        conn.transact([flow_add(f.cookie, f.table, f.priority, f.match, f.actions)
                       for f in flows], bundle=True)
        assert dump(b) == dump(a)
        assert len(dump(b)) == len(flows)
        conn.transact([flow_delete(f.cookie) for f in flows[:10]], bundle=False)
        assert len(dump(b)) == len(flows) - 10
    finally:
        conn.close()


def test_one_connection_is_kept_and_reopened_after_the_bridge_came_back(bridges):
    br = bridges("k")
    fw = F.OpenFlowFirewall(br)
    try:
        fw.apply({"port:a": [Flow(60, 100, "dl_dst=fa:16:3e:00:00:0a", "drop")]})
        fw.apply({"port:b": [Flow(60, 100, "dl_dst=fa:16:3e:00:00:0b", "drop")]})
        assert fw.conn.connects == 1 and len(dump(br)) == 2
        # vswitchd drops the bridge's management socket (as on a restart of the daemon)
        L.sh("ovs-vsctl", "del-br", br)
        L.sh("ovs-vsctl", "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev")
        res = fw.apply({"port:c": [Flow(60, 100, "dl_dst=fa:16:3e:00:00:0c", "drop")]})
        assert not res.errors and fw.conn.connects == 2
        assert any("dl_dst=fa:16:3e:00:00:0c" in f for f in dump(br))
        fw.sync({o: list(f.values()) for o, f in fw.installed.items()})   # drift repaired
        assert len(dump(br)) == 3
    finally:
        fw.close()


def test_a_bundle_is_all_or_nothing(bridges):
    br = bridges("n")
    old = Flow(60, 100, "dl_dst=fa:16:3e:00:00:01", "drop")
    good = Flow(60, 100, "dl_dst=fa:16:3e:00:00:02", "drop")
    conn = Connection(br)
    try:
        conn.transact([flow_add(old.cookie, 60, 100, old.match, old.actions)], bundle=False)
        with pytest.raises(OpenFlowError, match="OFPET_BAD_MATCH"):
            conn.transact([flow_delete(old.cookie),
                           flow_add(good.cookie, 60, 100, good.match, good.actions),
                           flow_add(1, 60, 100, "nw_src=192.0.2.1", "drop")],   # no "ip"
                          bundle=True)
        assert dump(br) == [f"cookie={old.cookie:#x}, table=60, priority=100,"
                            "dl_dst=fa:16:3e:00:00:01 actions=drop"]
        conn.transact([flow_add(good.cookie, 60, 100, good.match, good.actions)], bundle=False)
        assert len(dump(br)) == 2 and conn.connects == 1   # an error keeps the connection
    finally:
        conn.close()


@pytest.mark.parametrize("bad", ["nw_src=192.0.2.1", "no_such_field=1"])
def test_a_flow_refused_fails_its_owner_alone(bridges, bad):
    br = bridges("r")
    fw = F.OpenFlowFirewall(br)
    try:
        fw.apply({"port:a": [Flow(60, 100, "dl_dst=fa:16:3e:00:00:0a", "drop")]})
        res = fw.apply({"port:a": [Flow(60, 100, "dl_dst=fa:16:3e:00:00:1a", "drop")],
                        "port:b": [Flow(60, 100, "dl_dst=fa:16:3e:00:00:0b", "drop"),
                                   Flow(60, 90, bad, "drop")],
                        "port:c": [Flow(60, 100, "dl_dst=fa:16:3e:00:00:0c", "drop")]})
        assert set(res.errors) == {"port:b"}
        assert ("BAD_MATCH" if "nw_src" in bad else "no_such_field") in res.errors["port:b"]
        flows = " ".join(dump(br))
        assert "00:00:1a" in flows and "00:00:0c" in flows
        assert "00:00:0a" not in flows and "00:00:0b" not in flows
    finally:
        fw.close()


def test_a_large_batch_goes_through_one_ovs_ofctl_run(bridges):
    br = bridges("l")
    fw = F.OpenFlowFirewall(br)
    try:
        n = F.SMALL + 1
        macs = [f"fa:16:3e:00:{i >> 8:02x}:{i & 255:02x}" for i in range(n)]
        res = fw.apply({"port:x": [Flow(60, 100, f"dl_dst={m}", "drop") for m in macs]})
        assert res.added == n and len(dump(br)) == n and fw.conn.connects == 0
    finally:
        fw.close()
