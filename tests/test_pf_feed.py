"""Port forwardings in the change feed as objects of their own, on SQLite and PostgreSQL: a
forwarding added to, changed on or removed from a floating IP with many reaches an agent as
that one forwarding (not as its floating IP with all of them), a remote agent applies it to
its copy of the desired state, and that copy is what a full read gives."""
from __future__ import annotations

import uuid

import httpx
import pytest

from floatip import store as S
from floatip.agent.desired import Desired
from floatip.backends.remote import RemoteSource
from floatip.service import agent_view

from cloud import ok
from cloud import served_server

N = 40  # forwardings already on the floating IP


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory):
    yield from served_server(request, tmp_path_factory, "pfe-feed")


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def post(api, path: str, kind: str, body: dict) -> dict:
    return ok(api.post(path, json={kind: body}), 201)[kind]


@pytest.fixture
def world(api) -> dict:
    """A router between an external network and a tenant one, a VM port, and a floating
    IP with ``N`` forwardings to it."""
    tag = uuid.uuid4().hex[:6]
    ext = post(api, "/v2.0/networks", "network", {"name": f"pfe-ext-{tag}",
                                                  "router:external": True})
    post(api, "/v2.0/subnets", "subnet", {"network_id": ext["id"], "cidr": "203.0.113.0/24",
                                          "ip_version": 4})
    net = post(api, "/v2.0/networks", "network", {"name": f"pfe-{tag}"})
    sub = post(api, "/v2.0/subnets", "subnet", {"network_id": net["id"],
                                                "cidr": "198.51.100.0/24", "ip_version": 4})
    r = post(api, "/v2.0/routers", "router", {"name": f"pfe-{tag}",
                                              "external_gateway_info": {"network_id": ext["id"]}})
    ok(api.put(f"/v2.0/routers/{r['id']}/add_router_interface", json={"subnet_id": sub["id"]}))
    vm = post(api, "/v2.0/ports", "port", {"network_id": net["id"]})
    fip = post(api, "/v2.0/floatingips", "floatingip", {"floating_network_id": ext["id"]})
    path = f"/v2.0/floatingips/{fip['id']}/port_forwardings"
    pfs = [post(api, path, "port_forwarding", {
        "protocol": "tcp", "internal_port_id": vm["id"], "internal_port": 8000 + i,
        "external_port": 3000 + i}) for i in range(N)]
    return {"vm": vm, "fip": fip, "path": path, "pfs": pfs}


def generation(server) -> int:
    with server.db.read() as s:
        return S.feed_position(s)


def full_state(server):
    with server.db.read() as s:
        return agent_view.desired_state(s)


def test_a_forwarding_change_is_that_forwarding_alone_in_the_feed(server, api, world):
    fid = world["fip"]["id"]
    g = generation(server)
    new = post(api, world["path"], "port_forwarding", {
        "protocol": "tcp", "internal_port_id": world["vm"]["id"], "internal_port": 9000,
        "external_port": 4000})
    with server.db.read() as s:
        rows = {(r.resource, r.resource_id) for r in s.execute(S.select_changes(g)).all()}
        d = agent_view.agent_delta(s, g)
    assert rows == {("port_forwarding", new["id"])}, rows
    # the delta carries that forwarding, not its floating IP with the other N
    assert not d["upserts"]["floatingips"] and not d["deletes"]["floatingips"]
    assert list(d["upserts"]["port_forwardings"]) == [new["id"]]
    pf = d["upserts"]["port_forwardings"][new["id"]]
    assert (pf.floatingip_id, pf.external_port_start, pf.internal_port_start) == \
        (fid, 4000, 9000)
    g = d["generation"]
    assert api.delete(f"{world['path']}/{new['id']}").status_code == 204
    with server.db.read() as s:
        d = agent_view.agent_delta(s, g)
    assert d["deletes"]["port_forwardings"] == [new["id"]]
    assert not d["upserts"]["floatingips"] and not d["upserts"]["port_forwardings"]


def test_a_remote_agent_applies_forwarding_deltas_as_a_full_read_has_them(server, api, world):
    fid, path = world["fip"]["id"], world["path"]
    src = RemoteSource(server.url, host=f"pfe-{uuid.uuid4().hex[:6]}")
    d = Desired()
    d.load(src.snapshot())
    assert len(d.state.floatingips[fid].port_forwardings) == N

    def follow() -> dict:
        delta = src.delta(d.generation)
        assert not delta.get("full")
        changed = d.apply(delta)
        assert d.state.floatingips[fid] == full_state(server).floatingips[fid]
        return changed
    new = post(api, path, "port_forwarding", {
        "protocol": "udp", "internal_port_id": world["vm"]["id"], "internal_port": 53,
        "external_port": 5353})
    changed = follow()
    assert d.forwarded == {fid: {new["id"]}} and changed["port_forwardings"] == {new["id"]}
    assert len(d.state.floatingips[fid].port_forwardings) == N + 1
    # changed: the element replaced in place
    one = world["pfs"][3]
    ok(api.put(f"{path}/{one['id']}", json={"port_forwarding": {"internal_port": 8999}}))
    follow()
    assert d.forwarded == {fid: {one["id"]}}
    got = {p.id: p for p in d.state.floatingips[fid].port_forwardings}[one["id"]]
    assert got.internal_port_start == 8999
    # removed
    assert api.delete(f"{path}/{new['id']}").status_code == 204
    follow()
    assert d.forwarded == {fid: {new["id"]}}
    assert new["id"] not in {p.id for p in d.state.floatingips[fid].port_forwardings}
    # the port deleted takes all of its forwardings with it, and the floating IP lets go of
    # its router: the floating IP read whole
    assert api.delete(f"/v2.0/ports/{world['vm']['id']}").status_code == 204
    follow()
    assert d.state.floatingips[fid].port_forwardings == () and d.forwarded == {}
    assert fid not in d.pf_fip.values()
