"""IPv6 in the API as neutron-server does it, against the real server on SQLite and
PostgreSQL (fixtures of test_api.py): subnets with their RA and address modes, EUI-64 and
pool addresses, router interfaces sharing one IPv6 port, dual-stack gateways, IPv6 extra
routes, IPv4-only floating IPs, the DHCP port. Refusals are checked to change nothing."""
from __future__ import annotations

import ipaddress
import os
import subprocess
import sys

import httpx
import pytest

from floatip.service.agent_view import desired_state
from floatip.service.ipam import address, eui64
from floatip.service.subnets import _ranges_without
from test_api import api, db_url, neutron_error, ok, server, uniq  # noqa: F401 (fixtures)
from test_api_refusals import dump

MAC = "fa:16:3e:11:22:33"


def net(api: httpx.Client, **kw) -> dict:
    return ok(api.post("/v2.0/networks", json={"network": {"name": uniq("v6n"), **kw}}),
              201)["network"]


def subnet(api: httpx.Client, network: dict, cidr: str, code: int = 201, **kw):
    body = {"network_id": network["id"], "cidr": cidr,
            "ip_version": ipaddress.ip_network(cidr).version, **kw}
    r = api.post("/v2.0/subnets", json={"subnet": body})
    return ok(r, 201)["subnet"] if code == 201 else r


def port(api: httpx.Client, network: dict, **kw) -> dict:
    return ok(api.post("/v2.0/ports", json={"port": {"network_id": network["id"], **kw}}),
              201)["port"]


def ips(p: dict) -> dict[str, str]:
    """subnet id -> address."""
    return {f["subnet_id"]: f["ip_address"] for f in p["fixed_ips"]}


def refused(server, api: httpx.Client, method: str, path: str, body, code: int, type_: str,
            text: str = "") -> dict:
    before = dump(server.db)
    r = api.request(method, path, json=body)
    err = neutron_error(r, code, type_)
    assert text in err["message"], err
    assert dump(server.db) == before, "a refused request changed the database"
    return err


# -- pure --------------------------------------------------------------------------------

def test_eui64_matches_the_rfc_construction():
    # oslo's own test vector, and one with the universal/local bit set in the MAC
    assert eui64("2001:db8::/64", "00:16:3e:33:44:55") == "2001:db8::216:3eff:fe33:4455"
    assert eui64("2001:db8:1:2::/64", MAC) == "2001:db8:1:2:f816:3eff:fe11:2233"
    assert eui64("2001:db8::/64", "02-00-00-00-00-01") == "2001:db8::ff:fe00:1"
    with pytest.raises(ValueError):
        eui64("2001:db8::/64", "00:16:3e:33:44")


def test_v6_default_pools_skip_network_and_gateway_only():
    cidr = ipaddress.ip_network("2001:db8::/64")
    assert _ranges_without(cidr, "2001:db8::1") == [
        {"start": "2001:db8::2", "end": "2001:db8::ffff:ffff:ffff:ffff"}]
    assert _ranges_without(cidr, "2001:db8::8") == [
        {"start": "2001:db8::1", "end": "2001:db8::7"},
        {"start": "2001:db8::9", "end": "2001:db8::ffff:ffff:ffff:ffff"}]
    assert _ranges_without(cidr, None) == [{"start": "2001:db8::1",
                                            "end": "2001:db8::ffff:ffff:ffff:ffff"}]
    # IPv4 keeps its broadcast address out; a small integer stays an IPv6 address
    assert _ranges_without(ipaddress.ip_network("192.0.2.0/29"), "192.0.2.1") == [
        {"start": "192.0.2.2", "end": "192.0.2.6"}]
    assert address(6, 5) == "::5" and address(4, 5) == "0.0.0.5"


# -- subnets -----------------------------------------------------------------------------

