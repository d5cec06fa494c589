"""floatip behind a real Keystone (conftest's ``keystone``: PyPI keystone in its own venv,
SQLite, gunicorn on loopback) with ``auth_strategy = keystone``: tokens, projects and
Neutron's policy, through the clients users have (openstacksdk, the ``openstack`` CLI with
password auth and the catalog pointing at floatip) and raw HTTP for every endpoint.

The server runs with the agent off: these tests are about who may do what; the dataplane
behind the same API is covered by test_e2e_sdk.py.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from floatip.api.auth import AuthSettings
from floatip.server import Server, free_port

pytestmark = [pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

BIN = os.path.dirname(sys.executable)
AGENT_SECRET = secrets.token_urlsafe(16)


class User:
    def __init__(self, ks, name: str, project: str, roles: list[str]):
        self.name, self.project, self.password = name, project, secrets.token_urlsafe(12)
        ks.user(name, self.password, project, roles)
        self.project_id = ks.project(project)
        self.token = ks.token(name, self.password, project)

    def client(self, url: str) -> httpx.Client:
        return httpx.Client(base_url=url, headers={"X-Auth-Token": self.token}, timeout=30)


@pytest.fixture(scope="module")
def cloud(keystone, tmp_path_factory):
    """floatip with keystone auth, the catalog at it, an external network, and users:
    admin; project A member and reader; project B member."""
    d = tmp_path_factory.mktemp("fk-ks")
    srv = Server(f"sqlite:///{d}/floatip.db", f"127.0.0.1:{free_port()}", agent=False,
                 auth=AuthSettings("keystone", keystone.authtoken(), AGENT_SECRET)).start()
    keystone.set_network_endpoint(srv.url)
    sfx = uuid.uuid4().hex[:6]
    users = {"a": User(keystone, f"fk-a-{sfx}", f"fk-pa-{sfx}", ["member"]),
             "ar": User(keystone, f"fk-ar-{sfx}", f"fk-pa-{sfx}", ["reader"]),
             "b": User(keystone, f"fk-b-{sfx}", f"fk-pb-{sfx}", ["member"])}
    admin = httpx.Client(base_url=srv.url, headers={"X-Auth-Token": keystone.token()},
                         timeout=30)
    ext = ok(admin.post("/v2.0/networks", json={"network": {
        "name": f"ext-{sfx}", "router:external": True}}), 201)["network"]
    ok(admin.post("/v2.0/subnets", json={"subnet": {
        "network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4,
        "gateway_ip": "203.0.113.1",
        "allocation_pools": [{"start": "203.0.113.10", "end": "203.0.113.99"}]}}), 201)
    yield {"srv": srv, "ks": keystone, "users": users, "admin": admin, "ext": ext, "dir": d}
    admin.close()
    srv.close()


def ok(r: httpx.Response, code: int = 200) -> dict:
    assert r.status_code == code, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json() if r.content else {}


def build(c: httpx.Client, ext_id: str, cidr: str) -> dict:
    """A project's resources: network, subnet, router (gateway + interface), port, FIP."""
    net = ok(c.post("/v2.0/networks", json={"network": {"name": "n"}}), 201)["network"]
    sub = ok(c.post("/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": cidr, "ip_version": 4}}), 201)["subnet"]
    router = ok(c.post("/v2.0/routers", json={"router": {
        "name": "r", "external_gateway_info": {"network_id": ext_id}}}), 201)["router"]
    ok(c.put(f"/v2.0/routers/{router['id']}/add_router_interface",
             json={"subnet_id": sub["id"]}))
    port = ok(c.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}), 201)["port"]
    fip = ok(c.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext_id, "port_id": port["id"]}}), 201)["floatingip"]
    return {"network": net, "subnet": sub, "router": router, "port": port, "floatingip": fip}


COLLECTIONS = {"network": "networks", "subnet": "subnets", "port": "ports",
               "router": "routers", "floatingip": "floatingips"}


def test_requests_without_a_valid_token_get_401(cloud):
    url = cloud["srv"].url
    for headers in ({}, {"X-Auth-Token": "not-a-token"}, {"X-Auth-Token": ""}):
        for method, path in (("GET", "/v2.0/networks"), ("POST", "/v2.0/routers"),
                             ("GET", "/v2.0/floatingips/x"), ("GET", "/floatip/v1/state"),
                             ("POST", "/floatip/v1/status")):
            r = httpx.request(method, url + path, headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.text)
            assert cloud["ks"].url.rstrip("/v3") in r.headers.get("www-authenticate", "")
    # version discovery stays public, as Neutron's
    assert httpx.get(url + "/").status_code == 200


