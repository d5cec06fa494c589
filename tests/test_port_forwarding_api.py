"""Floating IP port forwardings through the API, on SQLite and PostgreSQL (Neutron's
floating-ip-port-forwarding with its description and port-range extensions,
expose-port-forwarding-in-fip): the attributes,
Neutron's refusals and their codes, the floating IP's view, the policy for other projects.

The server is the real one (uvicorn, agent off), noauth: X-Project-Id / X-Roles make the
caller a project's member or reader."""
from __future__ import annotations

import uuid

import httpx
import pytest

from cloud import ok, refused, served_api

EXT = "203.0.113"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory):
    yield from served_api(request, tmp_path_factory, "pf-api")


@pytest.fixture(scope="module")
def world(api):
    """An external network, a project's network behind its router, two VM ports."""
    p = {"X-Project-Id": f"pf-{uuid.uuid4().hex[:8]}", "X-Roles": "member,reader"}
    ext = ok(api.post("/v2.0/networks", json={"network": {
        "name": "pf-ext", "router:external": True}}), 201)["network"]
    ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": ext["id"], "cidr": f"{EXT}.0/24", "ip_version": 4}}), 201)
    net = ok(api.post("/v2.0/networks", json={"network": {"name": "pf"}}, headers=p),
             201)["network"]
    sub = ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "100.64.9.0/24", "ip_version": 4}}, headers=p),
        201)["subnet"]
    router = ok(api.post("/v2.0/routers", json={"router": {
        "name": "pf", "external_gateway_info": {"network_id": ext["id"]}}}, headers=p),
        201)["router"]
    ok(api.put(f"/v2.0/routers/{router['id']}/add_router_interface",
               json={"subnet_id": sub["id"]}, headers=p))
    vms = [ok(api.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}, headers=p),
              201)["port"] for _ in range(3)]
    # a network no router reaches
    lone = ok(api.post("/v2.0/networks", json={"network": {"name": "pf-lone"}}, headers=p),
              201)["network"]
    ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": lone["id"], "cidr": "100.64.10.0/24", "ip_version": 4}}, headers=p), 201)
    stray = ok(api.post("/v2.0/ports", json={"port": {"network_id": lone["id"]}}, headers=p),
               201)["port"]
    return {"h": p, "ext": ext, "router": router, "vms": vms, "stray": stray}


