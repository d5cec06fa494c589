"""``floatip trace``'s pure half without root: hops from observed facts, the tools' output
parsed, the probe's frames."""
from __future__ import annotations

import socket
import struct

from floatip.core import packet
from floatip.core.trace import (ApiFip, Facts, Link, OfTrace, Port, Query, Route, RouterFacts,
                                build, disagreements, parse_dpif_show, parse_of_trace, render)

NS = "qrouter-r1"
DPIF = """netdev@ovs-netdev: hit:4 missed:18
  br-int:
    br-int 65534/1: (tap)
    qr-aaaaaaaa-aa 3/6: (tap)
    vm4 1/4: (system)
    vm5 2/5: (system)
  br-ex:
    br-ex 65534/2: (tap)
    eth3 1/3: (system)
    qg-bbbbbbbb-bb 2/7: (tap)
"""
OF = """Flow: tcp,in_port=1,vlan_tci=0x0000,dl_dst=fa:16:3e:00:00:01,nw_dst=10.255.253.84

bridge("br-ex")
---------------
 0. priority 0
    NORMAL
     -> forwarding to learned port

Final flow: unchanged
Datapath actions: %s
"""


def odp():
    return parse_dpif_show(DPIF)


def facts(dnat=True, fip_on_qg=True, vm_out="4", api=None) -> Facts:
    q = Query("upstream", "10.255.253.84", "tcp", 80)
    qg_addrs = ["10.255.253.11/24"] + (["10.255.253.84/32"] if fip_on_qg else [])
    r = RouterFacts(
        "r1", NS,
        {"qg-bbbbbbbb-bb": Link("qg-bbbbbbbb-bb", "fa:16:3e:00:00:01", True, qg_addrs),
         "qr-aaaaaaaa-aa": Link("qr-aaaaaaaa-aa", "fa:16:3e:00:00:02", True, ["10.0.2.1/24"])},
        {"10.255.253.1": ("qg-bbbbbbbb-bb", "02:00:00:00:00:01", "REACHABLE"),
         "10.0.2.84": ("qr-aaaaaaaa-aa", "fa:16:3e:00:00:84", "STALE")},
        "nftables", {"10.255.253.84": "10.0.2.84"} if dnat else {},
        {"10.0.2.84": "10.255.253.84"} if dnat else {}, "dnat to ip daddr map @fip_dnat")
    o = odp()
    return Facts(
        q, "10.255.253.1", r, uplink=Port("eth3", "br-ex", 1),
        gateway_port=Port("qg-bbbbbbbb-bb", "br-ex", 2, router_id="r1"),
        router_port=Port("qr-aaaaaaaa-aa", "br-int", 3, tag=3, router_id="r1"),
        vm_port=Port("vm4", "br-int", 1, tag=3, iface_id="p4"), vm_mac="fa:16:3e:00:00:84",
        routes={"forward": Route("qr-aaaaaaaa-aa"), "reply": Route("qg-bbbbbbbb-bb")},
        traces={"ex_in": parse_of_trace("br-ex", "in_port=eth3", OF % "7", o["br-ex"]),
                "int_out": parse_of_trace("br-int", "in_port=qr", OF % vm_out, o["br-int"]),
                "int_reply": parse_of_trace("br-int", "in_port=vm4", OF % "6", o["br-int"]),
                "ex_reply": parse_of_trace("br-ex", "in_port=qg", OF % "3", o["br-ex"])},
        api=api)


def test_parsers():
    assert odp()["br-int"] == {1: "br-int", 6: "qr-aaaaaaaa-aa", 4: "vm4", 5: "vm5"}
    t = parse_of_trace("br-int", "f", OF % "push_vlan(vid=3,pcp=0),1,pop_vlan,4,5",
                       odp()["br-int"])
    assert t.outputs == ["br-int", "vm4", "vm5"] and t.rules == ["table 0 priority 0: NORMAL"]
    assert parse_of_trace("br-int", "f", OF % "drop", odp()["br-int"]).outputs == []
    assert OfTrace("br-ex", "in_port=eth3,tcp").command == \
        "ovs-appctl ofproto/trace br-ex in_port=eth3,tcp"


