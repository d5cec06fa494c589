"""Subnet pools and address scopes through the API (Neutron's subnet_allocation,
subnetpool-prefix-ops, default-subnetpools, address-scope): a tenant's subnets handed out by
a pool never overlap, a CIDR asked for must be free and inside the pool, the prefix bounds
and the per-project quota hold, a pool in use is not deleted; another project's unshared
pool or scope is invisible and unusable (404), a shared pool is usable but not changeable;
pools of one address scope never overlap, and a network shows its subnets' scope.
Refusals change nothing.

The server is the real one (uvicorn, agent off), noauth: X-Project-Id / X-Roles make the
caller a project's member (no headers: an admin); SQLite and PostgreSQL."""
from __future__ import annotations

import ipaddress
import uuid

import pytest

from cloud import ok, refused, served_api

POOLS = "/v2.0/subnetpools"
SCOPES = "/v2.0/address-scopes"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory):
    yield from served_api(request, tmp_path_factory, "pool-api")


def project() -> dict:
    return {"X-Project-Id": uuid.uuid4().hex, "X-Roles": "member,reader"}


def pool(api, h, prefixes, **attrs) -> dict:
    return ok(api.post(POOLS, headers=h, json={"subnetpool": {
        "name": "pool-" + uuid.uuid4().hex[:6], "prefixes": prefixes, **attrs}}),
        201)["subnetpool"]


def network(api, h) -> dict:
    return ok(api.post("/v2.0/networks", headers=h, json={"network": {"name": "pool-net"}}),
              201)["network"]


def subnet(api, h, net, **attrs):
    return api.post("/v2.0/subnets", headers=h, json={"subnet": {
        "network_id": net["id"], "ip_version": 4, **attrs}})


def test_the_extensions_are_listed(api):
    aliases = {e["alias"] for e in ok(api.get("/v2.0/extensions"))["extensions"]}
    assert {"subnet_allocation", "subnetpool-prefix-ops", "default-subnetpools",
            "address-scope"} <= aliases


def test_a_pool_hands_out_subnets_that_never_overlap(api):
    a = project()
    p = pool(api, a, ["100.64.0.0/24", "100.64.1.0/24"], min_prefixlen=26, max_prefixlen=28)
    # Neutron's reading of the body: compacted prefixes, the version, the default length
    assert p["prefixes"] == ["100.64.0.0/23"] and p["ip_version"] == 4, p
    # the lengths as strings, as Neutron shows them
    assert p["default_prefixlen"] == "26" and p["default_quota"] is None, p
    assert p["shared"] is False and p["is_default"] is False and p["address_scope_id"] is None
    assert p["project_id"] == p["tenant_id"] == a["X-Project-Id"]
    net = network(api, a)
    got = [ok(subnet(api, a, net, subnetpool_id=p["id"], prefixlen=27), 201)["subnet"]
           for _ in range(3)]
    got.append(ok(subnet(api, a, net, subnetpool_id=p["id"]), 201)["subnet"])  # default /26
    cidrs = [ipaddress.ip_network(s["cidr"]) for s in got]
    assert [c.prefixlen for c in cidrs] == [27, 27, 27, 26], cidrs
    assert all(c.subnet_of(ipaddress.ip_network("100.64.0.0/23")) for c in cidrs)
    assert not any(x.overlaps(y) for i, x in enumerate(cidrs) for y in cidrs[i + 1:]), cidrs
    assert all(s["subnetpool_id"] == p["id"] for s in got)
    assert got[0]["gateway_ip"] == str(cidrs[0].network_address + 1), got[0]
    # a CIDR asked for: inside the pool and free, else Neutron's SubnetAllocationError (409:
    # Neutron answers 500, a server fault, for what the pool refuses)
    taken = got[0]["cidr"]
    refused(subnet(api, a, net, subnetpool_id=p["id"], cidr=taken), 409,
            "SubnetAllocationError")
    refused(subnet(api, a, network(api, a), subnetpool_id=p["id"], cidr=taken), 409,
            "SubnetAllocationError")
    refused(subnet(api, a, network(api, a), subnetpool_id=p["id"], cidr="198.51.100.0/27"),
            409, "SubnetAllocationError")
    # the bounds, and both a CIDR and a length
    assert "maximum allowed prefix is 28" in refused(
        subnet(api, a, net, subnetpool_id=p["id"], prefixlen=29), 400,
        "MaxPrefixSubnetAllocationError")
    refused(subnet(api, a, net, subnetpool_id=p["id"], prefixlen=25), 400,
            "MinPrefixSubnetAllocationError")
    refused(subnet(api, a, net, subnetpool_id=p["id"], prefixlen=27, cidr="100.64.1.0/27"),
            400, "BadRequest")
    refused(subnet(api, a, net), 400, "BadRequest")  # neither CIDR nor pool
    # the pool runs out: what is left of the /23 makes 22 /28s, every address used once
    made = 0
    while made < 30 and subnet(api, a, net, subnetpool_id=p["id"],
                               prefixlen=28).status_code == 201:
        made += 1
    assert made == 22, made
    assert "Insufficient prefix space" in refused(
        subnet(api, a, net, subnetpool_id=p["id"], prefixlen=28), 409,
        "SubnetAllocationError")
    cidrs = [ipaddress.ip_network(s["cidr"]) for s in ok(api.get(
        "/v2.0/subnets", headers=a, params={"network_id": net["id"]}))["subnets"]]
    assert sum(c.num_addresses for c in cidrs) == 512, cidrs
    assert not any(x.overlaps(y) for i, x in enumerate(cidrs) for y in cidrs[i + 1:]), cidrs
    # in use: not deleted; a prefix in use is not removed; the list shows it still
    refused(api.delete(f"{POOLS}/{p['id']}", headers=a), 400, "SubnetPoolDeleteError")
    refused(api.put(f"{POOLS}/{p['id']}/remove_prefixes", headers=a,
                    json={"prefixes": ["100.64.0.0/24"]}), 400, "IllegalSubnetPoolPrefixUpdate")
    assert ok(api.get(f"{POOLS}/{p['id']}", headers=a))["subnetpool"]["prefixes"] == \
        ["100.64.0.0/23"]
    # its subnets gone, the pool goes
    for s in ok(api.get("/v2.0/subnets", headers=a, params={"network_id": net["id"]}))[
            "subnets"]:
        ok(api.delete(f"/v2.0/subnets/{s['id']}", headers=a), 204)
    ok(api.delete(f"{POOLS}/{p['id']}", headers=a), 204)
    refused(api.get(f"{POOLS}/{p['id']}", headers=a), 404, "SubnetPoolNotFound")


