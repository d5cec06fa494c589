"""Through the API with the kernel agent on: a port's extra DHCP options (extra_dhcp_opt) and
its dns_name (dns-integration) reach a real ISC dhclient in a VM namespace from the
network's dnsmasq; an update reaches the next exchange (a VM booted again)."""
from __future__ import annotations

import os
import shutil
import uuid

import httpx
import pytest

from cloud import ok, wait_for
from floatip.core.layout import AgentConfig
from floatip.server import Server, free_port
from floatip.service import dns

from dhcpvm import Vm

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("dnsmasq") is None or
                                 shutil.which("dhclient") is None,
                                 reason="dnsmasq-base and isc-dhcp-client needed")]


@pytest.fixture
def cloud(lab):
    sfx = uuid.uuid4().hex[:6]
    workdir = f"/run/dd-test-{sfx}"  # dnsmasq rereads its files as nobody
    os.makedirs(workdir, mode=0o755)
    old, dns.DNS_DOMAIN = dns.DNS_DOMAIN, "example.org."  # the server runs in this process
    int_br, ex_br = lab.bridge(f"dd-int-{sfx}"), lab.bridge(f"dd-ex-{sfx}")
    srv = Server(f"sqlite:///{workdir}/floatip.db", f"127.0.0.1:{free_port()}",
                 AgentConfig(int_br, {"physnet1": ex_br}), prune_scope="known",
                 agent_options={"run_dir": workdir}).start()
    api = httpx.Client(base_url=srv.url + "/v2.0", timeout=30)
    vms: list[Vm] = []
    net_id = None
    try:
        net_id = ok(api.post("/networks", json={"network": {"name": f"dd-net-{sfx}"}}),
                    201)["network"]["id"]
        ok(api.post("/subnets", json={"subnet": {
            "network_id": net_id, "cidr": "198.51.100.0/24", "ip_version": 4}}), 201)
        assert srv.wait_for_agent(60)
        yield {"api": api, "net": net_id, "bridge": int_br, "dir": workdir, "sfx": sfx,
               "vms": vms, "srv": srv}
    finally:
        for vm in vms:
            vm.close()
        try:  # through the API: the agent removes the DHCP namespace
            for p in ok(api.get("/ports", params={"network_id": net_id}))["ports"]:
                if p["device_owner"] != "network:dhcp":
                    api.delete(f"/ports/{p['id']}")
            if net_id:
                api.delete(f"/networks/{net_id}")
            srv.wait_for_agent(60)
            if net_id:
                assert not os.path.exists(f"/run/netns/qdhcp-{net_id}")
        finally:
            api.close()
            srv.close()
            dns.DNS_DOMAIN = old
            shutil.rmtree(workdir, ignore_errors=True)


def boot(c: dict, port: dict) -> dict[str, str]:
    """A VM for ``port`` (plugged by iface-id) and one DHCP exchange."""
    c["booted"] = c.get("booted", 0) + 1
    vm = Vm(f"dd-vm{c['booted']}-{c['sfx']}", c["bridge"], port["mac_address"], c["dir"],
            iface_id=port["id"])
    c["vms"].append(vm)
    return vm.dhclient()


def test_vm_gets_its_extra_options_and_dns_name(cloud):
    api = cloud["api"]
    port = ok(api.post("/ports", json={"port": {
        "network_id": cloud["net"], "name": "ignored-name", "dns_name": "dd-web",
        "fixed_ips": [{"ip_address": "198.51.100.20"}],
        "extra_dhcp_opts": [
            {"opt_name": "domain-search", "opt_value": "corp.example"},
            {"opt_name": "ntp-server", "opt_value": "192.0.2.123"},
            # for IPv6 only: the port has no IPv6 address, dnsmasq does not get it
            {"opt_name": "ntp-server", "opt_value": "[2001:db8::123]", "ip_version": 6}]}}),
        201)["port"]
    assert {(a["hostname"], a["fqdn"]) for a in port["dns_assignment"]} == \
        {("dd-web", "dd-web.example.org.")}
    got = boot(cloud, port)
    assert got["new_ip_address"] == "198.51.100.20"
    assert got.get("new_host_name") == "dd-web", got
    assert got.get("new_domain_search", "").rstrip(".") == "corp.example", got
    assert got.get("new_ntp_servers") == "192.0.2.123", got
    # another port on the network without options gets none of them
    other = ok(api.post("/ports", json={"port": {"network_id": cloud["net"],
                                                 "fixed_ips": [{"ip_address": "198.51.100.21"}]}}),
               201)["port"]
    got = boot(cloud, other)
    assert got["new_ip_address"] == "198.51.100.21"
    assert got.get("new_host_name") == "host-198-51-100-21", got
    assert "new_ntp_servers" not in got and "new_domain_search" not in got, got

    # an update: one option removed (null), one replaced, a new name; the VM boots again
    ok(api.put(f"/ports/{port['id']}", json={"port": {"dns_name": "dd-db", "extra_dhcp_opts": [
        {"opt_name": "ntp-server", "opt_value": None},
        {"opt_name": "domain-search", "opt_value": "lab.example"}]}}))
    cloud["vms"].pop(0).close()
    cloud["srv"].wait_for_agent(60)

    def rebooted():
        got = boot(cloud, port)
        if got.get("new_host_name") == "dd-db":
            return got
        cloud["vms"].pop().close()
        return None
    got = wait_for(rebooted, 60, "the updated options")
    assert got.get("new_domain_search", "").rstrip(".") == "lab.example", got
    assert "new_ntp_servers" not in got, got