def test_delivered_path_has_every_hop_forward_and_back():
    t = build(facts())
    assert t.delivered and t.stopped is None
    assert [h.name for h in t.hops] == [
        "external bridge", "gateway port qg-bbbbbbbb-bb", "DNAT", "route lookup",
        "router port qr-aaaaaaaa-aa", "integration bridge", "VM port",
        "integration bridge", "NAT", "route lookup", "external bridge"]
    assert [h.direction for h in t.hops].count("reply") == 4
    dnat = t.hops[2]
    assert "element 10.255.253.84 : 10.0.2.84 of map fip_dnat" in dnat.matched
    assert dnat.command == f"ip netns exec {NS} nft list map ip floatip fip_dnat"
    assert "VLAN tag 3" in t.hops[4].matched
    assert "float-SNAT element 10.0.2.84 : 10.255.253.84" in t.hops[8].matched
    assert t.disagreements == []
    assert render(t).splitlines()[-1] == "delivered"


def test_no_dnat_stops_and_names_the_missing_element():
    t = build(facts(dnat=False))
    assert not t.delivered and t.stopped == "DNAT"
    assert "10.255.253.84 has no element in map fip_dnat" in t.reason


def test_address_not_on_the_gateway_stops_at_arp():
    t = build(facts(fip_on_qg=False))
    assert t.stopped == "gateway port qg-bbbbbbbb-bb" and "nobody answers ARP" in t.reason


def test_integration_bridge_sending_elsewhere_stops_there():
    t = build(facts(vm_out="5"))
    assert t.stopped == "integration bridge" and "leaves by vm5, not vm4" in t.reason


def test_no_router_holds_the_address():
    f = facts()
    f.router = None
    t = build(f)
    assert t.stopped == "router" and not t.hops[0].ok


def test_disagreements_between_api_and_host():
    active = ApiFip("f1", "ACTIVE", "10.0.2.84", "r1", "p4")
    assert disagreements(facts(api=active)) == []
    missing = disagreements(facts(dnat=False, api=active))
    assert len(missing) == 1 and "element 10.255.253.84 is missing from map fip_dnat" \
        in missing[0] and "ACTIVE" in missing[0]
    gone = disagreements(facts(fip_on_qg=False, api=active))
    assert any("does not hold 10.255.253.84/32" in d for d in gone)
    stale = disagreements(facts(api=ApiFip("f1", "DOWN", None, None, None)))
    assert len(stale) == 1 and "still DNATs it to 10.0.2.84" in stale[0]
    moved = disagreements(facts(api=ApiFip("f1", "ACTIVE", "10.0.2.85", "r1", "p5")))
    assert moved == ["the API says 10.255.253.84 -> 10.0.2.85, the host DNATs it to 10.0.2.84"]


def test_probe_frames_have_correct_checksums_and_read_back():
    f = packet.ipv4_frame("02:00:00:00:00:01", "fa:16:3e:00:00:01", "192.0.2.1",
                          "203.0.113.84", "tcp", 40000, 80)
    ip = f[14:34]
    assert packet.checksum(ip) == 0
    l4 = f[34:]
    pseudo = socket.inet_aton("192.0.2.1") + socket.inet_aton("203.0.113.84") + \
        struct.pack("!BBH", 0, 6, len(l4))
    assert packet.checksum(pseudo + l4) == 0
    assert packet.read(f) == {"kind": "ip", "proto": 6, "src": "192.0.2.1",
                              "dst": "203.0.113.84", "sport": 40000, "dport": 80}
    icmp = packet.ipv4_frame("02:00:00:00:00:01", "fa:16:3e:00:00:01", "192.0.2.1",
                             "203.0.113.84", "icmp", 4242, None)
    assert packet.checksum(icmp[34:]) == 0 and packet.read(icmp)["sport"] == 4242
    arp = packet.read(packet.arp_request("02:00:00:00:00:01", "192.0.2.1", "203.0.113.84"))
    assert arp["kind"] == "arp" and arp["op"] == 1 and arp["dst"] == "203.0.113.84"