def test_prefix_ops_updates_and_refusals(api):
    a = project()
    p = pool(api, a, ["198.51.100.0/26"], min_prefixlen=28)
    added = ok(api.put(f"{POOLS}/{p['id']}/add_prefixes", headers=a,
                       json={"prefixes": ["198.51.100.64/26", "203.0.113.0/24"]}))
    assert added == {"prefixes": ["198.51.100.0/25", "203.0.113.0/24"]}, added
    left = ok(api.put(f"{POOLS}/{p['id']}/remove_prefixes", headers=a,
                      json={"prefixes": ["198.51.100.0/25"]}))
    assert left == {"prefixes": ["203.0.113.0/24"]}, left
    # the new prefixes must hold the old; bounds in order; the version and sharing fixed
    refused(api.put(f"{POOLS}/{p['id']}", headers=a, json={"subnetpool": {
        "prefixes": ["203.0.113.0/25"]}}), 400, "IllegalSubnetPoolPrefixUpdate")
    refused(api.put(f"{POOLS}/{p['id']}", headers=a, json={"subnetpool": {
        "min_prefixlen": 30, "max_prefixlen": 29}}), 400, "IllegalSubnetPoolPrefixBounds")
    refused(api.put(f"{POOLS}/{p['id']}", headers=a, json={"subnetpool": {
        "shared": True}}), 400, "HTTPBadRequest")
    refused(api.put(f"{POOLS}/{p['id']}", headers=a, json={"subnetpool": {
        "is_default": True}}), 403, "PolicyNotAuthorized")
    done = ok(api.put(f"{POOLS}/{p['id']}", headers=a, json={"subnetpool": {
        "name": "pool-renamed", "default_quota": 64, "max_prefixlen": 29}}))["subnetpool"]
    assert (done["name"], done["default_quota"], done["max_prefixlen"]) == \
        ("pool-renamed", 64, 29) and done["revision_number"] > p["revision_number"], done
    # bodies Neutron refuses
    refused(api.post(POOLS, headers=a, json={"subnetpool": {
        "name": "x", "prefixes": []}}), 400, "EmptySubnetPoolPrefixList")
    refused(api.post(POOLS, headers=a, json={"subnetpool": {
        "name": "x", "prefixes": ["203.0.113.0/24", "2001:db8::/48"]}}), 400,
        "PrefixVersionMismatch")
    refused(api.post(POOLS, headers=a, json={"subnetpool": {
        "name": "x", "prefixes": ["203.0.113.0/24"], "min_prefixlen": 24,
        "default_prefixlen": 20}}), 400, "IllegalSubnetPoolPrefixBounds")
    for attr in ({"shared": True}, {"is_default": True}):
        refused(api.post(POOLS, headers=a, json={"subnetpool": {
            "name": "x", "prefixes": ["203.0.113.0/24"], **attr}}), 403, "PolicyNotAuthorized")
    # the quota: 64 /32s are four /28s of this project
    net = network(api, a)
    for _ in range(4):
        ok(subnet(api, a, net, subnetpool_id=p["id"], prefixlen=28), 201)
    refused(subnet(api, a, net, subnetpool_id=p["id"], prefixlen=29), 409,
            "SubnetPoolQuotaExceeded")