def test_agents_api_needs_the_shared_secret_or_a_service_token(cloud):
    url, ks = cloud["srv"].url, cloud["ks"]
    member = cloud["users"]["a"]
    r = httpx.post(url + "/floatip/v1/status", headers={"X-Auth-Token": member.token},
                   json={"floatingips": {}})
    assert r.status_code == 403, r.text
    assert httpx.get(url + "/floatip/v1/state",
                     headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url + "/floatip/v1/state",
                     headers={"Authorization": f"Bearer {AGENT_SECRET}"}).status_code == 200
    svc = ks.token(ks.service_user, ks.service_password, "service")
    assert httpx.get(url + "/floatip/v1/state", headers={"X-Auth-Token": svc}).status_code == 200


def test_project_comes_from_the_token_not_the_body(cloud):
    a, b = cloud["users"]["a"], cloud["users"]["b"]
    with a.client(cloud["srv"].url) as c:
        net = ok(c.post("/v2.0/networks", json={"network": {"name": "mine"}}), 201)["network"]
        assert net["project_id"] == a.project_id
        r = c.post("/v2.0/networks", json={"network": {"name": "x",
                                                        "project_id": b.project_id}})
        assert r.status_code == 400, r.text  # neutron-lib's _validate_privileges
        ok(c.delete(f"/v2.0/networks/{net['id']}"), 204)
    # an admin may create for another project
    net = ok(cloud["admin"].post("/v2.0/networks", json={"network": {
        "name": "for-b", "project_id": b.project_id}}), 201)["network"]
    assert net["project_id"] == b.project_id
    with b.client(cloud["srv"].url) as c:
        ok(c.get(f"/v2.0/networks/{net['id']}"))
        ok(c.delete(f"/v2.0/networks/{net['id']}"), 204)


def test_admin_only_attributes(cloud):
    a = cloud["users"]["a"]
    with a.client(cloud["srv"].url) as c:
        for body in ({"router:external": True}, {"shared": True},
                     {"provider:network_type": "vlan", "provider:segmentation_id": 7}):
            r = c.post("/v2.0/networks", json={"network": {"name": "x", **body}})
            assert r.status_code == 403, (body, r.text)
        net = ok(c.post("/v2.0/networks", json={"network": {"name": "attrs"}}), 201)["network"]
        assert not any(k.startswith("provider:") for k in net)
        r = c.put(f"/v2.0/networks/{net['id']}", json={"network": {"router:external": True}})
        assert r.status_code == 403, r.text
        r = c.post("/v2.0/ports", json={"port": {"network_id": net["id"],
                                                 "binding:host_id": "h1"}})
        assert r.status_code == 403, r.text
        port = ok(c.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}), 201)["port"]
        assert not any(k.startswith("binding:") and k != "binding:vnic_type" for k in port)
        r = c.post("/v2.0/routers", json={"router": {"external_gateway_info": {
            "network_id": cloud["ext"]["id"], "enable_snat": False}}})
        assert r.status_code == 403, r.text
        ok(c.delete(f"/v2.0/ports/{port['id']}"), 204)
        ok(c.delete(f"/v2.0/networks/{net['id']}"), 204)
    # the external network is visible to every project, its provider details are not
    with a.client(cloud["srv"].url) as c:
        ext = ok(c.get(f"/v2.0/networks/{cloud['ext']['id']}"))["network"]
        assert "provider:physical_network" not in ext
        assert ok(c.get("/v2.0/subnets", params={"network_id": ext["id"]}))["subnets"]


