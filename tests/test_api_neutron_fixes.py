"""Answers of APIs floatip lists that differed from Neutron 29's (issue 24, from
neutron-tempest-plugin's runs): a body without Content-Type, the empty floating IP update,
network MTU limits, a subnet's delete and its network's revision, ``GET /subnets?shared=``,
agents updated and deleted.
The real server (uvicorn, agent off) on SQLite."""
from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from floatip.api import heartbeats as hb
from floatip.backends.remote import RemoteSource
from floatip.server import Server, free_port

from cloud import ok, refused  # noqa: F401 (the shared helpers)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    srv = Server(f"sqlite:///{tmp_path_factory.mktemp('fa-nfix')}/floatip.db",
                 f"127.0.0.1:{free_port()}", agent=False).start()
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        yield c
    srv.close()


def net(api, **attrs) -> dict:
    return ok(api.post("/v2.0/networks", json={"network": {"name": "nf", **attrs}}),
              201)["network"]


def test_put_without_content_type_is_read_as_json(api):
    """Neutron reads the body whatever the header says; clients (Tempest's) send PUTs
    without one."""
    n = net(api)
    r = api.put(f"/v2.0/networks/{n['id']}",
                content=json.dumps({"network": {"name": "renamed"}}).encode())
    assert "content-type" not in r.request.headers
    assert ok(r)["network"]["name"] == "renamed"
    assert ok(api.get(f"/v2.0/networks/{n['id']}"))["network"]["name"] == "renamed"
    # a POST likewise
    r = api.post("/v2.0/networks", content=json.dumps({"network": {"name": "nct"}}).encode())
    assert ok(r, 201)["network"]["name"] == "nct"


def test_empty_floating_ip_update_disassociates(api):
    ext = net(api, **{"router:external": True})
    ok(api.post("/v2.0/subnets", json={"subnet": {"network_id": ext["id"], "ip_version": 4,
                                                  "cidr": "198.51.100.0/24"}}), 201)
    inner = net(api)
    sub = ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": inner["id"], "ip_version": 4, "cidr": "100.64.9.0/24"}}), 201)["subnet"]
    router = ok(api.post("/v2.0/routers", json={"router": {
        "name": "nf", "external_gateway_info": {"network_id": ext["id"]}}}), 201)["router"]
    ok(api.put(f"/v2.0/routers/{router['id']}/add_router_interface",
               json={"subnet_id": sub["id"]}))
    port = ok(api.post("/v2.0/ports", json={"port": {"network_id": inner["id"]}}), 201)["port"]
    fip = ok(api.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext["id"], "port_id": port["id"]}}), 201)["floatingip"]
    url = f"/v2.0/floatingips/{fip['id']}"
    # another attribute alone keeps the association ...
    got = ok(api.put(url, json={"floatingip": {"description": "d2"}}))["floatingip"]
    assert got["port_id"] == port["id"] and got["description"] == "d2"
    # ... an update that sets nothing disassociates, as Neutron
    got = ok(api.put(url, json={"floatingip": {}}))["floatingip"]
    assert got["port_id"] is None and got["fixed_ip_address"] is None
    assert ok(api.get(url))["floatingip"]["port_id"] is None


def test_network_mtu_limits(api):
    """Above the physical network's MTU (1500: Neutron's global_physnet_mtu) is refused on
    create and update; a lower one is accepted, and a subnet needs the minimum of its IP
    version (68 for IPv4, 1280 for IPv6): 409 NetworkMTUSubnetConflict, as Neutron."""
    assert refused(api.post("/v2.0/networks", json={"network": {"mtu": 1501}}), 400,
                   "InvalidInput") == ("Invalid input for operation: Requested MTU is too "
                                       "big, maximum is 1500.")
    refused(api.post("/v2.0/networks", json={"network": {"mtu": -1}}), 400, "BadRequest")
    n = net(api, mtu=1279)
    refused(api.put(f"/v2.0/networks/{n['id']}", json={"network": {"mtu": 9000}}), 400,
            "InvalidInput")
    assert ok(api.get(f"/v2.0/networks/{n['id']}"))["network"]["mtu"] == 1279
    msg = refused(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": n["id"], "ip_version": 6, "cidr": "2001:db8:9::/64"}}), 409,
        "NetworkMTUSubnetConflict")
    assert msg == f"MTU of {n['id']} is not valid, subnet requires a minimum of 1280"
    assert ok(api.get("/v2.0/subnets", params={"network_id": n["id"]}))["subnets"] == []
    # IPv4 is fine at 1279; at 1280 IPv6 too, and then the MTU may not go below
    ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": n["id"], "ip_version": 4, "cidr": "100.64.10.0/24"}}), 201)
    ok(api.put(f"/v2.0/networks/{n['id']}", json={"network": {"mtu": 1280}}))
    ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": n["id"], "ip_version": 6, "cidr": "2001:db8:9::/64"}}), 201)
    refused(api.put(f"/v2.0/networks/{n['id']}", json={"network": {"mtu": 1279}}), 409,
            "NetworkMTUSubnetConflict")
    assert ok(api.get(f"/v2.0/networks/{n['id']}"))["network"]["mtu"] == 1280
    # IPv4 needs 68: a network of 67 takes no IPv4 subnet, and one with an IPv4 subnet
    # cannot go below 68
    tiny = net(api, mtu=67)
    refused(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": tiny["id"], "ip_version": 4, "cidr": "100.64.12.0/24"}}), 409,
        "NetworkMTUSubnetConflict")
    v4 = net(api, mtu=1280)
    ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": v4["id"], "ip_version": 4, "cidr": "100.64.13.0/24"}}), 201)
    refused(api.put(f"/v2.0/networks/{v4['id']}", json={"network": {"mtu": 67}}), 409,
            "NetworkMTUSubnetConflict")
    assert ok(api.get(f"/v2.0/networks/{v4['id']}"))["network"]["mtu"] == 1280