def test_another_projects_pool_is_invisible_and_unusable_unless_shared(api):
    a, b = project(), project()
    mine = pool(api, a, ["100.64.8.0/24"], min_prefixlen=26)
    shared = pool(api, {}, ["100.64.9.0/24"], min_prefixlen=26, shared=True)  # an admin's
    listed = {p["id"] for p in ok(api.get(POOLS, headers=b))["subnetpools"]}
    assert shared["id"] in listed and mine["id"] not in listed
    refused(api.get(f"{POOLS}/{mine['id']}", headers=b), 404, "SubnetPoolNotFound")
    refused(api.put(f"{POOLS}/{mine['id']}", headers=b,
                    json={"subnetpool": {"name": "mine-now"}}), 404, "SubnetPoolNotFound")
    refused(api.delete(f"{POOLS}/{mine['id']}", headers=b), 404, "SubnetPoolNotFound")
    refused(api.put(f"{POOLS}/{mine['id']}/add_prefixes", headers=b,
                    json={"prefixes": ["100.64.10.0/24"]}), 404, "SubnetPoolNotFound")
    net = network(api, b)
    refused(subnet(api, b, net, subnetpool_id=mine["id"]), 404, "SubnetPoolNotFound")
    assert ok(api.get(f"{POOLS}/{mine['id']}", headers=a))["subnetpool"]["name"] == mine["name"]
    # the shared pool: B takes a subnet from it, but may not change or delete it
    got = ok(subnet(api, b, net, subnetpool_id=shared["id"]), 201)["subnet"]
    assert ipaddress.ip_network(got["cidr"]).subnet_of(ipaddress.ip_network("100.64.9.0/24"))
    assert got["project_id"] == b["X-Project-Id"]
    refused(api.put(f"{POOLS}/{shared['id']}", headers=b,
                    json={"subnetpool": {"name": "b-now"}}), 403, "PolicyNotAuthorized")
    refused(api.delete(f"{POOLS}/{shared['id']}", headers=b), 403, "PolicyNotAuthorized")
    # a network's subnets of one family come from one pool
    refused(subnet(api, b, net, cidr="198.51.100.0/24"), 400, "NetworkSubnetPoolAffinityError")


def test_default_pool(api):
    a = project()
    net = network(api, a)
    v6 = "2001:db8:%x::/48" % (uuid.uuid4().int & 0xffff)
    default = pool(api, {}, [v6], shared=True, is_default=True)
    assert default["is_default"] and default["ip_version"] == 6
    refused(api.post(POOLS, json={"subnetpool": {
        "name": "x", "prefixes": ["2001:db8:ffff::/48"], "is_default": True}}), 400,
        "InvalidInput")
    got = ok(api.post("/v2.0/subnets", headers=a, json={"subnet": {
        "network_id": net["id"], "ip_version": 6, "use_default_subnetpool": True}}),
        201)["subnet"]
    assert got["subnetpool_id"] == default["id"] and got["cidr"].endswith("/64"), got
    refused(api.post("/v2.0/subnets", headers=a, json={"subnet": {
        "network_id": net["id"], "ip_version": 6, "use_default_subnetpool": True,
        "subnetpool_id": default["id"]}}), 400, "BadRequest")
    ok(api.delete(f"/v2.0/subnets/{got['id']}", headers=a), 204)
    ok(api.put(f"{POOLS}/{default['id']}", json={"subnetpool": {"is_default": False}}))


