"""extra_dhcp_opt on OVN: a port's extra options become a DHCP_Options row of its own (the
subnet's options and its own, as Neutron's OVN driver writes it), a real dhclient on a
compute chassis gets them, and removing them (null values) brings the subnet's row back."""
from __future__ import annotations

import httpx
import pytest

from floatip import lab as L
from test_e2e_backends import ovn_deployment, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.ovn,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*influxdb:DeprecationWarning")]


@pytest.fixture
def ovn(tmp_path):
    yield from ovn_deployment(tmp_path, prefix="dd")


def ok(r: httpx.Response, code: int = 200) -> dict:
    assert r.status_code == code, r.text
    return r.json()


def test_a_ports_extra_dhcp_options_reach_its_vm(ovn):
    lab, _ = ovn.extra
    nb = f"--db={lab.nb}"
    api = httpx.Client(base_url=ovn.url + "/v2.0", timeout=30)
    net = ok(api.post("/networks", json={"network": {"name": "dd-net"}}), 201)["network"]
    sub = ok(api.post("/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "198.51.100.0/24", "ip_version": 4}}), 201)["subnet"]
    port = ok(api.post("/ports", json={"port": {"network_id": net["id"], "extra_dhcp_opts": [
        {"opt_name": "ntp-server", "opt_value": "192.0.2.123"},
        {"opt_name": "domain-search", "opt_value": "corp.example"}]}}), 201)["port"]
    ns = lab.vm("dd-vm1", -1, port["id"], port["mac_address"])
    wait_for(lambda: ok(api.get(f"/ports/{port['id']}"))["port"]["status"] == "ACTIVE",
             what="the VM port ACTIVE")
    assert ovn.wait_synced()
    # the NB: a row for the port, the subnet's options and its own
    rows = L.sh("ovn-nbctl", nb, "--bare", "--columns=external_ids,options", "list",
                "DHCP_Options").stdout
    assert f"port_id={port['id']}" in rows and "ntp_server=192.0.2.123" in rows, rows
    got = lab.dhcp(ns)
    assert got is not None, lab.dhcp_error
    assert got["new_ip_address"] == port["fixed_ips"][0]["ip_address"]
    assert got.get("new_ntp_servers") == "192.0.2.123", got
    assert got.get("new_domain_search", "").rstrip(".") == "corp.example", got
    assert got.get("new_routers") == sub["gateway_ip"]  # the subnet's options as well

    # options removed: the port's row goes, its LSP refers to the subnet's row again
    ok(api.put(f"/ports/{port['id']}", json={"port": {"extra_dhcp_opts": [
        {"opt_name": "ntp-server", "opt_value": None},
        {"opt_name": "domain-search", "opt_value": None}]}}))
    assert ovn.wait_synced()
    wait_for(lambda: "port_id" not in L.sh("ovn-nbctl", nb, "--bare", "--columns=external_ids",
                                           "list", "DHCP_Options").stdout,
             what="the port's DHCP_Options row gone")
    assert L.sh("ovn-nbctl", nb, "dhcp-options-list").stdout.count("\n") == 1
    api.close()
