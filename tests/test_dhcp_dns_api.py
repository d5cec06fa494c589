"""Neutron's extra_dhcp_opt, dns-integration and network-ip-availability through the API:
options set, replaced, removed by a null value and kept by an empty list; a port's dns_name
and its dns_assignment in the configured domain (ignored under Neutron's default
``openstacklocal.``); networks' and floating IPs' dns_domain; the addresses used and
available per network and subnet (admins only); Neutron's refusals change nothing.

The server is the real one (uvicorn, agent off), noauth: X-Project-Id / X-Roles make the
caller a project's member; SQLite and PostgreSQL."""
from __future__ import annotations

import uuid

import pytest

from cloud import ok, refused, served_api
from floatip.service import dns

DOMAIN = "example.org."


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory):
    old = dns.DNS_DOMAIN
    dns.DNS_DOMAIN = DOMAIN  # [DEFAULT] dns_domain; the server runs in this process
    try:
        yield from served_api(request, tmp_path_factory, "dd-api")
    finally:
        dns.DNS_DOMAIN = old


def project() -> dict:
    return {"X-Project-Id": uuid.uuid4().hex, "X-Roles": "member,reader"}


def network(api, h: dict | None = None, **attrs) -> dict:
    return ok(api.post("/v2.0/networks", headers=h or {},
                       json={"network": {"name": "dd-net", **attrs}}), 201)["network"]


def subnet(api, net: dict, cidr: str, h: dict | None = None, **attrs) -> dict:
    return ok(api.post("/v2.0/subnets", headers=h or {}, json={"subnet": {
        "network_id": net["id"], "cidr": cidr, "ip_version": 6 if ":" in cidr else 4,
        **attrs}}), 201)["subnet"]


def port(api, net: dict, h: dict | None = None, **attrs) -> dict:
    return ok(api.post("/v2.0/ports", headers=h or {},
                       json={"port": {"network_id": net["id"], **attrs}}), 201)["port"]


def update(api, pid: str, **attrs) -> dict:
    return ok(api.put(f"/v2.0/ports/{pid}", json={"port": attrs}))["port"]


def opts(p: dict) -> set[tuple]:
    return {(o["opt_name"], o["opt_value"], o["ip_version"]) for o in p["extra_dhcp_opts"]}


def test_extensions_listed(api):
    aliases = {e["alias"] for e in ok(api.get("/v2.0/extensions"))["extensions"]}
    assert {"extra_dhcp_opt", "dns-integration", "dns-domain-ports",
            "network-ip-availability"} <= aliases


def test_extra_dhcp_opts_set_replaced_removed(api):
    net = network(api)
    subnet(api, net, "192.0.2.0/24")
    p = port(api, net, extra_dhcp_opts=[
        {"opt_name": "ntp-server", "opt_value": "192.0.2.9"},
        {"opt_name": "domain-search", "opt_value": "a.example", "ip_version": 4},
        {"opt_name": "dns-server", "opt_value": "[2001:db8::53]", "ip_version": "6"},
        {"opt_name": "router", "opt_value": ""},          # blank-able: kept
        {"opt_name": "tftp-server", "opt_value": None}])  # no value: nothing
    assert opts(p) == {("ntp-server", "192.0.2.9", 4), ("domain-search", "a.example", 4),
                       ("dns-server", "[2001:db8::53]", 6), ("router", "", 4)}, p
    # an update matches by (name, version): replaced, removed by null, added
    p = update(api, p["id"], extra_dhcp_opts=[
        {"opt_name": "ntp-server", "opt_value": "192.0.2.10"},
        {"opt_name": "dns-server", "opt_value": None, "ip_version": 6},
        {"opt_name": "router", "opt_value": None},
        {"opt_name": "mtu", "opt_value": "1400"}])
    assert opts(p) == {("ntp-server", "192.0.2.10", 4), ("domain-search", "a.example", 4),
                       ("mtu", "1400", 4)}, p
    assert opts(update(api, p["id"], extra_dhcp_opts=[])) == opts(p)  # [] changes nothing
    assert opts(ok(api.get(f"/v2.0/ports/{p['id']}"))["port"]) == opts(p)


@pytest.mark.parametrize("bad", [
    "ntp-server", [{"opt_name": "ntp-server"}], [{"opt_value": "x"}],
    [{"opt_name": "", "opt_value": "x"}], [{"opt_name": "ntp-server", "opt_value": ""}],
    [{"opt_name": "a\nb", "opt_value": "x"}], [{"opt_name": "ntp", "opt_value": "1\n2"}],
    [{"opt_name": "ntp", "opt_value": "x", "ip_version": 5}],
    [{"opt_name": "ntp", "opt_value": "x", "extra": 1}],
    [{"opt_name": "n" * 65, "opt_value": "x"}], [{"opt_name": "ntp", "opt_value": "v" * 256}],
    ["ntp-server"]])
