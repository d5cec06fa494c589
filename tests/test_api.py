"""The Neutron v2.0 API against real databases: SQLite, and PostgreSQL (a throw-away server
started for the session, see conftest's ``pg_url``; a fresh database per module).

The server under test is the real one (uvicorn on a free 127.0.0.1 port, agent off: these tests
are about the API and the database; the agent is covered by test_e2e_sdk.py).
"""
from __future__ import annotations

import ipaddress
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from floatip.server import Server, free_port
from pgserver import fresh_database

@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('fa-api')}/floatip.db"
        return
    with fresh_database(request.getfixturevalue("pg_url")) as url:
        yield url


@pytest.fixture(scope="module")
def server(db_url):
    srv = Server(db_url, f"127.0.0.1:{free_port()}", agent=False).start()
    yield srv
    srv.close()


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def uniq(prefix: str = "fa") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ok(r: httpx.Response, code: int = 200) -> dict:
    assert r.status_code == code, r.text
    return r.json() if r.content else {}


def neutron_error(r: httpx.Response, code: int, type_: str) -> dict:
    assert r.status_code == code, r.text
    body = r.json()["NeutronError"]
    assert body["type"] == type_, body
    assert set(body) == {"type", "message", "detail"}
    return body


class Topo:
    """An external network (203.0.113.0/24, small pool), a tenant network, a router
    between them, and helpers; every name unique so tests share one database."""

    def __init__(self, api: httpx.Client, third_octet: int = 0, pool=("203.0.113.10",
                                                                    "203.0.113.40"),
                 ext_cidr: str = "203.0.113.0/24", tenant_cidr: str = "198.51.100.0/24"):
        self.api = api
        self.ext = ok(api.post("/v2.0/networks", json={"network": {
            "name": uniq("ext"), "router:external": True}}), 201)["network"]
        self.ext_subnet = ok(api.post("/v2.0/subnets", json={"subnet": {
            "network_id": self.ext["id"], "cidr": ext_cidr, "ip_version": 4,
            "gateway_ip": ext_cidr.rsplit(".", 1)[0] + ".1",
            "allocation_pools": [{"start": pool[0], "end": pool[1]}]}}), 201)["subnet"]
        self.net = ok(api.post("/v2.0/networks", json={"network": {"name": uniq("net")}}),
                      201)["network"]
        self.subnet = ok(api.post("/v2.0/subnets", json={"subnet": {
            "network_id": self.net["id"], "cidr": tenant_cidr, "ip_version": 4}}), 201)["subnet"]
        self.router = ok(api.post("/v2.0/routers", json={"router": {
            "name": uniq("r"), "external_gateway_info": {"network_id": self.ext["id"]}}}),
            201)["router"]
        ok(api.put(f"/v2.0/routers/{self.router['id']}/add_router_interface",
                   json={"subnet_id": self.subnet["id"]}))

    def port(self, **kw) -> dict:
        return ok(self.api.post("/v2.0/ports", json={"port": {
            "network_id": self.net["id"], "name": uniq("p"), **kw}}), 201)["port"]

    def fip(self, **kw) -> httpx.Response:
        return self.api.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": self.ext["id"], **kw}})


def everything(api: httpx.Client) -> dict:
    return {c: sorted(api.get(f"/v2.0/{c}").json()[c], key=lambda d: d["id"])
            for c in ("networks", "subnets", "ports", "routers", "floatingips")}


# ---------------------------------------------------------------------------------------

def test_version_document_and_extensions(api):
    doc = ok(api.get("/"))
    v = doc["versions"][0]
    assert v["id"] == "v2.0" and v["status"] == "CURRENT"
    assert v["links"][0]["href"].endswith("/v2.0/")
    aliases = {e["alias"] for e in ok(api.get("/v2.0/extensions"))["extensions"]}
    assert {"router", "external-net", "provider", "ext-gw-mode", "binding"} <= aliases
    assert ok(api.get("/v2.0/extensions/router"))["extension"]["alias"] == "router"
    neutron_error(api.get("/v2.0/extensions/external-gateway-multihoming"), 404,
                  "ExtensionNotFound")