def new_fip(api, w) -> dict:
    return ok(api.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": w["ext"]["id"]}}, headers=w["h"]), 201)["floatingip"]


def pf_path(fip: dict, pid: str = "") -> str:
    return f"/v2.0/floatingips/{fip['id']}/port_forwardings" + (f"/{pid}" if pid else "")


def create(api, w, fip, **body) -> httpx.Response:
    return api.post(pf_path(fip), json={"port_forwarding": body}, headers=w["h"])


def test_listed_as_extensions(api):
    names = {e["alias"] for e in ok(api.get("/v2.0/extensions"))["extensions"]}
    assert {"floating-ip-port-forwarding", "floating-ip-port-forwarding-description",
            "floating-ip-port-forwarding-port-ranges", "expose-port-forwarding-in-fip",
            "floating-ip-port-forwarding-detail"} <= names


def test_two_vms_behind_one_floating_ip(api, world):
    w, fip = world, new_fip(api, world)
    a, b = w["vms"][0], w["vms"][1]
    one = ok(create(api, w, fip, protocol="tcp", internal_port_id=a["id"], internal_port=22,
                    external_port=2222, description="ssh a"), 201)["port_forwarding"]
    assert one["internal_ip_address"] == a["fixed_ips"][0]["ip_address"]
    assert (one["internal_port"], one["external_port"]) == (22, 2222)
    assert (one["internal_port_range"], one["external_port_range"]) == ("22:22", "2222:2222")
    assert one["description"] == "ssh a" and one["protocol"] == "tcp"
    two = ok(create(api, w, fip, protocol="tcp", internal_port_id=b["id"], internal_port=22,
                    external_port=2223), 201)["port_forwarding"]
    listed = ok(api.get(pf_path(fip), headers=w["h"]))["port_forwardings"]
    assert {x["id"] for x in listed} == {one["id"], two["id"]}
    assert ok(api.get(pf_path(fip, one["id"]), headers=w["h"]))["port_forwarding"] == one
    shown = ok(api.get(f"/v2.0/floatingips/{fip['id']}", headers=w["h"]))["floatingip"]
    # the floating IP now lives on the router, with no port, and shows its forwardings
    assert shown["router_id"] == w["router"]["id"] and shown["port_id"] is None
    assert {x["id"]: x["external_port"] for x in shown["port_forwardings"]} == \
        {one["id"]: 2222, two["id"]: 2223}
    assert set(shown["port_forwardings"][0]) == {"id", "internal_ip_address", "protocol",
                                                 "internal_port", "external_port",
                                                 "internal_port_id"}
    # filters: protocol/external_port; internal_ip_address is not a filter (Neutron's 400)
    got = ok(api.get(pf_path(fip), params={"external_port": 2223},
                     headers=w["h"]))["port_forwardings"]
    assert [x["id"] for x in got] == [two["id"]]
    refused(api.get(pf_path(fip), params={"internal_ip_address": "100.64.9.3"},
                    headers=w["h"]), 400, "PortForwardingNotSupportFilterField")
    # update: another external port, then the description
    upd = ok(api.put(pf_path(fip, two["id"]), json={"port_forwarding": {
        "external_port": 2224}}, headers=w["h"]))["port_forwarding"]
    assert upd["external_port"] == 2224 and upd["internal_port"] == 22
    # the floating IP cannot be associated nor deleted while it forwards
    refused(api.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {
        "port_id": w["vms"][2]["id"]}}, headers=w["h"]), 409, "FipInUseByPortForwarding")
    refused(api.delete(f"/v2.0/floatingips/{fip['id']}", headers=w["h"]), 409,
            "FipInUseByPortForwarding")
    # the last forwarding gone, the floating IP lets go of the router
    ok(api.delete(pf_path(fip, one["id"]), headers=w["h"]), 204)
    assert ok(api.get(f"/v2.0/floatingips/{fip['id']}", headers=w["h"]))["floatingip"][
        "router_id"] == w["router"]["id"]
    ok(api.delete(pf_path(fip, two["id"]), headers=w["h"]), 204)
    refused(api.get(pf_path(fip, two["id"]), headers=w["h"]), 404, "PortForwardingNotFound")
    gone = ok(api.get(f"/v2.0/floatingips/{fip['id']}", headers=w["h"]))["floatingip"]
    assert gone["router_id"] is None and gone["port_forwardings"] == []
    ok(api.delete(f"/v2.0/floatingips/{fip['id']}", headers=w["h"]), 204)


def test_port_ranges(api, world):
    w, fip = world, new_fip(api, world)
    vm = w["vms"][0]
    nn = ok(create(api, w, fip, protocol="udp", internal_port_id=vm["id"],
                   internal_port_range="5000:5009", external_port_range="6000:6009"),
            201)["port_forwarding"]
    assert (nn["internal_port"], nn["external_port"]) == (None, None)
    assert (nn["internal_port_range"], nn["external_port_range"]) == ("5000:5009", "6000:6009")
    one = ok(create(api, w, fip, protocol="tcp", internal_port_id=vm["id"], internal_port=80,
                    external_port_range="8000:8010"), 201)["port_forwarding"]
    assert one["internal_port"] == 80 and one["external_port_range"] == "8000:8010"
    # an overlapping range of the same protocol collides; another protocol does not
    msg = refused(create(api, w, fip, protocol="tcp", internal_port_id=w["vms"][1]["id"],
                         internal_port=81, external_port=8005), 400, "BadRequest")
    assert "port collision with the external_port_range" in msg and "8000:8010" in msg
    ok(create(api, w, fip, protocol="udp", internal_port_id=w["vms"][1]["id"],
              internal_port=81, external_port=8005), 201)
    # N-M ranges: Neutron's "N-N or 1-N"
    msg = refused(create(api, w, fip, protocol="tcp", internal_port_id=vm["id"],
                         internal_port_range="100:101", external_port_range="200:204"),
                  400, "BadRequest")
    assert "must be N-N or 1-N" in msg
    for bad in ("9:8", "1:2:3", "0:5", "70000", "a:b"):
        refused(create(api, w, fip, protocol="tcp", internal_port_id=vm["id"],
                       internal_port=1, external_port_range=bad), 400, "HTTPBadRequest")


