"""Issue 26: requests Neutron refuses because they break a router, which floatip accepted
while the router went on saying ACTIVE. Each is sent to the real server (SQLite and
PostgreSQL) and answered with Neutron's code and type, the database exactly as before."""
from __future__ import annotations

import uuid

import httpx
import pytest

from test_api import Topo, api, db_url, neutron_error, ok, server, uniq  # noqa: F401 (fixtures)
from test_api_refusals import dump


@pytest.fixture
def t(api):
    """External 203.0.113.0/24, tenant 100.64.50.0/24, a router between them."""
    return Topo(api, tenant_cidr="100.64.50.0/24")


def _net_with_subnet(api, cidr: str) -> tuple[dict, dict]:
    net = ok(api.post("/v2.0/networks", json={"network": {"name": uniq()}}), 201)["network"]
    sn = ok(api.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "cidr": cidr}}),
            201)["subnet"]
    return net, sn


def test_interface_overlapping_the_gateway_subnet_is_refused(server, api, t):
    _, inside = _net_with_subnet(api, "203.0.113.128/25")  # inside the external /24
    before = dump(server.db)
    body = neutron_error(api.put(f"/v2.0/routers/{t.router['id']}/add_router_interface",
                                 json={"subnet_id": inside["id"]}), 400, "BadRequest")
    assert "203.0.113.128/25" in body["message"] and t.ext_subnet["id"] in body["message"]
    # the same subnet through a port of its own
    port = ok(api.post("/v2.0/ports", json={"port": {"network_id": inside["network_id"]}}),
              201)["port"]
    before = dump(server.db)
    neutron_error(api.put(f"/v2.0/routers/{t.router['id']}/add_router_interface",
                          json={"port_id": port["id"]}), 400, "BadRequest")
    assert dump(server.db) == before


def test_gateway_overlapping_an_interface_is_refused(server, api, t):
    """The other order: the router has the interface, the gateway's network overlaps it."""
    ext = ok(api.post("/v2.0/networks", json={"network": {"name": uniq("ext"),
                                                          "router:external": True}}),
             201)["network"]
    ok(api.post("/v2.0/subnets", json={"subnet": {"network_id": ext["id"],
                                                  "cidr": "100.64.48.0/22"}}), 201)
    before = dump(server.db)
    body = neutron_error(api.put(f"/v2.0/routers/{t.router['id']}", json={"router": {
        "external_gateway_info": {"network_id": ext["id"]}}}), 400, "BadRequest")
    assert "overlaps" in body["message"]
    assert dump(server.db) == before
    # a router without interfaces takes that gateway
    r = ok(api.post("/v2.0/routers", json={"router": {
        "name": uniq("r"), "external_gateway_info": {"network_id": ext["id"]}}}), 201)
    assert r["router"]["external_gateway_info"]["network_id"] == ext["id"]


@pytest.mark.parametrize("dest", ["100.64.50.0/24", "203.0.113.0/24"],
                         ids=["interface-subnet", "gateway-subnet"])
def test_route_over_a_connected_subnet_is_kept_but_never_laid_out(server, api, t, dest):
    """Neutron accepts it (Tempest sets such routes); floatip stores it and its agents'
    layout leaves it out, so the kernel's connected route is never replaced."""
    from floatip.core.layout import AgentConfig, router_layouts
    from floatip.service.agent_view import desired_state
    routes = [{"destination": dest, "nexthop": "100.64.50.9"},
              {"destination": "100.64.0.0/16", "nexthop": "100.64.50.9"}]
    got = ok(api.put(f"/v2.0/routers/{t.router['id']}", json={"router": {"routes": routes}}))
    assert got["router"]["routes"] == routes
    with server.db.read() as s:
        state = desired_state(s)
    lay = router_layouts(state, AgentConfig("br-int", {"physnet1": "br-ex"}))[t.router["id"]]
    assert lay.extra_routes == {("100.64.0.0/16", "100.64.50.9")}


def test_second_flat_network_on_a_physical_network_is_refused(server, api):
    physnet = f"physnet-{uuid.uuid4().hex[:8]}"
    flat = {"router:external": True, "provider:network_type": "flat",
            "provider:physical_network": physnet}
    ok(api.post("/v2.0/networks", json={"network": {"name": uniq(), **flat}}), 201)
    before = dump(server.db)
    body = neutron_error(api.post("/v2.0/networks", json={"network": {"name": uniq(), **flat}}),
                         409, "FlatNetworkInUse")
    assert physnet in body["message"]
    assert dump(server.db) == before
    # a VLAN on the same physical network is another segment
    ok(api.post("/v2.0/networks", json={"network": {
        "name": uniq(), "router:external": True, "provider:network_type": "vlan",
        "provider:physical_network": physnet, "provider:segmentation_id": 77}}), 201)