def test_network_defaults_filters_and_fields(api):
    t = Topo(api)
    ext, net = t.ext, t.net
    assert ext["router:external"] is True and ext["provider:network_type"] == "flat"
    assert ext["provider:physical_network"] == "physnet1" and ext["mtu"] == 1500
    assert net["router:external"] is False and net["provider:network_type"] == "local"
    for key in ("id", "project_id", "tenant_id", "description", "revision_number",
                "created_at", "updated_at", "status", "admin_state_up", "shared", "subnets"):
        assert key in net
    got = ok(api.get("/v2.0/networks", params={"router:external": "True"}))["networks"]
    assert ext["id"] in {n["id"] for n in got} and net["id"] not in {n["id"] for n in got}
    got = ok(api.get("/v2.0/networks", params={"name": net["name"]}))["networks"]
    assert [n["id"] for n in got] == [net["id"]]
    assert got[0]["subnets"] == [t.subnet["id"]]
    got = ok(api.get("/v2.0/networks", params=[("name", net["name"]), ("fields", "id"),
                                                ("fields", "name")]))["networks"]
    assert got == [{"id": net["id"], "name": net["name"]}]
    one = ok(api.get(f"/v2.0/networks/{net['id']}", params={"fields": "mtu"}))["network"]
    assert one == {"mtu": 1500}
    upd = ok(api.put(f"/v2.0/networks/{net['id']}", json={"network": {"name": "fa-renamed",
                                                                       "mtu": 1400}}))["network"]
    assert upd["mtu"] == 1400 and upd["name"] == "fa-renamed"
    assert upd["revision_number"] > net["revision_number"]


def test_vlan_and_local_vlans(api):
    seg = 3000 + uuid.uuid4().int % 900
    vlan = ok(api.post("/v2.0/networks", json={"network": {
        "name": uniq(), "provider:network_type": "vlan", "provider:segmentation_id": seg}}),
        201)["network"]
    assert vlan["provider:segmentation_id"] == seg
    neutron_error(api.post("/v2.0/networks", json={"network": {
        "name": uniq(), "provider:network_type": "vlan", "provider:segmentation_id": seg}}),
        409, "VlanIdInUse")
    neutron_error(api.post("/v2.0/networks", json={"network": {
        "provider:network_type": "vlan"}}), 400, "InvalidInput")
    neutron_error(api.post("/v2.0/networks", json={"network": {
        "provider:network_type": "gre"}}), 400, "InvalidInput")
    ok(api.delete(f"/v2.0/networks/{vlan['id']}"), 204)


def test_subnet_defaults_and_checks(api):
    net = ok(api.post("/v2.0/networks", json={"network": {"name": uniq()}}), 201)["network"]
    sn = ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "192.0.2.0/24", "ip_version": 4,
        "enable_dhcp": False}}), 201)["subnet"]
    assert sn["gateway_ip"] == "192.0.2.1"
    assert sn["allocation_pools"] == [{"start": "192.0.2.2", "end": "192.0.2.254"}]
    assert sn["enable_dhcp"] is False and sn["ip_version"] == 4
    neutron_error(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "192.0.2.128/25", "ip_version": 4}}), 400,
        "InvalidInput")
    neutron_error(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "2001:db8::/64", "ip_version": 4}}), 400,
        "InvalidInput")  # IPv6 subnets: test_api_ipv6.py
    neutron_error(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": str(uuid.uuid4()), "cidr": "100.64.0.0/24"}}), 404, "NetworkNotFound")
    nogw = ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "100.64.8.0/24", "gateway_ip": None}}), 201)["subnet"]
    assert nogw["gateway_ip"] is None
    assert nogw["allocation_pools"] == [{"start": "100.64.8.1", "end": "100.64.8.254"}]
    ok(api.delete(f"/v2.0/subnets/{nogw['id']}"), 204)


