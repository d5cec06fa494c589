"""The nftables driver's pure half, the event-path planner and the iptables rule deltas:
no root, no kernel."""
from __future__ import annotations

import dataclasses

from floatip.dataplane.nat import iptables
from floatip.agent.reconciler import _changed
from floatip.core.layout import NatSpec, RouterLayout, Device
from floatip.dataplane.nat.nftables import (NftTable, NftablesDriver, diff_script, element_script, fip_delta,
                              parse, render, render_script)
from floatip.core.plan import plan_fips

QG = "qg-1234567890a"
SPEC = NatSpec(QG, "203.0.113.11", ("198.51.100.0/24",),
               (("203.0.113.84", "198.51.100.84"), ("203.0.113.85", "198.51.100.85")))

# What nft 1.0 prints for a table like SPEC's (handles and blank lines as nft writes them).
LISTED = f"""table ip floatip {{ # handle 7
	map fip_dnat {{ # handle 1
		type ipv4_addr : ipv4_addr
		elements = {{ 203.0.113.85 : 198.51.100.85, 203.0.113.84 : 198.51.100.84 }}
	}}

	map fip_snat {{ # handle 2
		type ipv4_addr : ipv4_addr
		elements = {{ 198.51.100.84 : 203.0.113.84,
			     198.51.100.85 : 203.0.113.85 }}
	}}

	set snat_nets {{ # handle 3
		type ipv4_addr
		flags interval
		elements = {{ 198.51.100.0/25, 198.51.100.128/25 }}
	}}

	map pf_dnat_port {{
		type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
	}}

	map pf_dnat {{
		type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
		flags interval
	}}

	chain mangle_prerouting {{ # handle 4
		type filter hook prerouting priority mangle; policy accept;
		iifname "{QG}" meta mark set meta mark & 0xffff0002 | 0x00000002 # handle 9
		ip daddr 169.254.169.254 iifname "qr-*" tcp dport 80 meta mark set meta mark & 0xffff0001 | 0x00000001 # handle 10
	}}

	chain filter_input {{
		type filter hook input priority filter; policy accept;
		meta mark & 0x0000ffff == 0x00000001 accept
		tcp dport 9697 drop
	}}

	chain nat_prerouting {{
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 169.254.169.254 iifname "qr-*" tcp dport 80 redirect to :9697
		meta l4proto {{ tcp, udp }} dnat ip to ip daddr . meta l4proto . th dport map @pf_dnat_port
		meta l4proto {{ tcp, udp }} dnat ip to ip daddr . meta l4proto . th dport map @pf_dnat
		dnat to ip daddr map @fip_dnat
	}}

	chain nat_output {{
		type nat hook output priority -100; policy accept;
		meta l4proto {{ tcp, udp }} dnat ip to ip daddr . meta l4proto . th dport map @pf_dnat_port
		meta l4proto {{ tcp, udp }} dnat ip to ip daddr . meta l4proto . th dport map @pf_dnat
		dnat to ip daddr map @fip_dnat
	}}

	chain nat_postrouting {{
		type nat hook postrouting priority srcnat; policy accept;
		oifname != "{QG}" ct status ! dnat accept
		snat to ip saddr map @fip_snat
		ip saddr @snat_nets oifname "{QG}" snat to 203.0.113.11 fully-random
		meta mark & 0x0000ffff != 0x00000002 ct status dnat snat to 203.0.113.11 fully-random
	}}
}}
"""


def test_render_has_neutron_semantics():
    t = render(SPEC)
    post = t.chain_rules["nat_postrouting"]
    assert post[1] == f'oifname != "{QG}" ct status ! dnat accept'  # no NAT east-west
    assert "snat to ip saddr map @fip_snat" in post
    assert f'ip saddr @snat_nets oifname "{QG}" snat to 203.0.113.11 fully-random' in post
    assert post[-1].startswith("meta mark & 0x0000ffff != 0x00000002 ct status dnat snat")  # hairpin
    assert "dnat to ip daddr map @fip_dnat" in t.chain_rules["nat_prerouting"]
    assert "dnat to ip daddr map @fip_dnat" in t.chain_rules["nat_output"]
    assert t.chain_rules["nat_prerouting"][1].endswith("redirect to :9697")  # metadata first
    assert t.chain_rules["filter_input"][1:] == ("meta mark & 0x0000ffff == 0x00000001 accept",
                                                 "tcp dport 9697 drop")
    assert t.dnat == {"203.0.113.84": "198.51.100.84", "203.0.113.85": "198.51.100.85"}
    assert t.snat == {"198.51.100.84": "203.0.113.84", "198.51.100.85": "203.0.113.85"}
    assert t.nets == frozenset({"198.51.100.0/24"})


