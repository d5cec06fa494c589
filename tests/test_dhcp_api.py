"""The API side of DHCP and metadata: the DHCP port follows the DHCP-enabled subnets, the
floatip-metadata port attributes, on SQLite (a real server, agent off)."""
from __future__ import annotations

import uuid

import httpx
import pytest

from floatip.server import Server, free_port

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFloatipTestKey fd@test"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    srv = Server(f"sqlite:///{tmp_path_factory.mktemp('fd-api')}/floatip.db",
                 f"127.0.0.1:{free_port()}", agent=False).start()
    with httpx.Client(base_url=srv.url + "/v2.0", timeout=30) as c:
        yield c
    srv.close()


def ok(r: httpx.Response, code: int = 200) -> dict:
    assert r.status_code == code, r.text
    return r.json() if r.content else {}


def dhcp_ports(api, net_id: str) -> list[dict]:
    return ok(api.get("/ports", params={"network_id": net_id,
                                        "device_owner": "network:dhcp"}))["ports"]


def network(api) -> str:
    return ok(api.post("/networks", json={"network": {"name": f"fd-{uuid.uuid4().hex[:6]}"}}),
              201)["network"]["id"]


def test_dhcp_port_follows_the_dhcp_subnets(api):
    nid = network(api)
    assert dhcp_ports(api, nid) == []
    sn = ok(api.post("/subnets", json={"subnet": {
        "network_id": nid, "cidr": "198.51.100.0/24", "dns_nameservers": ["192.0.2.53"],
        "host_routes": [{"destination": "192.0.2.0/24", "nexthop": "198.51.100.254"}]}}),
        201)["subnet"]
    [port] = dhcp_ports(api, nid)
    assert port["device_id"].startswith("dhcp") and port["device_id"].endswith("-" + nid)
    assert port["fixed_ips"] == [{"subnet_id": sn["id"], "ip_address": "198.51.100.2"}]
    # a VM port gets the next address; the DHCP port is not in its way
    vm = ok(api.post("/ports", json={"port": {"network_id": nid}}), 201)["port"]
    assert vm["fixed_ips"][0]["ip_address"] == "198.51.100.3"
    # DHCP off: the port goes; on again: it comes back
    ok(api.put(f"/subnets/{sn['id']}", json={"subnet": {"enable_dhcp": False}}))
    assert dhcp_ports(api, nid) == []
    ok(api.put(f"/subnets/{sn['id']}", json={"subnet": {"enable_dhcp": True}}))
    [port] = dhcp_ports(api, nid)
    # a second DHCP subnet: the same port gets an address from it too; deleting that subnet
    # gives it back (the DHCP port does not block the delete)
    sn2 = ok(api.post("/subnets", json={"subnet": {"network_id": nid, "cidr": "192.0.2.0/24"}}),
             201)["subnet"]
    [port] = dhcp_ports(api, nid)
    assert {f["subnet_id"] for f in port["fixed_ips"]} == {sn["id"], sn2["id"]}
    ok(api.delete(f"/subnets/{sn2['id']}"), 204)
    [port] = dhcp_ports(api, nid)
    assert {f["subnet_id"] for f in port["fixed_ips"]} == {sn["id"]}
    # the VM port blocks the network's deletion, the DHCP port does not
    assert api.delete(f"/networks/{nid}").status_code == 409
    ok(api.delete(f"/ports/{vm['id']}"), 204)
    ok(api.delete(f"/networks/{nid}"), 204)
    assert dhcp_ports(api, nid) == []


def test_subnet_without_dhcp_has_no_dhcp_port_and_bad_options_are_refused(api):
    nid = network(api)
    ok(api.post("/subnets", json={"subnet": {"network_id": nid, "cidr": "198.51.100.0/24",
                                             "enable_dhcp": False}}), 201)
    assert dhcp_ports(api, nid) == []
    for bad in ({"dns_nameservers": ["8.8.8.8\n--dhcp-script=/tmp/x"]},
                {"host_routes": [{"destination": "0/0,evil", "nexthop": "198.51.100.1"}]},
                {"host_routes": [{"destination": "192.0.2.0/24"}]}):
        r = api.post("/subnets", json={"subnet": {"network_id": nid, "cidr": "203.0.113.0/24",
                                                  **bad}})
        assert r.status_code == 400, r.text


def test_metadata_attributes_on_ports(api):
    nid = network(api)
    ok(api.post("/subnets", json={"subnet": {"network_id": nid, "cidr": "198.51.100.0/24"}}), 201)
    p = ok(api.post("/ports", json={"port": {
        "network_id": nid, "floatip:user_data": "#cloud-config\n",
        "floatip:public_keys": {"mykey": KEY}}}), 201)["port"]
    assert p["floatip:user_data"] == "#cloud-config\n"
    assert p["floatip:public_keys"] == {"mykey": KEY}
    p = ok(api.put(f"/ports/{p['id']}", json={"port": {"floatip:user_data": None}}))["port"]
    assert p["floatip:user_data"] is None and p["floatip:public_keys"] == {"mykey": KEY}
    for bad in ({"floatip:public_keys": {"k": "not a key"}},
                {"floatip:public_keys": {"k": KEY + "\nssh-rsa AAAA injected"}},
                {"floatip:public_keys": ["x"]},
                {"floatip:user_data": "x" * 70000}):
        assert api.put(f"/ports/{p['id']}", json={"port": bad}).status_code == 400
    exts = {e["alias"] for e in ok(api.get("/extensions"))["extensions"]}
    assert "floatip-metadata" in exts
