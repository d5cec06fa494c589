"""Network RBAC policies through the API (Neutron's rbac-policies): a network shared with
project B only is seen (with its subnets) and used for ports by B, not by C; an external
network offered to B only takes B's router gateway and is hidden from C; Neutron's refusals
(duplicate, in use, unknown network, bad action/type, '*' for members) change nothing;
``shared: true`` is the ``*`` entry.

The server is the real one (uvicorn, agent off), noauth: X-Project-Id / X-Roles make the
caller a project's member; SQLite and PostgreSQL."""
from __future__ import annotations

import uuid

import httpx
import pytest

from cloud import ok, refused, served_api

RBAC = "/v2.0/rbac-policies"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory):
    yield from served_api(request, tmp_path_factory, "rb-api")


def project() -> dict:
    return {"X-Project-Id": uuid.uuid4().hex, "X-Roles": "member,reader"}


def ids(api, path: str, h: dict, key: str) -> set[str]:
    return {x["id"] for x in ok(api.get(path, headers=h))[key]}


def share(api, h, net_id: str, target: str, action: str = "access_as_shared") -> dict:
    return ok(api.post(RBAC, headers=h, json={"rbac_policy": {
        "object_type": "network", "object_id": net_id, "action": action,
        "target_tenant": target}}), 201)["rbac_policy"]


@pytest.fixture
def world(api):
    a, b, c = project(), project(), project()
    net = ok(api.post("/v2.0/networks", headers=a, json={"network": {"name": "rb-net"}}),
             201)["network"]
    sub = ok(api.post("/v2.0/subnets", headers=a, json={"subnet": {
        "network_id": net["id"], "cidr": "100.64.40.0/24", "ip_version": 4}}), 201)["subnet"]
    return {"a": a, "b": b, "c": c, "net": net, "sub": sub}


def test_a_network_shared_with_b_is_seen_and_used_by_b_only(api, world):
    a, b, c, net, sub = (world[k] for k in ("a", "b", "c", "net", "sub"))
    assert net["id"] not in ids(api, "/v2.0/networks", b, "networks")
    refused(api.get(f"/v2.0/networks/{net['id']}", headers=b), 404, "NetworkNotFound")
    pol = share(api, a, net["id"], b["X-Project-Id"])
    assert pol["target_tenant"] == b["X-Project-Id"] and "target_project" not in pol, pol
    assert pol["project_id"] == a["X-Project-Id"] and pol["object_type"] == "network"
    # B: the network (shared, as Neutron shows it to B) and its subnet, and a port on it
    seen = ok(api.get(f"/v2.0/networks/{net['id']}", headers=b))["network"]
    assert seen["shared"] is True, seen
    shared_for_b = ok(api.get("/v2.0/networks", headers=b, params={"shared": "True"}))
    assert net["id"] in {n["id"] for n in shared_for_b["networks"]}
    assert net["id"] not in ids(api, "/v2.0/networks?shared=false", b, "networks")
    assert net["id"] in ids(api, "/v2.0/networks?shared=false", a, "networks")
    assert net["id"] in ids(api, "/v2.0/networks", b, "networks")
    assert sub["id"] in ids(api, "/v2.0/subnets", b, "subnets")
    ok(api.get(f"/v2.0/subnets/{sub['id']}", headers=b))
    port = ok(api.post("/v2.0/ports", headers=b, json={"port": {
        "network_id": net["id"], "name": "rb-vm"}}), 201)["port"]
    assert port["project_id"] == b["X-Project-Id"]
    # C: nothing at all, and no port
    assert net["id"] not in ids(api, "/v2.0/networks", c, "networks")
    assert sub["id"] not in ids(api, "/v2.0/subnets", c, "subnets")
    refused(api.get(f"/v2.0/networks/{net['id']}", headers=c), 404, "NetworkNotFound")
    refused(api.get(f"/v2.0/subnets/{sub['id']}", headers=c), 404, "SubnetNotFound")
    refused(api.post("/v2.0/ports", headers=c, json={"port": {"network_id": net["id"]}}),
            404, "NetworkNotFound")
    # the owner still sees it unshared for everyone
    assert ok(api.get(f"/v2.0/networks/{net['id']}", headers=a))["network"]["shared"] is False
    # the entry is the owner's: listed for A, not for B or C
    assert pol["id"] in ids(api, RBAC, a, "rbac_policies")
    assert pol["id"] not in ids(api, RBAC, b, "rbac_policies")
    refused(api.get(f"{RBAC}/{pol['id']}", headers=c), 404, "RbacPolicyNotFound")
    # in use by B's port: 409 and the entry stays; then without the port it goes
    msg = refused(api.delete(f"{RBAC}/{pol['id']}", headers=a), 409, "RbacPolicyInUse")
    assert net["id"] in msg, msg
    assert pol["id"] in ids(api, RBAC, a, "rbac_policies")
    ok(api.delete(f"/v2.0/ports/{port['id']}", headers=b), 204)
    ok(api.delete(f"{RBAC}/{pol['id']}", headers=a), 204)
    refused(api.get(f"/v2.0/networks/{net['id']}", headers=b), 404, "NetworkNotFound")


