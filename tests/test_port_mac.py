"""A port's MAC is unique on its network, on SQLite and PostgreSQL: a MAC the request names
that another port of the network has is Neutron's 409 MacAddressInUse and nothing is made;
a random MAC that collides is drawn again (the port is made, with another MAC); the same
MAC on another network is fine. The port row goes in as one INSERT … ON CONFLICT DO NOTHING
(no savepoint), so these are the paths where the database refuses it."""
from __future__ import annotations

import pytest

from cloud import ok, refused, served_api


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory):
    yield from served_api(request, tmp_path_factory, "fa-mac")


@pytest.fixture(scope="module")
def nets(api):
    out = []
    for i in (1, 2):
        net = ok(api.post("/v2.0/networks", json={"network": {"name": f"mac{i}"}}),
                 201)["network"]
        ok(api.post("/v2.0/subnets", json={"subnet": {
            "network_id": net["id"], "cidr": f"100.64.{40 + i}.0/24", "ip_version": 4}}), 201)
        out.append(net["id"])
    return out


def ports_of(api, nid: str) -> list[dict]:
    return ok(api.get("/v2.0/ports", params={"network_id": nid}), 200)["ports"]


def test_a_named_mac_in_use_is_refused_and_nothing_is_made(api, nets):
    mac = "fa:16:3e:00:aa:01"
    ok(api.post("/v2.0/ports", json={"port": {"network_id": nets[0], "mac_address": mac}}),
       201)
    before = ports_of(api, nets[0])
    msg = refused(api.post("/v2.0/ports", json={"port": {"network_id": nets[0],
                                                          "mac_address": mac}}),
                  409, "MacAddressInUse")
    assert mac in msg and nets[0] in msg
    assert ports_of(api, nets[0]) == before  # no row, no address
    other = ok(api.post("/v2.0/ports", json={"port": {"network_id": nets[1],
                                                       "mac_address": mac}}), 201)["port"]
    assert other["mac_address"] == mac and other["fixed_ips"]


def test_a_random_mac_that_collides_is_drawn_again(api, nets, monkeypatch):
    taken = ok(api.post("/v2.0/ports", json={"port": {"network_id": nets[0]}}),
               201)["port"]["mac_address"]
    fresh = "fa:16:3e:00:bb:02"
    draws = iter([taken, taken, fresh])
    from floatip.service import ipam  # the server runs in this process (served_api)
    monkeypatch.setattr(ipam, "random_mac", lambda: next(draws))
    port = ok(api.post("/v2.0/ports", json={"port": {"network_id": nets[0]}}), 201)["port"]
    assert port["mac_address"] == fresh and port["fixed_ips"]
    assert next(draws, None) is None  # drawn three times
    shown = ok(api.get(f"/v2.0/ports/{port['id']}"), 200)["port"]
    assert shown["mac_address"] == fresh and shown["fixed_ips"] == port["fixed_ips"]
    assert shown["security_groups"] == port["security_groups"]