def test_refusals_change_nothing(api, world):
    w, fip = world, new_fip(api, world)
    vm = w["vms"][2]
    base = {"protocol": "tcp", "internal_port_id": vm["id"], "internal_port": 80}
    refused(create(api, w, fip, **base, external_port=0), 400, "HTTPBadRequest")
    refused(create(api, w, fip, **base, external_port=65536), 400, "HTTPBadRequest")
    refused(create(api, w, fip, **{**base, "protocol": "icmp"}, external_port=1), 400,
            "HTTPBadRequest")
    refused(create(api, w, fip, **base, external_port=80, internal_ip_address="100.64.9.250"),
            400, "BadRequest")
    # a port no router of the floating IP's network reaches
    msg = refused(create(api, w, fip, **{**base, "internal_port_id": w["stray"]["id"]},
                         external_port=80), 400, "BadRequest")
    assert "is not reachable from subnet" in msg
    refused(create(api, w, fip, **{**base, "internal_port_id": str(uuid.uuid4())},
                   external_port=80), 404, "PortNotFound")
    refused(api.post(f"/v2.0/floatingips/{uuid.uuid4()}/port_forwardings",
                     json={"port_forwarding": {**base, "external_port": 80}}, headers=w["h"]),
            404, "FloatingIPNotFound")
    # a floating IP associated with a port: Neutron's 409
    assoc = ok(api.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": w["ext"]["id"], "port_id": w["vms"][1]["id"]}},
        headers=w["h"]), 201)["floatingip"]
    refused(create(api, w, assoc, **base, external_port=80), 409,
            "FloatingIPPortAlreadyAssociated")
    # a port that has a floating IP of its own
    refused(create(api, w, fip, **{**base, "internal_port_id": w["vms"][1]["id"]},
                   external_port=80), 409, "PortHasBindingFloatingIP")
    ok(api.delete(f"/v2.0/floatingips/{assoc['id']}", headers=w["h"]), 204)
    # a duplicate of an existing forwarding
    ok(create(api, w, fip, **base, external_port=80), 201)
    refused(create(api, w, fip, **base, external_port=80), 400, "BadRequest")
    after = ok(api.get(pf_path(fip), headers=w["h"]))["port_forwardings"]
    assert [x["external_port"] for x in after] == [80]
    assert ok(api.get(f"/v2.0/floatingips/{fip['id']}", headers=w["h"]))["floatingip"][
        "router_id"] == w["router"]["id"]


def test_deleting_the_port_deletes_its_forwardings(api, world):
    w, fip = world, new_fip(api, world)
    net = w["vms"][0]["network_id"]
    vm = ok(api.post("/v2.0/ports", json={"port": {"network_id": net}}, headers=w["h"]),
            201)["port"]
    ok(create(api, w, fip, protocol="tcp", internal_port_id=vm["id"], internal_port=80,
              external_port=8080), 201)
    ok(api.delete(f"/v2.0/ports/{vm['id']}", headers=w["h"]), 204)
    assert ok(api.get(pf_path(fip), headers=w["h"]))["port_forwardings"] == []
    f = ok(api.get(f"/v2.0/floatingips/{fip['id']}", headers=w["h"]))["floatingip"]
    assert f["router_id"] is None and f["port_forwardings"] == []


