"""The event history without root: status reports make events with their reasons and
causes, repairs too; ``GET /floatip/v1/events`` shows a project its own objects' events
only (admins all); the history is bounded."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import httpx
import pytest

from cloud import served
from floatip.store import events as E
from floatip.store.database import Database
from floatip.store.tables import Event


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("fa-ev")) as srv:
        yield srv


def as_project(project: str, roles: str = "member,reader") -> dict:
    return {"X-Project-Id": project, "X-Roles": roles}


def events(c: httpx.Client, headers: dict | None = None, **params) -> list[dict]:
    r = c.get("/floatip/v1/events", params=params, headers=headers or {})
    assert r.status_code == 200, r.text
    return r.json()["events"]


def test_status_changes_and_repairs_are_recorded_with_reasons(server):
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    with httpx.Client(base_url=server.url, timeout=30) as c:
        rid = c.post("/v2.0/routers", json={"router": {"name": "fa-ev"}},
                     headers=as_project(a)).json()["router"]["id"]
        other = c.post("/v2.0/routers", json={"router": {"name": "fa-ev-b"}},
                       headers=as_project(b)).json()["router"]["id"]
        assert events(c, object=rid) == []
        why = "No bridge mapped for physical network fa-nomap"
        c.post("/floatip/v1/status", json={"routers": {rid: {"status": "ERROR", "reason": why},
                                                      other: "ERROR"}}).raise_for_status()
        # the same report again changes nothing: no second event
        c.post("/floatip/v1/status", json={"routers": {rid: {"status": "ERROR", "reason": why}}})
        got = events(c, object=rid)
        assert len(got) == 1
        e = got[0]
        assert (e["kind"], e["resource"], e["old_status"], e["status"], e["reason"]) == \
            ("status", "router", "ACTIVE", "ERROR", why)
        assert e["cause"].startswith("the agent's pass after router revision") and e["at"]
        assert e["project_id"] == a
        c.post("/floatip/v1/status", json={"routers": {rid: {
            "status": "ERROR", "reason": why, "repaired": "add_address qg-x: missing"}}})
        top = events(c, object=rid)[0]
        assert top["kind"] == "repair" and top["reason"] == "add_address qg-x: missing"
        assert "full pass found the host different" in top["cause"]
        # a project sees its own objects' events only; admins see all
        assert {x["resource_id"] for x in events(c, as_project(a))} == {rid}
        assert events(c, as_project(b), object=rid) == []
        assert {x["resource_id"] for x in events(c, as_project(b))} == {other}
        assert {rid, other} <= {x["resource_id"] for x in events(c)}
        # the command line shows the same, newest first
        cli = [sys.executable, "-m", "floatip.cli", "events", rid, "--url", server.url]
        doc = json.loads(subprocess.run(cli + ["--json"], capture_output=True, text=True,
                                        timeout=60).stdout)
        assert [e["kind"] for e in doc] == ["repair", "status"]
        text = subprocess.run(cli, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "COLUMNS": "300"}).stdout
        assert "ACTIVE -> ERROR" in text and "repaired" in text
        # bad input: Neutron's error body
        r = c.get("/floatip/v1/events", params={"limit": 0})
        assert r.status_code == 400 and "NeutronError" in r.json()


def test_history_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(E, "KEEP", 50)
    db = Database(f"sqlite:///{tmp_path}/ev.db")
    try:
        for i in range(4):
            with db.tx() as s:
                E.record(s, [{"resource": "router", "resource_id": f"r{i}-{j}",
                              "project_id": "", "kind": "status", "status": "ACTIVE"}
                             for j in range(30)])
        with db.read() as s:
            kept = s.query(Event).count()
            newest = E.listing(s, limit=1)[0]
        assert kept <= 50 + 100 and newest["resource_id"] == "r3-29"
        assert 50 <= kept
    finally:
        db.close()


def test_an_association_change_through_the_api_is_recorded(server):
    """The API sets a moved floating IP DOWN until the agent programmed it: that is a status
    change too, with the association change that caused it."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        ext = c.post("/v2.0/networks", json={"network": {
            "name": "fa-ev-ext", "router:external": True}}).json()["network"]
        c.post("/v2.0/subnets", json={"subnet": {
            "network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4}})
        fip = c.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": ext["id"]}}).json()["floatingip"]
        c.post("/floatip/v1/status", json={"floatingips": {fip["id"]: "ACTIVE"}})
        net = c.post("/v2.0/networks", json={"network": {"name": "fa-ev-n"}}).json()["network"]
        sub = c.post("/v2.0/subnets", json={"subnet": {
            "network_id": net["id"], "cidr": "198.51.100.0/24",
            "ip_version": 4}}).json()["subnet"]
        router = c.post("/v2.0/routers", json={"router": {
            "external_gateway_info": {"network_id": ext["id"]}}}).json()["router"]
        c.put(f"/v2.0/routers/{router['id']}/add_router_interface",
              json={"subnet_id": sub["id"]}).raise_for_status()
        port = c.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}).json()["port"]
        r = c.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": port["id"]}})
        assert r.status_code == 200, r.text
        got = events(c, object=fip["id"])
        assert (got[0]["old_status"], got[0]["status"]) == ("ACTIVE", "DOWN")
        assert got[0]["cause"].startswith("the API: port None (None) -> " + port["id"])
        assert (got[1]["old_status"], got[1]["status"]) == ("DOWN", "ACTIVE")
