"""Quotas (issue 21, part 4) through the real server on SQLite and PostgreSQL: Neutron's
defaults and routes, OverQuota (409) per resource with nothing created, admins' limits per
project, the refusals of bad limits, ``[quotas]`` in the configuration file, and the race:
32 clients for the last units of a quota never get one more."""
from __future__ import annotations

import subprocess
import sys
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from floatip.server import free_port
from cloud import served_server

NEUTRON_DEFAULTS = {"network": 100, "subnet": 100, "port": 500, "router": 10,
                    "floatingip": 50, "security_group": 10, "security_group_rule": 100,
                    "rbac_policy": 10, "router_route": 30}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory):
    yield from served_server(request, tmp_path_factory, "fq-api")


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def project() -> str:
    return f"fq-{uuid.uuid4().hex[:10]}"


def ok(r: httpx.Response, code: int = 200) -> dict:
    assert r.status_code == code, f"{r.request.method} {r.request.url}: {r.text}"
    return r.json() if r.content else {}


def refused(r: httpx.Response, code: int, type_: str) -> str:
    assert r.status_code == code, r.text
    body = r.json()["NeutronError"]
    assert body["type"] == type_ and set(body) == {"type", "message", "detail"}, body
    return body["message"]


def as_(pid: str) -> dict:
    return {"X-Project-Id": pid}


def set_quota(api: httpx.Client, pid: str, **limits) -> dict:
    return ok(api.put(f"/v2.0/quotas/{pid}", json={"quota": limits}))["quota"]


def test_extensions_are_listed(api):
    aliases = {e["alias"] for e in ok(api.get("/v2.0/extensions"))["extensions"]}
    assert {"quotas", "quota_details"} <= aliases
    assert ok(api.get("/v2.0/extensions/quota_details"))["extension"]["name"] == \
        "Quota details management support"


def test_defaults_overrides_listing_and_reset(api):
    pid, other = project(), project()
    assert ok(api.get(f"/v2.0/quotas/{pid}"))["quota"] == NEUTRON_DEFAULTS
    assert ok(api.get(f"/v2.0/quotas/{pid}/default"))["quota"] == NEUTRON_DEFAULTS
    assert set_quota(api, pid, network=7, port="12") == {**NEUTRON_DEFAULTS, "network": 7,
                                                         "port": 12}
    set_quota(api, other, router=-1)
    assert ok(api.get(f"/v2.0/quotas/{pid}"))["quota"]["network"] == 7
    assert ok(api.get(f"/v2.0/quotas/{pid}/default"))["quota"] == NEUTRON_DEFAULTS
    listed = {q["project_id"]: q for q in ok(api.get("/v2.0/quotas"))["quotas"]}
    assert listed[pid] == {**NEUTRON_DEFAULTS, "network": 7, "port": 12, "project_id": pid,
                           "tenant_id": pid}
    assert listed[other]["router"] == -1
    assert ok(api.delete(f"/v2.0/quotas/{pid}"), 204) == {}
    assert ok(api.get(f"/v2.0/quotas/{pid}"))["quota"] == NEUTRON_DEFAULTS
    assert pid not in {q["project_id"] for q in ok(api.get("/v2.0/quotas"))["quotas"]}
    assert refused(api.delete(f"/v2.0/quotas/{pid}"), 404, "TenantQuotaNotFound") == \
        f"Quota for project {pid} could not be found."
    ok(api.delete(f"/v2.0/quotas/{other}"), 204)


def test_own_project_and_post(api):
    pid = project()
    assert ok(api.get("/v2.0/quotas/project", headers=as_(pid))) == {
        "project": {"project_id": pid}}
    assert ok(api.get("/v2.0/quotas/tenant", headers=as_(pid))) == {
        "tenant": {"tenant_id": pid}}
    refused(api.get("/v2.0/quotas/project"), 400, "QuotaMissingTenant")
    refused(api.post("/v2.0/quotas", json={"quota": {"network": 1}}), 501,
            "HTTPNotImplemented")