def test_policy(api, world):
    w, fip = world, new_fip(api, world)
    pf = ok(create(api, w, fip, protocol="tcp", internal_port_id=w["vms"][0]["id"],
                   internal_port=443, external_port=8443), 201)["port_forwarding"]
    other = {"X-Project-Id": f"pf-o-{uuid.uuid4().hex[:6]}", "X-Roles": "member,reader"}
    # another project's floating IP: as if it did not exist
    refused(api.get(pf_path(fip), headers=other), 404, "FloatingIPNotFound")
    refused(api.delete(pf_path(fip, pf["id"]), headers=other), 404, "FloatingIPNotFound")
    # a reader of the project reads, and may not write
    reader = {**w["h"], "X-Roles": "reader"}
    assert ok(api.get(pf_path(fip, pf["id"]), headers=reader))["port_forwarding"]["id"] == \
        pf["id"]
    refused(api.post(pf_path(fip), json={"port_forwarding": {
        "protocol": "tcp", "internal_port_id": w["vms"][0]["id"], "internal_port": 1,
        "external_port": 1}}, headers=reader), 403, "PolicyNotAuthorized")
    refused(api.delete(pf_path(fip, pf["id"]), headers=reader), 403, "PolicyNotAuthorized")
    # an admin may
    ok(api.delete(pf_path(fip, pf["id"])), 204)


def test_list_sorts_pages_and_filters_as_neutrons_lists(api, world):
    """Neutron's sorting (id, external_port, protocol, internal_port_id), pagination
    (limit, marker, page_reverse), filters and fields, as every other list has them."""
    w, fip = world, new_fip(api, world)
    a = w["vms"][0]
    made = [ok(create(api, w, fip, protocol=proto, internal_port_id=a["id"],
                      internal_port=100 + i, external_port=port), 201)["port_forwarding"]
            for i, (proto, port) in enumerate([("tcp", 4003), ("udp", 4001), ("tcp", 4002),
                                               ("udp", 4004)])]

    def get(**params) -> list[dict]:
        return ok(api.get(pf_path(fip), params=params, headers=w["h"]))["port_forwardings"]
    ports = [x["external_port"] for x in get(sort_key="external_port", sort_dir="desc")]
    assert ports == [4004, 4003, 4002, 4001]
    by_proto = get(sort_key=["protocol", "external_port"], sort_dir=["asc", "asc"])
    assert [(x["protocol"], x["external_port"]) for x in by_proto] == \
        [("tcp", 4002), ("tcp", 4003), ("udp", 4001), ("udp", 4004)]
    # a page of two, the next page after its last, and the page before a marker
    first = get(sort_key="external_port", sort_dir="asc", limit=2)
    assert [x["external_port"] for x in first] == [4001, 4002]
    after = get(sort_key="external_port", sort_dir="asc", limit=2, marker=first[-1]["id"])
    assert [x["external_port"] for x in after] == [4003, 4004]
    before = get(sort_key="external_port", sort_dir="asc", limit=1, marker=after[0]["id"],
                 page_reverse="True")
    assert [x["external_port"] for x in before] == [4002]
    # any of a filter's values; fields
    got = get(protocol="udp", fields=["external_port", "id"], sort_key="external_port",
              sort_dir="asc")
    assert got == [{"id": made[1]["id"], "external_port": 4001},
                   {"id": made[3]["id"], "external_port": 4004}]
    assert len(get(external_port=["4001", "4002"])) == 2
    # what Neutron refuses: an unknown filter, a key that is no sort key, a bad limit
    refused(api.get(pf_path(fip), params={"bogus": "1"}, headers=w["h"]), 400,
            "HTTPBadRequest")
    refused(api.get(pf_path(fip), params={"sort_key": "description", "sort_dir": "asc"},
                    headers=w["h"]), 400, "HTTPBadRequest")
    refused(api.get(pf_path(fip), params={"limit": "-1"}, headers=w["h"]), 400, "BadRequest")