def test_ports_allocation_and_filters(api):
    t = Topo(api, tenant_cidr="100.64.1.0/24")
    p = t.port()
    assert p["fixed_ips"][0]["subnet_id"] == t.subnet["id"]
    assert p["fixed_ips"][0]["ip_address"] == "100.64.1.3"  # .1 the router's, .2 the DHCP port
    assert p["mac_address"].startswith("fa:16:3e:") and p["status"] == "DOWN"
    q = t.port(fixed_ips=[{"ip_address": "100.64.1.50"}])
    assert q["fixed_ips"] == [{"subnet_id": t.subnet["id"], "ip_address": "100.64.1.50"}]
    neutron_error(api.post("/v2.0/ports", json={"port": {
        "network_id": t.net["id"], "fixed_ips": [{"ip_address": "100.64.1.50"}]}}), 409,
        "IpAddressAlreadyAllocated")
    neutron_error(api.post("/v2.0/ports", json={"port": {
        "network_id": t.net["id"], "fixed_ips": [{"subnet_id": t.subnet["id"],
                                                  "ip_address": "100.64.2.5"}]}}), 400,
        "InvalidIpForSubnet")
    got = ok(api.get("/v2.0/ports", params={"fixed_ips": "ip_address=100.64.1.50"}))["ports"]
    assert [x["id"] for x in got] == [q["id"]]
    got = ok(api.get("/v2.0/ports", params={"device_owner": "network:router_interface",
                                            "device_id": t.router["id"]}))["ports"]
    assert len(got) == 1 and got[0]["fixed_ips"][0]["ip_address"] == "100.64.1.1"
    neutron_error(api.delete(f"/v2.0/ports/{got[0]['id']}"), 409, "L3PortInUse")
    neutron_error(api.delete(f"/v2.0/networks/{t.net['id']}"), 409, "NetworkInUse")
    neutron_error(api.delete(f"/v2.0/subnets/{t.subnet['id']}"), 409, "SubnetInUse")
    upd = ok(api.put(f"/v2.0/ports/{q['id']}", json={"port": {"name": "fa-x",
                                                              "binding:host_id": "h1"}}))["port"]
    assert upd["binding:host_id"] == "h1" and upd["revision_number"] > q["revision_number"]
    # fixed_ips update: replace the address; the old one goes back to the pool
    moved = ok(api.put(f"/v2.0/ports/{q['id']}", json={"port": {"fixed_ips": [
        {"ip_address": "100.64.1.60"}]}}))["port"]
    assert [f["ip_address"] for f in moved["fixed_ips"]] == ["100.64.1.60"]
    again = t.port(fixed_ips=[{"ip_address": "100.64.1.50"}])
    assert again["fixed_ips"][0]["ip_address"] == "100.64.1.50"
    neutron_error(api.put(f"/v2.0/ports/{q['id']}", json={"port": {"fixed_ips": [
        {"ip_address": "100.64.1.50"}]}}), 409, "IpAddressAlreadyAllocated")
    assert ok(api.get(f"/v2.0/ports/{q['id']}"))["port"]["fixed_ips"] == moved["fixed_ips"]
    ok(api.delete(f"/v2.0/ports/{q['id']}"), 204)
    neutron_error(api.get(f"/v2.0/ports/{q['id']}"), 404, "PortNotFound")