def test_bad_limits_are_refused_and_change_nothing(api):
    pid = project()
    set_quota(api, pid, network=5)
    cases = [({"quota": {"network": "many"}}, "InvalidInput",
              "Invalid input for operation: 'many' is not an integer."),
             ({"quota": {"network": -2}}, "HTTPBadRequest",
              "Invalid input for network. Reason: '-2' is too small - must be at least '-1'."),
             ({"quota": {"network": 2**31}}, "HTTPBadRequest",
              f"Invalid input for network. Reason: '{2**31}' is too large - must be no "
              f"larger than '2147483647'."),
             ({"quota": {"networks": 3}}, "HTTPBadRequest", "Unrecognized attribute(s) "
                                                           "'networks'"),
             ({"quota": [1]}, "HTTPBadRequest", "Object 'quota' contains invalid data"),
             ({"network": 3}, "HTTPBadRequest", "Unable to find 'quota' in request body"),
             ({"quota": {"network": 3, "router": None}}, "InvalidInput",
              "Invalid input for operation: 'None' is not an integer.")]
    for body, typ, message in cases:
        assert refused(api.put(f"/v2.0/quotas/{pid}", json=body), 400, typ) == message, body
    assert ok(api.get(f"/v2.0/quotas/{pid}"))["quota"] == {**NEUTRON_DEFAULTS, "network": 5}


def test_a_limit_below_usage_needs_force(api):
    pid = project()
    for _ in range(2):
        ok(api.post("/v2.0/networks", json={"network": {}}, headers=as_(pid)), 201)
    assert refused(api.put(f"/v2.0/quotas/{pid}", json={"quota": {"network": 1}}), 400,
                   "HTTPBadRequest") == ("Quota limit 1 for network must be greater than or "
                                         "equal to already used 2")
    assert ok(api.get(f"/v2.0/quotas/{pid}"))["quota"]["network"] == 100
    assert set_quota(api, pid, network=1, force=True)["network"] == 1
    refused(api.post("/v2.0/networks", json={"network": {}}, headers=as_(pid)), 409,
            "OverQuota")


def _count(api: httpx.Client, coll: str, pid: str) -> int:
    return len(ok(api.get(f"/v2.0/{coll}", params={"project_id": pid}))[
        coll.replace("-", "_")])


def test_every_resource_stops_at_its_limit(api):
    """Each kind up to its limit, then OverQuota with Neutron's body and nothing made; the
    limits of one project do not touch another's."""
    pid, free = project(), project()
    ext = ok(api.post("/v2.0/networks", json={"network": {
        "name": "fq-ext", "router:external": True}}), 201)["network"]
    ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": ext["id"], "cidr": "198.51.100.0/24", "ip_version": 4}}), 201)
    # the default group and its 4 rules come with the first group: 2 groups, 4+2 rules
    set_quota(api, pid, network=1, subnet=1, port=2, router=1, floatingip=1,
              security_group=2, security_group_rule=7)
    h = as_(pid)
    net = ok(api.post("/v2.0/networks", json={"network": {}}, headers=h), 201)["network"]
    ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "100.64.9.0/24", "ip_version": 4,
        "enable_dhcp": False}}, headers=h), 201)  # a DHCP port would count (as Neutron's)
    for _ in range(2):
        port = ok(api.post("/v2.0/ports", json={"port": {"network_id": net["id"]}},
                           headers=h), 201)["port"]
    ok(api.post("/v2.0/routers", json={"router": {}}, headers=h), 201)
    ok(api.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext["id"]}}, headers=h), 201)
    sg = ok(api.post("/v2.0/security-groups", json={"security_group": {"name": "g"}},
                     headers=h), 201)["security_group"]
    ok(api.post("/v2.0/security-group-rules", json={"security_group_rule": {
        "security_group_id": sg["id"], "direction": "ingress", "protocol": "tcp",
        "port_range_min": 22, "port_range_max": 22}}, headers=h), 201)
    details = ok(api.get(f"/v2.0/quotas/{pid}/details"))["quota"]
    assert {k: v["used"] for k, v in details.items()} == {
        "network": 1, "subnet": 1, "port": 2, "router": 1, "floatingip": 1,
        "security_group": 2, "security_group_rule": 7, "rbac_policy": 0, "router_route": 0}
    assert all(v["reserved"] == 0 and v["limit"] == v["used"] for k, v in details.items()
               if k not in ("router_route", "rbac_policy"))

    attempts = {
        "network": ("networks", {"network": {}}),
        "subnet": ("subnets", {"subnet": {"network_id": net["id"], "cidr": "100.64.10.0/24",
                                          "ip_version": 4}}),
        "port": ("ports", {"port": {"network_id": net["id"]}}),
        "router": ("routers", {"router": {}}),
        "floatingip": ("floatingips", {"floatingip": {"floating_network_id": ext["id"]}}),
        "security_group": ("security-groups", {"security_group": {"name": "g2"}}),
        "security_group_rule": ("security-group-rules", {"security_group_rule": {
            "security_group_id": sg["id"], "direction": "ingress", "protocol": "udp"}}),
    }
    for kind, (coll, body) in attempts.items():
        before = _count(api, coll, pid)
        assert refused(api.post(f"/v2.0/{coll}", json=body, headers=h), 409, "OverQuota") \
            == f"Quota exceeded for resources: ['{kind}'].", kind
        assert _count(api, coll, pid) == before, kind
    # another project is not limited by these
    ok(api.post("/v2.0/networks", json={"network": {}}, headers=as_(free)), 201)
    # a bulk create that would pass the limit makes none of its items
    set_quota(api, pid, network=3)
    refused(api.post("/v2.0/networks", json={"networks": [{}, {}, {}]}, headers=h), 409,
            "OverQuota")
    assert _count(api, "networks", pid) == 1
    ok(api.post("/v2.0/networks", json={"networks": [{}, {}]}, headers=h), 201)
    # unlimited
    set_quota(api, pid, network=-1)
    ok(api.post("/v2.0/networks", json={"network": {}}, headers=h), 201)
    del port


