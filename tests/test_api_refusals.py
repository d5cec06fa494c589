"""Every input issue 7 lists as crashing floatip or accepted against Neutron's rules, sent to
the real server on SQLite and PostgreSQL: each gets its 4xx with Neutron's error type, and the
database is exactly as before (compared as a dump of every table)."""
from __future__ import annotations

import json
import uuid

import httpx
import pytest
from sqlalchemy import select

from floatip.store.tables import Base
from test_api import Topo, api, db_url, ok, server, uniq  # noqa: F401 (fixtures)

NEW = str(uuid.uuid4())


def dump(db) -> dict:
    with db.engine.connect() as c:
        return {t.name: sorted(repr(tuple(r)) for r in c.execute(select(t)))
                for t in Base.metadata.sorted_tables}


@pytest.fixture(scope="module")
def topo(server):
    """One topology per database; no case may change it."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        t = Topo(c, tenant_cidr="100.64.30.0/24", pool=("203.0.113.60", "203.0.113.70"))
        vm = t.port()
        fip = ok(t.fip(), 201)["floatingip"]
        # a port without owner on a subnet's gateway: about to become a router interface
        lone = ok(c.post("/v2.0/networks", json={"network": {"name": uniq()}}), 201)["network"]
        ok(c.post("/v2.0/subnets", json={"subnet": {"network_id": lone["id"],
                                                    "cidr": "100.64.33.0/24"}}), 201)
        gw_port = ok(c.post("/v2.0/ports", json={"port": {
            "network_id": lone["id"], "fixed_ips": [{"ip_address": "100.64.33.1"}]}}),
            201)["port"]
    return {"gw_port": gw_port["id"], "ext": t.ext["id"], "ext_subnet": t.ext_subnet["id"],
            "net": t.net["id"], "subnet": t.subnet["id"], "router": t.router["id"],
            "port": vm["id"], "vm_ip": vm["fixed_ips"][0]["ip_address"], "fip": fip["id"],
            "fip_ip": fip["floating_ip_address"]}


S = "\ud800"  # a lone surrogate: valid JSON text, not valid Unicode
NET, SUB, PORT, RTR, FIP = ("/v2.0/networks", "/v2.0/subnets", "/v2.0/ports", "/v2.0/routers",
                            "/v2.0/floatingips")


def sub(cidr="100.64.31.0/24", **kw):
    return {"subnet": {"network_id": "{net}", "cidr": cidr, **kw}}


def port(**kw):
    return {"port": {"network_id": "{net}", **kw}}


def fip(**kw):
    return {"floatingip": {"floating_network_id": "{ext}", **kw}}


# (id, method, path, body (str: raw bytes), status, Neutron error type)
CASES = [
    # a lone surrogate in any name, create and update
    ("surrogate-network", "POST", NET, {"network": {"name": S}}, 400, "HTTPBadRequest"),
    ("surrogate-subnet", "POST", SUB, sub(name=S), 400, "HTTPBadRequest"),
    ("surrogate-port", "POST", PORT, port(name="x" + S), 400, "HTTPBadRequest"),
    ("surrogate-router", "POST", RTR, {"router": {"name": S}}, 400, "HTTPBadRequest"),
    ("surrogate-fip", "POST", FIP, fip(description=S), 400, "HTTPBadRequest"),
    ("surrogate-update", "PUT", NET + "/{net}", {"network": {"name": S}}, 400,
     "HTTPBadRequest"),
    ("surrogate-key", "POST", NET, {"network": {S: 1}}, 400, "HTTPBadRequest"),
    # NUL in a string, a path, a query value
    ("nul-name", "POST", NET, {"network": {"name": "a\x00b"}}, 400, "HTTPBadRequest"),
    ("nul-port-device", "PUT", PORT + "/{port}", {"port": {"device_id": "\x00"}}, 400,
     "HTTPBadRequest"),
    ("nul-path-show", "GET", NET + "/%00", None, 404, "NetworkNotFound"),
    ("nul-path-update", "PUT", PORT + "/a%00b", {"port": {"name": "x"}}, 404, "PortNotFound"),
    ("nul-path-delete", "DELETE", RTR + "/%00", None, 404, "RouterNotFound"),
    ("nul-path-action", "PUT", RTR + "/%00/add_router_interface", {"subnet_id": "{subnet}"},
     404, "RouterNotFound"),
    ("nul-query", "GET", NET + "?name=%00", None, 400, "HTTPBadRequest"),
    ("nul-query-fields", "GET", NET + "/{net}?fields=%00", None, 400, "HTTPBadRequest"),
    # dns_nameservers / host_routes as a number or a boolean, create and update
    ("dns-number", "POST", SUB, sub(dns_nameservers=5), 400, "HTTPBadRequest"),
    ("dns-bool", "PUT", SUB + "/{subnet}", {"subnet": {"dns_nameservers": True}}, 400,
     "HTTPBadRequest"),
    ("routes-number", "POST", SUB, sub(host_routes=7), 400, "HTTPBadRequest"),
    ("routes-bool", "PUT", SUB + "/{subnet}", {"subnet": {"host_routes": False}}, 400,
     "HTTPBadRequest"),
    # fixed_ips entries with a list or an object inside; external_fixed_ips not objects
    ("fixed-ip-list", "POST", PORT, port(fixed_ips=[{"ip_address": ["100.64.30.9"]}]), 400,
     "HTTPBadRequest"),
    ("fixed-subnet-object", "POST", PORT, port(fixed_ips=[{"subnet_id": {"id": "{subnet}"}}]),
     400, "HTTPBadRequest"),
    ("fixed-ips-string", "PUT", PORT + "/{port}", {"port": {"fixed_ips": "100.64.30.9"}}, 400,
     "HTTPBadRequest"),
    ("external-fixed-not-object", "POST", RTR, {"router": {"external_gateway_info": {
        "network_id": "{ext}", "external_fixed_ips": ["203.0.113.61"]}}}, 400,
     "HTTPBadRequest"),
    # provider:physical_network as [] or {}; a MAC over 32 characters
    ("physnet-list", "POST", NET, {"network": {"router:external": True,
                                               "provider:physical_network": []}}, 400,
     "HTTPBadRequest"),
    ("physnet-object", "POST", NET, {"network": {"router:external": True,
                                                 "provider:physical_network": {}}}, 400,
     "HTTPBadRequest"),
    ("mac-long", "POST", PORT, port(mac_address="fa:16:3e:00:00:01" * 3), 400,
     "HTTPBadRequest"),
    # /floatip/v1/status bodies of the wrong shape
    ("status-list", "POST", "/floatip/v1/status", [1, 2], 400, "HTTPBadRequest"),
    ("status-fips-number", "POST", "/floatip/v1/status", {"floatingips": 5}, 400,
     "HTTPBadRequest"),
    ("status-router-number", "POST", "/floatip/v1/status", {"routers": {"{router}": 5}}, 400,
     "HTTPBadRequest"),
    ("status-port-string", "POST", "/floatip/v1/status", {"ports": {"{port}": "ACTIVE"}}, 400,
     "HTTPBadRequest"),
    ("status-port-list", "POST", "/floatip/v1/status",
     {"ports": {"{port}": {"status": [], "host": {}}}}, 400, "HTTPBadRequest"),
    ("status-unknown", "POST", "/floatip/v1/status", {"floatingips": {"{fip}": "BOGUS"}}, 400,
     "HTTPBadRequest"),
    ("status-nul-id", "POST", "/floatip/v1/status", {"routers": {"a\x00": "ACTIVE"}}, 400,
     "HTTPBadRequest"),
    # CIDRs Neutron refuses
    ("cidr-default", "POST", SUB, sub("0.0.0.0/0"), 400, "InvalidInput"),
    ("cidr-loopback", "POST", SUB, sub("127.0.0.0/8"), 400, "InvalidInput"),
    ("cidr-multicast", "POST", SUB, sub("224.0.0.0/24"), 400, "InvalidInput"),
    ("cidr-broadcast", "POST", SUB, sub("255.255.255.0/24"), 400, "InvalidInput"),
    ("cidr-link-local", "POST", SUB, sub("169.254.0.0/16"), 400, "InvalidInput"),
    ("cidr-host-bits", "POST", SUB, sub("100.64.31.1/24"), 400, "HTTPBadRequest"),
    ("cidr-integer", "POST", SUB, sub(1684045568), 400, "HTTPBadRequest"),
    ("cidr-v6-on-v4", "POST", SUB, sub("2001:db8::/64"), 400, "InvalidInput"),
    # integers as addresses
    ("gateway-integer", "POST", SUB, sub(gateway_ip=1684045569), 400, "HTTPBadRequest"),
    ("fixed-ip-integer", "POST", PORT, port(fixed_ips=[{"ip_address": 1684045577}]), 400,
     "HTTPBadRequest"),
    ("fip-address-integer", "POST", FIP, fip(floating_ip_address=3405803837), 400,
     "HTTPBadRequest"),
    # MACs: multicast, all-zero, broadcast
    ("mac-multicast", "POST", PORT, port(mac_address="01:00:5e:00:00:01"), 400,
     "HTTPBadRequest"),
    ("mac-zero", "POST", PORT, port(mac_address="00:00:00:00:00:00"), 400, "HTTPBadRequest"),
    ("mac-update-broadcast", "PUT", PORT + "/{port}",
     {"port": {"mac_address": "ff:ff:ff:ff:ff:ff"}}, 400, "HTTPBadRequest"),
    # dns_nameservers and host_routes: addresses, no duplicates, never split
    ("dns-string", "POST", SUB, sub(dns_nameservers="abc"), 400, "HTTPBadRequest"),
    ("dns-not-address", "PUT", SUB + "/{subnet}", {"subnet": {"dns_nameservers": ["abc"]}},
     400, "HTTPBadRequest"),
    ("dns-duplicate", "POST", SUB, sub(dns_nameservers=["192.0.2.53", "192.0.2.53"]), 400,
     "HTTPBadRequest"),
    ("route-no-nexthop", "POST", SUB, sub(host_routes=[{"destination": "192.0.2.0/24"}]),
     400, "HTTPBadRequest"),
    ("route-bad-nexthop", "PUT", SUB + "/{subnet}", {"subnet": {"host_routes": [
        {"destination": "192.0.2.0/24", "nexthop": "abc"}]}}, 400, "HTTPBadRequest"),
    ("route-host-bits", "PUT", RTR + "/{router}", {"router": {"routes": [
        {"destination": "192.0.2.1/24", "nexthop": "100.64.30.9"}]}}, 400, "HTTPBadRequest"),
    # allocation pools: inside the CIDR, not overlapping each other or the gateway
    ("pool-outside", "POST", SUB, sub(allocation_pools=[
        {"start": "100.64.31.10", "end": "100.64.32.5"}]), 400, "InvalidAllocationPool"),
    ("pool-overlap", "POST", SUB, sub(allocation_pools=[
        {"start": "100.64.31.10", "end": "100.64.31.20"},
        {"start": "100.64.31.15", "end": "100.64.31.30"}]), 409, "OverlappingAllocationPools"),
    ("pool-gateway", "POST", SUB, sub(gateway_ip="100.64.31.12", allocation_pools=[
        {"start": "100.64.31.10", "end": "100.64.31.20"}]), 409,
     "GatewayConflictWithAllocationPools"),
    ("pool-reversed", "POST", SUB, sub(allocation_pools=[
        {"start": "100.64.31.20", "end": "100.64.31.10"}]), 400, "InvalidAllocationPool"),
    ("pool-not-object", "POST", SUB, sub(allocation_pools=["100.64.31.10"]), 400,
     "HTTPBadRequest"),
    # fixed_ip_address without port_id is refused, not dropped
    ("fixed-without-port", "POST", FIP, fip(fixed_ip_address="100.64.30.2"), 400,
     "BadRequest"),
    ("fixed-without-port-update", "PUT", FIP + "/{fip}",
     {"floatingip": {"fixed_ip_address": "{vm_ip}"}}, 400, "BadRequest"),
    # addresses that are not free host addresses of the external subnet
    ("fip-on-gateway", "POST", FIP, fip(floating_ip_address="203.0.113.1"), 409,
     "IpAddressInUse"),
    ("fip-on-network", "POST", FIP, fip(floating_ip_address="203.0.113.0"), 400,
     "InvalidIpForSubnet"),
    ("fip-on-broadcast", "POST", FIP, fip(floating_ip_address="203.0.113.255"), 400,
     "InvalidIpForSubnet"),
    ("fip-taken", "POST", FIP, fip(floating_ip_address="{fip_ip}"), 409, "IpAddressInUse"),
    ("fip-not-external", "POST", FIP, fip(floating_ip_address="{vm_ip}"), 400,
     "InvalidIpForNetwork"),
    ("router-gw-on-gateway", "POST", RTR, {"router": {"external_gateway_info": {
        "network_id": "{ext}", "external_fixed_ips": [{"ip_address": "203.0.113.1"}]}}}, 409,
     "IpAddressInUse"),
    ("vm-on-gateway", "POST", PORT, port(device_owner="compute:nova",
                                         fixed_ips=[{"ip_address": "100.64.30.1"}]), 409,
     "IpAddressInUse"),
    ("gateway-port-to-vm", "PUT", PORT + "/{gw_port}",
     {"port": {"device_owner": "compute:nova"}}, 409, "IpAddressInUse"),
    ("vm-on-broadcast", "POST", PORT, port(fixed_ips=[{"ip_address": "100.64.30.255"}]), 400,
     "InvalidIpForSubnet"),
    # IPv6 values where the subnet or the resource is IPv4 (IPv6 rules: test_api_ipv6.py)
    ("v6-gateway", "POST", SUB, sub(gateway_ip="2001:db8::1"), 400, "InvalidInput"),
    ("v6-nameserver", "PUT", SUB + "/{subnet}", {"subnet": {"dns_nameservers": ["2001:db8::53"]}},
     400, "InvalidInput"),
    ("v6-fixed-ip", "POST", PORT, port(fixed_ips=[{"ip_address": "2001:db8::5"}]), 400,
     "InvalidIpForNetwork"),
    ("v6-fip", "POST", FIP, fip(floating_ip_address="2001:db8::7"), 400, "BadRequest"),
    ("v6-route", "PUT", RTR + "/{router}", {"router": {"routes": [
        {"destination": "2001:db8:1::/64", "nexthop": "2001:db8::9"}]}}, 400, "InvalidRoutes"),
    ("v6-subnet-slaac-80", "POST", SUB, sub("2001:db8::/80", ip_version=6,
                                            ipv6_address_mode="slaac"), 400, "InvalidInput"),
    ("v6-modes-differ", "POST", SUB, sub("2001:db8::/64", ip_version=6, ipv6_ra_mode="slaac",
                                         ipv6_address_mode="dhcpv6-stateless"), 400,
     "InvalidInput"),
    # addresses written the ways Neutron refuses
    ("ip-leading-zero", "POST", PORT, port(fixed_ips=[{"ip_address": "100.64.030.9"}]), 400,
     "HTTPBadRequest"),
    ("ip-whitespace", "POST", FIP, fip(floating_ip_address=" 203.0.113.62"), 400,
     "HTTPBadRequest"),
    ("ip-short", "POST", SUB, sub(gateway_ip="100.64.31"), 400, "HTTPBadRequest"),
    # a bulk create is all or nothing: the second subnet overlaps the first
    ("bulk-second-fails", "POST", SUB, {"subnets": [
        {"network_id": "{net}", "cidr": "100.64.32.0/24"},
        {"network_id": "{net}", "cidr": "100.64.32.0/25"}]}, 400, "InvalidInput"),
    # the floatip-metadata port attributes are text too
    ("user-data-surrogate", "PUT", PORT + "/{port}", {"port": {"floatip:user_data": S}}, 400,
     "HTTPBadRequest"),
    ("user-data-nul", "POST", PORT, port(**{"floatip:user_data": "#!/bin/sh\x00"}), 400,
     "HTTPBadRequest"),
    ("public-key-nul", "PUT", PORT + "/{port}", {"port": {"floatip:public_keys": {
        "k": "ssh-ed25519 AAAA\x00"}}}, 400, "HTTPBadRequest"),
    ("public-keys-list", "PUT", PORT + "/{port}", {"port": {"floatip:public_keys": ["k"]}},
     400, "HTTPBadRequest"),
    # a 20 MB body
    ("body-20mb", "POST", NET, '{"network": {"name": "' + "x" * 20_000_000 + '"}}', 413,
     "HTTPRequestEntityTooLarge"),
    # read-only and unknown attributes, missing required ones
    ("read-only-create", "POST", NET, {"network": {"status": "ACTIVE"}}, 400,
     "HTTPBadRequest"),
    ("read-only-update", "PUT", PORT + "/{port}", {"port": {"network_id": "{net}"}}, 400,
     "HTTPBadRequest"),
    ("unknown-attribute", "POST", RTR, {"router": {"bogus": 1}}, 400, "HTTPBadRequest"),
    ("missing-network-id", "POST", PORT, {"port": {"name": "x"}}, 400, "HTTPBadRequest"),
    ("long-name", "POST", NET, {"network": {"name": "x" * 256}}, 400, "HTTPBadRequest"),
    ("bulk-not-list", "POST", NET, {"networks": {"name": "x"}}, 400, "HTTPBadRequest"),
]


def fill(value, ids: dict):
    if isinstance(value, str):
        return value.format(**ids) if "{" in value and "}" in value and len(value) < 100 \
            else value
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {fill(k, ids): fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_refused_and_nothing_changed(server, topo, case):
    _, method, path, body, status, type_ = case
    before = dump(server.db)
    if isinstance(body, str):
        content = body.encode()
    else:
        # ensure_ascii: a lone surrogate travels as the JSON escape \ud800
        content = None if body is None else json.dumps(fill(body, topo)).encode()
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = c.request(method, fill(path, topo), content=content,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["NeutronError"]
    assert err["type"] == type_ and err["message"], err
    assert dump(server.db) == before, "a refused request changed the database"


def test_dump_sees_a_change(server, topo):
    """The comparison above is not vacuous: an accepted request shows in the dump."""
    before = dump(server.db)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        ok(c.put(f"/v2.0/networks/{topo['net']}", json={"network": {"description": uniq()}}))
    assert dump(server.db) != before


def test_status_reports_in_every_form_an_agent_sends(server, topo):
    """The typed status report takes what agents send: plain statuses, [status, revision]
    for floating IPs, port status and binding host."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        rev = ok(c.get(f"/v2.0/floatingips/{topo['fip']}"))["floatingip"]["revision_number"]
        r = ok(c.post("/floatip/v1/status", json={
            "floatingips": {topo["fip"]: ["ERROR", rev]}, "routers": {topo["router"]: "ACTIVE"},
            "ports": {topo["port"]: {"status": "ACTIVE", "host": "fa-host"}}}))
        assert r["changed"] >= 2
        assert ok(c.get(f"/v2.0/floatingips/{topo['fip']}"))["floatingip"]["status"] == "ERROR"
        p = ok(c.get(f"/v2.0/ports/{topo['port']}"))["port"]
        assert p["status"] == "ACTIVE" and p["binding:host_id"] == "fa-host"
        assert ok(c.post("/floatip/v1/status", json={}))["changed"] == 0


def test_an_unexpected_error_is_a_neutron_500_and_logged(tmp_path, caplog):
    """What the fuzzing must never find still answers in Neutron's body, and says so in the
    log: the real server with one more route that fails the way a bug would."""
    from floatip.server import Server, free_port

    def broken():
        raise RuntimeError("a bug")
    srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}", agent=False)
    srv.app.add_api_route("/fa-broken", broken)
    srv.start()
    try:
        r = httpx.get(f"{srv.url}/fa-broken", timeout=30)
    finally:
        srv.close()
    assert r.status_code == 500
    assert r.json()["NeutronError"]["type"] == "InternalServerError"
    assert "a bug" not in r.text  # the log has the details, the client does not
    assert any(rec.name == "floatip.api" and rec.exc_info for rec in caplog.records)