def test_out_of_a_vm_port_with_its_snat():
    from floatip.core.trace_out import build_out, snat_source
    f = facts()
    f.query = Query("vm4", "10.255.253.1", "tcp", 22)
    f.source_ip, f.upstream_mac = "10.0.2.84", "02:00:00:00:00:01"
    f.routes = {"forward": Route("qg-bbbbbbbb-bb"), "reply": Route("qr-aaaaaaaa-aa")}
    o = odp()
    f.traces = {"int_out": parse_of_trace("br-int", "in_port=vm4", OF % "6", o["br-int"]),
                "ex_out": parse_of_trace("br-ex", "in_port=qg", OF % "3", o["br-ex"]),
                "ex_back": parse_of_trace("br-ex", "in_port=eth3", OF % "7", o["br-ex"]),
                "int_back": parse_of_trace("br-int", "in_port=qr", OF % "4", o["br-int"])}
    t = build_out(f)
    assert t.delivered and [h.name for h in t.hops][:5] == [
        "VM port", "integration bridge", "router port qr-aaaaaaaa-aa", "route lookup", "SNAT"]
    assert snat_source(f) == ("10.255.253.84", "float-SNAT element 10.0.2.84 : 10.255.253.84 "
                                               "of map fip_snat")
    f.router.snat = {}
    f.router.snat_nets = [("10.0.2.0/24", "10.255.253.11")]
    assert snat_source(f)[0] == "10.255.253.11"
    f.routes["forward"] = Route("qr-cccccccc-cc")  # east-west: not out by the gateway
    t = build_out(f)
    assert t.stopped == "route lookup" and "east-west" in t.reason


OVN_TRACE = '''# tcp,reg14=0x1,dl_src=02:00:00:00:00:01,nw_dst=203.0.113.11
ingress(dp="ext", inport="provnet-e")
-------------------------------------
25. ls_in_l2_lkup (northd.c:8997): eth.dst == fa:16:3e:1d:a4:0d, priority 50, uuid 1
    outport = "gw";
    output;
egress(dp="ext", inport="provnet-e", outport="gw")
    /* output to "gw", type "patch" */
ingress(dp="r", inport="lrp-gw")
 7. lr_in_dnat (northd.c:13779): ip && ip4.dst == 203.0.113.11, priority 100, uuid 4
    ct_dnat_in_czone(198.51.100.10);
egress(dp="ten", inport="rp", outport="vm1")
    /* output to "vm1", type "" */
'''


def test_ovn_trace_parsed_into_hops():
    from floatip.core.trace_ovn import OvnFacts, build_ovn, parse_ovn_trace
    lt = parse_ovn_trace(OVN_TRACE, "ovn-trace ...")
    assert lt.dnat == ("198.51.100.10", "r ingress table 7 lr_in_dnat: ip && ip4.dst == "
                                        "203.0.113.11")
    assert lt.outputs == [("ext", "gw", "patch"), ("ten", "vm1", "")]
    q = Query("upstream", "203.0.113.11", "tcp", 80)
    f = OvnFacts(q, "203.0.113.1", {"203.0.113.11": ("dnat_and_snat", "198.51.100.10")},
                 "neutron-r", ["203.0.113.10/24"], {"vm1"}, lt,
                 api=ApiFip("f", "ACTIVE", "198.51.100.10", "r", "vm1"))
    t = build_ovn(f)
    assert t.delivered and [h.name for h in t.hops] == [
        "ARP", "external logical switch", "DNAT", "tenant logical switch"]
    f.nat = {}
    t = build_ovn(f)
    assert t.stopped == "ARP" and "no dnat_and_snat NAT row" in t.disagreements[0]


FW = """bridge("br-int")
----------------
 0. in_port=3, priority 100
    goto_table:60
60. dl_dst=fa:16:3e:00:00:84, priority 90
    goto_table:81
81. ip,reg5=0x1, priority 90
    ct(table=82,zone=NXM_NX_REG6[0..15])
Datapath actions: ct(zone=3),recirc(0x1)
recirc(0x1) - resume conntrack with default ct_state=trk|new
82. ct_state=+new-est,ip,reg5=0x1, priority 40
    drop
Datapath actions: %s
"""


def test_security_groups_verdict_is_a_hop():
    from floatip.core.trace import firewall_hop
    f = facts()
    f.traces["int_out"] = parse_of_trace("br-int", "in_port=qr", FW % "drop", odp()["br-int"])
    t = build(f)
    assert t.stopped == "security groups" and "DROPPED by the firewall" in t.reason
    assert "table 82 ct_state=+new-est,ip,reg5=0x1, priority 40: drop" in t.reason
    f.traces["int_out"] = parse_of_trace("br-int", "in_port=qr", FW % "4", odp()["br-int"])
    t = build(f)
    assert t.delivered and t.hops[6].name == "security groups" and t.hops[6].ok
    assert firewall_hop(parse_of_trace("br-int", "f", OF % "4", odp()["br-int"]), "vm4",
                        "forward") is None  # no firewall flow on the path: no hop