def test_routes_of_a_router_stop_at_router_route(api):
    """extraroute's quota: the routes one request sets on a router, at most router_route
    (Neutron 29's limit_check); more is OverQuota and the routes stay as they were."""
    pid = project()
    h = as_(pid)
    set_quota(api, pid, router_route=2)
    net = ok(api.post("/v2.0/networks", json={"network": {}}, headers=h), 201)["network"]
    sub = ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "100.64.21.0/24", "ip_version": 4,
        "enable_dhcp": False}}, headers=h), 201)["subnet"]
    r = ok(api.post("/v2.0/routers", json={"router": {}}, headers=h), 201)["router"]
    ok(api.put(f"/v2.0/routers/{r['id']}/add_router_interface",
               json={"subnet_id": sub["id"]}, headers=h))
    routes = [{"destination": f"192.0.2.{16 * i}/28", "nexthop": "100.64.21.5"}
              for i in range(3)]
    ok(api.put(f"/v2.0/routers/{r['id']}", json={"router": {"routes": routes[:2]}},
               headers=h))
    assert refused(api.put(f"/v2.0/routers/{r['id']}", json={"router": {"routes": routes}},
                           headers=h), 409, "OverQuota") == \
        "Quota exceeded for resources: ['router_route']."
    shown = ok(api.get(f"/v2.0/routers/{r['id']}"))["router"]["routes"]
    assert sorted(x["destination"] for x in shown) == ["192.0.2.0/28", "192.0.2.16/28"]
    set_quota(api, pid, router_route=-1)
    ok(api.put(f"/v2.0/routers/{r['id']}", json={"router": {"routes": routes}}, headers=h))


def test_32_clients_racing_for_the_last_units_never_get_one_more(server, api):
    """Limit 10 with 7 made: 32 clients at once (a barrier) create networks; exactly 3
    get 201, the others OverQuota, and the project has 10. A second round of 32 gets none.
    Meanwhile clients of another project race for its own last units the same way."""
    pid, other = project(), project()
    set_quota(api, pid, network=10)
    set_quota(api, other, network=4)
    for _ in range(7):
        ok(api.post("/v2.0/networks", json={"network": {}}, headers=as_(pid)), 201)
    clients = [httpx.Client(base_url=server.url, timeout=120) for _ in range(40)]
    try:
        for round_, expect in ((1, 3), (2, 0)):
            start = threading.Barrier(40)

            def create(i: int) -> int:
                who = pid if i < 32 else other
                start.wait(timeout=60)
                return clients[i].post("/v2.0/networks", json={"network": {
                    "name": f"race{round_}-{i}"}}, headers=as_(who)).status_code

            with ThreadPoolExecutor(40) as pool:
                codes = list(pool.map(create, range(40)))
            assert sorted(codes[:32]) == [201] * expect + [409] * (32 - expect), codes
            assert codes[32:].count(201) == (4 if round_ == 1 else 0), codes
            assert _count(api, "networks", pid) == 10
            assert _count(api, "networks", other) == 4
    finally:
        for c in clients:
            c.close()
    used = ok(api.get(f"/v2.0/quotas/{pid}/details"))["quota"]["network"]
    assert used == {"limit": 10, "used": 10, "reserved": 0}