def test_deleting_a_subnet_bumps_its_network_revision(api):
    n = net(api)
    sub = ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": n["id"], "ip_version": 4, "cidr": "100.64.11.0/24"}}), 201)["subnet"]
    before = ok(api.get(f"/v2.0/networks/{n['id']}"))["network"]
    assert before["subnets"] == [sub["id"]]
    assert api.delete(f"/v2.0/subnets/{sub['id']}").status_code == 204
    after = ok(api.get(f"/v2.0/networks/{n['id']}"))["network"]
    assert after["subnets"] == [] and after["revision_number"] > before["revision_number"]


def test_subnets_filtered_by_shared(api):
    tag = uuid.uuid4().hex[:6]
    shared = net(api, shared=True)
    private = net(api)
    made = {}
    for n, cidr in ((shared, "100.64.12.0/24"), (private, "100.64.13.0/24")):
        made[n["id"]] = ok(api.post("/v2.0/subnets", json={"subnet": {
            "network_id": n["id"], "ip_version": 4, "cidr": cidr, "name": f"sh-{tag}"}}),
            201)["subnet"]["id"]

    def listed(value: str) -> set[str]:
        return {s["id"] for s in ok(api.get("/v2.0/subnets", params={
            "shared": value, "name": f"sh-{tag}"}))["subnets"]}

    assert listed("True") == {made[shared["id"]]}
    assert listed("false") == {made[private["id"]]}
    refused(api.get("/v2.0/subnets", params={"shared": "maybe"}), 400, "BadRequest")


def test_agents_updated_and_deleted_by_admins(api):
    """Neutron's agent API: an admin sets admin_state_up and description, or deletes the
    agent (listed again once it reports again); others do not see it (404); read-only
    attributes are refused."""
    host = f"nf-edge-{uuid.uuid4().hex[:6]}"
    RemoteSource(str(api.base_url), host=host).snapshot()  # the agent's first call

    def listed() -> dict:
        return {a["host"]: a for a in ok(api.get("/v2.0/agents"))["agents"]}

    aid = listed()[host]["id"]
    got = ok(api.put(f"/v2.0/agents/{aid}", json={"agent": {
        "admin_state_up": False, "description": "maintenance"}}))["agent"]
    assert (got["admin_state_up"], got["description"]) == (False, "maintenance")
    assert (listed()[host]["admin_state_up"], listed()[host]["description"]) == \
        (False, "maintenance")
    refused(api.put(f"/v2.0/agents/{aid}", json={"agent": {"host": "x"}}), 400,
            "HTTPBadRequest")
    project = {"X-Project-Id": "nf-p", "X-Roles": "member,reader"}
    refused(api.put(f"/v2.0/agents/{aid}", json={"agent": {"admin_state_up": True}},
                    headers=project), 404, "AgentNotFound")
    refused(api.delete(f"/v2.0/agents/{aid}", headers=project), 404, "AgentNotFound")
    assert listed()[host]["admin_state_up"] is False
    assert api.delete(f"/v2.0/agents/{aid}").status_code == 204
    assert host not in listed()
    refused(api.get(f"/v2.0/agents/{aid}"), 404, "AgentNotFound")
    # its next poll, a second later, registers it again
    deadline = time.monotonic() + 30
    while host not in listed():
        assert time.monotonic() < deadline, "the agent was not listed again"
        time.sleep(0.5)
        httpx.get(f"{api.base_url}/floatip/v1/changes", params={"timeout": 0},
                  headers={hb.HEADER: host})
    assert listed()[host]["admin_state_up"] is True