def test_address_scopes(api):
    a, b = project(), project()
    scope = ok(api.post(SCOPES, headers=a, json={"address_scope": {
        "name": "pool-scope", "ip_version": 4}}), 201)["address_scope"]
    assert scope == {"id": scope["id"], "name": "pool-scope", "ip_version": 4,
                     "shared": False, "project_id": a["X-Project-Id"],
                     "tenant_id": a["X-Project-Id"]}, scope
    refused(api.post(SCOPES, headers=a, json={"address_scope": {
        "name": "x", "ip_version": 4, "shared": True}}), 403, "PolicyNotAuthorized")
    refused(api.put(f"{SCOPES}/{scope['id']}", headers=a, json={"address_scope": {
        "shared": False}}), 403, "PolicyNotAuthorized")
    refused(api.get(f"{SCOPES}/{scope['id']}", headers=b), 404, "AddressScopeNotFound")
    assert scope["id"] not in {x["id"] for x in ok(api.get(SCOPES, headers=b))["address_scopes"]}
    # pools of one scope never overlap; the scope's family only; B cannot use A's scope
    p1 = pool(api, a, ["100.64.16.0/24"], min_prefixlen=26, address_scope_id=scope["id"])
    refused(api.post(POOLS, headers=a, json={"subnetpool": {
        "name": "x", "prefixes": ["100.64.16.128/25"], "address_scope_id": scope["id"]}}),
        409, "AddressScopePrefixConflict")
    refused(api.post(POOLS, headers=a, json={"subnetpool": {
        "name": "x", "prefixes": ["2001:db8:77::/48"], "address_scope_id": scope["id"]}}),
        400, "IllegalSubnetPoolIpVersionAssociationToAddressScope")
    refused(api.post(POOLS, headers=b, json={"subnetpool": {
        "name": "x", "prefixes": ["100.64.17.0/24"], "address_scope_id": scope["id"]}}),
        404, "AddressScopeNotFound")
    p2 = pool(api, a, ["100.64.17.0/24"], min_prefixlen=26)
    refused(api.put(f"{POOLS}/{p2['id']}", headers=a, json={"subnetpool": {
        "prefixes": ["100.64.17.0/24", "100.64.16.0/25"], "address_scope_id": scope["id"]}}),
        409, "AddressScopePrefixConflict")
    # a network shows the scope of its subnets' pool
    net = network(api, a)
    assert ok(api.get(f"/v2.0/networks/{net['id']}", headers=a))["network"][
        "ipv4_address_scope"] is None
    ok(subnet(api, a, net, subnetpool_id=p1["id"]), 201)
    shown = ok(api.get(f"/v2.0/networks/{net['id']}", headers=a))["network"]
    assert shown["ipv4_address_scope"] == scope["id"] and shown["ipv6_address_scope"] is None
    # in use by a pool: not deleted; shared by an admin: not unshared
    refused(api.delete(f"{SCOPES}/{scope['id']}", headers=a), 409, "AddressScopeInUse")
    ok(api.put(f"{SCOPES}/{scope['id']}", json={"address_scope": {"shared": True}}))
    assert ok(api.get(f"{SCOPES}/{scope['id']}", headers=b))["address_scope"]["shared"]
    refused(api.put(f"{SCOPES}/{scope['id']}", json={"address_scope": {"shared": False}}),
            400, "AddressScopeUpdateError")
    other = ok(api.post(SCOPES, headers=a, json={"address_scope": {
        "name": "pool-gone", "ip_version": 6}}), 201)["address_scope"]
    ok(api.delete(f"{SCOPES}/{other['id']}", headers=a), 204)
    refused(api.get(f"{SCOPES}/{other['id']}", headers=a), 404, "AddressScopeNotFound")


def test_pool_tags(api):
    a, b = project(), project()
    p = pool(api, a, ["100.64.30.0/24"], min_prefixlen=26, tags=["red", "blue"])
    assert sorted(p["tags"]) == ["blue", "red"], p
    ok(api.put(f"{POOLS}/{p['id']}/tags/green", headers=a), 201)
    assert sorted(ok(api.get(f"{POOLS}/{p['id']}/tags", headers=a))["tags"]) == \
        ["blue", "green", "red"]
    other = pool(api, a, ["100.64.31.0/24"], min_prefixlen=26)
    red = {x["id"] for x in ok(api.get(POOLS, headers=a, params={"tags": "red"}))[
        "subnetpools"]}
    assert p["id"] in red and other["id"] not in red
    notred = {x["id"] for x in ok(api.get(POOLS, headers=a, params={"not-tags-any": "red"}))[
        "subnetpools"]}
    assert other["id"] in notred and p["id"] not in notred
    refused(api.put(f"{POOLS}/{p['id']}/tags/b-was-here", headers=b), 403,
            "PolicyNotAuthorized")
    ok(api.delete(f"{POOLS}/{p['id']}", headers=a), 204)
    refused(api.get(f"{POOLS}/{p['id']}/tags"), 404, "TagResourceNotFound")  # an admin


