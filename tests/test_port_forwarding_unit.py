"""Port forwardings in the NAT drivers' pure halves: no root, no kernel."""
from __future__ import annotations

import dataclasses

from floatip.core.layout import NatSpec, forward_elements
from floatip.dataplane.nat import iptables
from floatip.dataplane.nat.nftables import diff_script, parse, render, render_script

QG = "qg-1234567890a"
FWD = (("203.0.113.9", "tcp", 2222, 2222, "100.64.9.3", 22, 22, "a" * 8 + "-1111"),
       ("203.0.113.9", "tcp", 8000, 8010, "100.64.9.4", 80, 80, "b" * 8 + "-2222"),
       ("203.0.113.9", "udp", 6000, 6002, "100.64.9.4", 5000, 5002, "c" * 8 + "-3333"))
SPEC = NatSpec(QG, "203.0.113.2", ("100.64.9.0/24",), (), FWD)


def test_elements_one_per_forwarding_and_per_port_for_n_to_n():
    assert forward_elements(FWD) == {
        ("203.0.113.9", "tcp", 2222, 2222): ("100.64.9.3", 22),
        ("203.0.113.9", "tcp", 8000, 8010): ("100.64.9.4", 80),   # 1-N: one interval
        ("203.0.113.9", "udp", 6000, 6000): ("100.64.9.4", 5000),  # N-N: port i to port i
        ("203.0.113.9", "udp", 6001, 6001): ("100.64.9.4", 5001),
        ("203.0.113.9", "udp", 6002, 6002): ("100.64.9.4", 5002)}


def test_nft_table_round_trips_and_changes_are_element_adds_and_deletes():
    want = render(SPEC)
    text = render_script(want)
    assert "203.0.113.9 . tcp . 8000-8010 : 100.64.9.4 . 80" in text
    assert parse(text).fwd == want.fwd
    assert diff_script(want, parse(text)) is None
    fewer = render(dataclasses.replace(SPEC, forwards=FWD[:1]))
    script = diff_script(fewer, parse(text))
    # single ports (N-N ranges unrolled) in the hash map, a range to one port in the
    # interval map: new flows cost the same through 10 forwardings and through 1,000
    assert script.splitlines() == [
        "delete element ip floatip pf_dnat_port { "
        "203.0.113.9 . udp . 6000, 203.0.113.9 . udp . 6001, 203.0.113.9 . udp . 6002 }",
        "delete element ip floatip pf_dnat { 203.0.113.9 . tcp . 8000-8010 }"]
    script = diff_script(want, parse(render_script(fewer)))
    assert script.startswith("add element ip floatip pf_dnat_port {") and "flush" not in script
    assert "\nadd element ip floatip pf_dnat { 203.0.113.9 . tcp . 8000-8010 : " in script


def test_iptables_rules_are_neutrons_and_read_back():
    rs = iptables.render(SPEC)
    pre = rs.chains[("nat", "floatip-l3-PREROUTING")]
    assert pre[1] == "-A floatip-l3-PREROUTING -j floatip-l3-fip-pf"
    chains = [r.split()[-1] for r in rs.chains[("nat", "floatip-l3-fip-pf")]]
    assert chains == ["floatip-l3-pf-aaaaaaaa1111", "floatip-l3-pf-bbbbbbbb2222",
                      "floatip-l3-pf-cccccccc3333"]
    assert all(len(c) <= 28 for c in chains)
    assert rs.chains[("nat", "floatip-l3-pf-cccccccc3333")] == [
        "-A floatip-l3-pf-cccccccc3333 -d 203.0.113.9/32 -p udp -m udp --dport 6000:6002 "
        "-j DNAT --to-destination 100.64.9.4:5000-5002/6000"]
    assert rs.forward_map() == forward_elements(FWD)
    # one forwarding removed: its chain goes, the others stay as they are
    fewer = iptables.render(dataclasses.replace(SPEC, forwards=FWD[1:]))
    text = iptables.restore_input(fewer, rs)
    assert "-X floatip-l3-pf-aaaaaaaa1111" in text
    assert "-D floatip-l3-fip-pf -j floatip-l3-pf-aaaaaaaa1111" in text
    assert "pf-bbbbbbbb2222 -d" not in text