def test_router_gateway_and_interfaces(api):
    t = Topo(api, tenant_cidr="100.64.2.0/24")
    gw = t.router["external_gateway_info"]
    assert gw["network_id"] == t.ext["id"] and gw["enable_snat"] is True
    assert gw["external_fixed_ips"][0]["subnet_id"] == t.ext_subnet["id"]
    rid = t.router["id"]
    neutron_error(api.put(f"/v2.0/routers/{rid}/add_router_interface",
                          json={"subnet_id": t.subnet["id"]}), 400, "BadRequest")
    neutron_error(api.put(f"/v2.0/routers/{rid}/add_router_interface",
                          json={"subnet_id": t.ext_subnet["id"]}), 400, "BadRequest")
    neutron_error(api.put(f"/v2.0/routers/{rid}/add_router_interface", json={}), 400,
                  "BadRequest")
    other = ok(api.post("/v2.0/networks", json={"network": {"name": uniq()}}), 201)["network"]
    osn = ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": other["id"], "cidr": "100.64.3.0/24"}}), 201)["subnet"]
    neutron_error(api.put(f"/v2.0/routers/{rid}/remove_router_interface",
                          json={"subnet_id": osn["id"]}), 404, "RouterInterfaceNotFoundForSubnet")
    p = t.port()
    neutron_error(api.put(f"/v2.0/routers/{rid}/remove_router_interface",
                          json={"port_id": p["id"]}), 404, "RouterInterfaceNotFound")
    # an interface by port: the port becomes the router's
    op = ok(api.post("/v2.0/ports", json={"port": {
        "network_id": other["id"], "fixed_ips": [{"ip_address": "100.64.3.1"}]}}), 201)["port"]
    info = ok(api.put(f"/v2.0/routers/{rid}/add_router_interface", json={"port_id": op["id"]}))
    assert info["port_id"] == op["id"] and info["subnet_id"] == osn["id"] and info["id"] == rid
    assert ok(api.get(f"/v2.0/ports/{op['id']}"))["port"]["device_owner"] == \
        "network:router_interface"
    neutron_error(api.put(f"/v2.0/routers/{rid}/add_router_interface",
                          json={"port_id": p["id"]}), 400, "BadRequest")  # overlaps
    neutron_error(api.delete(f"/v2.0/routers/{rid}"), 409, "RouterInUse")
    ok(api.put(f"/v2.0/routers/{rid}/remove_router_interface", json={"port_id": op["id"]}))
    neutron_error(api.get(f"/v2.0/ports/{op['id']}"), 404, "PortNotFound")
    # gateway: not external -> 400; clear; snat off
    neutron_error(api.put(f"/v2.0/routers/{rid}", json={"router": {"external_gateway_info": {
        "network_id": t.net["id"]}}}), 400, "BadRequest")
    r = ok(api.put(f"/v2.0/routers/{rid}", json={"router": {"external_gateway_info": {
        "network_id": t.ext["id"], "enable_snat": False}}}))["router"]
    assert r["external_gateway_info"]["enable_snat"] is False
    assert r["external_gateway_info"]["external_fixed_ips"] == gw["external_fixed_ips"]
    r = ok(api.put(f"/v2.0/routers/{rid}", json={"router": {"external_gateway_info": {}}}))
    assert r["router"]["external_gateway_info"] is None
    ok(api.put(f"/v2.0/routers/{rid}/remove_router_interface", json={"subnet_id": t.subnet["id"]}))
    ok(api.delete(f"/v2.0/routers/{rid}"), 204)
    neutron_error(api.get(f"/v2.0/routers/{rid}"), 404, "RouterNotFound")


def test_router_extra_routes(api):
    t = Topo(api, tenant_cidr="100.64.4.0/24")
    rid = t.router["id"]
    route = {"destination": "192.0.2.0/24", "nexthop": "100.64.4.9"}
    r = ok(api.put(f"/v2.0/routers/{rid}", json={"router": {"routes": [route]}}))["router"]
    assert r["routes"] == [route]
    before = everything(api)
    neutron_error(api.put(f"/v2.0/routers/{rid}", json={"router": {"routes": [
        {"destination": "192.0.2.0/24", "nexthop": "100.64.99.9"}]}}), 400, "InvalidRoutes")
    neutron_error(api.put(f"/v2.0/routers/{rid}", json={"router": {"routes": [
        {"destination": "0.0.0.0/0", "nexthop": "100.64.4.9"}]}}), 400, "InvalidRoutes")
    neutron_error(api.put(f"/v2.0/routers/{rid}/remove_router_interface",
                          json={"subnet_id": t.subnet["id"]}), 409, "RouterInterfaceInUseByRoute")
    assert everything(api) == before, "a rejected request changed something"
    r = ok(api.put(f"/v2.0/routers/{rid}", json={"router": {"routes": []}}))["router"]
    assert r["routes"] == []
    ok(api.put(f"/v2.0/routers/{rid}/remove_router_interface", json={"subnet_id": t.subnet["id"]}))