def test_render_without_gateway_or_snat():
    t = render(NatSpec(None, None, (), ()))
    assert not any("qg" in r or "snat to 2" in r for c in t.chain_rules.values() for r in c)
    assert t.dnat == {} and t.nets == frozenset()
    t = render(dataclasses.replace(SPEC, snat_cidrs=()), fully_random=False)
    post = t.chain_rules["nat_postrouting"]
    assert not any("@snat_nets" in r or "ct status dnat snat" in r for r in post)


def test_render_rejects_a_strange_device_name():
    import pytest
    with pytest.raises(ValueError):
        render(dataclasses.replace(SPEC, gateway_device='qg" accept'))


def test_listed_table_parses_to_the_rendered_one():
    have = parse(LISTED)
    want = render(SPEC)
    assert have.present
    assert have.chain_rules == want.chain_rules and have.sets == want.sets
    assert have.dnat == want.dnat and have.snat == want.snat
    assert have.nets == want.nets  # two /25 collapse to the /24
    assert diff_script(want, have) is None


def test_rendered_script_round_trips():
    want = render(SPEC)
    again = parse(render_script(want))
    assert diff_script(want, again) is None
    assert parse("").present is False


def test_missing_table_is_created_in_one_block():
    script = diff_script(render(SPEC), NftTable())
    assert script.startswith("table ip floatip {") and "delete table" not in script
    assert "elements = { 203.0.113.84 : 198.51.100.84, 203.0.113.85 : 198.51.100.85 }" in script


def test_one_more_fip_is_an_element_add_not_a_rebuild():
    have = parse(LISTED)
    spec = dataclasses.replace(SPEC, fips=SPEC.fips + (("203.0.113.86", "198.51.100.86"),))
    script = diff_script(render(spec), have)
    assert script == ("add element ip floatip fip_dnat { 203.0.113.86 : 198.51.100.86 }\n"
                      "add element ip floatip fip_snat { 198.51.100.86 : 203.0.113.86 }\n")


def test_moved_and_removed_fips_are_element_deletes():
    have = parse(LISTED)
    spec = dataclasses.replace(SPEC, fips=(("203.0.113.84", "198.51.100.99"),))
    script = diff_script(render(spec), have)
    lines = script.splitlines()
    assert lines[0] == "delete element ip floatip fip_dnat { 203.0.113.84, 203.0.113.85 }"
    assert lines[1] == "delete element ip floatip fip_snat { 198.51.100.84, 198.51.100.85 }"
    assert lines[2:] == ["add element ip floatip fip_dnat { 203.0.113.84 : 198.51.100.99 }",
                         "add element ip floatip fip_snat { 198.51.100.99 : 203.0.113.84 }"]
    assert "flush" not in script and "table" not in script.replace("ip floatip", "")


def test_static_changes_flush_only_the_changed_chain():
    have = parse(LISTED)
    spec = dataclasses.replace(SPEC, gateway_ip="203.0.113.12", snat_cidrs=("198.51.100.0/25",))
    script = diff_script(render(spec), have)
    assert "flush chain ip floatip nat_postrouting" in script
    assert "flush chain ip floatip nat_prerouting" not in script
    assert "flush set ip floatip snat_nets" in script
    assert "add element ip floatip snat_nets { 198.51.100.0/25 }" in script
    assert "delete table" not in script


def test_tampered_hooks_replace_the_table_atomically():
    have = parse(LISTED.replace("priority dstnat", "priority 10"))
    script = diff_script(render(SPEC), have)
    assert script.startswith("table ip floatip {}\ndelete table ip floatip\ntable ip floatip {")