def test_extra_dhcp_opts_refused(api, bad):
    net = network(api)
    subnet(api, net, "192.0.2.0/24")
    p = port(api, net, extra_dhcp_opts=[{"opt_name": "ntp-server", "opt_value": "192.0.2.9"}])
    refused(api.put(f"/v2.0/ports/{p['id']}", json={"port": {"extra_dhcp_opts": bad}}), 400,
            "InvalidInput")
    refused(api.post("/v2.0/ports", json={"port": {"network_id": net["id"],
                                                   "extra_dhcp_opts": bad}}), 400,
            "InvalidInput")
    assert opts(ok(api.get(f"/v2.0/ports/{p['id']}"))["port"]) == {
        ("ntp-server", "192.0.2.9", 4)}
    assert len(ok(api.get("/v2.0/ports", params={"network_id": net["id"],
                                                 "device_owner": ""}))["ports"]) == 1


def test_dns_name_and_assignment(api):
    net = network(api)
    subnet(api, net, "192.0.2.0/24")
    subnet(api, net, "2001:db8:24::/64", ipv6_address_mode="dhcpv6-stateful",
           ipv6_ra_mode="dhcpv6-stateful")
    p = port(api, net, dns_name="Web-1")
    assert p["dns_name"] == "web-1"  # case-insensitive: kept lower case, as Neutron
    assert sorted((a["hostname"], a["fqdn"]) for a in p["dns_assignment"]) == \
        [("web-1", "web-1.example.org.")] * 2
    assert {a["ip_address"] for a in p["dns_assignment"]} == \
        {f["ip_address"] for f in p["fixed_ips"]}
    # a FQDN in the configured domain is kept as given
    p = update(api, p["id"], dns_name="db.example.org.")
    assert {(a["hostname"], a["fqdn"]) for a in p["dns_assignment"]} == \
        {("db.example.org.", "db.example.org.")}
    # no name: host-<address>
    q = port(api, net)
    v4 = next(f["ip_address"] for f in q["fixed_ips"] if "." in f["ip_address"])
    host = "host-" + v4.replace(".", "-")
    assert q["dns_name"] == "" and {"hostname": host, "fqdn": f"{host}.{DOMAIN}",
                                    "ip_address": v4} in q["dns_assignment"]
    for bad in ("-web", "web_1", "a..b", "web.123", "web.other.org.", "x" * 64, 7):
        refused(api.put(f"/v2.0/ports/{p['id']}", json={"port": {"dns_name": bad}}), 400,
                "HTTPBadRequest")
    assert ok(api.get(f"/v2.0/ports/{p['id']}"))["port"]["dns_name"] == "db.example.org."
    # dns-domain-ports: a domain of the port's own, kept (for an external DNS service)
    p = update(api, p["id"], dns_domain="Test.Org.")
    assert p["dns_domain"] == "test.org." and p["dns_name"] == "db.example.org."
    assert ok(api.get("/v2.0/ports", params={"id": p["id"]}))["ports"][0]["dns_domain"] == \
        "test.org."
    for bad in ("no-dot", "a..b."):
        refused(api.put(f"/v2.0/ports/{p['id']}", json={"port": {"dns_domain": bad}}), 400,
                "HTTPBadRequest")
    assert port(api, net, dns_name="x", dns_domain="d.org.")["dns_domain"] == "d.org."
    assert q["dns_domain"] == ""
    # dns_assignment is the server's to compute
    refused(api.put(f"/v2.0/ports/{p['id']}", json={"port": {"dns_assignment": []}}), 400,
            "HTTPBadRequest")


def test_default_domain_records_no_dns_name(api):
    """Neutron's default dns_domain (openstacklocal.): a dns_name is checked, not recorded."""
    net = network(api)
    subnet(api, net, "192.0.2.0/24")
    dns.DNS_DOMAIN = "openstacklocal"
    try:
        p = port(api, net, dns_name="web", dns_domain="test.org.")
        assert p["dns_domain"] == ""
        ip = p["fixed_ips"][0]["ip_address"]
        host = "host-" + ip.replace(".", "-")
        assert p["dns_name"] == "" and p["dns_assignment"] == [
            {"ip_address": ip, "hostname": host, "fqdn": f"{host}.openstacklocal."}], p
        refused(api.post("/v2.0/ports", json={"port": {"network_id": net["id"],
                                                       "dns_name": "-web"}}), 400,
                "HTTPBadRequest")
    finally:
        dns.DNS_DOMAIN = DOMAIN


