"""QoS through the API (Neutron's qos, qos-bw-limit-direction, qos-default, qos-fip,
qos-gateway-ip): policies, bandwidth limit rules, rule types, ``qos_policy_id`` on floating
IPs and router gateways, Neutron's refusals and codes, the policy for other projects, and
the agents' state carrying each floating IP's and gateway's limits.

The server is the real one (uvicorn, agent off), noauth: X-Project-Id / X-Roles make the
caller a project's manager, member or reader."""
from __future__ import annotations

import uuid

import httpx
import pytest

from cloud import ok, refused, served_api

EXT = "203.0.113"
POL = "/v2.0/qos/policies"


@pytest.fixture(scope="module")
def api(request, tmp_path_factory):
    yield from served_api(request, tmp_path_factory, "qs-api")


def project(roles: str = "manager,member,reader") -> dict:
    return {"X-Project-Id": f"qs-{uuid.uuid4().hex[:8]}", "X-Roles": roles}


@pytest.fixture(scope="module")
def world(api):
    p = project()
    ext = ok(api.post("/v2.0/networks", json={"network": {
        "name": "qs-ext", "router:external": True}}), 201)["network"]
    ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": ext["id"], "cidr": f"{EXT}.0/24", "ip_version": 4}}), 201)
    return {"h": p, "ext": ext}


def new_policy(api, h, **attrs) -> dict:
    return ok(api.post(POL, json={"policy": {"name": "qs", **attrs}}, headers=h), 201)["policy"]


def test_policy_and_rules(api, world):
    h = world["h"]
    p = new_policy(api, h, description="limits")
    assert p["rules"] == [] and p["shared"] is False and p["is_default"] is False
    assert p["project_id"] == h["X-Project-Id"]
    rules = f"{POL}/{p['id']}/bandwidth_limit_rules"
    eg = ok(api.post(rules, json={"bandwidth_limit_rule": {"max_kbps": 2000}}, headers=h),
            201)["bandwidth_limit_rule"]
    assert eg["direction"] == "egress" and eg["max_burst_kbps"] == 0
    ing = ok(api.post(rules, json={"bandwidth_limit_rule": {
        "max_kbps": 1000, "max_burst_kbps": 100, "direction": "ingress"}}, headers=h),
        201)["bandwidth_limit_rule"]
    # one rule per direction
    msg = refused(api.post(rules, json={"bandwidth_limit_rule": {
        "max_kbps": 5, "direction": "ingress"}}, headers=h), 409, "QoSRulesConflict")
    assert ing["id"] in msg
    refused(api.put(f"{rules}/{eg['id']}", json={"bandwidth_limit_rule": {
        "direction": "ingress"}}, headers=h), 409, "QoSRulesConflict")
    got = ok(api.get(f"{POL}/{p['id']}", headers=h))["policy"]
    assert {(r["type"], r["direction"], r["max_kbps"]) for r in got["rules"]} == {
        ("bandwidth_limit", "egress", 2000), ("bandwidth_limit", "ingress", 1000)}
    assert got["revision_number"] > p["revision_number"]
    up = ok(api.put(f"{rules}/{eg['id']}", json={"bandwidth_limit_rule": {"max_kbps": 3000}},
                    headers=h))["bandwidth_limit_rule"]
    assert up["max_kbps"] == 3000 and up["direction"] == "egress"
    listed = ok(api.get(rules, params={"direction": "ingress"}, headers=h))
    assert [r["id"] for r in listed["bandwidth_limit_rules"]] == [ing["id"]]
    # bad input: Neutron's 400s, nothing changed
    for body in ({"max_kbps": -1}, {"max_kbps": "x"}, {"max_kbps": 1, "direction": "up"},
                 {"max_kbps": 1, "bogus": 1}, {}):
        r = api.post(rules, json={"bandwidth_limit_rule": body}, headers=h)
        assert r.status_code == 400, (body, r.text)
    refused(api.get(f"{rules}/{uuid.uuid4()}", headers=h), 404, "QosRuleNotFound")
    ok(api.delete(f"{rules}/{ing['id']}", headers=h), 204)
    assert len(ok(api.get(f"{POL}/{p['id']}", headers=h))["policy"]["rules"]) == 1
    # rule types as Neutron's: a reader lists them (get_rule_type is role:reader), only an
    # admin shows one (its drivers); a caller without the reader role lists none
    assert ok(api.get("/v2.0/qos/rule-types"))["rule_types"] == [{"type": "bandwidth_limit"}]
    ok(api.get("/v2.0/qos/rule-types/bandwidth_limit"))
    refused(api.get("/v2.0/qos/rule-types/dscp_marking"), 404, "QosRuleTypeNotFound")
    assert ok(api.get("/v2.0/qos/rule-types", headers=h))["rule_types"] == \
        [{"type": "bandwidth_limit"}]
    refused(api.get("/v2.0/qos/rule-types/bandwidth_limit", headers=h), 403, "NotAuthorized")
    assert ok(api.get("/v2.0/qos/rule-types", headers={**h, "X-Roles": "member"}))[
        "rule_types"] == []
    # unsupported rule types have no resource
    assert api.post(f"{POL}/{p['id']}/dscp_marking_rules", json={
        "dscp_marking_rule": {"dscp_mark": 8}}, headers=h).status_code == 404
    exts = {e["alias"] for e in ok(api.get("/v2.0/extensions"))["extensions"]}
    assert {"qos", "qos-fip", "qos-gateway-ip", "qos-bw-limit-direction",
            "qos-default"} <= exts