def test_floating_ip_lifecycle_and_errors(api):
    t = Topo(api, tenant_cidr="100.64.4.0/24")
    vm1, vm2 = t.port(), t.port()
    f = ok(t.fip(port_id=vm1["id"]), 201)["floatingip"]
    assert f["router_id"] == t.router["id"] and f["fixed_ip_address"] == vm1["fixed_ips"][0][
        "ip_address"]
    assert f["port_id"] == vm1["id"] and f["status"] == "DOWN"
    assert f["port_details"]["mac_address"] == vm1["mac_address"]
    neutron_error(t.fip(port_id=vm1["id"]), 409, "FloatingIPPortAlreadyAssociated")
    neutron_error(t.fip(floating_ip_address=f["floating_ip_address"]), 409, "IpAddressInUse")
    neutron_error(t.fip(port_id=str(uuid.uuid4())), 404, "PortNotFound")
    # a port whose subnet has no router to this external network
    lone = ok(api.post("/v2.0/networks", json={"network": {"name": uniq()}}), 201)["network"]
    ok(api.post("/v2.0/subnets", json={"subnet": {"network_id": lone["id"],
                                                  "cidr": "100.64.5.0/24"}}), 201)
    lp = ok(api.post("/v2.0/ports", json={"port": {"network_id": lone["id"]}}), 201)["port"]
    neutron_error(t.fip(port_id=lp["id"]), 404, "ExternalGatewayForFloatingIPNotFound")
    neutron_error(api.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": t.net["id"]}}), 400, "BadRequest")
    neutron_error(api.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": str(uuid.uuid4())}}), 404, "NetworkNotFound")
    neutron_error(api.put(f"/v2.0/routers/{t.router['id']}/remove_router_interface",
                          json={"subnet_id": t.subnet["id"]}), 409,
                  "RouterInterfaceInUseByFloatingIP")
    neutron_error(api.put(f"/v2.0/routers/{t.router['id']}", json={"router": {
        "external_gateway_info": None}}), 409, "RouterExternalGatewayInUseByFloatingIp")
    # move, filter, disassociate
    moved = ok(api.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {
        "port_id": vm2["id"]}}))["floatingip"]
    assert moved["port_id"] == vm2["id"] and moved["fixed_ip_address"] == \
        vm2["fixed_ips"][0]["ip_address"]
    assert moved["revision_number"] > f["revision_number"]
    got = ok(api.get("/v2.0/floatingips", params={"port_id": vm2["id"]}))["floatingips"]
    assert [x["id"] for x in got] == [f["id"]]
    got = ok(api.get("/v2.0/floatingips", params={
        "floating_ip_address": f["floating_ip_address"]}))["floatingips"]
    assert [x["id"] for x in got] == [f["id"]]
    assert ok(api.get("/v2.0/floatingips", params={"port_id": vm1["id"]}))["floatingips"] == []
    free = ok(api.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {
        "port_id": None}}))["floatingip"]
    assert free["port_id"] is None and free["router_id"] is None and \
        free["fixed_ip_address"] is None
    # specific address and fixed_ip_address
    g = ok(t.fip(floating_ip_address="203.0.113.33", port_id=vm1["id"],
                 fixed_ip_address=vm1["fixed_ips"][0]["ip_address"]), 201)["floatingip"]
    assert g["floating_ip_address"] == "203.0.113.33"
    neutron_error(api.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {
        "port_id": vm2["id"], "fixed_ip_address": "100.64.4.250"}}), 400, "BadRequest")
    # deleting a VM port disassociates its floating IP (Neutron's behaviour)
    rev = ok(api.get(f"/v2.0/floatingips/{g['id']}"))["floatingip"]["revision_number"]
    ok(api.delete(f"/v2.0/ports/{vm1['id']}"), 204)
    after = ok(api.get(f"/v2.0/floatingips/{g['id']}"))["floatingip"]
    assert (after["port_id"], after["fixed_ip_address"], after["router_id"], after["status"]) \
        == (None, None, None, "DOWN")
    assert after["revision_number"] == rev + 1
    for fid in (f["id"], g["id"]):
        ok(api.delete(f"/v2.0/floatingips/{fid}"), 204)
        neutron_error(api.get(f"/v2.0/floatingips/{fid}"), 404, "FloatingIPNotFound")
    # the floating IP's address went back to the pool
    assert not ok(api.get("/v2.0/ports", params={"device_owner": "network:floatingip",
                                                 "network_id": t.ext["id"]}))["ports"]


@pytest.mark.parametrize("kind,type_", [("networks", "NetworkNotFound"),
                                        ("subnets", "SubnetNotFound"), ("ports", "PortNotFound"),
                                        ("routers", "RouterNotFound"),
                                        ("floatingips", "FloatingIPNotFound")])
def test_not_found_everywhere(api, kind, type_):
    rid = str(uuid.uuid4())
    neutron_error(api.get(f"/v2.0/{kind}/{rid}"), 404, type_)
    neutron_error(api.put(f"/v2.0/{kind}/{rid}", json={kind[:-1]: {"description": "x"}}), 404,
                  type_)
    neutron_error(api.delete(f"/v2.0/{kind}/{rid}"), 404, type_)


