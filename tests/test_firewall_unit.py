"""core.firewall without root: the flows a port, a rule and a member change produce."""
from __future__ import annotations

import random

from floatip.core.firewall import (COOKIE_MASK, COOKIE_PREFIX, FwPort, Rule, T_EGRESS,
                                   T_INGRESS_RULES, compile_all, link_local, port_masks,
                                   protocol_number, member_addresses)

MAC = "fa:16:3e:00:00:01"


def port(i: int = 1, rules=(), **kw) -> FwPort:
    return FwPort(f"p{i}", 10 + i, f"fa:16:3e:00:00:{i:02x}", 3, (f"198.51.100.{i}",),
                  rules=tuple(rules), **kw)


def texts(flows) -> list[str]:
    return [f.text for f in flows]


def covered(masks: list[str]) -> set[int]:
    out = set()
    for m in masks:
        v, _, mask = m.partition("/")
        v, mask = int(v, 0), int(mask, 0) if mask else 0xFFFF
        out |= {p for p in range(v, v + 0x10000 - mask) if p & mask == v}
    return out


def test_port_ranges_become_exact_masks():
    rnd = random.Random(7)
    for lo, hi in [(22, 22), (1, 65535), (0, 65535), (1000, 1999), (8080, 8089)] + \
            [tuple(sorted((rnd.randint(0, 65535), rnd.randint(0, 65535)))) for _ in range(50)]:
        masks = port_masks(lo, hi)
        if (lo, hi) == (0, 65535):
            assert masks == []
            continue
        assert covered(masks) == set(range(lo, hi + 1)), (lo, hi)
        assert len(masks) <= 32


def test_protocols_and_link_local_as_neutron_has_them():
    assert protocol_number("tcp", "IPv4") == 6 and protocol_number("132", "IPv4") == 132
    assert protocol_number("icmp", "IPv6") == 58 and protocol_number(None, "IPv4") is None
    assert link_local("fa:16:3e:11:22:33") == "fe80::f816:3eff:fe11:2233"


def test_anti_spoofing_of_a_port():
    p = port(1, pairs=(("203.0.113.0/28", "fa:16:3e:aa:aa:aa"),))
    t = "\n".join(texts(compile_all([p], {}).flows["port:p1"]))
    assert f"reg5=11,ip,dl_src={p.mac},nw_src=198.51.100.1" in t
    assert "arp,dl_src=fa:16:3e:00:00:01,arp_sha=fa:16:3e:00:00:01,arp_spa=198.51.100.1/32" in t
    assert "dl_src=fa:16:3e:aa:aa:aa,nw_src=203.0.113.0/28" in t   # the pair, with its MAC
    assert "icmp_type=136,nd_target=fe80::f816:3eff:fe00:1" in t
    assert "udp,tp_src=67,actions=drop" in t and "icmp_type=134,actions=drop" in t
    assert "dl_dst=fa:16:3e:aa:aa:aa" in t                          # ingress to the pair's MAC


def test_unfiltered_and_trusted_ports_get_no_flow():
    c = compile_all([port(1, filtered=False)], {})
    assert c.flows["port:p1"] == []


def test_stateless_port_skips_conntrack():
    r = Rule("ingress", "IPv4", "udp", 53, 53)
    flows = compile_all([port(1, [r], stateful=False)], {}).flows["port:p1"]
    assert not any("ct(" in f.actions or "ct_state" in f.match for f in flows)
    assert any("tp_dst=53" in f.match for f in flows)


def test_cookies_are_floatips_and_unique():
    c = compile_all([port(i, [Rule("ingress", "IPv4", remote_group_id="g")]) for i in range(5)],
                    {"g": [f"198.51.100.{i}" for i in range(5)]})
    flows = [f for fl in c.flows.values() for f in fl]
    assert all(f.cookie & COOKIE_MASK == COOKIE_PREFIX for f in flows)
    assert len({f.cookie for f in flows}) == len(flows)


def test_a_member_joining_a_1000_port_group_changes_one_flow():
    ports = [port(1, [Rule("ingress", "IPv4", "tcp", 22, 22, remote_group_id="g")])]
    members = {"g": [f"10.0.{i // 250}.{i % 250}" for i in range(1000)]}
    before = compile_all(ports, members).flows
    members["g"].append("10.9.9.9")
    after = compile_all(ports, members).flows
    changed = {o for o in set(before) | set(after) if before.get(o) != after.get(o)}
    assert changed == {f"member:{T_INGRESS_RULES}:10.9.9.9/32"}
    assert after[f"member:{T_INGRESS_RULES}:10.9.9.9/32"][0].actions.startswith("conjunction(")


def test_a_rule_change_touches_only_its_ports():
    g1 = [Rule("ingress", "IPv4", "tcp", 22, 22, "0.0.0.0/0")]
    ports = [port(1, g1), port(2, [])]
    before = compile_all(ports, {}).flows
    ports[0] = port(1, g1 + [Rule("ingress", "IPv4", "tcp", 80, 80, "192.0.2.0/24")])
    after = compile_all(ports, {}).flows
    assert {o for o in after if before.get(o) != after[o]} == {"port:p1"}
    added = set(texts(after["port:p1"])) - set(texts(before["port:p1"]))
    assert len(added) == 1 and "tp_dst=80" in added.pop()


def test_a_bad_rule_fails_its_port_alone_and_closed():
    good, bad = port(1, [Rule("ingress", "IPv4", "tcp", 22, 22)]), \
        port(2, [Rule("ingress", "IPv4", "nope")])
    c = compile_all([good, bad], {})
    assert set(c.errors) == {"p2"} and "nope" in c.errors["p2"]
    assert any("tp_dst=22" in f.match for f in c.flows["port:p1"])
    bad_flows = c.flows["port:p2"]
    assert bad_flows and all(f.table in (0, 60, 71, 81) for f in bad_flows)  # spoofing only
    assert any(f.table == T_EGRESS for f in bad_flows)


def test_identical_rule_matches_for_two_remote_groups_share_one_flow():
    rules = [Rule("ingress", "IPv4", "tcp", 22, 22, remote_group_id=g) for g in ("a", "b")]
    flows = compile_all([port(1, rules)], {"a": ["10.0.0.1"], "b": ["10.0.0.1"]}).flows
    conj = [f for f in flows["port:p1"] if "conjunction" in f.actions]
    assert len(conj) == 1 and conj[0].actions.count("conjunction") == 2
    member = flows[f"member:{T_INGRESS_RULES}:10.0.0.1/32"][0]
    assert member.actions.count("conjunction") == 2


def test_member_addresses_include_allowed_pairs():
    p = port(1, pairs=(("192.0.2.8/29", None),))
    assert member_addresses(p) == ["198.51.100.1", "192.0.2.8/29"]