def test_refusals_change_nothing(api, world):
    a, b, c, net = world["a"], world["b"], world["c"], world["net"]
    body = {"object_type": "network", "object_id": net["id"], "action": "access_as_shared",
            "target_tenant": b["X-Project-Id"]}
    share(api, a, net["id"], b["X-Project-Id"])
    refused(api.post(RBAC, headers=a, json={"rbac_policy": body}), 409, "DuplicateRbacPolicy")
    refused(api.post(RBAC, headers=a, json={"rbac_policy": {**body, "action": "own_it"}}),
            400, "InvalidActionForType")
    refused(api.post(RBAC, headers=a, json={"rbac_policy": {**body, "object_type": "qos"}}),
            400, "InvalidInput")
    refused(api.post(RBAC, headers=a, json={"rbac_policy": {**body, "target_tenant": "x y"}}),
            400, "InvalidInput")
    refused(api.post(RBAC, headers=a, json={"rbac_policy": {
        **body, "object_id": str(uuid.uuid4())}}), 404, "NetworkNotFound")
    # C cannot see the network, so cannot share it; a member may not share with '*'
    refused(api.post(RBAC, headers=c, json={"rbac_policy": {
        **body, "target_tenant": c["X-Project-Id"]}}), 404, "NetworkNotFound")
    refused(api.post(RBAC, headers=a, json={"rbac_policy": {**body, "target_tenant": "*"}}),
            403, "PolicyNotAuthorized")
    refused(api.get(f"{RBAC}/{uuid.uuid4()}", headers=a), 404, "RbacPolicyNotFound")
    assert len(ok(api.get(RBAC, headers=a, params={"object_id": net["id"]}))[
        "rbac_policies"]) == 1
    assert ok(api.get(f"/v2.0/networks/{net['id']}", headers=a))["network"]["shared"] is False


def test_shared_true_is_the_wildcard_entry(api, world):
    a, c, net = world["a"], world["c"], world["net"]
    ok(api.put(f"/v2.0/networks/{net['id']}", json={"network": {"shared": True}}))  # admin
    entries = ok(api.get(RBAC, params={"object_id": net["id"]}))["rbac_policies"]
    assert [(e["action"], e["target_tenant"]) for e in entries] == [
        ("access_as_shared", "*")], entries
    assert net["id"] in ids(api, "/v2.0/networks", c, "networks")
    # C's port on it: unsharing is refused (Neutron's InvalidSharedSetting), nothing changes
    port = ok(api.post("/v2.0/ports", headers=c, json={"port": {"network_id": net["id"]}}),
              201)["port"]
    refused(api.put(f"/v2.0/networks/{net['id']}", json={"network": {"shared": False}}), 409,
            "InvalidSharedSetting")
    refused(api.delete(f"{RBAC}/{entries[0]['id']}"), 409, "RbacPolicyInUse")
    assert ok(api.get(f"/v2.0/networks/{net['id']}", headers=c))["network"]["shared"] is True
    ok(api.delete(f"/v2.0/ports/{port['id']}", headers=c), 204)
    ok(api.delete(f"{RBAC}/{entries[0]['id']}"), 204)  # admin removes '*': unshared
    assert ok(api.get(f"/v2.0/networks/{net['id']}", headers=a))["network"]["shared"] is False
    assert net["id"] not in ids(api, "/v2.0/networks", c, "networks")
    # an admin's '*' entry makes it shared again
    share(api, {}, net["id"], "*")
    assert ok(api.get(f"/v2.0/networks/{net['id']}", headers=c))["network"]["shared"] is True


