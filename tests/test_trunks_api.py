"""Neutron's trunk extension through the API (floatip stores trunks; its dataplanes do not
realise them): a trunk with subports, subports added, listed and removed, and Neutron's
refusals (a port in another trunk, a segmentation in use, a bound or missing parent, a
disabled trunk, a parent or subport deleted), each changing nothing; another project's
trunks are not seen. SQLite and PostgreSQL, noauth (X-Project-Id / X-Roles)."""
from __future__ import annotations

import uuid

import pytest

from cloud import ok, refused, served_api


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory):
    yield from served_api(request, tmp_path_factory, "dd-trunk")


def project() -> dict:
    return {"X-Project-Id": uuid.uuid4().hex, "X-Roles": "member,reader"}


@pytest.fixture
def world(api):
    h = project()
    net = ok(api.post("/v2.0/networks", headers=h, json={"network": {"name": "dd-tr"}}),
             201)["network"]
    ok(api.post("/v2.0/subnets", headers=h, json={"subnet": {
        "network_id": net["id"], "cidr": "198.51.100.0/24", "ip_version": 4}}), 201)
    ports = [ok(api.post("/v2.0/ports", headers=h, json={"port": {"network_id": net["id"]}}),
                201)["port"]["id"] for _ in range(5)]
    return {"h": h, "net": net, "ports": ports}


def sp(port: str, vid: int) -> dict:
    return {"port_id": port, "segmentation_type": "vlan", "segmentation_id": vid}


def subs(t: dict) -> set[tuple]:
    return {(x["port_id"], x["segmentation_id"]) for x in t["sub_ports"]}


def test_trunk_subports_added_listed_removed(api, world):
    h, p = world["h"], world["ports"]
    aliases = {e["alias"] for e in ok(api.get("/v2.0/extensions"))["extensions"]}
    assert "trunk" in aliases
    t = ok(api.post("/v2.0/trunks", headers=h, json={"trunk": {
        "name": "dd-t", "port_id": p[0], "sub_ports": [sp(p[1], 10)]}}), 201)["trunk"]
    assert (t["port_id"], t["status"], t["admin_state_up"], t["project_id"]) == \
        (p[0], "DOWN", True, h["X-Project-Id"])
    assert subs(t) == {(p[1], 10)} and t["sub_ports"][0]["segmentation_type"] == "vlan"
    t = ok(api.put(f"/v2.0/trunks/{t['id']}/add_subports", headers=h,
                   json={"sub_ports": [sp(p[2], 20), sp(p[3], 30)]}))
    assert subs(t) == {(p[1], 10), (p[2], 20), (p[3], 30)}
    got = ok(api.get(f"/v2.0/trunks/{t['id']}/get_subports", headers=h))
    assert {(x["port_id"], x["segmentation_id"]) for x in got["sub_ports"]} == subs(t)
    t = ok(api.put(f"/v2.0/trunks/{t['id']}/remove_subports", headers=h,
                   json={"sub_ports": [{"port_id": p[2]}]}))
    assert subs(t) == {(p[1], 10), (p[3], 30)}
    t = ok(api.put(f"/v2.0/trunks/{t['id']}", headers=h,
                   json={"trunk": {"name": "dd-t2", "description": "d"}}))["trunk"]
    assert (t["name"], t["description"]) == ("dd-t2", "d") and t["revision_number"] >= 1
    listed = ok(api.get("/v2.0/trunks", headers=h, params={"port_id": p[0]}))["trunks"]
    assert [x["id"] for x in listed] == [t["id"]]
    # Neutron's sorting and paging, filter-validation
    t2 = ok(api.post("/v2.0/trunks", headers=h, json={"trunk": {"port_id": p[4], "name": "dd-a"}}),
            201)["trunk"]
    page = ok(api.get("/v2.0/trunks", headers=h, params={"sort_key": "name", "sort_dir": "asc",
                                                        "limit": 1}))
    assert [x["id"] for x in page["trunks"]] == [t2["id"]] and page["trunks_links"]
    refused(api.get("/v2.0/trunks", headers=h, params={"bogus": "1"}), 400, "HTTPBadRequest")
    assert api.delete(f"/v2.0/trunks/{t2['id']}", headers=h).status_code == 204
    # another project sees nothing of it
    other = project()
    assert ok(api.get("/v2.0/trunks", headers=other))["trunks"] == []
    refused(api.get(f"/v2.0/trunks/{t['id']}", headers=other), 404, "TrunkNotFound")
    refused(api.delete(f"/v2.0/trunks/{t['id']}", headers=other), 404, "TrunkNotFound")
    # its ports cannot go while they are in it; the trunk goes, then they can
    refused(api.delete(f"/v2.0/ports/{p[0]}", headers=h), 409, "PortInUseAsTrunkParent")
    refused(api.delete(f"/v2.0/ports/{p[1]}", headers=h), 409, "PortInUseAsSubPort")
    assert api.delete(f"/v2.0/trunks/{t['id']}", headers=h).status_code == 204
    refused(api.get(f"/v2.0/trunks/{t['id']}", headers=h), 404, "TrunkNotFound")
    assert api.delete(f"/v2.0/ports/{p[1]}", headers=h).status_code == 204


