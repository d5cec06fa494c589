"""``floatip`` commands for tags, QoS policies, network RBAC, subnet pools and address scopes
round-trip through a real server (``floatip`` as a user types it): ``--tag`` on
create and set (added; ``--no-tag`` clears), ``list --tags/--any-tags/--not-tags``,
``qos policy set``, ``network rbac set``, ``address-scope create|list|show|set|delete``."""
from __future__ import annotations

import json
import uuid

import pytest

from cloud import floatip_cli, served_api


@pytest.fixture(scope="module")
def api(request, tmp_path_factory):
    yield from served_api(request, tmp_path_factory, "fil-cli")


@pytest.fixture
def run(api, monkeypatch):
    """``floatip ARGS``: its JSON with ``-f json``, else its output."""
    cli = floatip_cli(str(api.base_url).rstrip("/"), monkeypatch)

    def run(*args, code: int = 0):
        text = cli(*args, code=code)
        return json.loads(text) if "json" in args and code == 0 else text
    return run


def names(run, *args) -> set[str]:
    return {o["name"] for o in run(*args, "-f", "json", "-c", "name")}


def test_tags_on_create_set_and_list(run):
    t = f"fil{uuid.uuid4().hex[:6]}"
    red = run("network", "create", f"{t}-red", "--tag", "red", "--tag", t, "-f", "json")
    assert sorted(red["tags"]) == sorted(["red", t])
    blue = run("network", "create", f"{t}-blue", "--tag", "blue", "--tag", t, "-f", "json")
    run("network", "create", f"{t}-none", "-f", "json")
    assert names(run, "network", "list", "--tags", f"red,{t}") == {f"{t}-red"}
    assert names(run, "network", "list", "--any-tags", "red,blue") >= {f"{t}-red", f"{t}-blue"}
    assert names(run, "network", "list", "--tags", t, "--not-tags", "red") == {f"{t}-blue"}
    # set --tag adds; --no-tag clears first
    assert sorted(run("network", "set", blue["id"], "--tag", "green", "-f", "json")["tags"]) \
        == sorted(["blue", "green", t])
    assert run("network", "set", f"{t}-blue", "--no-tag", "--tag", "only", "-f",
               "json")["tags"] == ["only"]
    assert run("network", "set", f"{t}-blue", "--no-tag", "-f", "json")["tags"] == []
    assert "tags" in run("network", "show", f"{t}-red")  # a rich table with the tags row
    # every other kind with tags
    run("subnet", "create", f"{t}-sub", "--network", f"{t}-red", "--subnet-range",
        "100.64.90.0/24", "--tag", t, "-f", "json")
    run("port", "create", f"{t}-port", "--network", f"{t}-red", "--tag", t, "-f", "json")
    run("router", "create", f"{t}-r", "--tag", t, "-f", "json")
    run("security-group", "create", f"{t}-sg", "--tag", t, "-f", "json")
    for kind, name in (("subnet", f"{t}-sub"), ("port", f"{t}-port"), ("router", f"{t}-r"),
                       ("security-group", f"{t}-sg"), ("network", f"{t}-red")):
        assert names(run, kind, "list", "--tags", t) == {name}, kind
        got = run(kind, "set", name, "--tag", "x", "-f", "json")
        assert {t, "x"} <= set(got["tags"]), (kind, got)
    ext = run("network", "create", f"{t}-ext", "--external", "-f", "json")
    run("subnet", "create", f"{t}-extsub", "--network", ext["id"], "--subnet-range",
        "203.0.113.0/24", "-f", "json")
    fip = run("floating-ip", "create", f"{t}-ext", "--tag", t, "-f", "json")
    assert fip["tags"] == [t]
    assert [f["id"] for f in run("floating-ip", "list", "--tags", t, "-f", "json",
                                 "-c", "id")] == [fip["id"]]
    assert run("floating-ip", "set", fip["id"], "--no-tag", "-f", "json")["tags"] == []