def test_the_quota_lock_is_per_project_and_resource(server, api):
    """PostgreSQL: while a transaction holds project A's network quota lock, A's create
    waits, and project B's create, and A's router create, go through."""
    if server.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serializes every writer: there is no per-project lock to show")
    from floatip import store as S
    a, b = project(), project()
    held, release = threading.Event(), threading.Event()

    def hold():
        with server.db.tx(notify=False) as s:
            S.lock_quota(s, a, "network")
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30)
        with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=server.url,
                                                         timeout=60) as c2:
            waiting = pool.submit(c2.post, "/v2.0/networks", json={"network": {}},
                                  headers=as_(a))
            ok(api.post("/v2.0/networks", json={"network": {}}, headers=as_(b)), 201)
            ok(api.post("/v2.0/routers", json={"router": {}}, headers=as_(a)), 201)
            assert not waiting.done()
            release.set()
            assert waiting.result(timeout=60).status_code == 201
    finally:
        release.set()
        holder.join(30)


def test_quotas_section_of_the_config_file(tmp_path):
    """``floatip serve --config``: ``[quotas] quota_network = 2`` is the default limit
    (the others Neutron's); a bad value stops the server with the reason."""
    port = free_port()
    conf = tmp_path / "floatip.conf"
    conf.write_text(f"[DEFAULT]\nbind_port = {port}\nagent = false\n"
                    f"[database]\nconnection = sqlite:///{tmp_path}/floatip.db\n"
                    f"[quotas]\nquota_network = 2\nquota_router = -1\n")
    exe = os.path.join(os.path.dirname(sys.executable), "floatip")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([exe, "serve", "--config", str(conf)], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"{url}/v2.0/quotas/p1", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert ok(r)["quota"] == {**NEUTRON_DEFAULTS, "network": 2, "router": -1}
        for code in (201, 201, 409):
            assert httpx.post(f"{url}/v2.0/networks", json={"network": {}},
                              headers=as_("p1"), timeout=30).status_code == code
    finally:
        proc.terminate()
        proc.wait(30)
    conf.write_text(conf.read_text().replace("quota_router = -1", "quota_routers = 3"))
    r = subprocess.run([exe, "serve", "--config", str(conf)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "quota_routers" in r.stderr + r.stdout


def test_security_group_quota_counts_before_the_default_group(api):
    """As Neutron: the project's groups are counted before its first create makes the default
    group, so a limit of 1 lets one group in (then default + 1 = 2 refuse the next); the
    default group's four rules and the new group's two egress rules must fit
    security_group_rule (0: refused, nothing made)."""
    pid = project()
    set_quota(api, pid, security_group=1)
    h = as_(pid)
    ok(api.post("/v2.0/security-groups", json={"security_group": {"name": "g1"}},
                headers=h), 201)
    assert _count(api, "security-groups", pid) == 2  # g1 and the default group
    refused(api.post("/v2.0/security-groups", json={"security_group": {"name": "g2"}},
                     headers=h), 409, "OverQuota")
    tight = project()
    set_quota(api, tight, security_group_rule=5)  # the default's 4, not g's 2 more
    assert refused(api.post("/v2.0/security-groups", json={"security_group": {"name": "g"}},
                            headers=as_(tight)), 409, "OverQuota") == \
        "Quota exceeded for resources: ['security_group_rule']."
    assert _count(api, "security-groups", tight) == 0


def test_rbac_policies_stop_at_their_quota(api):
    """rbac_policy (Neutron's default 10) counts the entries a project owns."""
    pid = project()
    set_quota(api, pid, rbac_policy=2)
    h = as_(pid)
    net = ok(api.post("/v2.0/networks", json={"network": {}}, headers=h), 201)["network"]

    def share(target: str):
        return api.post("/v2.0/rbac-policies", json={"rbac_policy": {
            "object_type": "network", "object_id": net["id"], "action": "access_as_shared",
            "target_tenant": target}}, headers=h)
    ok(share(uuid.uuid4().hex), 201)
    ok(share(uuid.uuid4().hex), 201)
    assert refused(share(uuid.uuid4().hex), 409, "OverQuota") == \
        "Quota exceeded for resources: ['rbac_policy']."
    details = ok(api.get(f"/v2.0/quotas/{pid}/details"))["quota"]
    assert details["rbac_policy"] == {"limit": 2, "used": 2, "reserved": 0}
