"""Network RBAC with the real ``openstack`` CLI behind a real Keystone (conftest's
``keystone``): project A's member shares its network with project B (``network rbac
create --target-project B --action access_as_shared --type network``), B lists it and puts a
port on it, ``network rbac list/show/delete``; C sees nothing. And floatip's own
``floatip network rbac``."""
from __future__ import annotations

import json
import uuid

import httpx
import pytest

from cloud import Osc, floatip_cli, served

pytestmark = [pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def osc(keystone, tmp_path_factory):
    with served(tmp_path_factory.mktemp("rb-cli"), keystone):
        yield {who: Osc(keystone, "rb", who=who) for who in ("a", "b", "c")}


def test_network_rbac_with_the_openstack_cli(osc):
    a, b, c = osc["a"], osc["b"], osc["c"]
    net = a("network", "create", "rb-cli-net")
    a("subnet", "create", "--network", net["id"], "--subnet-range", "100.64.41.0/24",
      "rb-cli-sub")
    pol = a("network", "rbac", "create", "--target-project", b.project_id,
            "--action", "access_as_shared", "--type", "network", net["id"])
    assert pol["target_project_id"] == b.project_id, pol
    assert pol["object_id"] == net["id"] and pol["action"] == "access_as_shared", pol
    assert [p["ID"] for p in a("network", "rbac", "list")] == [pol["id"]]
    assert a("network", "rbac", "show", pol["id"])["object_type"] == "network"
    assert net["id"] in {n["ID"] for n in b("network", "list")}
    assert net["id"] not in {n["ID"] for n in c("network", "list")}
    port = b("port", "create", "--network", net["id"], "rb-cli-port")
    assert port["project_id"] == b.project_id
    a("network", "rbac", "delete", pol["id"], parse=False, ok=False)  # B's port: in use
    assert [p["ID"] for p in a("network", "rbac", "list")] == [pol["id"]]
    b("port", "delete", port["id"], parse=False)
    a("network", "rbac", "delete", pol["id"], parse=False)
    assert a("network", "rbac", "list") == []
    assert net["id"] not in {n["ID"] for n in b("network", "list")}


def test_floatip_network_rbac(tmp_path, monkeypatch):
    """``floatip network rbac create|list|show|delete`` against the API (noauth: the admin
    shares with any project; X-Project-Id headers then act as B and C)."""
    # imported here: the CLI's console is made at import (test_cli_output sets it up first)
    from floatip.cli import rbac as _registers_network_rbac  # noqa: F401
    b, c = uuid.uuid4().hex, uuid.uuid4().hex
    with served(tmp_path) as srv:
        run = floatip_cli(srv.url, monkeypatch)
        with httpx.Client(base_url=srv.url, timeout=30) as h:
            net = h.post("/v2.0/networks", json={"network": {"name": "rb-fcli"}}).json()["network"]
            h.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                     "cidr": "100.64.42.0/24"}})
            pol = json.loads(run("network", "rbac", "create", "rb-fcli", "--target-project", b,
                                 "-f", "json"))
            assert (pol["object_id"], pol["target_tenant"]) == (net["id"], b), pol
            assert [p["id"] for p in json.loads(run("network", "rbac", "list", "-f", "json"))] \
                == [pol["id"]]
            assert b in run("network", "rbac", "show", pol["id"])

            def visible(project: str) -> bool:
                return net["id"] in {n["id"] for n in h.get("/v2.0/networks", headers={
                    "X-Project-Id": project, "X-Roles": "member,reader"}).json()["networks"]}
            assert visible(b) and not visible(c)
            run("network", "rbac", "delete", pol["id"])
            assert not visible(b)
            assert json.loads(run("network", "rbac", "list", "-f", "json")) == []
