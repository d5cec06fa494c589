"""Token scope through a real Keystone, as Neutron 29 answers it with its default
``enforce_scope`` and new defaults: every API rule is a project-scope rule, so a domain- or
system-scoped token (even an admin's) lists 0 rows, gets 404 for any object by id, 400 for a
create without a project and 403 (InvalidScope) for an admin's create naming one. The ports
floatip makes for router gateways and floating IPs (project ``""``, as Neutron's) are
nobody's but the admins': ``""`` never matches a caller. ``/metrics`` is for admins."""
from __future__ import annotations

import secrets
import uuid

import httpx
import pytest

from floatip.api.auth import AuthSettings
from floatip.server import Server, free_port

pytestmark = [pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

COLLECTIONS = {"network": "networks", "subnet": "subnets", "port": "ports",
               "router": "routers", "floatingip": "floatingips",
               "security_group": "security-groups"}


def ok(r: httpx.Response, code: int = 200) -> dict:
    assert r.status_code == code, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json() if r.content else {}


def scoped_token(ks, user: str, password: str, scope: dict) -> str:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}}, "scope": scope}}
    r = httpx.post(f"{ks.url}/auth/tokens", json=body, timeout=30)
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]


def new_user(ks, name: str) -> tuple[str, str]:
    pw = secrets.token_urlsafe(12)
    uid = ks.api("POST", "/users", json={"user": {"name": name, "password": pw,
                                                  "domain_id": "default"}})["user"]["id"]
    return uid, pw


@pytest.fixture(scope="module")
def world(keystone, tmp_path_factory):
    ks = keystone
    d = tmp_path_factory.mktemp("fk-scope")
    srv = Server(f"sqlite:///{d}/floatip.db", f"127.0.0.1:{free_port()}", agent=False,
                 auth=AuthSettings("keystone", ks.authtoken(), "s3cret-scope")).start()
    sfx = uuid.uuid4().hex[:6]
    tokens = {"admin": ks.token()}
    # project A: a member, a reader
    for name, role in (("member", "member"), ("reader", "reader")):
        uname = f"sc-{name}-{sfx}"
        pw = secrets.token_urlsafe(12)
        ks.user(uname, pw, f"sc-pa-{sfx}", [role])
        tokens[name] = ks.token(uname, pw, f"sc-pa-{sfx}")
    # the admin of an unrelated domain; a member of the default domain (project A's)
    dom = ks.api("POST", "/domains", json={"domain": {"name": f"sc-dom-{sfx}"}})["domain"]["id"]
    uid, pw = new_user(ks, f"sc-domadmin-{sfx}")
    ks.api("PUT", f"/domains/{dom}/users/{uid}/roles/{ks.role_id('admin')}")
    tokens["domain_admin"] = scoped_token(ks, f"sc-domadmin-{sfx}", pw,
                                          {"domain": {"id": dom}})
    uid, pw = new_user(ks, f"sc-dommember-{sfx}")
    for role in ("member", "reader"):
        ks.api("PUT", f"/domains/default/users/{uid}/roles/{ks.role_id(role)}")
    tokens["domain_member"] = scoped_token(ks, f"sc-dommember-{sfx}", pw,
                                           {"domain": {"id": "default"}})
    # system scope: the bootstrap admin (admin on the system), and a system reader
    tokens["system_admin"] = scoped_token(ks, "admin", ks.admin_password,
                                          {"system": {"all": True}})
    uid, pw = new_user(ks, f"sc-sysreader-{sfx}")
    ks.api("PUT", f"/system/users/{uid}/roles/{ks.role_id('reader')}")
    tokens["system_reader"] = scoped_token(ks, f"sc-sysreader-{sfx}", pw,
                                           {"system": {"all": True}})
    clients = {k: httpx.Client(base_url=srv.url, headers={"X-Auth-Token": t}, timeout=30)
               for k, t in tokens.items()}
    admin, member = clients["admin"], clients["member"]
    ext = ok(admin.post("/v2.0/networks", json={"network": {
        "name": f"sc-ext-{sfx}", "router:external": True}}), 201)["network"]
    ok(admin.post("/v2.0/subnets", json={"subnet": {
        "network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4}}), 201)
    net = ok(member.post("/v2.0/networks", json={"network": {"name": "a"}}), 201)["network"]
    sub = ok(member.post("/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "100.64.7.0/24", "ip_version": 4}}), 201)["subnet"]
    router = ok(member.post("/v2.0/routers", json={"router": {
        "name": "a", "external_gateway_info": {"network_id": ext["id"]}}}), 201)["router"]
    ok(member.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                  json={"subnet_id": sub["id"]}))
    port = ok(member.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}), 201)["port"]
    fip = ok(member.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext["id"], "port_id": port["id"]}}), 201)["floatingip"]
    ports = ok(admin.get("/v2.0/ports"))["ports"]
    nobodys = [p for p in ports if p["project_id"] == ""]  # gateway and floating-IP ports
    assert {p["device_owner"] for p in nobodys} == {"network:router_gateway",
                                                    "network:floatingip"}, nobodys
    objs = {"network": net, "subnet": sub, "router": router, "port": port, "floatingip": fip}
    yield {"srv": srv, "c": clients, "objs": objs, "nobodys": nobodys, "ext": ext}
    for c in clients.values():
        c.close()
    srv.close()