def test_rule_with_a_remote_group_id_that_is_no_uuid_is_a_missing_group(api):
    """Neutron does not check remote_group_id's form: any id it cannot find is 404."""
    sg = ok(api.post("/v2.0/security-groups", json={"security_group": {"name": "nf"}}),
            201)["security_group"]
    for rid in ("bad_group_id", str(uuid.uuid4())):
        assert refused(api.post("/v2.0/security-group-rules", json={"security_group_rule": {
            "security_group_id": sg["id"], "direction": "ingress",
            "remote_group_id": rid}}), 404, "SecurityGroupNotFound") == \
            f"Security group {rid} does not exist"


def test_if_match_revision_constrains_updates_and_deletes(api):
    """Neutron's revision plugin: ``If-Match: revision_number=N`` with a stale N is 412
    RevisionNumberConstraintFailed and changes nothing; the current N passes."""
    n = net(api)
    url, rev = f"/v2.0/networks/{n['id']}", n["revision_number"]
    stale = {"If-Match": f"revision_number={rev - 1}"}
    assert refused(api.put(url, json={"network": {"name": "new"}}, headers=stale), 412,
                   "RevisionNumberConstraintFailed") == \
        f"Constrained to {rev - 1}, but current revision is {rev}"
    assert ok(api.get(url))["network"]["name"] == "nf"
    refused(api.delete(url, headers=stale), 412, "RevisionNumberConstraintFailed")
    got = ok(api.put(url, json={"network": {"name": "new"}},
                     headers={"If-Match": f"revision_number={rev}"}))["network"]
    assert got["name"] == "new" and got["revision_number"] > rev
    # an unknown resource is still 404, whatever the constraint
    refused(api.put(f"/v2.0/networks/{uuid.uuid4()}", json={"network": {"name": "x"}},
                    headers=stale), 404, "NetworkNotFound")
    assert api.delete(url, headers={"If-Match": f"revision_number={got['revision_number']}"}
                      ).status_code == 204


def test_a_rule_revises_its_security_group(api):
    sg = ok(api.post("/v2.0/security-groups", json={"security_group": {"name": "rv"}}),
            201)["security_group"]
    rule = ok(api.post("/v2.0/security-group-rules", json={"security_group_rule": {
        "security_group_id": sg["id"], "direction": "ingress", "protocol": "tcp",
        "port_range_min": 60, "port_range_max": 70}}), 201)["security_group_rule"]
    added = ok(api.get(f"/v2.0/security-groups/{sg['id']}"))["security_group"]
    assert added["revision_number"] > sg["revision_number"]
    assert api.delete(f"/v2.0/security-group-rules/{rule['id']}").status_code == 204
    removed = ok(api.get(f"/v2.0/security-groups/{sg['id']}"))["security_group"]
    assert removed["revision_number"] > added["revision_number"]


def test_qos_policies_sort_by_a_key(api):
    for name in ("Bq", "Aq", "Cq"):
        ok(api.post("/v2.0/qos/policies", json={"policy": {"name": name}}), 201)
    for direction, expect in (("asc", ["Aq", "Bq", "Cq"]), ("desc", ["Cq", "Bq", "Aq"])):
        got = ok(api.get("/v2.0/qos/policies", params={"sort_key": "name",
                                                        "sort_dir": direction}))["policies"]
        assert [p["name"] for p in got if p["name"] in expect] == expect


def test_a_port_names_a_security_group_once(api):
    n = net(api)
    ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": n["id"], "ip_version": 4, "cidr": "100.64.14.0/24"}}), 201)
    port = ok(api.post("/v2.0/ports", json={"port": {"network_id": n["id"]}}), 201)["port"]
    sg = ok(api.post("/v2.0/security-groups", json={"security_group": {"name": "tw"}}),
            201)["security_group"]
    msg = refused(api.put(f"/v2.0/ports/{port['id']}", json={"port": {
        "security_groups": [sg["id"], sg["id"]]}}), 400, "HTTPBadRequest")
    assert msg == (f"Invalid input for security_groups. Reason: Duplicate items in the list: "
                   f"'{sg['id']}'.")
    assert ok(api.get(f"/v2.0/ports/{port['id']}"))["port"]["security_groups"] == \
        port["security_groups"]