def test_network_and_floating_ip_dns_domain(api):
    net = network(api, dns_domain="Tenant.Example.")
    assert net["dns_domain"] == "tenant.example."
    net = ok(api.put(f"/v2.0/networks/{net['id']}",
                     json={"network": {"dns_domain": "other.example."}}))["network"]
    assert net["dns_domain"] == "other.example."
    for bad in ("no-dot", "a..b.", "-a.example.", 5):
        refused(api.put(f"/v2.0/networks/{net['id']}", json={"network": {"dns_domain": bad}}),
                400, "HTTPBadRequest")
    assert ok(api.get(f"/v2.0/networks/{net['id']}"))["network"]["dns_domain"] == \
        "other.example."
    assert network(api)["dns_domain"] == ""
    ext = network(api, **{"router:external": True})
    subnet(api, ext, "203.0.113.0/24")
    fip = ok(api.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext["id"], "dns_name": "www", "dns_domain": "example.org."}}),
        201)["floatingip"]
    assert (fip["dns_name"], fip["dns_domain"]) == ("www", "example.org."), fip
    assert ok(api.get(f"/v2.0/floatingips/{fip['id']}"))["floatingip"]["dns_name"] == "www"
    before = len(ok(api.get("/v2.0/floatingips"))["floatingips"])
    for body, why in (({"dns_name": "www"}, "without a dns_domain"),
                      ({"dns_domain": "example.org."}, "without a dns_name")):
        msg = refused(api.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": ext["id"], **body}}), 400, "BadRequest")
        assert why in msg, msg
    for body in ({"dns_name": "www.", "dns_domain": "example.org."},
                 {"dns_name": "www", "dns_domain": "example.org"}):
        refused(api.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": ext["id"], **body}}), 400, "HTTPBadRequest")
    # read-only after creation, as Neutron's allow_put: False
    refused(api.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {
        "dns_name": "x"}}), 400, "HTTPBadRequest")
    assert len(ok(api.get("/v2.0/floatingips"))["floatingips"]) == before


def test_network_ip_availability(api):
    owner = project()
    net = network(api, owner, name=f"dd-avail-{uuid.uuid4().hex[:6]}")
    v4 = subnet(api, net, "198.51.100.0/24", owner,
                allocation_pools=[{"start": "198.51.100.10", "end": "198.51.100.19"},
                                  {"start": "198.51.100.30", "end": "198.51.100.39"}])
    v6 = subnet(api, net, "2001:db8:77::/120", owner, ipv6_address_mode="dhcpv6-stateful",
                ipv6_ra_mode="dhcpv6-stateful")
    empty = network(api, owner, name="dd-empty")
    for _ in range(3):
        port(api, net, owner)  # each: one address in each subnet
    # the DHCP port holds one more in each
    got = ok(api.get(f"/v2.0/network-ip-availabilities/{net['id']}"))["network_ip_availability"]
    assert (got["network_id"], got["network_name"], got["project_id"], got["tenant_id"]) == \
        (net["id"], net["name"], owner["X-Project-Id"], owner["X-Project-Id"])
    per = {s["subnet_id"]: s for s in got["subnet_ip_availability"]}
    assert per[v4["id"]] == {"subnet_id": v4["id"], "subnet_name": "", "ip_version": 4,
                             "cidr": "198.51.100.0/24", "used_ips": 4, "total_ips": 20}
    assert (per[v6["id"]]["used_ips"], per[v6["id"]]["total_ips"]) == (4, 254)  # ::2 .. ::ff
    assert (got["used_ips"], got["total_ips"]) == (8, 274)
    listed = ok(api.get("/v2.0/network-ip-availabilities"))["network_ip_availabilities"]
    assert {net["id"], empty["id"]} <= {n["network_id"] for n in listed}
    e = next(n for n in listed if n["network_id"] == empty["id"])
    assert (e["used_ips"], e["total_ips"], e["subnet_ip_availability"]) == (0, 0, [])
    # filters: ip_version, network_name, project_id; fields
    only6 = ok(api.get("/v2.0/network-ip-availabilities", params={
        "ip_version": 6, "network_id": net["id"]}))["network_ip_availabilities"]
    assert [s["ip_version"] for n in only6 for s in n["subnet_ip_availability"]] == [6]
    named = ok(api.get("/v2.0/network-ip-availabilities", params={
        "network_name": net["name"]}))["network_ip_availabilities"]
    assert [n["network_id"] for n in named] == [net["id"]]
    mine = ok(api.get("/v2.0/network-ip-availabilities", params={
        "project_id": owner["X-Project-Id"], "fields": ["network_id", "used_ips"]}))
    assert sorted(mine["network_ip_availabilities"], key=lambda n: n["used_ips"]) == [
        {"network_id": empty["id"], "used_ips": 0}, {"network_id": net["id"], "used_ips": 8}]
    # admins only (Neutron's get_network_ip_availability): the owner sees none of it
    assert ok(api.get("/v2.0/network-ip-availabilities", headers=owner)) == {
        "network_ip_availabilities": []}
    refused(api.get(f"/v2.0/network-ip-availabilities/{net['id']}", headers=owner), 404,
            "HTTPNotFound")
    refused(api.get(f"/v2.0/network-ip-availabilities/{uuid.uuid4()}"), 404, "NetworkNotFound")
