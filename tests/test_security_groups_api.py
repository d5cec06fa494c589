"""Security groups, rules, address groups, port security and allowed address pairs through
the real server (uvicorn, SQLite and PostgreSQL, noauth projects): Neutron's defaults,
answers, refusals and policy, as another project and as a reader."""
from __future__ import annotations

import uuid

import httpx
import pytest

from floatip.api.auth import AuthSettings
from floatip.server import Server, free_port
from pgserver import fresh_database

ZERO = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def srv(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fa-sg')}/floatip.db"
        s = Server(url, f"127.0.0.1:{free_port()}", agent=False,
                   auth=AuthSettings("noauth", {}, "agent-secret")).start()
        yield s
        s.close()
        return
    with fresh_database(request.getfixturevalue("pg_url")) as url:
        s = Server(url, f"127.0.0.1:{free_port()}", agent=False,
                   auth=AuthSettings("noauth", {}, "agent-secret")).start()
        yield s
        s.close()


class As:
    """A client of one project with some roles (noauth headers); no project: the admin."""

    def __init__(self, srv, project: str | None = None, roles: str = "member,reader"):
        headers = {"X-Project-Id": project, "X-Roles": roles} if project else {}
        self.c = httpx.Client(base_url=srv.url, timeout=30, headers=headers)
        self.project = project

    def __getattr__(self, name):
        return getattr(self.c, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.c.close()


@pytest.fixture
def p1(srv):
    c = As(srv, "p1-" + uuid.uuid4().hex[:6])
    yield c
    c.close()


@pytest.fixture
def p2(srv):
    c = As(srv, "p2-" + uuid.uuid4().hex[:6])
    yield c
    c.close()


@pytest.fixture
def admin(srv):
    c = As(srv)
    yield c
    c.close()


def ok(r: httpx.Response, code: int = 200) -> dict:
    assert r.status_code == code, r.text
    return r.json() if r.content else {}


def refused(r: httpx.Response, code: int, type_: str, message: str | None = None) -> dict:
    assert r.status_code == code, r.text
    body = r.json()["NeutronError"]
    assert body["type"] == type_, body
    assert set(body) == {"type", "message", "detail"}
    if message is not None:
        assert body["message"] == message, body
    return body


def group(c, name="web", **kw) -> dict:
    return ok(c.post("/v2.0/security-groups", json={"security_group": {"name": name, **kw}}),
              201)["security_group"]


def rule(c, sg: dict | str, **kw) -> httpx.Response:
    sid = sg if isinstance(sg, str) else sg["id"]
    return c.post("/v2.0/security-group-rules", json={"security_group_rule": {
        "security_group_id": sid, "direction": "ingress", **kw}})


def groups(c, **params) -> list[dict]:
    return ok(c.get("/v2.0/security-groups", params=params))["security_groups"]


def default_of(c) -> dict:
    [d] = groups(c, name="default")
    return d


def shape(rules: list[dict]) -> set:
    return {(r["direction"], r["ethertype"], r["protocol"], r["remote_ip_prefix"],
             r["remote_group_id"]) for r in rules}


def net_of(c, **kw) -> tuple[dict, dict]:
    net = ok(c.post("/v2.0/networks", json={"network": {"name": "n", **kw}}), 201)["network"]
    sub = ok(c.post("/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "192.0.2.0/24", "ip_version": 4}}), 201)["subnet"]
    return net, sub


def port(c, net: dict, code: int = 201, **kw) -> httpx.Response | dict:
    r = c.post("/v2.0/ports", json={"port": {"network_id": net["id"], **kw}})
    return ok(r, 201)["port"] if code == 201 else r


# -- extensions, defaults -------------------------------------------------------------------

def test_extensions_are_listed(admin):
    aliases = {e["alias"] for e in ok(admin.get("/v2.0/extensions"))["extensions"]}
    assert {"security-group", "port-security", "allowed-address-pairs",
            "stateful-security-group", "address-group"} <= aliases


def test_default_group_on_first_list_with_neutrons_rules(p1):
    d = default_of(p1)
    assert d["project_id"] == p1.project and d["stateful"] is True
    assert shape(d["security_group_rules"]) == {
        ("egress", "IPv4", None, None, None), ("egress", "IPv6", None, None, None),
        ("ingress", "IPv4", None, None, d["id"]), ("ingress", "IPv6", None, None, d["id"])}
    assert all(r["belongs_to_default_sg"] for r in d["security_group_rules"])
    assert default_of(p1)["id"] == d["id"]  # made once


def test_new_group_gets_egress_only_and_reader_sees_default(srv, p1):
    sg = group(p1, description="d")
    assert shape(sg["security_group_rules"]) == {("egress", "IPv4", None, None, None),
                                                 ("egress", "IPv6", None, None, None)}
    assert not any(r["belongs_to_default_sg"] for r in sg["security_group_rules"])
    # a reader of a project without groups yet gets its default on first list (Neutron's
    # create_default_security_group allows readers)
    with As(srv, "r-" + uuid.uuid4().hex[:6], "reader") as r:
        assert [g["name"] for g in groups(r)] == ["default"]


def test_port_gets_default_group_and_names_its_own(p1):
    net, _ = net_of(p1)
    assert net["port_security_enabled"] is True
    p = port(p1, net)
    assert p["port_security_enabled"] is True
    assert p["security_groups"] == [default_of(p1)["id"]]
    sg = group(p1)
    p = port(p1, net, security_groups=[sg["id"]])
    assert p["security_groups"] == [sg["id"]]
    p = port(p1, net, security_groups=[])
    assert p["security_groups"] == []
    p = ok(p1.put(f"/v2.0/ports/{p['id']}", json={"port": {"security_groups": [sg["id"]]}}))
    assert p["port"]["security_groups"] == [sg["id"]]
    assert ok(p1.get("/v2.0/ports", params={"id": p["port"]["id"]}))["ports"][0][
        "security_groups"] == [sg["id"]]


def test_port_security_inherited_and_refusals(p1):
    net, _ = net_of(p1, port_security_enabled=False)
    assert net["port_security_enabled"] is False
    p = port(p1, net)
    assert p["port_security_enabled"] is False and p["security_groups"] == []
    sg = group(p1)
    refused(port(p1, net, 400, security_groups=[sg["id"]]), 400,
            "PortSecurityAndIPRequiredForSecurityGroups",
            "Port security must be enabled and port must have an IP address in order to use "
            "security groups.")
    refused(port(p1, net, 409, allowed_address_pairs=[{"ip_address": "192.0.2.50"}]), 409,
            "AddressPairAndPortSecurityRequired")
    # on -> off: refused while the port has groups or pairs, allowed once they go with it
    net2, _ = net_of(p1)
    p = port(p1, net2, allowed_address_pairs=[{"ip_address": "192.0.2.64/26"}])
    url = f"/v2.0/ports/{p['id']}"
    refused(p1.put(url, json={"port": {"port_security_enabled": False}}), 409,
            "AddressPairAndPortSecurityRequired")
    refused(p1.put(url, json={"port": {"port_security_enabled": False,
                                       "allowed_address_pairs": []}}), 409,
            "PortSecurityPortHasSecurityGroup")
    got = ok(p1.get(url))["port"]  # nothing changed by the refusals
    assert got["port_security_enabled"] is True and got["security_groups"]
    assert got["allowed_address_pairs"] == [{"ip_address": "192.0.2.64/26",
                                             "mac_address": p["mac_address"]}]
    off = ok(p1.put(url, json={"port": {"port_security_enabled": False,
                                        "allowed_address_pairs": [],
                                        "security_groups": []}}))["port"]
    assert off["port_security_enabled"] is False and off["security_groups"] == [] \
        and off["allowed_address_pairs"] == []


def test_trusted_ports_get_no_groups(admin):
    net, _ = net_of(admin)
    p = port(admin, net, device_owner="network:dhcp")
    assert p["port_security_enabled"] is False and p["security_groups"] == []


def test_a_port_without_a_project_gets_that_default_group_too(admin):
    """noauth without X-Project-Id (the README's clouds.yaml with auth_type none): the port's
    project is empty; with the firewall on by default, no group at all would close its
    outbound traffic too. It gets the default group (egress anywhere, ingress from members)."""
    net, _ = net_of(admin)
    p = port(admin, net)
    assert p["project_id"] == "" and p["port_security_enabled"] is True
    [gid] = p["security_groups"]
    sg = ok(admin.get(f"/v2.0/security-groups/{gid}"))["security_group"]
    assert sg["name"] == "default" and sg["project_id"] == ""
    assert ("egress", "IPv4", None, None, None) in shape(sg["security_group_rules"])
    assert port(admin, net)["security_groups"] == [gid]   # the same one, made once


def test_allowed_address_pairs_validation(p1):
    net, _ = net_of(p1)
    p = port(p1, net, allowed_address_pairs=[
        {"ip_address": "192.0.2.200"}, {"ip_address": "198.51.100.0/24",
                                        "mac_address": "FA:16:3E:00:00:09"}])
    assert p["allowed_address_pairs"] == [
        {"ip_address": "192.0.2.200", "mac_address": p["mac_address"]},
        {"ip_address": "198.51.100.0/24", "mac_address": "fa:16:3e:00:00:09"}]
    for pairs, type_ in (([{"mac_address": "fa:16:3e:00:00:01"}], "AllowedAddressPairsMissingIP"),
                         ([{"ip_address": "192.0.2.1/24"}], "HTTPBadRequest"),
                         ([{"ip_address": "224.0.0.5"}], "HTTPBadRequest"),
                         ([{"ip_address": "nope"}], "HTTPBadRequest"),
                         ([{"ip_address": "192.0.2.9", "x": 1}], "HTTPBadRequest"),
                         ("192.0.2.9", "HTTPBadRequest"),
                         ([{"ip_address": "192.0.2.9"}] * 2, "DuplicateAddressPairInRequest"),
                         ([{"ip_address": f"192.0.2.{i}"} for i in range(11)],
                          "AllowedAddressPairExhausted")):
        refused(port(p1, net, 400, allowed_address_pairs=pairs), 400, type_)


# -- rules ----------------------------------------------------------------------------------

def test_rule_create_show_list_delete_and_duplicate(p1):
    sg = group(p1)
    r = ok(rule(p1, sg, protocol="TCP", port_range_min=22, port_range_max=22,
                remote_ip_prefix="203.0.113.7"), 201)["security_group_rule"]
    assert (r["protocol"], r["port_range_min"], r["port_range_max"], r["ethertype"],
            r["remote_ip_prefix"], r["normalized_cidr"]) == \
        ("tcp", 22, 22, "IPv4", "203.0.113.7/32", "203.0.113.7/32")
    body = refused(rule(p1, sg, protocol="6", port_range_min=22, port_range_max=22,
                        remote_ip_prefix="203.0.113.7/32"), 409, "SecurityGroupRuleExists")
    assert body["message"] == f"Security group rule already exists. Rule id is {r['id']}."
    assert ok(p1.get(f"/v2.0/security-group-rules/{r['id']}"))["security_group_rule"] == r
    listed = ok(p1.get("/v2.0/security-group-rules", params={"security_group_id": sg["id"]}))
    assert len(listed["security_group_rules"]) == 3
    shown = ok(p1.get(f"/v2.0/security-groups/{sg['id']}"))["security_group"]
    assert r["id"] in {x["id"] for x in shown["security_group_rules"]}
    ok(p1.delete(f"/v2.0/security-group-rules/{r['id']}"), 204)
    refused(p1.get(f"/v2.0/security-group-rules/{r['id']}"), 404, "SecurityGroupRuleNotFound")
    # the whole port range is no range (Neutron's canonical form); ICMP type/code; any
    r = ok(rule(p1, sg, protocol="udp", port_range_min=1, port_range_max=65535), 201)
    assert r["security_group_rule"]["port_range_min"] is None
    r = ok(rule(p1, sg, protocol="icmp", port_range_min=8, port_range_max=0), 201)
    assert (r["security_group_rule"]["port_range_min"],
            r["security_group_rule"]["port_range_max"]) == (8, 0)
    r = ok(rule(p1, sg, protocol="icmp", ethertype="ipv6"), 201)["security_group_rule"]
    assert (r["protocol"], r["ethertype"]) == ("ipv6-icmp", "IPv6")
    r = ok(rule(p1, sg, protocol="any", remote_ip_prefix="2001:db8::/64", ethertype="IPv6"),
           201)["security_group_rule"]
    assert r["protocol"] is None


@pytest.mark.parametrize("kw,code,type_", [
    ({"protocol": "foo"}, 400, "SecurityGroupRuleInvalidProtocol"),
    ({"protocol": "256"}, 400, "SecurityGroupRuleInvalidProtocol"),
    ({"ethertype": "IPv5"}, 400, "SecurityGroupRuleInvalidEtherType"),
    ({"direction": "sideways"}, 400, "HTTPBadRequest"),
    ({"port_range_min": 22}, 400, "SecurityGroupProtocolRequiredWithPorts"),
    ({"protocol": "tcp", "port_range_min": 30, "port_range_max": 20}, 400,
     "SecurityGroupInvalidPortRange"),
    ({"protocol": "tcp", "port_range_min": 0, "port_range_max": 20}, 400,
     "SecurityGroupInvalidPortValue"),
    ({"protocol": "tcp", "port_range_min": 70000}, 400, "SecurityGroupInvalidPortValue"),
    ({"protocol": "icmp", "port_range_min": 300}, 400, "SecurityGroupInvalidIcmpValue"),
    ({"protocol": "icmp", "port_range_max": 3}, 400, "SecurityGroupMissingIcmpType"),
    ({"protocol": "gre", "port_range_min": 1, "port_range_max": 2}, 400,
     "SecurityGroupInvalidProtocolForPort"),
    ({"remote_ip_prefix": "2001:db8::/64"}, 400, "SecurityGroupRuleParameterConflict"),
    ({"remote_ip_prefix": "not-a-cidr"}, 400, "InvalidCIDR"),
    ({"protocol": "ipv6-icmp"}, 400, "SecurityGroupEthertypeConflictWithProtocol"),
    ({"remote_ip_prefix": "192.0.2.0/24", "remote_group_id": "SELF"}, 400,
     "SecurityGroupMultipleRemoteEntites"),
    ({"remote_group_id": ZERO}, 404, "SecurityGroupNotFound"),
    ({"remote_group_id": "bad_group_id"}, 404, "SecurityGroupNotFound"),  # as Neutron: no 400
    ({"remote_address_group_id": ZERO}, 404, "AddressGroupNotFound"),
])
def test_rule_refusals_change_nothing(p1, kw, code, type_):
    sg = group(p1)
    kw = {k: (sg["id"] if v == "SELF" else v) for k, v in kw.items()}
    refused(rule(p1, sg, **kw), code, type_)
    assert len(ok(p1.get(f"/v2.0/security-groups/{sg['id']}"))["security_group"][
        "security_group_rules"]) == 2


def test_rule_in_missing_group_is_404(p1):
    refused(rule(p1, ZERO), 404, "SecurityGroupNotFound",
            f"Security group {ZERO} does not exist")


# -- groups: in use, default, stateful --------------------------------------------------------

def test_group_in_use_default_and_stateful(p1, admin):
    net, _ = net_of(p1)
    sg = group(p1)
    p = port(p1, net, security_groups=[sg["id"]])
    refused(p1.delete(f"/v2.0/security-groups/{sg['id']}"), 409, "SecurityGroupInUse",
            f"Security Group {sg['id']} in use.")
    refused(p1.put(f"/v2.0/security-groups/{sg['id']}",
                   json={"security_group": {"stateful": False}}), 409, "SecurityGroupInUse")
    d = default_of(p1)
    refused(p1.delete(f"/v2.0/security-groups/{d['id']}"), 409,
            "SecurityGroupCannotRemoveDefault")
    refused(p1.put(f"/v2.0/security-groups/{d['id']}",
                   json={"security_group": {"name": "x"}}), 409,
            "SecurityGroupCannotUpdateDefault")
    refused(p1.post("/v2.0/security-groups", json={"security_group": {"name": "Default"}}),
            409, "SecurityGroupDefaultAlreadyExists")
    stateless = group(p1, "sl", stateful=False)
    assert stateless["stateful"] is False
    refused(p1.put(f"/v2.0/ports/{p['id']}", json={"port": {
        "security_groups": [sg["id"], stateless["id"]]}}), 409, "SecurityGroupConflict")
    ok(p1.put(f"/v2.0/ports/{p['id']}", json={"port": {"security_groups": []}}))
    ok(p1.delete(f"/v2.0/security-groups/{sg['id']}"), 204)
    refused(p1.get(f"/v2.0/security-groups/{sg['id']}"), 404, "SecurityGroupNotFound")
    # the rules naming a deleted group go with it
    a, b = group(p1, "a"), group(p1, "b")
    r = ok(rule(p1, a, remote_group_id=b["id"]), 201)["security_group_rule"]
    ok(p1.delete(f"/v2.0/security-groups/{b['id']}"), 204)
    refused(p1.get(f"/v2.0/security-group-rules/{r['id']}"), 404, "SecurityGroupRuleNotFound")
    # an admin may delete a project's default group; the project gets a new one on use
    ok(p1.delete(f"/v2.0/ports/{p['id']}"), 204)
    ok(admin.delete(f"/v2.0/security-groups/{d['id']}"), 204)
    assert default_of(p1)["id"] != d["id"]


# -- another project, a reader ------------------------------------------------------------

def test_other_project_cannot_see_use_or_change(srv, p1, p2):
    sg = group(p1)
    r = ok(rule(p1, sg, protocol="tcp", port_range_min=80, port_range_max=80),
           201)["security_group_rule"]
    refused(p2.get(f"/v2.0/security-groups/{sg['id']}"), 404, "SecurityGroupNotFound")
    assert sg["id"] not in {g["id"] for g in groups(p2)}
    refused(p2.get(f"/v2.0/security-group-rules/{r['id']}"), 404, "SecurityGroupRuleNotFound")
    assert r["id"] not in {x["id"] for x in ok(p2.get("/v2.0/security-group-rules"))[
        "security_group_rules"]}
    refused(p2.put(f"/v2.0/security-groups/{sg['id']}",
                   json={"security_group": {"name": "x"}}), 404, "SecurityGroupNotFound")
    refused(p2.delete(f"/v2.0/security-groups/{sg['id']}"), 404, "SecurityGroupNotFound")
    refused(p2.delete(f"/v2.0/security-group-rules/{r['id']}"), 404,
            "SecurityGroupRuleNotFound")
    refused(rule(p2, sg), 404, "SecurityGroupNotFound")  # a rule in p1's group
    own = group(p2)
    refused(rule(p2, own, remote_group_id=sg["id"]), 404, "SecurityGroupNotFound")
    net, _ = net_of(p2)
    refused(port(p2, net, 404, security_groups=[sg["id"]]), 404, "SecurityGroupNotFound")
    # a shared network of p1's: p2's port may not use p1's group either
    admin = As(srv)
    shared = ok(admin.post("/v2.0/networks", json={"network": {
        "name": "sh", "shared": True, "project_id": p1.project}}), 201)["network"]
    ok(admin.post("/v2.0/subnets", json={"subnet": {
        "network_id": shared["id"], "cidr": "198.51.100.0/24", "ip_version": 4}}), 201)
    refused(port(p2, shared, 404, security_groups=[sg["id"]]), 404, "SecurityGroupNotFound")
    # ... nor turn port security off on it (Neutron: the network's owner or an admin)
    refused(port(p2, shared, 403, port_security_enabled=False), 403, "PolicyNotAuthorized")
    theirs = port(p2, shared)
    assert theirs["security_groups"] == [default_of(p2)["id"]]
    admin.close()
    assert ok(p1.get(f"/v2.0/security-groups/{sg['id']}"))["security_group"]["name"] == "web"


def test_reader_reads_but_does_not_write(srv, p1):
    sg = group(p1)
    r = ok(rule(p1, sg), 201)["security_group_rule"]
    with As(srv, p1.project, "reader") as rd:
        assert ok(rd.get(f"/v2.0/security-groups/{sg['id']}"))["security_group"]["id"] == sg["id"]
        assert ok(rd.get(f"/v2.0/security-group-rules/{r['id']}"))
        refused(rd.post("/v2.0/security-groups", json={"security_group": {"name": "x"}}),
                403, "PolicyNotAuthorized")
        refused(rule(rd, sg, protocol="udp"), 403, "PolicyNotAuthorized")
        refused(rd.delete(f"/v2.0/security-group-rules/{r['id']}"), 403, "PolicyNotAuthorized")
        refused(rd.delete(f"/v2.0/security-groups/{sg['id']}"), 403, "PolicyNotAuthorized")
        refused(rd.post("/v2.0/address-groups", json={"address_group": {"name": "x"}}),
                403, "PolicyNotAuthorized")


# -- address groups ------------------------------------------------------------------------

def test_address_groups_actions_in_use_and_other_project(p1, p2):
    ag = ok(p1.post("/v2.0/address-groups", json={"address_group": {
        "name": "office", "addresses": ["192.0.2.9/24", "2001:db8::1/128"]}}),
        201)["address_group"]
    assert ag["addresses"] == ["192.0.2.0/24", "2001:db8::1/128"]
    # as Neutron: a CIDR, not a bare address (nor text that is neither)
    for wrong in ("10.20.30.40", "this is bad IP address", " 10.0.0.0/8"):
        refused(p1.post("/v2.0/address-groups", json={"address_group": {
            "name": "w", "addresses": [wrong]}}), 400, "HTTPBadRequest")
    url = f"/v2.0/address-groups/{ag['id']}"
    got = ok(p1.put(f"{url}/add_addresses", json={"addresses": ["198.51.100.0/24"]}))
    assert got["address_group"]["addresses"][-1] == "198.51.100.0/24"
    refused(p1.put(f"{url}/add_addresses", json={"addresses": ["198.51.100.0/24"]}), 400,
            "AddressesAlreadyExist")
    refused(p1.put(f"{url}/remove_addresses", json={"addresses": ["203.0.113.0/24"]}), 404,
            "AddressesNotFound")
    # an action takes an address as its /32
    refused(p1.put(f"{url}/remove_addresses", json={"addresses": ["10.200.200.200"]}), 404,
            "AddressesNotFound")
    got = ok(p1.put(f"{url}/remove_addresses", json={"addresses": ["192.0.2.0/24"]}))
    assert got["address_group"]["addresses"] == ["2001:db8::1/128", "198.51.100.0/24"]
    refused(p2.get(url), 404, "AddressGroupNotFound")
    refused(p2.put(f"{url}/add_addresses", json={"addresses": ["10.0.0.0/8"]}), 404,
            "AddressGroupNotFound")
    refused(rule(p2, group(p2), remote_address_group_id=ag["id"]), 404, "AddressGroupNotFound")
    sg = group(p1)
    r = ok(rule(p1, sg, remote_address_group_id=ag["id"]), 201)["security_group_rule"]
    assert r["remote_address_group_id"] == ag["id"]
    refused(p1.delete(url), 409, "AddressGroupInUse")
    ok(p1.delete(f"/v2.0/security-group-rules/{r['id']}"), 204)
    ok(p1.delete(url), 204)


# -- what the agents get ---------------------------------------------------------------------

def test_agents_state_and_a_rule_change_is_a_change_of_its_group(srv, p1):
    from floatip.core import model
    net, _ = net_of(p1)
    sg = group(p1)
    p = port(p1, net, security_groups=[sg["id"]],
             allowed_address_pairs=[{"ip_address": "192.0.2.128/25"}])
    agent = httpx.Client(base_url=srv.url, timeout=30,
                         headers={"Authorization": "Bearer agent-secret"})
    doc = ok(agent.get("/floatip/v1/state"))
    st = model.state_from_json(doc["state"])
    mp = st.ports[p["id"]]
    assert mp.port_security_enabled and mp.security_groups == (sg["id"],)
    assert mp.allowed_address_pairs == (("192.0.2.128/25", p["mac_address"]),)
    assert {r.direction for r in st.security_groups[sg["id"]].rules} == {"egress"}
    gen = ok(agent.get("/floatip/v1/changes", params={"generation": -1}))["generation"]
    r = ok(rule(p1, sg, protocol="tcp", port_range_min=22, port_range_max=22,
                ethertype="IPv6"), 201)["security_group_rule"]
    delta = ok(agent.get("/floatip/v1/changes", params={"generation": gen, "timeout": 5, "objects": "true"}))
    assert not delta["full"], sorted(delta)
    ups = model.objects_from_json(delta["upserts"])
    [new] = [x for x in ups["security_groups"][sg["id"]].rules if x.id == r["id"]]
    assert (new.protocol, new.port_range_min, new.ethertype) == (6, 22, "IPv6")
    gen = delta["generation"]
    ok(p1.delete(f"/v2.0/security-group-rules/{r['id']}"), 204)
    delta = ok(agent.get("/floatip/v1/changes", params={"generation": gen, "timeout": 5, "objects": "true"}))
    ups = model.objects_from_json(delta["upserts"])
    assert r["id"] not in {x.id for x in ups["security_groups"][sg["id"]].rules}
    gen = delta["generation"]
    ok(p1.put(f"/v2.0/ports/{p['id']}", json={"port": {"security_groups": []}}))
    delta = ok(agent.get("/floatip/v1/changes", params={"generation": gen, "timeout": 5, "objects": "true"}))
    assert model.objects_from_json(delta["upserts"])["ports"][p["id"]].security_groups == ()
    gen = delta["generation"]
    ok(p1.delete(f"/v2.0/security-groups/{sg['id']}"), 204)
    delta = ok(agent.get("/floatip/v1/changes", params={"generation": gen, "timeout": 5, "objects": "true"}))
    assert delta["deletes"]["security_groups"] == [sg["id"]]
    agent.close()