def test_qos_policies_rbac_pools_and_scopes_round_trip(run):
    t = f"fil{uuid.uuid4().hex[:6]}"
    pol = run("qos", "policy", "create", f"{t}-gold", "--tag", "qos", "-f", "json")
    assert pol["tags"] == ["qos"] and not pol["shared"]
    got = run("qos", "policy", "set", f"{t}-gold", "--name", f"{t}-silver", "--description",
              "uplink", "--share", "--tag", "b", "-f", "json")
    assert (got["name"], got["description"], got["shared"], sorted(got["tags"])) == (
        f"{t}-silver", "uplink", True, ["b", "qos"])
    assert names(run, "qos", "policy", "list", "--tags", "qos,b") == {f"{t}-silver"}
    assert f"{t}-silver" not in names(run, "qos", "policy", "list", "--not-tags", "qos")
    assert f"{t}-silver" in run("qos", "policy", "list")  # the table

    net = run("network", "create", f"{t}-net", "-f", "json")
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    rbac = run("network", "rbac", "create", f"{t}-net", "--target-project", a, "-f", "json")
    assert (rbac["object_id"], rbac["target_tenant"]) == (net["id"], a)
    assert run("network", "rbac", "set", rbac["id"], "--target-project", b, "-f",
               "json")["target_tenant"] == b
    assert run("network", "rbac", "show", rbac["id"], "-f", "json")["target_tenant"] == b
    run("network", "rbac", "delete", rbac["id"])
    run("network", "rbac", "show", rbac["id"], code=1)

    scope = run("address-scope", "create", f"{t}-scope", "--ip-version", "4", "-f", "json")
    assert (scope["ip_version"], scope["shared"]) == (4, False)
    assert f"{t}-scope" in names(run, "address-scope", "list")
    assert run("address-scope", "set", f"{t}-scope", "--name", f"{t}-scope2", "-f",
               "json")["name"] == f"{t}-scope2"
    pool = run("subnet", "pool", "create", f"{t}-pool", "--pool-prefix", "100.81.0.0/16",
               "--default-prefix-length", "24", "--address-scope", f"{t}-scope2", "--tag", t,
               "-f", "json")
    assert pool["address_scope_id"] == scope["id"] and pool["tags"] == [t]
    assert names(run, "subnet", "pool", "list", "--tags", t) == {f"{t}-pool"}
    # a pool is shared with a project its scope is shared with (Neutron's refusal else)
    run("network", "rbac", "create", f"{t}-pool", "--type", "subnetpool",
        "--target-project", a, code=1)
    run("network", "rbac", "create", f"{t}-scope2", "--type", "address_scope",
        "--target-project", a, "-f", "json")
    shared = run("network", "rbac", "create", f"{t}-pool", "--type", "subnetpool",
                 "--target-project", a, "-f", "json")
    assert (shared["object_type"], shared["object_id"]) == ("subnetpool", pool["id"])
    run("network", "rbac", "delete", shared["id"])
    assert sorted(run("subnet", "pool", "set", f"{t}-pool", "--tag", "x", "-f",
                      "json")["tags"]) == sorted([t, "x"])
    run("address-scope", "delete", f"{t}-scope2", code=1)  # its pool is in it
    run("subnet", "pool", "delete", f"{t}-pool")
    run("address-scope", "delete", f"{t}-scope2")
    assert f"{t}-scope2" not in names(run, "address-scope", "list")
    # a floating IP's and a gateway's QoS policy, as the openstack CLI sets them
    ext = run("network", "create", f"{t}-ext", "--external", "-f", "json")
    run("subnet", "create", f"{t}-extsub", "--network", ext["id"], "--subnet-range",
        "198.51.100.0/24", "-f", "json")
    pid = got["id"]
    fip = run("floating-ip", "create", f"{t}-ext", "--qos-policy", f"{t}-silver", "-f", "json")
    assert fip["qos_policy_id"] == pid
    assert run("floating-ip", "set", fip["id"], "--no-qos-policy", "-f",
               "json")["qos_policy_id"] is None
    run("router", "create", f"{t}-r", "--external-gateway", f"{t}-ext", "-f", "json")
    r = run("router", "set", f"{t}-r", "--qos-policy", pid, "-f", "json")
    assert r["external_gateway_info"]["qos_policy_id"] == pid
    run("qos", "policy", "delete", f"{t}-silver", code=1)  # in use by the gateway
    r = run("router", "set", f"{t}-r", "--no-qos-policy", "-f", "json")
    assert r["external_gateway_info"]["qos_policy_id"] is None
    run("qos", "policy", "delete", f"{t}-silver")