def test_default_and_visibility(api, world):
    h, other = world["h"], project()
    d = new_policy(api, h, is_default=True)
    refused(api.post(POL, json={"policy": {"name": "qs2", "is_default": True}}, headers=h),
            409, "QoSPolicyDefaultAlreadyExists")
    second = new_policy(api, h)
    refused(api.put(f"{POL}/{second['id']}", json={"policy": {"is_default": True}},
                    headers=h), 409, "QoSPolicyDefaultAlreadyExists")
    ok(api.put(f"{POL}/{d['id']}", json={"policy": {"is_default": False}}, headers=h))
    ok(api.put(f"{POL}/{second['id']}", json={"policy": {"is_default": True}}, headers=h))
    # another project's private policy: not found; a shared one: visible, not writable
    refused(api.get(f"{POL}/{d['id']}", headers=other), 404, "QosPolicyNotFound")
    # a rule create on it is refused by the rule's policy first, an update or delete of its
    # rule by its visibility first (Neutron's order: those read what they change)
    rules = f"{POL}/{d['id']}/bandwidth_limit_rules"
    refused(api.post(rules, json={"bandwidth_limit_rule": {"max_kbps": 1}}, headers=other),
            403, "PolicyNotAuthorized")
    rule = ok(api.post(rules, json={"bandwidth_limit_rule": {"max_kbps": 1}}, headers=h),
              201)["bandwidth_limit_rule"]
    refused(api.put(f"{rules}/{rule['id']}", json={"bandwidth_limit_rule": {"max_kbps": 2}},
                    headers=other), 404, "QosPolicyNotFound")
    refused(api.delete(f"{rules}/{rule['id']}", headers=other), 404, "QosPolicyNotFound")
    assert d["id"] not in {x["id"] for x in ok(api.get(POL, headers=other))["policies"]}
    shared = ok(api.post(POL, json={"policy": {"name": "qs-shared", "shared": True,
                                               "project_id": h["X-Project-Id"]}}),
                201)["policy"]
    assert ok(api.get(f"{POL}/{shared['id']}", headers=other))["policy"]["shared"] is True
    refused(api.put(f"{POL}/{shared['id']}", json={"policy": {"name": "x"}}, headers=other),
            403, "PolicyNotAuthorized")
    refused(api.post(f"{POL}/{shared['id']}/bandwidth_limit_rules", json={
        "bandwidth_limit_rule": {"max_kbps": 1}}, headers=other), 403, "PolicyNotAuthorized")
    # a member without the manager role may not create one (Neutron 29's default)
    refused(api.post(POL, json={"policy": {"name": "qs"}},
                     headers={**other, "X-Roles": "member,reader"}), 403, "PolicyNotAuthorized")
    # another project in the body: admins only
    r = api.post(POL, json={"policy": {"name": "qs", "project_id": "someone"}}, headers=other)
    assert r.status_code == 400, r.text


