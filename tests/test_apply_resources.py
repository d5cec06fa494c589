"""``floatip apply FILE`` with the resources beyond networks and routers, as an operator
writing one file expects: address scopes, subnet pools (a subnet taken from one by its
length), QoS policies with bandwidth limits (on a floating IP and on a router's gateway),
tags on every object, a network shared with chosen projects. Applied twice it changes
nothing; ``diff`` then prints no change; an edit converges (tags, rules, projects set as
listed); ``delete -f`` removes it all and nothing else; a bad file lists every error and
changes nothing. A real server on a throw-away database, the real CLI in a subprocess."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import uuid

import pytest
import yaml

from cloud import served_api


@pytest.fixture(scope="module")
def api(request, tmp_path_factory):
    yield from served_api(request, tmp_path_factory, "fil-apply")


def tag() -> str:
    return f"fil{uuid.uuid4().hex[:6]}"


def cli(api, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLOATIP_URL": str(api.base_url).rstrip("/"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "floatip.cli.main", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def write(tmp_path, doc) -> str:
    f = tmp_path / f"{tag()}.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(f)


COLLS = ("networks", "subnets", "ports", "routers", "security-groups", "floatingips",
         "qos/policies", "subnetpools", "address-scopes", "rbac-policies")


def everything(api) -> dict[str, set[str]]:
    """The ids of every object the API has, by collection (but the project's default
    security group, which its first port makes)."""
    out = {}
    for coll in COLLS:
        key = coll.rsplit("/", 1)[-1].replace("-", "_")
        out[coll] = {o["id"] for o in api.get(f"/v2.0/{coll}").json()[key]
                     if not (coll == "security-groups" and o["name"] == "default")}
    return out


def one(api, coll: str, name: str) -> dict:
    key = coll.rsplit("/", 1)[-1].replace("-", "_")
    found = api.get(f"/v2.0/{coll}", params={"name": name}).json()[key]
    assert len(found) == 1, (coll, name, found)
    return found[0]


def external(api, t: str, octet: int) -> dict:
    net = api.post("/v2.0/networks", json={"network": {
        "name": f"{t}-ext", "router:external": True}}).json()["network"]
    r = api.post("/v2.0/subnets", json={"subnet": {
        "name": f"{t}-extsub", "network_id": net["id"], "cidr": f"198.51.{octet}.0/24",
        "ip_version": 4, "gateway_ip": f"198.51.{octet}.1"}})
    assert r.status_code == 201, r.text
    return net


def full(t: str, octet: int) -> dict:
    """Every resource kind the file knows, each with tags where it has them."""
    peer = uuid.uuid4().hex
    return {
        "address_scopes": [{"name": f"{t}-scope", "ip_version": 4, "shared_with": [peer]}],
        "subnet_pools": [{"name": f"{t}-pool", "prefixes": [f"100.{64 + octet % 60}.0.0/16"],
                          "default_prefixlen": 24, "address_scope": f"{t}-scope",
                          "tags": ["tenant"], "shared_with": [peer]}],
        "qos_policies": [{"name": f"{t}-gold", "description": "uplink",
                          "rules": [{"max_kbps": 10000, "direction": "egress"},
                                    {"max_kbps": 20000, "max_burst_kbps": 2000,
                                     "direction": "ingress"}],
                          "tags": ["qos"]}],
        "networks": [{"name": f"{t}-net", "tags": ["blue", "prod"], "shared_with": [peer]},
                     {"name": f"{t}-pub", "external": True, "external_for": [peer]}],
        "subnets": [{"name": f"{t}-sub", "network": f"{t}-net", "subnetpool": f"{t}-pool",
                     "prefixlen": 26, "tags": ["blue"]}],
        "security_groups": [{"name": f"{t}-web", "tags": ["web"],
                             "rules": [{"protocol": "tcp", "dst_port": 80}]}],
        "ports": [{"name": f"{t}-vm", "network": f"{t}-net", "tags": ["vm"],
                   "security_groups": [f"{t}-web"]}],
        "routers": [{"name": f"{t}-r", "tags": ["edge"], "interfaces": [f"{t}-sub"],
                     "external_gateway_info": {"network": f"{t}-ext",
                                               "qos_policy": f"{t}-gold"}}],
        "floatingips": [{"floating_ip_address": f"198.51.{octet}.10", "port": f"{t}-vm",
                         "qos_policy": f"{t}-gold", "tags": ["public"]}],
    }


def test_a_file_of_every_resource_converges(api, tmp_path):
    t, octet = tag(), 100
    ext = external(api, t, octet)
    others = api.post("/v2.0/qos/policies", json={"policy": {"name": f"{t}-other"}}).json()
    before = everything(api)
    doc = full(t, octet)
    peer = doc["networks"][0]["shared_with"][0]
    f = write(tmp_path, doc)
    r = cli(api, "apply", f)
    assert r.returncode == 0, r.stdout + r.stderr

    scope, pool = one(api, "address-scopes", f"{t}-scope"), one(api, "subnetpools", f"{t}-pool")
    assert pool["address_scope_id"] == scope["id"] and pool["tags"] == ["tenant"]
    sub = one(api, "subnets", f"{t}-sub")
    assert sub["subnetpool_id"] == pool["id"] and sub["tags"] == ["blue"]
    cidr = ipaddress.ip_network(sub["cidr"])
    assert cidr.prefixlen == 26 and cidr.subnet_of(ipaddress.ip_network(pool["prefixes"][0]))
    gold = one(api, "qos/policies", f"{t}-gold")
    assert gold["tags"] == ["qos"] and gold["description"] == "uplink"
    assert sorted((x["direction"], x["max_kbps"]) for x in gold["rules"]) == [
        ("egress", 10000), ("ingress", 20000)]
    net = one(api, "networks", f"{t}-net")
    assert sorted(net["tags"]) == ["blue", "prod"]
    shares = [p for p in api.get("/v2.0/rbac-policies").json()["rbac_policies"]
              if p["object_id"] == net["id"]]
    assert [(p["action"], p["target_tenant"]) for p in shares] == [("access_as_shared", peer)]
    pub = one(api, "networks", f"{t}-pub")  # made external, for the peer only (not "*")
    assert pub["router:external"] and [(p["action"], p["target_tenant"]) for p in api.get(
        "/v2.0/rbac-policies").json()["rbac_policies"] if p["object_id"] == pub["id"]] == [
        ("access_as_external", peer)]
    assert sorted((p["object_type"], p["object_id"], p["target_tenant"]) for p in api.get(
        "/v2.0/rbac-policies").json()["rbac_policies"] if p["object_type"] != "network") == \
        sorted([("address_scope", scope["id"], peer), ("subnetpool", pool["id"], peer)])
    assert one(api, "ports", f"{t}-vm")["tags"] == ["vm"]
    assert one(api, "security-groups", f"{t}-web")["tags"] == ["web"]
    router = one(api, "routers", f"{t}-r")
    assert router["tags"] == ["edge"]
    assert router["external_gateway_info"]["qos_policy_id"] == gold["id"]
    fip = api.get("/v2.0/floatingips", params={
        "floating_ip_address": f"198.51.{octet}.10"}).json()["floatingips"][0]
    assert fip["qos_policy_id"] == gold["id"] and fip["tags"] == ["public"]

    # applied again: nothing differs, nothing changes
    r = cli(api, "diff", f)
    assert r.returncode == 0 and "created" not in r.stdout and "updated" not in r.stdout, \
        r.stdout + r.stderr
    r = cli(api, "apply", "--json", f)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert not res["created"] and not res["updated"], res
    assert one(api, "networks", f"{t}-net")["revision_number"] == net["revision_number"]

    # an edit: tags, rules and projects are set as listed; a key left out is left alone
    other = uuid.uuid4().hex
    doc["networks"][0].update(tags=["green"], shared_with=[other])
    doc["qos_policies"][0]["rules"] = [{"max_kbps": 5000, "direction": "egress"}]
    doc["floatingips"][0]["qos_policy"] = None
    del doc["ports"][0]["tags"]
    f2 = write(tmp_path, doc)
    r = cli(api, "diff", f2)
    assert r.returncode == 1, r.stdout + r.stderr
    for line in (f"network {t}-net tags updated (dry run)",
                 f"qos policy {t}-gold bandwidth limit egress updated (dry run)",
                 f"qos policy {t}-gold bandwidth limit ingress removed updated (dry run)",
                 f"network {t}-net shared with {other} created (dry run)",
                 f"floating IP 198.51.{octet}.10 updated (dry run)"):
        assert line in r.stdout, r.stdout
    assert sorted(one(api, "networks", f"{t}-net")["tags"]) == ["blue", "prod"]
    r = cli(api, "apply", f2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert one(api, "networks", f"{t}-net")["tags"] == ["green"]
    assert [(x["direction"], x["max_kbps"]) for x in
            one(api, "qos/policies", f"{t}-gold")["rules"]] == [("egress", 5000)]
    assert [p["target_tenant"] for p in api.get("/v2.0/rbac-policies").json()["rbac_policies"]
            if p["object_id"] == net["id"]] == [other]
    assert api.get(f"/v2.0/floatingips/{fip['id']}").json()["floatingip"][
        "qos_policy_id"] is None
    assert one(api, "ports", f"{t}-vm")["tags"] == ["vm"]
    r = cli(api, "diff", f2)
    assert r.returncode == 0, r.stdout + r.stderr

    # delete -f: the file's objects, dependents first; the rest stays
    r = cli(api, "delete", "-f", f2)
    assert r.returncode == 0, r.stdout + r.stderr
    for label in (f"floating IP 198.51.{octet}.10", f"router {t}-r", f"qos policy {t}-gold",
                  f"subnetpool {t}-pool", f"address scope {t}-scope"):
        assert f"{label} deleted" in r.stdout, r.stdout
    assert everything(api) == before
    assert api.get(f"/v2.0/networks/{ext['id']}").status_code == 200
    assert api.get(f"/v2.0/qos/policies/{others['policy']['id']}").status_code == 200


def test_a_bad_file_lists_every_error_and_changes_nothing(api, tmp_path):
    t, octet = tag(), 101
    external(api, t, octet)
    before = everything(api)
    doc = full(t, octet)
    doc["qos_policies"][0]["rules"].append({"max_kbps": 1, "direction": "egress"})
    doc["qos_policies"][0]["rules"][1]["max_kpbs"] = 1
    doc["subnet_pools"][0]["prefix"] = ["100.64.0.0/16"]
    doc["networks"][0]["shared_with"] = [7, "*", "alice"]
    doc["networks"][1]["external"] = False
    r = cli(api, "apply", write(tmp_path, doc))
    assert r.returncode == 2, r.stdout + r.stderr
    for text in (f"qos_policies[0] ({t}-gold).rules[1]: unknown key 'max_kpbs'; did you mean "
                 "'max_kbps'?",
                 f"qos_policies[0] ({t}-gold): rules[2]: a second egress bandwidth limit",
                 f"subnet_pools[0] ({t}-pool): unknown key 'prefix'; did you mean 'prefixes'?",
                 f"networks[0] ({t}-net).shared_with[0]: must be a project id",
                 f"networks[0] ({t}-net).shared_with[2]: must be a project id",
                 f"networks[1] ({t}-pub): external_for needs external: true", "6 error(s)"):
        assert text in r.stderr, r.stderr
    # its form right, its references wrong: each named, with the name it probably meant
    doc = full(t, octet)
    doc["subnets"][0]["subnetpool"] = f"{t}-pol"
    doc["subnet_pools"][0]["address_scope"] = f"{t}-scope2"
    doc["floatingips"][0]["qos_policy"] = f"{t}-gld"
    doc["routers"][0]["external_gateway_info"]["qos_policy"] = "no-such-policy"
    doc["networks"][0]["tags"] = ["x" * 256]
    doc["qos_policies"][0]["rules"][0]["max_kbps"] = -1
    r = cli(api, "apply", write(tmp_path, doc))
    assert r.returncode == 2, r.stdout + r.stderr
    for text in (f"subnetpool '{t}-pol' is neither in the file nor in the API; did you mean "
                 f"'{t}-pool'?", f"address scope '{t}-scope2' is neither",
                 f"qos policy '{t}-gld' is neither in the file nor in the API; did you mean "
                 f"'{t}-gold'?", "qos policy 'no-such-policy' is neither",
                 f"networks[0] ({t}-net): HTTPBadRequest: Invalid input for tags",
                 f"qos_policies[0] ({t}-gold).rules[0]: ", "too small", "6 error(s)"):
        assert text in r.stderr, r.stderr
    assert everything(api) == before
    r = cli(api, "apply", "--dry-run", write(tmp_path, full(t, octet)))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"subnetpool {t}-pool created (dry run)" in r.stdout, r.stdout
    assert everything(api) == before


def test_the_example_file_applies_converges_and_deletes(api, tmp_path):
    """examples/resources.yaml beside the seed's external network, as its header says."""
    ext = api.post("/v2.0/networks", json={"network": {
        "name": "ext-net", "router:external": True}}).json()["network"]
    assert api.post("/v2.0/subnets", json={"subnet": {
        "name": "ext-subnet", "network_id": ext["id"], "cidr": "203.0.113.0/24",
        "ip_version": 4}}).status_code == 201
    before = everything(api)
    f = os.path.join(os.path.dirname(__file__), "..", "examples", "resources.yaml")
    r = cli(api, "apply", f)
    assert r.returncode == 0, r.stdout + r.stderr
    fip = [x for x in api.get("/v2.0/floatingips").json()["floatingips"] if "app" in x["tags"]]
    assert len(fip) == 1 and fip[0]["qos_policy_id"] == one(api, "qos/policies", "uplink")["id"]
    r = cli(api, "diff", f)
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli(api, "delete", "-f", f)
    assert r.returncode == 0, r.stdout + r.stderr
    assert everything(api) == before