def test_trunk_refusals_change_nothing(api, world):
    h, p, net = world["h"], world["ports"], world["net"]
    t = ok(api.post("/v2.0/trunks", headers=h, json={"trunk": {
        "port_id": p[0], "sub_ports": [sp(p[1], 10)]}}), 201)["trunk"]
    tid = t["id"]
    add = f"/v2.0/trunks/{tid}/add_subports"
    # the parent again, a subport as a parent, the parent as a subport
    refused(api.post("/v2.0/trunks", headers=h, json={"trunk": {"port_id": p[0]}}), 409,
            "ParentPortInUse")
    refused(api.post("/v2.0/trunks", headers=h, json={"trunk": {"port_id": p[1]}}), 409,
            "TrunkPortInUse")
    refused(api.put(add, headers=h, json={"sub_ports": [sp(p[0], 11)]}), 409, "ParentPortInUse")
    # a segmentation in use, out of range, of another type, missing; duplicates in a body
    refused(api.put(add, headers=h, json={"sub_ports": [sp(p[2], 10)]}), 409, "DuplicateSubPort")
    for bad in ([sp(p[2], 4095)], [sp(p[2], 0)],
                [{"port_id": p[2], "segmentation_type": "vxlan", "segmentation_id": 5}],
                [{"port_id": p[2], "segmentation_id": 5}], [sp(p[2], 12), sp(p[3], 12)],
                [sp(p[2], 12), sp(p[2], 13)], [{"segmentation_id": 5}], "x",
                [{"port_id": "nope", "segmentation_type": "vlan", "segmentation_id": 5}]):
        refused(api.put(add, headers=h, json={"sub_ports": bad}), 400, "InvalidInput")
    refused(api.put(add, headers=h, json={"sub_ports": [sp(str(uuid.uuid4()), 12)]}), 404,
            "PortNotFound")
    # a port with a device is not a subport (Neutron's check_not_in_use)
    used = ok(api.post("/v2.0/ports", headers=h, json={"port": {
        "network_id": net["id"], "device_id": "dd-vm"}}), 201)["port"]["id"]
    refused(api.put(add, headers=h, json={"sub_ports": [sp(used, 12)]}), 409, "PortInUse")
    # a bound port is not a parent here (no trunk driver can trunk it)
    bound = ok(api.post("/v2.0/ports", json={"port": {
        "network_id": net["id"], "binding:host_id": "dd-host",
        "project_id": h["X-Project-Id"]}}), 201)["port"]["id"]
    refused(api.post("/v2.0/trunks", headers=h, json={"trunk": {"port_id": bound}}), 409,
            "ParentPortInUse")
    refused(api.post("/v2.0/trunks", headers=h, json={"trunk": {"port_id": str(uuid.uuid4())}}),
            404, "PortNotFound")
    refused(api.post("/v2.0/trunks", headers=h, json={"trunk": {"name": "x"}}), 400,
            "HTTPBadRequest")
    refused(api.put(f"/v2.0/trunks/{tid}/remove_subports", headers=h,
                    json={"sub_ports": [{"port_id": p[3]}]}), 404, "SubPortNotFound")
    # disabled: no subport changes, no delete
    ok(api.put(f"/v2.0/trunks/{tid}", headers=h, json={"trunk": {"admin_state_up": False}}))
    refused(api.put(add, headers=h, json={"sub_ports": [sp(p[2], 12)]}), 409, "TrunkDisabled")
    refused(api.put(f"/v2.0/trunks/{tid}/remove_subports", headers=h,
                    json={"sub_ports": [{"port_id": p[1]}]}), 409, "TrunkDisabled")
    refused(api.delete(f"/v2.0/trunks/{tid}", headers=h), 409, "TrunkDisabled")
    now = ok(api.get(f"/v2.0/trunks/{tid}", headers=h))["trunk"]
    assert subs(now) == {(p[1], 10)} and now["admin_state_up"] is False
    assert [x["id"] for x in ok(api.get("/v2.0/trunks", headers=h))["trunks"]] == [tid]
    # a reader may look, not change (Neutron 29's trunk policy)
    reader = {**h, "X-Roles": "reader"}
    assert ok(api.get(f"/v2.0/trunks/{tid}/get_subports", headers=reader))["sub_ports"]
    assert api.put(add, headers=reader, json={"sub_ports": [sp(p[2], 12)]}).status_code == 403