def test_floating_ip_and_gateway(api, world):
    h, other = world["h"], project()
    p = new_policy(api, h)
    ok(api.post(f"{POL}/{p['id']}/bandwidth_limit_rules", json={
        "bandwidth_limit_rule": {"max_kbps": 1000, "direction": "ingress"}}, headers=h), 201)
    fip = ok(api.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": world["ext"]["id"], "qos_policy_id": p["id"]}}, headers=h),
        201)["floatingip"]
    assert fip["qos_policy_id"] == p["id"]
    router = ok(api.post("/v2.0/routers", json={"router": {"name": "qs", "external_gateway_info": {
        "network_id": world["ext"]["id"], "qos_policy_id": p["id"]}}}, headers=h),
        201)["router"]
    assert router["external_gateway_info"]["qos_policy_id"] == p["id"]
    # in use: 409, names what uses it
    msg = refused(api.delete(f"{POL}/{p['id']}", headers=h), 409, "QosPolicyInUse")
    assert fip["id"] in msg or router["id"] in msg
    # the agents' state: each one's limits
    state = ok(api.get("/floatip/v1/state"))["state"]
    f = state["floatingips"][fip["id"]]
    assert [tuple(x) for x in f["qos"]] == [("ingress", 1000, 0)]
    assert [tuple(x) for x in state["routers"][router["id"]]["gateway_qos"]] == [
        ("ingress", 1000, 0)]
    # a rule changed: the change feed carries the floating IP and router with the new limit
    gen = ok(api.get("/floatip/v1/changes", params={"timeout": 0}))["generation"]
    rule = ok(api.get(f"{POL}/{p['id']}/bandwidth_limit_rules", headers=h))[
        "bandwidth_limit_rules"][0]
    ok(api.put(f"{POL}/{p['id']}/bandwidth_limit_rules/{rule['id']}", json={
        "bandwidth_limit_rule": {"max_kbps": 1500}}, headers=h))
    delta = ok(api.get("/floatip/v1/changes", params={"generation": gen, "objects": "true",
                                                      "timeout": 5}))
    assert [tuple(x) for x in delta["upserts"]["floatingips"][fip["id"]]["qos"]] == [
        ("ingress", 1500, 0)]
    assert [tuple(x) for x in delta["upserts"]["routers"][router["id"]]["gateway_qos"]] == [
        ("ingress", 1500, 0)]
    # another project's private policy: 404 and nothing changes
    theirs = new_policy(api, other)
    refused(api.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {
        "qos_policy_id": theirs["id"]}}, headers=h), 404, "QosPolicyNotFound")
    refused(api.put(f"/v2.0/routers/{router['id']}", json={"router": {"external_gateway_info": {
        "network_id": world["ext"]["id"], "qos_policy_id": theirs["id"]}}}, headers=h),
        404, "QosPolicyNotFound")
    assert ok(api.get(f"/v2.0/floatingips/{fip['id']}", headers=h))["floatingip"][
        "qos_policy_id"] == p["id"]
    # detached: the policy can go
    ok(api.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"qos_policy_id": None}},
               headers=h))
    ok(api.put(f"/v2.0/routers/{router['id']}", json={"router": {"external_gateway_info": {
        "network_id": world["ext"]["id"], "qos_policy_id": None}}}, headers=h))
    state = ok(api.get("/floatip/v1/state"))["state"]
    assert not state["floatingips"][fip["id"]].get("qos")
    assert not state["routers"][router["id"]].get("gateway_qos")
    ok(api.delete(f"{POL}/{p['id']}", headers=h), 204)
    refused(api.get(f"{POL}/{p['id']}", headers=h), 404, "QosPolicyNotFound")


def test_policy_tags(api, world):
    """standard-attr-tag on QoS policies: /v2.0/qos/policies/{id}/tags, tags on create,
    shown and listed, the tags filters; another project sees a shared one's, changes none."""
    h, other = world["h"], project()
    p = new_policy(api, h, tags=["red", "blue"], shared=True)
    assert p["tags"] == ["blue", "red"]
    tag_url = f"{POL}/{p['id']}/tags"
    assert ok(api.get(tag_url, headers=h))["tags"] == ["blue", "red"]
    ok(api.put(f"/v2.0/policies/{p['id']}/tags/green", headers=h), 201)  # Neutron's path
    plain = new_policy(api, h)
    assert sorted(ok(api.get(f"{POL}/{p['id']}", headers=h))["policy"]["tags"]) == \
        ["blue", "green", "red"]
    got = ok(api.get(POL, headers=h, params={"tags": "red,green"}))["policies"]
    assert [x["id"] for x in got] == [p["id"]]
    got = ok(api.get(POL, headers=h, params={"not-tags-any": "red"}))["policies"]
    assert plain["id"] in {x["id"] for x in got} and p["id"] not in {x["id"] for x in got}
    assert ok(api.get(tag_url, headers=other))["tags"] == ["blue", "green", "red"]
    refused(api.put(f"{tag_url}/mine", headers=other), 403, "PolicyNotAuthorized")
    ok(api.delete(tag_url, headers=h), 204)
    assert ok(api.get(f"{POL}/{p['id']}", headers=h))["policy"]["tags"] == []
