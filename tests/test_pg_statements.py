"""Statements per request of issue 27's churn cycle (port create, floating IP create on it,
floating IP delete, port delete), counted at the driver on both databases: each statement
is a round trip and a share of the server's GIL, so a change that adds one shows here.
The real server (uvicorn, agent off) and a real PostgreSQL (conftest's ``pg_url``)."""
from __future__ import annotations

import threading

import httpx
import pytest
from sqlalchemy import event

from floatip.server import Server, free_port
from pgserver import fresh_database

# PostgreSQL / SQLite (SQLite adds its BEGIN and its generation counter)
LIMITS = {"postgresql": {"port create": 7, "fip create": 9, "fip delete": 4, "port delete": 5},
          "sqlite": {"port create": 10, "fip create": 12, "fip delete": 7, "port delete": 7}}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request, tmp_path_factory):
    def serve(url):
        srv = Server(url, f"127.0.0.1:{free_port()}", agent=False).start()
        log: list[str] = []
        lock = threading.Lock()

        @event.listens_for(srv.db.engine, "before_cursor_execute")
        def _count(_conn, _cur, statement, *_):
            with lock:
                log.append(statement)
        return srv, log

    if request.param == "sqlite":
        srv, log = serve(f"sqlite:///{tmp_path_factory.mktemp('stmts')}/floatip.db")
        yield request.param, srv, log
        srv.close()
        return
    with fresh_database(request.getfixturevalue("pg_url")) as url:
        srv, log = serve(url)
        yield request.param, srv, log
        srv.close()


def ok(r: httpx.Response, code: int) -> dict:
    assert r.status_code == code, r.text
    return r.json() if r.content else {}


def _topology(c: httpx.Client) -> tuple[dict, dict, dict]:
    """The module's external network, tenant network and router between them: made by the
    first test that asks on this server (tests of one module may run on different workers,
    each with its own server)."""
    routers = ok(c.get("/v2.0/routers", params={"name": "st-r"}), 200)["routers"]
    if routers:
        nets = {n["name"]: n for n in ok(c.get("/v2.0/networks"), 200)["networks"]}
        return nets["st-ext"], nets["st-net"], routers[0]
    ext = ok(c.post("/v2.0/networks", json={"network": {
        "name": "st-ext", "router:external": True}}), 201)["network"]
    ok(c.post("/v2.0/subnets", json={"subnet": {"network_id": ext["id"], "ip_version": 4,
                                                "cidr": "100.64.0.0/24",
                                                "enable_dhcp": False}}), 201)
    net = ok(c.post("/v2.0/networks", json={"network": {"name": "st-net"}}), 201)["network"]
    sub = ok(c.post("/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "10.9.0.0/24", "ip_version": 4}}), 201)["subnet"]
    r = ok(c.post("/v2.0/routers", json={"router": {"name": "st-r", "external_gateway_info": {
        "network_id": ext["id"]}}}), 201)["router"]
    ok(c.put(f"/v2.0/routers/{r['id']}/add_router_interface",
             json={"subnet_id": sub["id"]}), 200)
    return ext, net, r


def test_churn_cycle_statements(served):
    dialect, srv, log = served
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        ext, net, r = _topology(c)
        for _ in range(2):  # the second cycle counts: the first one warms the caches
            counts = {}
            log.clear()
            port = ok(c.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}),
                      201)["port"]
            counts["port create"] = len(log)
            log.clear()
            fip = ok(c.post("/v2.0/floatingips", json={"floatingip": {
                "floating_network_id": ext["id"], "port_id": port["id"]}}), 201)["floatingip"]
            counts["fip create"] = len(log)
            assert fip["router_id"] == r["id"]
            assert fip["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
            log.clear()
            ok(c.delete(f"/v2.0/floatingips/{fip['id']}"), 204)
            counts["fip delete"] = len(log)
            log.clear()
            ok(c.delete(f"/v2.0/ports/{port['id']}"), 204)
            counts["port delete"] = len(log)
        assert all(counts[k] <= v for k, v in LIMITS[dialect].items()), counts
        ok(c.get(f"/v2.0/ports/{port['id']}"), 404)
        ok(c.get(f"/v2.0/floatingips/{fip['id']}"), 404)


def test_port_delete_lets_its_floating_ip_go(served):
    """The port delete's one look at what names the port: its floating IP is disassociated
    (DOWN, no router), the floating IP's own port refuses a delete."""
    _, srv, _ = served
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        ext, net, _ = _topology(c)
        port = ok(c.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}), 201)["port"]
        fip = ok(c.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": ext["id"], "port_id": port["id"]}}), 201)["floatingip"]
        backing = [p for p in ok(c.get("/v2.0/ports", params={"device_id": fip["id"]}),
                                 200)["ports"]]
        assert len(backing) == 1
        r = c.delete(f"/v2.0/ports/{backing[0]['id']}")
        assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "L3PortInUse"
        assert f"backs floating IP {fip['id']}" in r.json()["NeutronError"]["message"]
        ok(c.delete(f"/v2.0/ports/{port['id']}"), 204)
        got = ok(c.get(f"/v2.0/floatingips/{fip['id']}"), 200)["floatingip"]
        assert (got["port_id"], got["fixed_ip_address"], got["router_id"], got["status"]) == \
            (None, None, None, "DOWN")
        assert got["revision_number"] == fip["revision_number"] + 1
        ok(c.delete(f"/v2.0/floatingips/{fip['id']}"), 204)
        ok(c.get(f"/v2.0/ports/{backing[0]['id']}"), 404)


def test_allocation_skips_taken_and_busy_addresses(served, pg_url):
    """The allocation's one statement (PostgreSQL) gives the first address no row holds and
    no other transaction is taking; with every free one being taken elsewhere, the pool is
    exhausted for this request (as the one-at-a-time path answers), then free again."""
    dialect, srv, _ = served
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        net = ok(c.post("/v2.0/networks", json={"network": {"name": "st-small"}}), 201)["network"]
        sub = ok(c.post("/v2.0/subnets", json={"subnet": {
            "network_id": net["id"], "cidr": "10.8.0.0/29", "ip_version": 4,
            "enable_dhcp": False}}), 201)["subnet"]

        def new_port():
            return c.post("/v2.0/ports", json={"port": {"network_id": net["id"]}})

        got = [ok(new_port(), 201)["port"]["fixed_ips"][0]["ip_address"] for _ in range(2)]
        pool = [f"10.8.0.{i}" for i in range(2, 7)]  # .1 is the gateway
        assert len(set(got)) == 2 and set(got) <= set(pool)
        if dialect != "postgresql":
            return
        import psycopg2
        free = [ip for ip in pool if ip not in got]
        other = psycopg2.connect(srv.db.engine.url.render_as_string(hide_password=False)
                                 .replace("postgresql+psycopg2://", "postgresql://"))
        try:
            cur = other.cursor()  # a transaction taking all free addresses but the last
            for ip in free[:-1]:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))",
                            (sub["id"], ip))
            assert ok(new_port(), 201)["port"]["fixed_ips"][0]["ip_address"] == free[-1]
            r = new_port()  # the free ones are all being taken
            assert r.status_code == 409, r.text
            assert r.json()["NeutronError"]["type"] == "IpAddressGenerationFailure"
            other.rollback()
            last = {ok(new_port(), 201)["port"]["fixed_ips"][0]["ip_address"] for _ in free[:-1]}
            assert last == set(free[:-1])
            assert new_port().status_code == 409
        finally:
            other.close()
