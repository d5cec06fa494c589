"""Neutron 29's port rules through a real Keystone: the owner of a shared network sees the
other projects' ports on it but changes none of them (``update_port`` is the port's project,
admins and the service role), deletes only those that are not compute, bare-metal or manila
ports, and never reads nor writes their ``floatip:user_data`` / ``floatip:public_keys`` (what
the victim's VM boots with). A project deletes its own compute port only with a service
token sent along (Nova's), as Neutron's ``service_roles:service``."""
from __future__ import annotations

import secrets
import uuid

import httpx
import pytest

from floatip.api.auth import AuthSettings
from floatip.server import Server, free_port

pytestmark = [pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFloatipTestKeyOnlyForThisTest0000000000 v@x"
EVIL_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEvilKeyOfTheNetworkOwner000000000000000 e@x"


def ok(r: httpx.Response, code: int = 200) -> dict:
    assert r.status_code == code, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json() if r.content else {}


@pytest.fixture(scope="module")
def cloud(keystone, tmp_path_factory):
    ks = keystone
    d = tmp_path_factory.mktemp("fk-pol")
    srv = Server(f"sqlite:///{d}/floatip.db", f"127.0.0.1:{free_port()}", agent=False,
                 auth=AuthSettings("keystone", ks.authtoken(), "s3cret-pol")).start()
    sfx = uuid.uuid4().hex[:6]
    tokens = {"admin": ks.token()}
    for name, project, role in (("a", "va", "member"), ("ar", "va", "reader"),
                                ("b", "nb", "member")):
        uname, pw = f"pn-{name}-{sfx}", secrets.token_urlsafe(12)
        ks.user(uname, pw, f"pn-{project}-{sfx}", [role])
        tokens[name] = ks.token(uname, pw, f"pn-{project}-{sfx}")
    tokens["service"] = ks.token(ks.service_user, ks.service_password, "service")
    c = {k: httpx.Client(base_url=srv.url, headers={"X-Auth-Token": t}, timeout=30)
         for k, t in tokens.items() if k != "service"}
    # B owns a network the admin made shared; A (the victim) has ports on it
    net = ok(c["b"].post("/v2.0/networks", json={"network": {"name": "bnet"}}), 201)["network"]
    ok(c["admin"].put(f"/v2.0/networks/{net['id']}", json={"network": {"shared": True}}))
    sub = ok(c["b"].post("/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "100.64.30.0/24", "ip_version": 4}}), 201)["subnet"]
    yield {"srv": srv, "c": c, "net": net, "sub": sub, "service_token": tokens["service"]}
    for x in c.values():
        x.close()
    srv.close()


def victim_port(cloud, owner: str = "compute:nova") -> dict:
    return ok(cloud["c"]["a"].post("/v2.0/ports", json={"port": {
        "network_id": cloud["net"]["id"], "name": "vm", "device_owner": owner,
        "device_id": str(uuid.uuid4()), "floatip:user_data": "#!/bin/sh\necho mine\n",
        "floatip:public_keys": {"k": KEY}}}), 201)["port"]


def test_the_shared_network_owner_cannot_change_other_projects_ports(cloud):
    c, port = cloud["c"], victim_port(cloud)
    b, pid = c["b"], port["id"]
    seen = ok(b.get(f"/v2.0/ports/{pid}"))["port"]  # Neutron: the network owner reads it
    assert "floatip:user_data" not in seen and "floatip:public_keys" not in seen, seen
    listed = [p for p in ok(b.get("/v2.0/ports", params={"network_id": cloud["net"]["id"]}))[
        "ports"] if p["id"] == pid]
    assert listed and "floatip:user_data" not in listed[0], listed
    crossed = []
    for body in ({"name": "owned"}, {"device_id": str(uuid.uuid4())}, {"admin_state_up": False},
                 {"fixed_ips": [{"subnet_id": cloud["sub"]["id"],
                                 "ip_address": "100.64.30.200"}]},
                 {"floatip:user_data": "#!/bin/sh\necho evil\n"},
                 {"floatip:public_keys": {"k": EVIL_KEY}}):
        r = b.put(f"/v2.0/ports/{pid}", json={"port": body})
        if r.status_code != 403:
            crossed.append(f"PUT {body}: {r.status_code} {r.text[:100]}")
    r = b.delete(f"/v2.0/ports/{pid}")
    if r.status_code != 403:
        crossed.append(f"DELETE a compute port: {r.status_code}")
    assert not crossed, "\n".join(crossed)
    now = ok(c["admin"].get(f"/v2.0/ports/{pid}"))["port"]
    assert (now["name"], now["device_id"], now["admin_state_up"], now["fixed_ips"],
            now["floatip:user_data"], now["floatip:public_keys"]) == (
        port["name"], port["device_id"], True, port["fixed_ips"], "#!/bin/sh\necho mine\n",
        {"k": KEY})
    # a port that is not a compute port: the network owner may delete it (Neutron's rule)
    other = victim_port(cloud, owner="")
    ok(b.delete(f"/v2.0/ports/{other['id']}"), 204)


def test_the_ports_project_reads_and_writes_its_metadata(cloud):
    c, port = cloud["c"], victim_port(cloud)
    pid = port["id"]
    got = ok(c["ar"].get(f"/v2.0/ports/{pid}"))["port"]  # its reader reads it
    assert got["floatip:public_keys"] == {"k": KEY}
    assert c["ar"].put(f"/v2.0/ports/{pid}", json={"port": {
        "floatip:user_data": "x"}}).status_code == 403
    got = ok(c["a"].put(f"/v2.0/ports/{pid}", json={"port": {
        "floatip:user_data": "#!/bin/sh\necho new\n", "name": "vm2"}}))["port"]
    assert got["floatip:user_data"] == "#!/bin/sh\necho new\n" and got["name"] == "vm2"
    # its own compute port: Neutron 29 lets a member delete it only with a service token
    r = c["a"].delete(f"/v2.0/ports/{pid}")
    assert r.status_code == 403, r.text
    r = c["a"].delete(f"/v2.0/ports/{pid}", headers={"X-Service-Token": cloud["service_token"]})
    assert r.status_code == 204, r.text
