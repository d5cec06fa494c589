"""floatip's policy rules are Neutron 29's registered defaults, rule by rule.

tests/data/neutron_policy_defaults.json is derived from ``neutron.conf.policies.list_rules()``
and neutron_lib's base rules (neutron 29.0.0 from PyPI, in a throw-away venv; see its
``source``): every rule of the actions on the resources floatip implements, and every rule
without a scope (the parts). Any difference fails, but for the ones listed here with their
reason (and in docs/policy.md)."""
from __future__ import annotations

import json
from pathlib import Path

from oslo_policy import _parser

from floatip.service.policy import BASE, RULES, Policy

TABLE = json.loads((Path(__file__).parent / "data" / "neutron_policy_defaults.json").read_text())
NEUTRON = TABLE["rules"]

# Attributes floatip does not have: their rules are not registered (a body naming them is
# refused by the schema first).
ABSENT_ATTRIBUTES = {
    "pvlan", "pvlan_type", "pvlan_community",        # private VLANs
    "segments", "hints", "trusted", "resource_request",  # routed networks, placement, SR-IOV
    "data_plane_status", "evpn_vni",                  # data-plane status, BGP EVPN
    "enable_default_route_bfd", "enable_default_route_ecmp",  # multiple gateways
    "leak_routes", "router_id",                       # subnet route leaking, FIP router pick
}
# Rules floatip has and Neutron has not, with why.
FLOATIP_ONLY = {
    # floatip's metadata attributes: the port's project (and admins) only
    **{f"{a}_port:floatip:{x}": "floatip-metadata port attribute"
       for a in ("create", "get", "update") for x in ("user_data", "public_keys")},
    "get_router:status_reason": "floatip's status reason of a router",
    "get_floatingip:status_reason": "floatip's status reason of a floating IP",
    "update_security_group_rule": "floatip lets the description of a rule change",
    # Neutron 29 registers no rule for a QoS policy's tags: floatip checks them as the other
    # resources' tags (the policy's project; shared policies readable)
    **{f"{a}_policy:tags": "QoS policy tags" for a in ("create", "get", "update", "delete")},
}
# Rules that differ from Neutron's on purpose: none.
DIFFERENT: dict[str, str] = {}


def _norm(check: str) -> str:
    return " ".join(check.split())


def test_the_table_is_neutron_29():
    assert TABLE["neutron"].startswith("29."), TABLE["neutron"]
    assert len(NEUTRON) > 150


def test_every_rule_is_neutrons():
    diffs = []
    for name, rule in sorted(NEUTRON.items()):
        attr = name.split(":")[1] if ":" in name else ""
        if attr in ABSENT_ATTRIBUTES:
            assert name not in RULES, f"{name}: listed as absent but registered"
            continue
        if name in DIFFERENT:
            continue
        if name not in RULES:
            diffs.append(f"missing {name}: {rule['check_str']!r}")
        elif _norm(RULES[name]) != _norm(rule["check_str"]):
            diffs.append(f"{name}:\n  floatip {RULES[name]!r}\n  neutron {rule['check_str']!r}")
    for name in sorted(set(RULES) - set(NEUTRON)):
        if name not in FLOATIP_ONLY:
            diffs.append(f"floatip only, not listed: {name} = {RULES[name]!r}")
    assert not diffs, "\n".join(diffs)


def test_scopes_are_neutrons():
    """Every API rule is of project scope (a domain/system token passes none), the parts
    have none; floatip's own rules are project rules too."""
    for name, rule in NEUTRON.items():
        if name in RULES:
            assert (rule["scope_types"] or None) == (None if name in BASE else ["project"]), name
    enforcer = Policy().enforcer
    for name in RULES:
        registered = enforcer.registered_rules[name]
        assert registered.scope_types == (None if name in BASE else ["project"]), name


def test_every_rule_parses_to_what_it_says():
    """oslo.policy reads every rule (Neutron's ``field:`` check included): none becomes a
    ``!`` (refuse all) by a parse error."""
    for name, check in RULES.items():
        parsed = _parser.parse_rule(check)
        assert str(parsed) != "!" or check == "!", (name, check)
        assert "field:" not in check or "FieldCheck" in repr(type(parsed)) or \
            "field" in str(parsed), (name, str(parsed))