def test_v6_subnet_defaults_views_and_families(server, api):
    n = net(api)
    v4 = subnet(api, n, "100.64.60.0/24")
    v6 = subnet(api, n, "2001:db8:60::/64", dns_nameservers=["2001:db8::53"],
                host_routes=[{"destination": "2001:db8:99::/64", "nexthop": "2001:db8:60::9"}])
    assert v6["ip_version"] == 6 and v6["gateway_ip"] == "2001:db8:60::1"
    assert v6["allocation_pools"] == [{"start": "2001:db8:60::2",
                                       "end": "2001:db8:60:0:ffff:ffff:ffff:ffff"}]
    assert v6["ipv6_ra_mode"] is None and v6["ipv6_address_mode"] is None
    assert v4["ipv6_ra_mode"] is None and v4["ipv6_address_mode"] is None
    modes = subnet(api, n, "2001:db8:61::/64", ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    shown = ok(api.get(f"/v2.0/subnets/{modes['id']}"))["subnet"]
    assert (shown["ipv6_ra_mode"], shown["ipv6_address_mode"]) == ("slaac", "slaac")
    listed = ok(api.get("/v2.0/subnets", params={"ipv6_address_mode": "slaac",
                                                 "network_id": n["id"]}))["subnets"]
    assert [x["id"] for x in listed] == [modes["id"]]
    # nameservers, routes and gateways of the other family, on create and update
    refused(server, api, "POST", "/v2.0/subnets", {"subnet": {
        "network_id": n["id"], "cidr": "2001:db8:62::/64", "ip_version": 6,
        "dns_nameservers": ["192.0.2.53"]}}, 400, "InvalidInput",
        "dns_nameserver '192.0.2.53' does not match the ip_version '6'")
    refused(server, api, "PUT", f"/v2.0/subnets/{v6['id']}", {"subnet": {"host_routes": [
        {"destination": "192.0.2.0/24", "nexthop": "192.0.2.1"}]}}, 400, "InvalidInput",
        "does not match the ip_version '6'")
    refused(server, api, "PUT", f"/v2.0/subnets/{v4['id']}", {"subnet": {
        "dns_nameservers": ["2001:db8::53"]}}, 400, "InvalidInput",
        "does not match the ip_version '4'")
    refused(server, api, "PUT", f"/v2.0/subnets/{v6['id']}", {"subnet": {
        "gateway_ip": "100.64.60.1"}}, 400, "InvalidInput", "does not match the ip_version")
    up = ok(api.put(f"/v2.0/subnets/{v6['id']}", json={"subnet": {
        "gateway_ip": None, "dns_nameservers": ["2001:db8::54"]}}))["subnet"]
    assert up["gateway_ip"] is None and up["dns_nameservers"] == ["2001:db8::54"]


V6 = "/v2.0/subnets"


@pytest.mark.parametrize("body,type_,text", [
    ({"cidr": "::/0"}, "InvalidInput", "0 is not allowed as CIDR prefix length"),
    ({"cidr": "::/64"}, "InvalidInput", "IPv6 subnet '::' is not supported"),
    ({"cidr": "ff05::/64"}, "InvalidInput", "overlaps with multicast range ff00::/8"),
    ({"cidr": "::1/128"}, "InvalidInput", "Loopback IP subnet is not supported"),
    ({"cidr": "fe80::/64"}, "InvalidInput", "Link-local IP subnet is not supported"),
    ({"cidr": "2001:db8:70::/127"}, "InvalidInput", "incompatible with DHCP service"),
    ({"cidr": "2001:db8:70::/64", "ip_version": 4}, "InvalidInput",
     "does not match the ip_version '4'"),
    ({"cidr": "2001:db8:70::/64", "gateway_ip": "2001:db8:71::1"}, "InvalidInput",
     "is not a host address"),
    ({"cidr": "2001:db8:70::/64", "allocation_pools": [
        {"start": "2001:db8:70::", "end": "2001:db8:70::9"}]}, "InvalidAllocationPool",
     "spans beyond"),
    ({"cidr": "2001:db8:70::/64", "ipv6_ra_mode": "bogus"}, "HTTPBadRequest",
     "Invalid input for ipv6_ra_mode. Reason: bogus is not in"),
    ({"cidr": "2001:db8:70::/64", "ipv6_ra_mode": "slaac",
      "ipv6_address_mode": "dhcpv6-stateful"}, "InvalidInput",
     "ipv6_ra_mode set to 'slaac' with ipv6_address_mode set to 'dhcpv6-stateful' is not "
     "valid. If both attributes are set, they must be the same value"),
    ({"cidr": "2001:db8:70::/64", "ipv6_ra_mode": "dhcpv6-stateless",
      "ipv6_address_mode": "slaac"}, "InvalidInput", "they must be the same value"),
    ({"cidr": "2001:db8:70::/80", "ipv6_address_mode": "slaac"}, "InvalidInput",
     "Invalid CIDR 2001:db8:70::/80 for IPv6 address mode. OpenStack uses the EUI-64 address "
     "format, which requires the prefix to be /64"),
    ({"cidr": "2001:db8:70::/56", "ipv6_ra_mode": "dhcpv6-stateless"}, "InvalidInput",
     "EUI-64"),
    ({"cidr": "2001:db8:70::/64", "ipv6_ra_mode": "slaac", "enable_dhcp": False},
     "InvalidInput", "ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is "
                     "set to False"),
    ({"cidr": "100.64.70.0/24", "ipv6_ra_mode": "slaac"}, "InvalidInput",
     "ipv6_ra_mode is not valid when ip_version is 4"),
    ({"cidr": "100.64.70.0/24", "ipv6_address_mode": "slaac"}, "InvalidInput",
     "ipv6_address_mode is not valid when ip_version is 4"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_v6_subnet_refusals(server, api, body, type_, text):
    n = net(api)
    body = {"ip_version": ipaddress.ip_network(body["cidr"]).version, **body}
    refused(server, api, "POST", V6, {"subnet": {"network_id": n["id"], **body}}, 400, type_,
            text)


def test_v6_modes_accepted_and_read_only(server, api):
    n = net(api)
    combos = [("slaac", "slaac"), ("dhcpv6-stateless", "dhcpv6-stateless"),
              ("dhcpv6-stateful", "dhcpv6-stateful"), ("dhcpv6-stateful", None),
              (None, "dhcpv6-stateful"), ("slaac", None), (None, "dhcpv6-stateless")]
    made = []
    for i, (ra, am) in enumerate(combos):
        kw = {k: v for k, v in (("ipv6_ra_mode", ra), ("ipv6_address_mode", am)) if v}
        sn = subnet(api, n, f"2001:db8:80:{i}::/64", **kw)
        assert (sn["ipv6_ra_mode"], sn["ipv6_address_mode"]) == (ra, am)
        made.append(sn)
    refused(server, api, "PUT", f"{V6}/{made[0]['id']}", {"subnet": {"ipv6_ra_mode": None}},
            400, "HTTPBadRequest", "Cannot update read-only attribute ipv6_ra_mode")
    refused(server, api, "PUT", f"{V6}/{made[2]['id']}", {"subnet": {
        "ipv6_address_mode": "slaac"}}, 400, "HTTPBadRequest", "read-only attribute")
    refused(server, api, "PUT", f"{V6}/{made[2]['id']}", {"subnet": {"enable_dhcp": False}},
            400, "InvalidInput", "Cannot disable enable_dhcp with ipv6 attributes set")


# -- addresses -----------------------------------------------------------------------------

def test_slaac_addresses_are_eui64_for_every_port(server, api):
    n = net(api)
    v4 = subnet(api, n, "100.64.61.0/24")
    early = port(api, n, mac_address="fa:16:3e:00:00:01")
    slaac = subnet(api, n, "2001:db8:63::/64", ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    # a port that existed before the subnet gets its address too, as in Neutron
    assert ips(ok(api.get(f"/v2.0/ports/{early['id']}"))["port"])[slaac["id"]] == \
        "2001:db8:63:0:f816:3eff:fe00:1"
    p = port(api, n, mac_address=MAC)
    assert ips(p)[slaac["id"]] == "2001:db8:63:0:f816:3eff:fe11:2233" and v4["id"] in ips(p)
    # explicit fixed_ips on the IPv4 subnet: the automatic address comes anyway
    q = port(api, n, mac_address="fa:16:3e:00:00:03",
             fixed_ips=[{"subnet_id": v4["id"], "ip_address": "100.64.61.33"}])
    assert ips(q) == {v4["id"]: "100.64.61.33", slaac["id"]: "2001:db8:63:0:f816:3eff:fe00:3"}
    # the EUI-64 address may be named; any other is refused
    named = port(api, n, mac_address="fa:16:3e:00:00:04",
                 fixed_ips=[{"ip_address": "2001:db8:63:0:f816:3eff:fe00:4"}])
    assert ips(named) == {slaac["id"]: "2001:db8:63:0:f816:3eff:fe00:4"}
    refused(server, api, "POST", "/v2.0/ports", {"port": {
        "network_id": n["id"], "fixed_ips": [{"subnet_id": slaac["id"],
                                              "ip_address": "2001:db8:63::5"}]}},
        400, "AllocationOnAutoAddressSubnet",
        f"IPv6 address 2001:db8:63::5 cannot be directly assigned to a port on subnet "
        f"{slaac['id']} as the subnet is configured for automatic addresses")
    # an update that names only the IPv4 address keeps the automatic one
    q2 = ok(api.put(f"/v2.0/ports/{q['id']}", json={"port": {"fixed_ips": [
        {"ip_address": "100.64.61.34"}]}}))["port"]
    assert ips(q2) == {v4["id"]: "100.64.61.34", slaac["id"]: "2001:db8:63:0:f816:3eff:fe00:3"}
    # a new MAC, a new EUI-64 address
    q3 = ok(api.put(f"/v2.0/ports/{q['id']}", json={"port": {
        "mac_address": "fa:16:3e:00:00:33"}}))["port"]
    assert ips(q3)[slaac["id"]] == "2001:db8:63:0:f816:3eff:fe00:33"
    # the subnet can go while ports hold automatic addresses; they lose them
    ok(api.delete(f"/v2.0/subnets/{slaac['id']}"), 204)
    assert list(ips(ok(api.get(f"/v2.0/ports/{p['id']}"))["port"])) == [v4["id"]]


def test_stateful_v6_and_dual_stack_ports(server, api):
    n = net(api)
    v4 = subnet(api, n, "100.64.62.0/24")
    s1 = subnet(api, n, "2001:db8:64::/64", ipv6_address_mode="dhcpv6-stateful",
                ipv6_ra_mode="dhcpv6-stateful")
    s2 = subnet(api, n, "2001:db8:65::/120")
    # the default: one IPv4 address and one from a stateful IPv6 subnet
    p = port(api, n)
    got = ips(p)
    assert len(got) == 2 and v4["id"] in got and (s1["id"] in got or s2["id"] in got)
    six = next(sn for sn in (s1, s2) if sn["id"] in got)
    a = ipaddress.ip_address(got[six["id"]])
    assert a in ipaddress.ip_network(six["cidr"]) and str(a) != six["gateway_ip"]
    # both subnets by id; then back to one: the address kept is the one it had
    q = port(api, n, fixed_ips=[{"subnet_id": s1["id"]}, {"subnet_id": s2["id"]}])
    keep = ips(q)[s2["id"]]
    q1 = ok(api.put(f"/v2.0/ports/{q['id']}", json={"port": {
        "fixed_ips": [{"subnet_id": s2["id"]}]}}))["port"]
    assert ips(q1) == {s2["id"]: keep}
    q2 = ok(api.put(f"/v2.0/ports/{q['id']}", json={"port": {
        "fixed_ips": [{"subnet_id": s2["id"]}, {"subnet_id": v4["id"]},
                      {"subnet_id": s1["id"], "ip_address": "2001:db8:64::abcd"}]}}))["port"]
    assert ips(q2) == {s2["id"]: keep, v4["id"]: ips(q2)[v4["id"]],
                       s1["id"]: "2001:db8:64::abcd"}
    refused(server, api, "POST", "/v2.0/ports", {"port": {
        "network_id": n["id"], "fixed_ips": [{"ip_address": "2001:db8:64::abcd"}]}},
        409, "IpAddressAlreadyAllocated")
    refused(server, api, "POST", "/v2.0/ports", {"port": {
        "network_id": n["id"], "fixed_ips": [{"subnet_id": s1["id"],
                                              "ip_address": "2001:db8:66::1"}]}},
        400, "InvalidIpForSubnet")
    refused(server, api, "POST", "/v2.0/ports", {"port": {
        "network_id": n["id"], "fixed_ips": [{"ip_address": "2001:db8:66::1"}]}},
        400, "InvalidIpForNetwork")
    refused(server, api, "POST", "/v2.0/ports", {"port": {  # the network address: routers only
        "network_id": n["id"], "device_owner": "compute:nova",
        "fixed_ips": [{"ip_address": "2001:db8:64::"}]}}, 400, "InvalidIpForSubnet")
    # a /120 fills up like an IPv4 pool: 255 addresses without the network and gateway
    small = net(api)
    tiny = subnet(api, small, "2001:db8:67::/120", enable_dhcp=False, allocation_pools=[
        {"start": "2001:db8:67::fe", "end": "2001:db8:67::ff"}])
    got = {ips(port(api, small))[tiny["id"]] for _ in range(2)}
    assert got == {"2001:db8:67::fe", "2001:db8:67::ff"}
    refused(server, api, "POST", "/v2.0/ports", {"port": {"network_id": small["id"]}},
            409, "IpAddressGenerationFailure")


def test_dhcp_port_holds_dhcpv6_addresses(server, api):
    n = net(api)
    v4 = subnet(api, n, "100.64.63.0/24")
    stateful = subnet(api, n, "2001:db8:68::/64", ipv6_ra_mode="dhcpv6-stateful",
                      ipv6_address_mode="dhcpv6-stateful")
    stateless = subnet(api, n, "2001:db8:69::/64", ipv6_ra_mode="dhcpv6-stateless",
                       ipv6_address_mode="dhcpv6-stateless")
    off = subnet(api, n, "2001:db8:6a::/64", enable_dhcp=False)
    dhcp = [p for p in ok(api.get("/v2.0/ports", params={"network_id": n["id"]}))["ports"]
            if p["device_owner"] == "network:dhcp"]
    assert len(dhcp) == 1
    got = ips(dhcp[0])
    assert set(got) == {v4["id"], stateful["id"], stateless["id"]} and off["id"] not in got
    assert got[stateless["id"]] == eui64(stateless["cidr"], dhcp[0]["mac_address"])
    assert ipaddress.ip_address(got[stateful["id"]]) in ipaddress.ip_network(stateful["cidr"])


# -- routers ---------------------------------------------------------------------------------

def test_router_interfaces_share_one_v6_port(server, api):
    n = net(api)
    v4 = subnet(api, n, "100.64.64.0/24")
    a = subnet(api, n, "2001:db8:6b::/64", ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    b = subnet(api, n, "2001:db8:6c::/64", ipv6_ra_mode="dhcpv6-stateful",
               ipv6_address_mode="dhcpv6-stateful")
    r = ok(api.post("/v2.0/routers", json={"router": {"name": uniq("v6r")}}), 201)["router"]
    add = f"/v2.0/routers/{r['id']}/add_router_interface"
    rm = f"/v2.0/routers/{r['id']}/remove_router_interface"
    i4 = ok(api.put(add, json={"subnet_id": v4["id"]}))
    ia = ok(api.put(add, json={"subnet_id": a["id"]}))
    ib = ok(api.put(add, json={"subnet_id": b["id"]}))
    assert ia["port_id"] != i4["port_id"] and ib["port_id"] == ia["port_id"]
    assert ib["subnet_id"] == b["id"] and ib["subnet_ids"] == [b["id"]]
    v6port = ok(api.get(f"/v2.0/ports/{ia['port_id']}"))["port"]
    # the router interface holds the gateways, no EUI-64 address
    assert ips(v6port) == {a["id"]: a["gateway_ip"], b["id"]: b["gateway_ip"]}
    with server.db.read() as s:
        itfs = desired_state(s).routers[r["id"]].interfaces
    assert sorted((i.port_id, i.ip_address) for i in itfs) == sorted([
        (i4["port_id"], v4["gateway_ip"]), (ia["port_id"], a["gateway_ip"]),
        (ia["port_id"], b["gateway_ip"])])
    # refusals
    c = subnet(api, n, "2001:db8:6d::/64", ipv6_address_mode="slaac")
    refused(server, api, "PUT", add, {"subnet_id": c["id"]}, 400, "BadRequest",
            f"IPv6 subnet {c['id']} configured to receive RAs from an external router cannot "
            "be added to Neutron Router.")
    refused(server, api, "PUT", add, {"subnet_id": a["id"]}, 400, "BadRequest",
            "Router already has a port on subnet")
    other = subnet(api, n, "2001:db8:6e::/64")
    loose = port(api, n, fixed_ips=[{"subnet_id": other["id"]}])
    refused(server, api, "PUT", add, {"port_id": loose["id"]}, 400, "BadRequest",
            f"Router already contains IPv6 port {ia['port_id']} belonging to network id "
            f"{n['id']}. Only one IPv6 port from the same network subnet can be connected to a "
            "router.")
    n2 = net(api)
    x, y = subnet(api, n2, "100.64.65.0/24"), subnet(api, n2, "100.64.66.0/24")
    two = port(api, n2, fixed_ips=[{"subnet_id": x["id"]}, {"subnet_id": y["id"]}])
    refused(server, api, "PUT", add, {"port_id": two["id"]}, 400, "BadRequest",
            "Cannot have multiple IPv4 subnets on router port")
    # a port with IPv4 and IPv6 addresses on another network is one interface
    n3 = net(api)
    d4, d6 = subnet(api, n3, "100.64.67.0/24"), subnet(api, n3, "2001:db8:6f::/64")
    dual = port(api, n3)
    idual = ok(api.put(add, json={"port_id": dual["id"]}))
    assert sorted(idual["subnet_ids"]) == sorted([d4["id"], d6["id"]])
    # removing one prefix of the shared port keeps the port
    out = ok(api.put(rm, json={"subnet_id": a["id"]}))
    assert out["port_id"] == ia["port_id"] and out["subnet_ids"] == [a["id"]]
    assert ips(ok(api.get(f"/v2.0/ports/{ia['port_id']}"))["port"]) == \
        {b["id"]: b["gateway_ip"]}
    ok(api.put(rm, json={"subnet_id": b["id"]}))
    assert api.get(f"/v2.0/ports/{ia['port_id']}").status_code == 404
    ok(api.put(rm, json={"port_id": dual["id"]}))
    ok(api.put(rm, json={"subnet_id": v4["id"]}))


def test_dual_stack_gateway_and_v6_routes(server, api):
    ext = net(api, **{"router:external": True})
    e4 = subnet(api, ext, "203.0.113.0/24", allocation_pools=[
        {"start": "203.0.113.120", "end": "203.0.113.130"}])
    r1 = ok(api.post("/v2.0/routers", json={"router": {
        "name": uniq("v6g"), "external_gateway_info": {"network_id": ext["id"]}}}),
        201)["router"]
    assert len(r1["external_gateway_info"]["external_fixed_ips"]) == 1
    # a new IPv6 subnet on the external network: the existing gateway gets an address there
    e6 = subnet(api, ext, "2001:db8:f0::/64", enable_dhcp=False)
    gw = ok(api.get(f"/v2.0/routers/{r1['id']}"))["router"]["external_gateway_info"]
    got = {f["subnet_id"]: f["ip_address"] for f in gw["external_fixed_ips"]}
    assert set(got) == {e4["id"], e6["id"]}
    assert ipaddress.ip_address(got[e6["id"]]) in ipaddress.ip_network(e6["cidr"])
    # a new gateway gets both; external_fixed_ips may name an IPv6 address
    r2 = ok(api.post("/v2.0/routers", json={"router": {
        "name": uniq("v6g"), "external_gateway_info": {"network_id": ext["id"],
                                                       "external_fixed_ips": [
            {"subnet_id": e4["id"]}, {"ip_address": "2001:db8:f0::77"}]}}}), 201)["router"]
    fixed = r2["external_gateway_info"]["external_fixed_ips"]
    assert sorted(f["subnet_id"] for f in fixed) == sorted([e4["id"], e6["id"]])
    assert "2001:db8:f0::77" in [f["ip_address"] for f in fixed]
    with server.db.read() as s:
        g = desired_state(s).routers[r2["id"]].gateway
    assert ":" not in g.ip_address and [ip for _, ip in g.extra_ips] == ["2001:db8:f0::77"]
    # IPv6 extra routes through a connected IPv6 subnet
    n = net(api)
    t6 = subnet(api, n, "2001:db8:f1::/64")
    ok(api.put(f"/v2.0/routers/{r2['id']}/add_router_interface", json={"subnet_id": t6["id"]}))
    routes = [{"destination": "2001:db8:f2::/48", "nexthop": "2001:db8:f1::9"},
              {"destination": "2001:db8:f3::/64", "nexthop": "2001:db8:f0::1"}]
    done = ok(api.put(f"/v2.0/routers/{r2['id']}", json={"router": {"routes": routes}}))
    assert done["router"]["routes"] == routes
    path = f"/v2.0/routers/{r2['id']}"
    refused(server, api, "PUT", path, {"router": {"routes": [
        {"destination": "2001:db8:f4::/64", "nexthop": "100.64.0.9"}]}}, 400,
        "InvalidRoutes", "the nexthop is not an IPv6 address")
    refused(server, api, "PUT", path, {"router": {"routes": [
        {"destination": "198.51.100.0/24", "nexthop": "2001:db8:f1::9"}]}}, 400,
        "InvalidRoutes", "the nexthop is not an IPv4 address")
    refused(server, api, "PUT", path, {"router": {"routes": [
        {"destination": "2001:db8:f4::/64", "nexthop": "2001:db8:f9::9"}]}}, 400,
        "InvalidRoutes", "is not connected with router")
    refused(server, api, "PUT", path, {"router": {"routes": [
        {"destination": "2001:db8:f4::/64", "nexthop": t6["gateway_ip"]}]}}, 400,
        "InvalidRoutes", "the nexthop is used by router")
    refused(server, api, "PUT", f"{path}/remove_router_interface", {"subnet_id": t6["id"]},
            409, "RouterInterfaceInUseByRoute")


# -- floating IPs ------------------------------------------------------------------------------

def test_floating_ips_stay_ipv4(server, api):
    only6 = net(api, **{"router:external": True})
    subnet(api, only6, "2001:db8:f5::/64", enable_dhcp=False)
    refused(server, api, "POST", "/v2.0/floatingips", {"floatingip": {
        "floating_network_id": only6["id"]}}, 400, "BadRequest",
        f"Network {only6['id']} does not contain any IPv4 subnet")
    ext = net(api, **{"router:external": True})
    e4 = subnet(api, ext, "198.51.100.0/24", allocation_pools=[
        {"start": "198.51.100.10", "end": "198.51.100.20"}])
    e6 = subnet(api, ext, "2001:db8:f6::/64", enable_dhcp=False)
    r = ok(api.post("/v2.0/routers", json={"router": {
        "name": uniq("v6f"), "external_gateway_info": {"network_id": ext["id"]}}}),
        201)["router"]
    n = net(api)
    t4 = subnet(api, n, "100.64.68.0/24")
    t6 = subnet(api, n, "2001:db8:f7::/64", ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    for sn in (t4, t6):
        ok(api.put(f"/v2.0/routers/{r['id']}/add_router_interface", json={"subnet_id": sn["id"]}))
    vm = port(api, n)
    assert len(vm["fixed_ips"]) == 2
    refused(server, api, "POST", "/v2.0/floatingips", {"floatingip": {
        "floating_network_id": ext["id"], "port_id": vm["id"],
        "fixed_ip_address": ips(vm)[t6["id"]]}}, 400, "BadRequest", "not an IPv4 address")
    refused(server, api, "POST", "/v2.0/floatingips", {"floatingip": {
        "floating_network_id": ext["id"], "subnet_id": e6["id"]}}, 400,
        "ExternalIpAddressExhausted")
    f = ok(api.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext["id"], "port_id": vm["id"]}}), 201)["floatingip"]
    assert f["fixed_ip_address"] == ips(vm)[t4["id"]] and f["router_id"] == r["id"]
    fport = [p for p in ok(api.get("/v2.0/ports", params={"network_id": ext["id"]}))["ports"]
             if p["device_owner"] == "network:floatingip"]
    assert [list(ips(p)) for p in fport] == [[e4["id"]]]  # no IPv6 address for a FIP port
    # a port with IPv6 addresses only has nothing to float
    n6 = net(api)
    subnet(api, n6, "2001:db8:f8::/64")
    lonely = port(api, n6)
    refused(server, api, "PUT", f"/v2.0/floatingips/{f['id']}", {"floatingip": {
        "port_id": lonely["id"]}}, 400, "BadRequest", "has no fixed IPv4 addresses")


# -- the CLI -----------------------------------------------------------------------------------

def test_cli_creates_v6_subnets(server):
    exe = [os.path.join(os.path.dirname(sys.executable), "floatip")]
    env = {**os.environ, "FLOATIP_URL": server.url, "COLUMNS": "200"}
    name = uniq("clin")
    for args in (("network", "create", name),
                 ("subnet", "create", uniq("clis"), "--network", name, "--subnet-range",
                  "2001:db8:fa::/64", "--ip-version", "6", "--ipv6-ra-mode", "slaac",
                  "--ipv6-address-mode", "slaac", "-f", "json")):
        r = subprocess.run([*exe, *args], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
    import json
    sn = json.loads(r.stdout)
    assert sn["ip_version"] == 6 and sn["ipv6_address_mode"] == "slaac"