def test_malformed_bodies_are_bad_requests(api):
    for path in ("/v2.0/networks", "/v2.0/ports", "/v2.0/floatingips", "/v2.0/routers"):
        neutron_error(api.post(path, content=b"{not json",
                               headers={"Content-Type": "application/json"}), 400,
                      "HTTPBadRequest")
        neutron_error(api.post(path, json=[1, 2]), 400, "HTTPBadRequest")
        neutron_error(api.post(path, json={"wrong": {}}), 400, "HTTPBadRequest")
    neutron_error(api.post("/v2.0/networks", json={"network": {"admin_state_up": "maybe"}}),
                  400, "HTTPBadRequest")
    neutron_error(api.post("/v2.0/networks", json={"network": {"bogus": 1}}), 400,
                  "HTTPBadRequest")
    neutron_error(api.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": "not-a-uuid"}}), 400, "HTTPBadRequest")


def test_rejected_requests_change_nothing(api):
    t = Topo(api, tenant_cidr="100.64.6.0/24", pool=("203.0.113.10", "203.0.113.12"))
    vm = t.port()
    ok(t.fip(port_id=vm["id"]), 201)
    before = everything(api)
    # each fails after some rows were already written inside its transaction
    neutron_error(t.fip(port_id=vm["id"]), 409, "FloatingIPPortAlreadyAssociated")
    neutron_error(t.fip(port_id=str(uuid.uuid4())), 404, "PortNotFound")
    neutron_error(api.post("/v2.0/routers", json={"router": {"name": uniq(),
                                                             "external_gateway_info": {
                                                                 "network_id": t.ext["id"],
                                                                 "external_fixed_ips": [{
                                                                     "ip_address": "203.0.113.10"
                                                                 }]}}}), 409, "IpAddressInUse")
    neutron_error(api.post("/v2.0/ports", json={"port": {
        "network_id": t.net["id"], "fixed_ips": [
            {"ip_address": "100.64.6.77"}, vm["fixed_ips"][0]]}}), 409,
        "IpAddressAlreadyAllocated")
    neutron_error(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": t.net["id"], "cidr": "100.64.6.0/25"}}), 400, "InvalidInput")
    neutron_error(api.put(f"/v2.0/routers/{t.router['id']}/remove_router_interface",
                          json={"subnet_id": t.subnet["id"]}), 409,
                  "RouterInterfaceInUseByFloatingIP")
    assert everything(api) == before


def test_parallel_creates_never_share_an_address(api):
    t = Topo(api, tenant_cidr="100.64.7.0/24", pool=("203.0.113.100", "203.0.113.119"))
    start = threading.Barrier(30)

    def create(_):
        with httpx.Client(base_url=str(api.base_url), timeout=60) as c:
            start.wait()
            return c.post("/v2.0/floatingips", json={"floatingip": {
                "floating_network_id": t.ext["id"]}})
    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(create, range(30)))
    made = [r.json()["floatingip"]["floating_ip_address"] for r in results
            if r.status_code == 201]
    failed = [r for r in results if r.status_code != 201]
    # 20 addresses in the pool, one taken by the router's gateway
    assert len(made) == 19 and len(set(made)) == 19, made
    for r in failed:
        neutron_error(r, 400, "ExternalIpAddressExhausted")
    neutron_error(t.fip(), 400, "ExternalIpAddressExhausted")
    # the same address asked for in parallel: exactly one wins
    for f in api.get("/v2.0/floatingips", params={"floating_network_id": t.ext["id"]}).json()[
            "floatingips"][:5]:
        ok(api.delete(f"/v2.0/floatingips/{f['id']}"), 204)
    addr = "203.0.113.101" if "203.0.113.101" not in made[5:] else made[0]
    free = [a for a in (f"203.0.113.{i}" for i in range(100, 120))
            if not api.get("/v2.0/floatingips", params={"floating_ip_address": a}).json()[
                "floatingips"] and a != t.router["external_gateway_info"][
                "external_fixed_ips"][0]["ip_address"]]
    addr = free[0]
    start2 = threading.Barrier(10)

    def same(_):
        with httpx.Client(base_url=str(api.base_url), timeout=60) as c:
            start2.wait()
            return c.post("/v2.0/floatingips", json={"floatingip": {
                "floating_network_id": t.ext["id"], "floating_ip_address": addr}})
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(same, range(10)))
    assert sorted(r.status_code for r in results) == [201] + [409] * 9
    for r in results:
        if r.status_code == 409:
            neutron_error(r, 409, "IpAddressInUse")