def test_no_leak_between_projects_and_no_write_for_readers(cloud):
    url, ext = cloud["srv"].url, cloud["ext"]["id"]
    a, ar, b = (cloud["users"][k] for k in ("a", "ar", "b"))
    with b.client(url) as cb, a.client(url) as ca, ar.client(url) as cr:
        theirs = build(cb, ext, "100.64.2.0/24")
        mine = build(ca, ext, "100.64.1.0/24")
        their_ids = {d["id"] for d in theirs.values()}
        leaks = []
        # member of A against every endpoint and method on B's resources
        for kind, coll in COLLECTIONS.items():
            rid = theirs[kind]["id"]
            listed = {d["id"] for d in ok(ca.get(f"/v2.0/{coll}"))[coll]}
            leaks += [f"list {coll}: {i}" for i in listed & their_ids]
            for q in ({"id": rid}, {"project_id": b.project_id},
                      {"tenant_id": b.project_id}):
                got = ok(ca.get(f"/v2.0/{coll}", params=q))[coll]
                leaks += [f"list {coll}?{q}: {d['id']}" for d in got]
            for method, code in (("GET", 404), ("PUT", 404), ("DELETE", 404)):
                r = ca.request(method, f"/v2.0/{coll}/{rid}", json={
                    kind: {"description": "stolen"}} if method == "PUT" else None)
                if r.status_code != code:
                    leaks.append(f"{method} {coll}/{rid}: {r.status_code} {r.text}")
        rid = theirs["router"]["id"]
        for action in ("add_router_interface", "remove_router_interface"):
            r = ca.put(f"/v2.0/routers/{rid}/{action}", json={"subnet_id": mine["subnet"]["id"]})
            if r.status_code != 404:
                leaks.append(f"{action} on B's router: {r.status_code}")
            r = ca.put(f"/v2.0/routers/{mine['router']['id']}/{action}",
                       json={"subnet_id": theirs["subnet"]["id"]})
            if r.status_code != 404:
                leaks.append(f"{action} B's subnet: {r.status_code}")
        # references to B's resources from A's requests
        for method, path, body in (
                ("POST", "/v2.0/subnets", {"subnet": {"network_id": theirs["network"]["id"],
                                                      "cidr": "100.64.9.0/24",
                                                      "ip_version": 4}}),
                ("POST", "/v2.0/ports", {"port": {"network_id": theirs["network"]["id"]}}),
                ("POST", "/v2.0/floatingips", {"floatingip": {
                    "floating_network_id": ext, "port_id": theirs["port"]["id"]}}),
                ("PUT", f"/v2.0/floatingips/{mine['floatingip']['id']}",
                 {"floatingip": {"port_id": theirs["port"]["id"]}}),
                ("POST", "/v2.0/routers", {"router": {"external_gateway_info": {
                    "network_id": theirs["network"]["id"]}}})):
            r = ca.request(method, path, json=body)
            if r.status_code != 404:
                leaks.append(f"{method} {path} -> B's resource: {r.status_code} {r.text}")
        # B's resources are unchanged
        for kind, coll in COLLECTIONS.items():
            now = ok(cb.get(f"/v2.0/{coll}/{theirs[kind]['id']}"))[kind]
            if now.get("description") == "stolen":
                leaks.append(f"{kind} renamed by A")
        assert not leaks, "\n".join(leaks)

        # a reader of A sees A's resources and changes nothing
        writes = []
        new = {"network": {"name": "r"}, "router": {"name": "r"},
               "subnet": {"network_id": mine["network"]["id"], "cidr": "100.64.8.0/24",
                          "ip_version": 4},
               "port": {"network_id": mine["network"]["id"]},
               "floatingip": {"floating_network_id": ext}}
        for kind, coll in COLLECTIONS.items():
            rid = mine[kind]["id"]
            ok(cr.get(f"/v2.0/{coll}/{rid}"))
            assert rid in {d["id"] for d in ok(cr.get(f"/v2.0/{coll}"))[coll]}
            for method, path, body in (
                    ("POST", f"/v2.0/{coll}", {kind: new[kind]}),
                    ("PUT", f"/v2.0/{coll}/{rid}", {kind: {"description": "r"}}),
                    ("DELETE", f"/v2.0/{coll}/{rid}", None)):
                r = cr.request(method, path, json=body)
                if r.status_code != 403:
                    writes.append(f"reader {method} {path}: {r.status_code} {r.text}")
        for action in ("add_router_interface", "remove_router_interface"):
            r = cr.put(f"/v2.0/routers/{mine['router']['id']}/{action}",
                       json={"subnet_id": mine["subnet"]["id"]})
            if r.status_code != 403:
                writes.append(f"reader {action}: {r.status_code}")
        assert not writes, "\n".join(writes)
        # agents: admins see them, members get an empty list (Neutron's get_agent)
        assert ok(ca.get("/v2.0/agents"))["agents"] == []


