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


def test_forwarding_deltas_keep_the_verdicts_a_full_check_gives():
    """Random forwardings added, changed and removed one delta at a time (``Desired``): the
    forwardings left out (overlaps, addresses off the router) are those a full check of
    the same state finds, and every forwarding whose place in the applied state changed is
    one the pass is told about (``forwarded``), so the element-wise pass misses none."""
    import random
    from floatip.agent.desired import Desired
    from floatip.core.document import load
    from floatip.core.model import PortForwarding
    rnd = random.Random(24)
    doc = {"networks": [{"name": "ext", "router:external": True,
                         "provider:physical_network": "physnet1"},
                        {"name": "ten"}],
           "subnets": [{"name": "exts", "network": "ext", "cidr": "203.0.113.0/24",
                        "gateway_ip": "203.0.113.1"},
                       {"name": "tens", "network": "ten", "cidr": "198.51.100.0/24",
                        "gateway_ip": "198.51.100.1"}],
           "ports": [{"name": "vm", "network": "ten", "fixed_ip": "198.51.100.7"}],
           "routers": [{"name": "r", "external_gateway_info": {"network": "ext",
                                                               "ip_address": "203.0.113.11"},
                        "interfaces": ["tens"]}],
           "floatingips": [{"floating_ip_address": "203.0.113.9", "port": None,
                            "port_forwardings": [{"protocol": "tcp",
                                                  "internal_port_name": "vm",
                                                  "internal_port": 22,
                                                  "external_port": 1}]}]}
    d = Desired()
    d.load({"state": load(doc), "generation": 0, "vm_ports": {}, "known_routers": set()})
    fid = next(iter(d.state.floatingips))
    port = d.state.floatingips[fid].port_forwardings[0].internal_port_id

    def applied() -> set:
        return set(d.clean().floatingips[fid].port_forwardings)
    for gen in range(1, 400):
        have = [p.id for p in d.state.floatingips[fid].port_forwardings]
        before = applied()
        if have and rnd.random() < 0.3:
            delta = {"upserts": {}, "deletes": {"port_forwardings": [rnd.choice(have)]}}
        else:
            lo = rnd.randint(1, 60)
            pf = PortForwarding(
                id=rnd.choice(have) if have and rnd.random() < 0.3 else f"pf-{gen:04d}",
                protocol=rnd.choice(("tcp", "udp")), external_port_start=lo,
                external_port_end=lo + rnd.choice((0, 0, 0, 3)),
                internal_ip_address=rnd.choice(["198.51.100.7"] * 9 + ["192.0.2.9"]),
                internal_port_start=22, internal_port_end=22, internal_port_id=port,
                floatingip_id=fid)
            delta = {"upserts": {"port_forwardings": {pf.id: pf}}, "deletes": {}}
        d.apply({"generation": gen, **delta})
        whole = Desired()
        whole.load({"state": d.state, "generation": gen, "vm_ports": {},
                    "known_routers": set()})
        assert d.invalid_pfs == whole.invalid_pfs, gen
        moved = {p.id for p in before ^ applied()}
        assert moved <= d.forwarded.get(fid, set()), (gen, moved, d.forwarded)
    assert d.invalid_pfs  # the run met both kinds of bad forwardings
    reasons = " ".join(d.invalid_pfs[fid].values())
    assert "overlap" in reasons and "on no subnet" in reasons