def test_an_external_network_offered_to_b_takes_b_gateway_only(api):
    b, c = project(), project()
    ext = ok(api.post("/v2.0/networks", json={"network": {"name": "rb-ext"}}), 201)["network"]
    pol = share(api, {}, ext["id"], b["X-Project-Id"], "access_as_external")  # made external
    ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4}}), 201)
    assert ok(api.get(f"/v2.0/networks/{ext['id']}"))["network"]["router:external"] is True
    assert ext["id"] in ids(api, "/v2.0/networks", b, "networks")
    assert ext["id"] not in ids(api, "/v2.0/networks", c, "networks")
    gw = {"external_gateway_info": {"network_id": ext["id"]}}
    rb = ok(api.post("/v2.0/routers", headers=b, json={"router": {"name": "rb-r", **gw}}),
            201)["router"]
    assert rb["external_gateway_info"]["network_id"] == ext["id"], rb
    refused(api.post("/v2.0/routers", headers=c, json={"router": {"name": "rb-c", **gw}}),
            404, "NetworkNotFound")
    fip = {"floatingip": {"floating_network_id": ext["id"]}}
    made = ok(api.post("/v2.0/floatingips", headers=b, json=fip), 201)["floatingip"]
    refused(api.post("/v2.0/floatingips", headers=c, json=fip), 404, "NetworkNotFound")
    ok(api.delete(f"/v2.0/floatingips/{made['id']}", headers=b), 204)
    refused(api.delete(f"{RBAC}/{pol['id']}"), 409, "RbacPolicyInUse")
    ok(api.put(f"/v2.0/routers/{rb['id']}", headers=b,
               json={"router": {"external_gateway_info": {}}}))
    ok(api.delete(f"{RBAC}/{pol['id']}"), 204)
    # the last external entry gone: an internal network again, B sees it no more
    assert ok(api.get(f"/v2.0/networks/{ext['id']}"))["network"]["router:external"] is False
    assert ext["id"] not in ids(api, "/v2.0/networks", b, "networks")


def test_a_wildcard_retargeted_to_its_only_user(api):
    """Neutron: the '*' external entry of a network whose only gateway is B's may become B's
    own (B loses nothing); from B to C it may not (B's router would lose the network)."""
    b, c = project(), project()
    ext = ok(api.post("/v2.0/networks", json={"network": {
        "name": "rb-wild", "router:external": True}}), 201)["network"]
    ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": ext["id"], "cidr": "198.51.100.0/24", "ip_version": 4}}), 201)
    pol = ok(api.get(RBAC, params={"object_id": ext["id"], "target_tenant": "*",
                                   "action": "access_as_external"}))["rbac_policies"][0]
    ok(api.post("/v2.0/routers", headers=b, json={"router": {
        "name": "rb-wb", "external_gateway_info": {"network_id": ext["id"]}}}), 201)
    moved = ok(api.put(f"{RBAC}/{pol['id']}", json={"rbac_policy": {
        "target_tenant": b["X-Project-Id"]}}))["rbac_policy"]
    assert moved["target_tenant"] == b["X-Project-Id"]
    refused(api.put(f"{RBAC}/{pol['id']}", json={"rbac_policy": {
        "target_tenant": c["X-Project-Id"]}}), 409, "RbacPolicyInUse")
    assert ext["id"] in ids(api, "/v2.0/networks", b, "networks")


def test_listed_as_an_extension(api):
    aliases = {e["alias"] for e in ok(api.get("/v2.0/extensions"))["extensions"]}
    assert "rbac-policies" in aliases


def test_retarget_moves_access_and_a_deleted_network_takes_its_entries(api, world):
    a, b, c, net = world["a"], world["b"], world["c"], world["net"]
    pol = share(api, a, net["id"], b["X-Project-Id"])
    port = ok(api.post("/v2.0/ports", headers=b, json={"port": {"network_id": net["id"]}}),
              201)["port"]
    to_c = {"rbac_policy": {"target_tenant": c["X-Project-Id"]}}
    refused(api.put(f"{RBAC}/{pol['id']}", headers=a, json=to_c), 409, "RbacPolicyInUse")
    refused(api.put(f"{RBAC}/{pol['id']}", headers=a,
                    json={"rbac_policy": {"target_tenant": "*"}}), 403, "PolicyNotAuthorized")
    refused(api.put(f"{RBAC}/{pol['id']}", headers=a,
                    json={"rbac_policy": {"action": "access_as_external"}}), 400,
            "HTTPBadRequest")
    ok(api.delete(f"/v2.0/ports/{port['id']}", headers=b), 204)
    moved = ok(api.put(f"{RBAC}/{pol['id']}", headers=a, json=to_c))["rbac_policy"]
    assert moved["target_tenant"] == c["X-Project-Id"], moved
    assert net["id"] in ids(api, "/v2.0/networks", c, "networks")
    assert net["id"] not in ids(api, "/v2.0/networks", b, "networks")
    ok(api.delete(f"/v2.0/subnets/{world['sub']['id']}", headers=a), 204)
    ok(api.delete(f"/v2.0/networks/{net['id']}", headers=a), 204)
    assert ok(api.get(RBAC, headers=a, params={"object_id": net["id"]}))["rbac_policies"] == []