def test_parallel_associations_of_one_port(api):
    t = Topo(api, tenant_cidr="100.64.9.0/24", pool=("203.0.113.120", "203.0.113.140"))
    vm = t.port()
    fips = [ok(t.fip(), 201)["floatingip"] for _ in range(8)]
    start = threading.Barrier(len(fips))

    def assoc(f):
        with httpx.Client(base_url=str(api.base_url), timeout=60) as c:
            start.wait()
            return c.put(f"/v2.0/floatingips/{f['id']}", json={"floatingip": {
                "port_id": vm["id"]}})
    with ThreadPoolExecutor(len(fips)) as pool:
        results = list(pool.map(assoc, fips))
    assert sorted(r.status_code for r in results) == [200] + [409] * 7
    assert len(ok(api.get("/v2.0/floatingips", params={"port_id": vm["id"]}))["floatingips"]) == 1


def test_state_survives_a_restart_and_feeds_the_model(server, db_url):
    from floatip.core.validate import validate
    from floatip.service import agent_view
    with httpx.Client(base_url=server.url) as api:
        t = Topo(api, tenant_cidr="100.64.10.0/24", pool=("203.0.113.150", "203.0.113.160"))
        vm = t.port()
        f = ok(t.fip(port_id=vm["id"]), 201)["floatingip"]
    srv2 = Server(db_url, f"127.0.0.1:{free_port()}", agent=False).start()  # migrations rerun
    try:
        with httpx.Client(base_url=srv2.url) as api2:
            assert ok(api2.get(f"/v2.0/floatingips/{f['id']}"))["floatingip"] == f
        db = srv2.db
        with db.tx(notify=False) as s:
            state = agent_view.desired_state(s)
        validate(state)  # what the agent gets is sound
        fip = state.floatingips[f["id"]]
        assert state.router_for_fip(fip).id == t.router["id"]
        # the agent's index gives the same answer as the model for every floating IP
        from floatip.core.model import fip_routers
        assert fip_routers(state) == {
            fid: r.id for fid, x in state.floatingips.items()
            if (r := state.router_for_fip(x)) is not None}
        assert state.networks[t.net["id"]].local_vlan is not None
        # the agent's status report: DOWN -> ACTIVE, visible through the API
        with db.tx(notify=False) as s:
            assert agent_view.report_status(s, {f["id"]: "ACTIVE"}, {t.router["id"]: "ACTIVE"},
                                         {vm["id"]: {"status": "ACTIVE", "host": "fa-host"}}) == 2
        with httpx.Client(base_url=srv2.url) as api2:
            assert ok(api2.get(f"/v2.0/floatingips/{f['id']}"))["floatingip"]["status"] == \
                "ACTIVE"
            p = ok(api2.get(f"/v2.0/ports/{vm['id']}"))["port"]
            assert p["status"] == "ACTIVE" and p["binding:host_id"] == "fa-host"
    finally:
        srv2.close()