@pytest.mark.parametrize("who", ["domain_admin", "domain_member", "system_admin",
                                 "system_reader"])
def test_a_token_without_project_scope_gets_nothing(world, who):
    c, objs = world["c"][who], world["objs"]
    crossed = []
    for kind, coll in COLLECTIONS.items():
        rows = ok(c.get(f"/v2.0/{coll}"))[coll.replace("-", "_")]
        crossed += [f"list {coll}: {r['id']} ({r.get('project_id')!r})" for r in rows]
    for kind, d in objs.items():
        coll = COLLECTIONS[kind]
        for method in ("GET", "PUT", "DELETE"):
            r = c.request(method, f"/v2.0/{coll}/{d['id']}",
                          json={kind: {"description": "x"}} if method == "PUT" else None)
            if r.status_code != 404:
                crossed.append(f"{method} {coll}/{d['id']}: {r.status_code} {r.text[:120]}")
    for p in world["nobodys"]:  # ports of project "": the domain member matched them
        r = c.put(f"/v2.0/ports/{p['id']}", json={"port": {"name": "x",
                                                           "admin_state_up": False}})
        if r.status_code != 404:
            crossed.append(f"PUT {p['device_owner']} port: {r.status_code}")
    r = c.put(f"/v2.0/routers/{objs['router']['id']}/remove_router_interface",
              json={"subnet_id": objs["subnet"]["id"]})
    if r.status_code != 404:
        crossed.append(f"remove_router_interface: {r.status_code}")
    assert not crossed, "\n".join(crossed)
    # Neutron: no project in the token nor the body, 400; naming one: 400 for a non-admin,
    # 403 InvalidScope for an admin (its project-scope rule refuses the token)
    r = c.post("/v2.0/networks", json={"network": {"name": "x"}})
    assert r.status_code == 400, r.text
    assert "requires that project_id is specified" in r.json()["NeutronError"]["message"]
    r = c.post("/v2.0/networks", json={"network": {"name": "x", "project_id":
                                                   objs["network"]["project_id"]}})
    if who.endswith("admin"):
        assert (r.status_code, r.json()["NeutronError"]["type"]) == (403, "InvalidScope"), r.text
    else:
        assert r.status_code == 400, r.text
    # floatip's own paths: none for such a token either
    for path in ("/floatip/v1/events", "/floatip/v1/topology", "/metrics",
                 "/floatip/v1/state"):
        assert c.get(path).status_code == 403, path
    names = {n["name"] for n in ok(world["c"]["admin"].get("/v2.0/networks"))["networks"]}
    assert "x" not in names


def test_nobodys_ports_are_hidden_from_project_tokens(world):
    """Gateway and floating-IP ports have project "" (as Neutron's): no member or reader
    sees or changes them; the admin does."""
    ids = {p["id"] for p in world["nobodys"]}
    for who in ("member", "reader"):
        c = world["c"][who]
        seen = {p["id"] for p in ok(c.get("/v2.0/ports"))["ports"]}
        assert not seen & ids, who
        for pid in ids:
            assert c.get(f"/v2.0/ports/{pid}").status_code == 404
            assert c.put(f"/v2.0/ports/{pid}", json={"port": {"name": "x"}}).status_code == 404
    assert ids <= {p["id"] for p in ok(world["c"]["admin"].get("/v2.0/ports"))["ports"]}


def test_metrics_are_for_admins(world):
    for who in ("member", "reader"):
        r = world["c"][who].get("/metrics")
        assert r.status_code == 403, (who, r.text)
        assert r.json()["NeutronError"]["type"] == "PolicyNotAuthorized"
    r = world["c"]["admin"].get("/metrics")
    assert r.status_code == 200 and b"floatip_api_request_seconds" in r.content