def test_seed_scenario_through_openstacksdk_as_a_member(cloud):
    import openstack
    a = cloud["users"]["a"]
    conn = openstack.connect(**cloud["ks"].cloud(a.name, a.password, a.project))
    try:
        net = conn.network.create_network(name="sdk-tenant")
        sub = conn.network.create_subnet(network_id=net.id, cidr="100.64.20.0/24",
                                         ip_version=4, gateway_ip="100.64.20.1")
        router = conn.network.create_router(
            name="sdk-r", external_gateway_info={"network_id": cloud["ext"]["id"]})
        conn.network.add_interface_to_router(router, subnet_id=sub.id)
        vm = conn.network.create_port(network_id=net.id, name="vm1",
                                      fixed_ips=[{"subnet_id": sub.id}])
        fip = conn.network.create_ip(floating_network_id=cloud["ext"]["id"], port_id=vm.id)
        assert fip.project_id == a.project_id
        assert fip.fixed_ip_address == vm.fixed_ips[0]["ip_address"]
        assert {f.id for f in conn.network.ips()} >= {fip.id}
        assert conn.network.get_router(router.id).external_gateway_info["network_id"] == \
            cloud["ext"]["id"]
        conn.network.update_ip(fip, port_id=None)
        conn.network.delete_ip(fip)
        conn.network.delete_port(vm)
        conn.network.remove_interface_from_router(router, subnet_id=sub.id)
        conn.network.delete_router(router)
        conn.network.delete_subnet(sub)
        conn.network.delete_network(net)
    finally:
        conn.close()


def test_main_steps_with_the_openstack_cli_as_a_member(cloud):
    a = cloud["users"]["a"]
    env = cloud["ks"].osc_env(a.name, a.password, a.project)

    def osc(*args) -> dict | list | str:
        r = subprocess.run([f"{BIN}/openstack", *args, "-f", "json"], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"openstack {' '.join(args)}: {r.stderr}"
        return json.loads(r.stdout) if r.stdout.strip() else ""

    net = osc("network", "create", "cli-tenant")
    assert net["project_id"] == a.project_id
    osc("subnet", "create", "--network", net["id"], "--subnet-range", "100.64.30.0/24",
        "cli-subnet")
    router = osc("router", "create", "cli-r")
    subprocess.run([f"{BIN}/openstack", "router", "set", "--external-gateway",
                    cloud["ext"]["id"], router["id"]], env=env, check=True, timeout=120)
    subprocess.run([f"{BIN}/openstack", "router", "add", "subnet", router["id"], "cli-subnet"],
                   env=env, check=True, timeout=120)
    port = osc("port", "create", "--network", net["id"], "vm1")
    fip = osc("floating", "ip", "create", "--port", port["id"], cloud["ext"]["id"])
    assert fip["port_id"] == port["id"] and fip["project_id"] == a.project_id
    listed = osc("floating", "ip", "list")
    assert fip["id"] in {f["ID"] for f in listed}
    assert {f["Project"] for f in listed} == {a.project_id}  # only project A's
    # the external network shows, the other project's networks do not
    names = {n["Name"] for n in osc("network", "list")}
    assert cloud["ext"]["name"] in names and "cli-tenant" in names
    for args in (("floating", "ip", "delete", fip["id"]), ("port", "delete", port["id"]),
                 ("router", "remove", "subnet", router["id"], "cli-subnet"),
                 ("router", "delete", router["id"]), ("network", "delete", net["id"])):
        subprocess.run([f"{BIN}/openstack", *args], env=env, check=True, timeout=120)


def test_floatip_serve_with_a_config_file(cloud, tmp_path):
    """``floatip serve --config FILE`` as an operator runs it: keystone auth from the file,
    the password in the file only (not in ``ps``, not in the log)."""
    ks, a = cloud["ks"], cloud["users"]["a"]
    port = free_port()
    conf = tmp_path / "floatip.conf"
    authtoken = "\n".join(f"{k} = {v}" for k, v in ks.authtoken().items())
    conf.write_text(f"[DEFAULT]\nbind_port = {port}\nauth_strategy = keystone\nagent = false\n"
                    f"[database]\nconnection = sqlite:///{tmp_path}/floatip.db\n"
                    f"[keystone_authtoken]\n{authtoken}\n")
    conf.chmod(0o600)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([f"{BIN}/floatip", "serve", "--config", str(conf)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(url + "/", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
        assert httpx.get(url + "/v2.0/networks").status_code == 401
        r = httpx.get(url + "/v2.0/networks", headers={"X-Auth-Token": a.token})
        assert r.status_code == 200, r.text
        cmdline = open(f"/proc/{proc.pid}/cmdline", "rb").read().decode()
        assert ks.service_password not in cmdline
    finally:
        proc.terminate()
        proc.wait(20)
    assert ks.service_password not in log.read_text()
