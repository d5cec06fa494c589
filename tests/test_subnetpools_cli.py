"""Subnet pools and address scopes with the real ``openstack`` CLI behind a real Keystone
(conftest's ``keystone``): a member makes an address scope and a pool in it (``address
scope create``, ``subnet pool create --pool-prefix --address-scope``), takes subnets from it
(``subnet create --subnet-pool --prefix-length``, and ``--subnet-range`` inside the pool),
never overlapping; another project neither lists nor uses the pool; ``subnet pool set
--pool-prefix`` adds a prefix; a pool in use is not deleted."""
from __future__ import annotations

import ipaddress
import json

import pytest

from cloud import Osc, floatip_cli, served

pytestmark = [pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def osc(keystone, tmp_path_factory):
    with served(tmp_path_factory.mktemp("pool-cli"), keystone):
        yield {who: Osc(keystone, "pool", who=who) for who in ("a", "b")}


def test_subnet_pools_with_the_openstack_cli(osc):
    a, b = osc["a"], osc["b"]
    scope = a("address", "scope", "create", "--ip-version", "4", "pool-cli-scope")
    pool = a("subnet", "pool", "create", "--pool-prefix", "100.64.50.0/24",
             "--default-prefix-length", "26", "--min-prefix-length", "26",
             "--max-prefix-length", "28", "--address-scope", scope["id"], "pool-cli-pool")
    assert pool["prefixes"] in (["100.64.50.0/24"], "100.64.50.0/24"), pool
    assert pool["address_scope_id"] == scope["id"], pool
    assert [p["ID"] for p in a("subnet", "pool", "list")] == [pool["id"]]
    assert b("subnet", "pool", "list") == []
    net = a("network", "create", "pool-cli-net")
    s1 = a("subnet", "create", "--network", net["id"], "--subnet-pool", pool["id"],
           "pool-cli-s1")
    s2 = a("subnet", "create", "--network", net["id"], "--subnet-pool", pool["id"],
           "--prefix-length", "28", "pool-cli-s2")
    s3 = a("subnet", "create", "--network", net["id"], "--subnet-pool", pool["id"],
           "--subnet-range", "100.64.50.192/27", "pool-cli-s3")
    cidrs = [ipaddress.ip_network(s["cidr"]) for s in (s1, s2, s3)]
    assert [c.prefixlen for c in cidrs] == [26, 28, 27], cidrs
    assert all(c.subnet_of(ipaddress.ip_network("100.64.50.0/24")) for c in cidrs)
    assert not any(x.overlaps(y) for i, x in enumerate(cidrs) for y in cidrs[i + 1:]), cidrs
    assert s1["subnetpool_id"] == pool["id"]
    assert a("network", "show", net["id"])["ipv4_address_scope"] == scope["id"]
    # B: the pool is not there for it
    bnet = b("network", "create", "pool-cli-bnet")
    b("subnet", "create", "--network", bnet["id"], "--subnet-pool", pool["id"],
      "pool-cli-b", parse=False, ok=False)
    # a prefix added; in use: not deleted
    a("subnet", "pool", "set", "--pool-prefix", "100.64.51.0/24", pool["id"], parse=False)
    shown = a("subnet", "pool", "show", pool["id"])["prefixes"]
    assert shown in (["100.64.50.0/23"], "100.64.50.0/23"), shown
    a("subnet", "pool", "delete", pool["id"], parse=False, ok=False)
    for s in (s1, s2, s3):
        a("subnet", "delete", s["id"], parse=False)
    a("subnet", "pool", "delete", pool["id"], parse=False)
    a("address", "scope", "delete", scope["id"], parse=False)
    assert a("subnet", "pool", "list") == [] and a("address", "scope", "list") == []


def test_floatip_subnet_pool(tmp_path, monkeypatch):
    """``floatip subnet pool create|list|show|set|delete`` and ``floatip subnet create
    --subnet-pool`` against the API (noauth: an admin)."""
    # imported here: the CLI's console is made at import (test_cli_output sets it up first)
    from floatip.cli import subnetpools as _registers_subnet_pool  # noqa: F401
    with served(tmp_path) as srv:
        cli = floatip_cli(srv.url, monkeypatch)

        def run(*args, code=0):
            out = cli(*args, code=code)
            return json.loads(out) if code == 0 and "json" in args else out
        pool = run("subnet", "pool", "create", "pool-fcli", "--pool-prefix", "100.64.60.0/24",
                   "--default-prefix-length", "26", "--min-prefix-length", "26", "-f", "json")
        assert pool["prefixes"] == ["100.64.60.0/24"], pool
        assert [p["id"] for p in run("subnet", "pool", "list", "-f", "json")] == [pool["id"]]
        run("network", "create", "pool-fnet")
        s1 = run("subnet", "create", "pool-fs1", "--network", "pool-fnet", "--subnet-pool",
                 "pool-fcli", "-f", "json")
        s2 = run("subnet", "create", "pool-fs2", "--network", "pool-fnet", "--subnet-pool",
                 "pool-fcli", "--prefix-length", "27", "-f", "json")
        a, b = ipaddress.ip_network(s1["cidr"]), ipaddress.ip_network(s2["cidr"])
        assert (a.prefixlen, b.prefixlen) == (26, 27) and not a.overlaps(b), (a, b)
        assert s1["subnetpool_id"] == pool["id"]
        shown = run("subnet", "pool", "set", "pool-fcli", "--pool-prefix", "100.64.61.0/24",
                    "-f", "json")
        assert shown["prefixes"] == ["100.64.60.0/23"], shown
        assert "100.64.60.0/23" in run("subnet", "pool", "show", "pool-fcli")
        run("subnet", "pool", "delete", "pool-fcli", code=1)  # in use
        run("subnet", "delete", "pool-fs1", "pool-fs2")
        run("subnet", "pool", "delete", "pool-fcli")
        assert run("subnet", "pool", "list", "-f", "json") == []