def test_concurrent_allocations_never_overlap(api):
    """Seventeen requests at once from eight projects, each for a /28 of one shared /24
    pool: sixteen distinct /28s and one refusal (the pool's row is locked for each
    allocation; requests of different projects do not wait for each other otherwise)."""
    from concurrent.futures import ThreadPoolExecutor
    p = pool(api, {}, ["100.64.70.0/24"], min_prefixlen=28, shared=True)
    who = [project() for _ in range(8)]
    nets = [network(api, h) for h in who]

    def take(i: int):
        return subnet(api, who[i % 8], nets[i % 8], subnetpool_id=p["id"], prefixlen=28)
    with ThreadPoolExecutor(8) as ex:
        answers = list(ex.map(take, range(17)))
    made = [r.json()["subnet"] for r in answers if r.status_code == 201]
    assert len(made) == 16, [r.text for r in answers if r.status_code != 201]
    assert [r.json()["NeutronError"]["type"] for r in answers if r.status_code != 201] == \
        ["SubnetAllocationError"]
    cidrs = {ipaddress.ip_network(s["cidr"]) for s in made}
    assert len(cidrs) == 16 and sum(c.num_addresses for c in cidrs) == 256, cidrs


def test_rbac_shares_a_pool_and_a_scope_with_chosen_projects(api):
    """rbac-subnetpool, rbac-address-scope: an admin's pool shared with B only is seen and
    used by B, not by C; the entry is not removed while B has subnets from the pool; a scope
    shared with B takes B's pools; a pool is not shared where its scope is not."""
    rbac = "/v2.0/rbac-policies"
    b, c = project(), project()
    p = pool(api, {}, ["100.64.80.0/24"], min_prefixlen=28)
    refused(api.get(f"{POOLS}/{p['id']}", headers=b), 404, "SubnetPoolNotFound")

    def share(otype, oid, target, h=None):
        return api.post(rbac, headers=h or {}, json={"rbac_policy": {
            "object_type": otype, "object_id": oid, "action": "access_as_shared",
            "target_tenant": target}})
    entry = ok(share("subnetpool", p["id"], b["X-Project-Id"]), 201)["rbac_policy"]
    assert entry["object_type"] == "subnetpool" and entry["object_id"] == p["id"], entry
    assert ok(api.get(f"{POOLS}/{p['id']}", headers=b))["subnetpool"]["shared"] is True
    refused(api.get(f"{POOLS}/{p['id']}", headers=c), 404, "SubnetPoolNotFound")
    got = ok(subnet(api, b, network(api, b), subnetpool_id=p["id"]), 201)["subnet"]
    refused(subnet(api, c, network(api, c), subnetpool_id=p["id"]), 404, "SubnetPoolNotFound")
    refused(api.delete(f"{rbac}/{entry['id']}"), 409, "RbacPolicyInUse")
    refused(share("subnetpool", p["id"], c["X-Project-Id"], b), 400, "InvalidInput")  # not B's
    refused(share("subnetpool", p["id"], b["X-Project-Id"]), 409, "DuplicateRbacPolicy")
    refused(api.post(rbac, json={"rbac_policy": {
        "object_type": "subnetpool", "object_id": p["id"], "action": "access_as_external",
        "target_tenant": b["X-Project-Id"]}}), 400, "InvalidActionForType")
    ok(api.delete(f"/v2.0/subnets/{got['id']}", headers=b), 204)
    ok(api.delete(f"{rbac}/{entry['id']}"), 204)
    refused(api.get(f"{POOLS}/{p['id']}", headers=b), 404, "SubnetPoolNotFound")
    # a scope shared with B takes B's pool; a pool of a scope C has no access to is not
    # shared with C
    scope = ok(api.post(SCOPES, json={"address_scope": {"name": "pool-rbac",
                                                        "ip_version": 4}}), 201)["address_scope"]
    refused(api.post(POOLS, headers=b, json={"subnetpool": {
        "name": "x", "prefixes": ["100.64.81.0/24"], "address_scope_id": scope["id"]}}), 404,
        "AddressScopeNotFound")
    ok(share("address_scope", scope["id"], b["X-Project-Id"]), 201)
    bp = pool(api, b, ["100.64.81.0/24"], min_prefixlen=28, address_scope_id=scope["id"])
    refused(share("subnetpool", bp["id"], c["X-Project-Id"], b), 400, "InvalidInput")
    ok(api.delete(f"{POOLS}/{bp['id']}", headers=b), 204)
    ok(api.delete(f"{SCOPES}/{scope['id']}"), 204)
    ok(api.delete(f"{POOLS}/{p['id']}"), 204)