def test_native_cli_against_the_api(server):
    """``floatip network|subnet|port|router|floating-ip`` and ``floatip apply`` are clients
    of this API."""
    import json
    import subprocess
    import sys
    import tempfile
    exe = [os.path.join(os.path.dirname(sys.executable), "floatip")]
    env = {**os.environ, "FLOATIP_URL": server.url, "COLUMNS": "200"}

    def run(*args, code=0):
        r = subprocess.run([*exe, *args], capture_output=True, text=True, env=env)
        assert r.returncode == code, r.stdout + r.stderr
        return r.stdout

    ext, net, sub = uniq("ext"), uniq("net"), uniq("sub")
    run("network", "create", ext, "--external")
    run("subnet", "create", uniq("esub"), "--network", ext, "--subnet-range", "203.0.113.0/24",
        "--allocation-pool", "start=203.0.113.200,end=203.0.113.210")
    run("network", "create", net)
    run("subnet", "create", sub, "--network", net, "--subnet-range", "100.64.11.0/24")
    r = uniq("r")
    run("router", "create", r, "--external-gateway", ext)
    run("router", "add-interface", r, "--subnet", sub)
    port = json.loads(run("port", "create", uniq("vm"), "--network", net, "--fixed-ip",
                          f"subnet={sub},ip-address=100.64.11.9", "-f", "json"))
    f = json.loads(run("floating-ip", "create", ext, "--port", port["id"], "-f", "json"))
    assert f["fixed_ip_address"] == "100.64.11.9" and f["router_id"]
    listed = run("floating-ip", "list")
    assert f["floating_ip_address"] in listed
    err = subprocess.run([*exe, "floating-ip", "create", ext, "--port", port["id"]],
                         capture_output=True, text=True, env=env)
    assert err.returncode == 1 and "FloatingIPPortAlreadyAssociated" in err.stderr
    run("floating-ip", "set", f["floating_ip_address"], "--no-port")
    run("floating-ip", "delete", f["floating_ip_address"])
    # apply: create, then a second apply changes nothing
    doc = {"networks": [{"name": uniq("anet")}],
           "subnets": [], "ports": [], "routers": [], "floatingips": []}
    doc["subnets"].append({"name": uniq("asub"), "network": doc["networks"][0]["name"],
                           "cidr": "100.64.12.0/24"})
    # an IPv6 subnet: the file may leave ip_version out (the CIDR says it)
    doc["subnets"].append({"name": uniq("asub6"), "network": doc["networks"][0]["name"],
                           "cidr": "2001:db8:12::/64", "ipv6_ra_mode": "slaac",
                           "ipv6_address_mode": "slaac"})
    doc["ports"].append({"name": uniq("avm"), "network": doc["networks"][0]["name"],
                         "fixed_ip": "100.64.12.7"})
    doc["routers"].append({"name": uniq("ar"), "external_gateway_info": {"network": ext},
                           "interfaces": [doc["subnets"][0]["name"]]})
    doc["floatingips"].append({"floating_ip_address": "203.0.113.205",
                               "port": doc["ports"][0]["name"]})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(doc, fh)
    try:
        first = json.loads(run("apply", fh.name, "--json"))
        assert len(first["created"]) == 6 and len(first["updated"]) == 1  # + the interface
        v6 = json.loads(run("subnet", "show", doc["subnets"][1]["name"], "-f", "json"))
        assert v6["ip_version"] == 6 and v6["ipv6_address_mode"] == "slaac"
        vm = json.loads(run("port", "show", doc["ports"][0]["name"], "-f", "json"))
        v4, v6addr = sorted((f["ip_address"] for f in vm["fixed_ips"]), key=len)
        assert v4 == "100.64.12.7" and ipaddress.ip_address(v6addr) in ipaddress.ip_network(
            "2001:db8:12::/64")  # its EUI-64 address, which apply does not fight
        second = json.loads(run("apply", fh.name, "--json"))
        assert not second["created"] and not second["updated"]
    finally:
        os.unlink(fh.name)


def test_migrations_match_the_models(server):
    """The schema Alembic built is the one the models describe: a model change without a
    migration fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from floatip.store.tables import Base
    with server.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_agent_endpoints_state_and_long_poll(api, server):
    """What ``floatip agent --server`` uses: the desired state and a long poll for changes."""
    import time
    t = Topo(api, tenant_cidr="100.64.13.0/24", pool=("203.0.113.170", "203.0.113.180"))
    doc = ok(api.get("/floatip/v1/state"))
    from floatip.core import model
    from floatip.core.validate import validate
    state = model.state_from_json(doc["state"])
    validate(state)
    assert t.router["id"] in state.routers and t.router["id"] in doc["known_routers"]
    gen = ok(api.get("/floatip/v1/changes", params={"generation": -1}))["generation"]
    t0 = time.monotonic()
    assert ok(api.get("/floatip/v1/changes", params={"generation": gen, "timeout": 0.3}))[
        "generation"] == gen
    assert time.monotonic() - t0 >= 0.25  # it waited: nothing changed

    def later():
        time.sleep(0.3)
        with httpx.Client(base_url=server.url) as c:
            c.put(f"/v2.0/networks/{t.net['id']}", json={"network": {"description": "x"}})
    threading.Thread(target=later).start()
    t0 = time.monotonic()
    assert ok(api.get("/floatip/v1/changes", params={"generation": gen, "timeout": 10}))[
        "generation"] != gen
    assert time.monotonic() - t0 < 5  # woken by the change, not by the timeout
    # a failed request is not a change
    gen = ok(api.get("/floatip/v1/changes", params={"generation": -1}))["generation"]
    neutron_error(t.fip(port_id=str(uuid.uuid4())), 404, "PortNotFound")
    assert ok(api.get("/floatip/v1/changes", params={"generation": gen, "timeout": 0.2}))[
        "generation"] == gen