def test_fip_delta():
    have = parse(LISTED)
    # add one, remove one, move none
    d = fip_delta(have, {"203.0.113.86": "198.51.100.86"}, {"203.0.113.85"})
    assert d == ({"203.0.113.86": "198.51.100.86"}, {"203.0.113.85"},
                 {"198.51.100.86": "203.0.113.86"}, {"198.51.100.85"})
    # move .84 to another fixed ip
    d = fip_delta(have, {"203.0.113.84": "198.51.100.90"}, set())
    assert d == ({"203.0.113.84": "198.51.100.90"}, {"203.0.113.84"},
                 {"198.51.100.90": "203.0.113.84"}, {"198.51.100.84"})
    # a second fip for a fixed ip that already has one: DNAT only, SNAT stays with the first
    d = fip_delta(have, {"203.0.113.90": "198.51.100.84"}, set())
    assert d == ({"203.0.113.90": "198.51.100.84"}, set(), {}, set())
    # nothing to do
    assert fip_delta(have, {"203.0.113.84": "198.51.100.84"}, {"203.0.113.7"}) == ({}, set(), {}, set())
    assert element_script({}, set(), {}, set()) == ""


def _layout(spec=SPEC):
    qg = Device(QG, "qg", "p", "br-ex", None, "fa:16:3e:00:00:01", 1500,
                frozenset({"203.0.113.11/24"}))
    return RouterLayout("r1", "qrouter-r1", (qg,), ("203.0.113.1", QG), spec,
                        frozenset(f for f, _ in spec.fips))


def test_event_path_plans_elements_addresses_and_conntrack():
    drv = NftablesDriver(use_lib=False)
    have = parse(LISTED)
    programmed = dict(SPEC.fips)
    steps = plan_fips(_layout(), drv, have, programmed,
                      {"203.0.113.86": "198.51.100.86", "203.0.113.84": "198.51.100.99"},
                      {"203.0.113.85"})
    assert [s.action for s in steps] == ["nft", "add_fips", "del_fips", "flush_conntrack"]
    assert steps[1].args == (QG, "fa:16:3e:00:00:01", ("203.0.113.86",))
    assert steps[2].args == (QG, ("203.0.113.85",))
    assert steps[3].args == ("203.0.113.84", "203.0.113.85")
    assert "flush" not in steps[0].args[0] and "add element" in steps[0].args[0]
    assert plan_fips(_layout(), drv, have, programmed, {"203.0.113.84": "198.51.100.84"}, set()) == []


def test_iptables_event_path_appends_and_deletes_rules():
    from floatip.dataplane.nat.iptables import IptablesDriver
    drv = IptablesDriver()
    rs = iptables.render(SPEC)
    step = drv.plan_fips("qrouter-r1", rs, {"203.0.113.86": "198.51.100.86"}, {"203.0.113.85"},
                         dict(SPEC.fips))
    text = step.args[0]
    assert text.startswith("*nat\n") and text.endswith("COMMIT\n")
    assert "-D floatip-l3-PREROUTING -d 203.0.113.85/32 -j DNAT --to-destination 198.51.100.85" in text
    assert "-A floatip-l3-float-snat -s 198.51.100.86/32 -j SNAT --to-source 203.0.113.86" in text
    assert ":floatip" not in text  # no chain is flushed


def test_iptables_fip_rules_are_order_free():
    """A FIP appended at the end of its chains equals the sorted render: no rewrite."""
    spec = dataclasses.replace(SPEC, fips=(("203.0.113.9", "198.51.100.9"),) + SPEC.fips)
    have = iptables.render(SPEC)
    for chain, rule in iptables.fip_rules("203.0.113.9", "198.51.100.9"):
        have.chains[("nat", chain)].append(rule)
    assert iptables.restore_input(iptables.render(spec), have) is None
    # one more FIP against the rendered rules: appends only, no chain rewritten
    more = dataclasses.replace(spec, fips=spec.fips + (("203.0.113.99", "198.51.100.99"),))
    text = iptables.restore_input(iptables.render(more), iptables.render(spec))
    assert [l for l in text.splitlines() if l.startswith(("-A", "-D", ":"))] == [
        r for _, r in iptables.fip_rules("203.0.113.99", "198.51.100.99")]


def test_changed_keys():
    a, b, c = object(), object(), object()
    assert _changed({"a": a, "b": b}, {"a": a, "b": b}) == set()
    assert _changed({"a": a, "b": b}, {"a": a, "b": c}) == {"b"}
    assert _changed({"a": a}, {"a": a, "c": c}) == {"c"}
    assert _changed({"a": a, "b": b}, {"a": a}) == {"b"}
    assert _changed({"a": a, "b": b}, {"a": a, "c": c}) == {"b", "c"}
    assert _changed({"x": (1, 2)}, {"x": (1, 2)}) == set()  # equal, not identical
