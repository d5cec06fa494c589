"""Through the API with the agent on: a VM plugged by iface-id boots with DHCP, goes out by its
floating IP and reads its metadata; the times from port create to the lease and to the first
metadata answer are printed (``-s`` shows them; benchmarks/dhcp_boot.py tabulates them)."""
from __future__ import annotations

import os
import shutil
import time
import uuid

import httpx
import pytest

from floatip import lab as L
from floatip.core.layout import AgentConfig
from floatip.server import Server, free_port

from dhcpvm import Vm

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(any(shutil.which(t) is None for t in ("dnsmasq", "dhclient", "curl")),
                                 reason="dnsmasq-base, isc-dhcp-client and curl needed")]
FIP, UPSTREAM = "203.0.113.84", "203.0.113.1"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFloatipE2eKey fd@e2e"


def ok(r: httpx.Response, code: int = 200) -> dict:
    assert r.status_code in (code, 201, 204), r.text
    return r.json() if r.content else {}


def curl(vm: Vm, path: str) -> tuple[int, str]:
    r = vm.run("curl", "-s", "--noproxy", "*", "-m", "3", "-w", "\n%{http_code}",
               f"http://169.254.169.254{path}", check=False)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def boot(lab, workdir: str) -> dict[str, float]:
    """The whole story once; returns the measured seconds."""
    s = uuid.uuid4().hex[:6]
    int_br, ex_br = lab.bridge(f"fd-int-{s}"), lab.bridge(f"fd-ex-{s}")
    lab.host(f"fd-up-{s}", ex_br, f"fd-upv-{s}", f"{UPSTREAM}/24", arp_accept=True)
    lab.serve(f"fd-up-{s}", UPSTREAM, 8080)
    srv = Server(f"sqlite:///{workdir}/floatip.db", f"127.0.0.1:{free_port()}",
                 AgentConfig(int_br, {"physnet1": ex_br}), prune_scope="known",
                 agent_options={"run_dir": workdir}).start()
    api = httpx.Client(base_url=srv.url + "/v2.0", timeout=30)
    vm = None
    net_id = router_id = None
    try:
        ext = ok(api.post("/networks", json={"network": {
            "name": f"fd-ext-{s}", "router:external": True,
            "provider:network_type": "flat", "provider:physical_network": "physnet1"}}))["network"]
        ok(api.post("/subnets", json={"subnet": {
            "network_id": ext["id"], "cidr": "203.0.113.0/24", "gateway_ip": UPSTREAM,
            "enable_dhcp": False,
            "allocation_pools": [{"start": "203.0.113.10", "end": "203.0.113.99"}]}}))
        net_id = ok(api.post("/networks", json={"network": {"name": f"fd-ten-{s}"}}))["network"]["id"]
        sub = ok(api.post("/subnets", json={"subnet": {
            "network_id": net_id, "cidr": "198.51.100.0/24",
            "dns_nameservers": ["192.0.2.53"]}}))["subnet"]
        router_id = ok(api.post("/routers", json={"router": {
            "name": f"fd-r-{s}", "external_gateway_info": {"network_id": ext["id"]}}}))["router"]["id"]
        ok(api.put(f"/routers/{router_id}/add_router_interface", json={"subnet_id": sub["id"]}))
        assert srv.wait_for_agent(60)
        instance = str(uuid.uuid4())
        t0 = time.monotonic()
        port = ok(api.post("/ports", json={"port": {
            "network_id": net_id, "name": "vm4", "device_id": instance,
            "fixed_ips": [{"ip_address": "198.51.100.84"}],
            "floatip:public_keys": {"fd-key": KEY}}}))["port"]
        ok(api.post("/floatingips", json={"floatingip": {
            "floating_network_id": ext["id"], "floating_ip_address": FIP,
            "port_id": port["id"]}}))
        vm = Vm(f"fd-vm4-{s}", int_br, port["mac_address"], workdir, iface_id=port["id"])
        t_plugged = time.monotonic()
        got = vm.dhclient()
        t_lease = time.monotonic()
        assert got["new_ip_address"] == "198.51.100.84"
        assert got["new_routers"] == "198.51.100.1"
        while (answer := curl(vm, "/latest/meta-data/instance-id"))[0] != 200:
            assert time.monotonic() - t_lease < 30, answer
            time.sleep(0.05)
        t_meta = time.monotonic()
        assert answer == (200, instance)
        assert curl(vm, "/latest/meta-data/public-ipv4") == (200, FIP)
        assert curl(vm, "/latest/meta-data/public-keys/0/openssh-key") == (200, KEY)
        assert L.tcp_source(vm.ns, UPSTREAM, 8080) == FIP
        # the DHCP port is in the API, bound by the agent like any VM port
        [dport] = ok(api.get("/ports", params={"network_id": net_id,
                                               "device_owner": "network:dhcp"}))["ports"]
        assert dport["fixed_ips"][0]["ip_address"] == "198.51.100.2"
        deadline = time.monotonic() + 20
        while ok(api.get(f"/ports/{dport['id']}"))["port"]["status"] != "ACTIVE":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        qdhcp = f"qdhcp-{net_id}"
        assert os.path.exists(f"/run/netns/{qdhcp}")
        return {"lease": t_lease - t0, "lease_after_plug": t_lease - t_plugged,
                "metadata": t_meta - t0}
    finally:
        if vm is not None:
            vm.close()
        try:  # through the API: the agent removes the router and the DHCP namespace
            for f in ok(api.get("/floatingips"))["floatingips"]:
                api.delete(f"/floatingips/{f['id']}")
            for p in ok(api.get("/ports", params={"device_owner": "compute:nova"}))["ports"]:
                api.delete(f"/ports/{p['id']}")
            for p in ok(api.get("/ports", params={"name": "vm4"}))["ports"]:
                api.delete(f"/ports/{p['id']}")
            if router_id:
                api.put(f"/routers/{router_id}/remove_router_interface",
                        json={"subnet_id": sub["id"]})
                api.delete(f"/routers/{router_id}")
            if net_id:
                api.delete(f"/networks/{net_id}")
            srv.wait_for_agent(60)
            if net_id:
                assert not os.path.exists(f"/run/netns/qdhcp-{net_id}")
            if router_id:
                assert not os.path.exists(f"/run/netns/qrouter-{router_id}")
        finally:
            api.close()
            srv.close()


@pytest.fixture
def workdir():
    d = f"/run/fd-test-{uuid.uuid4().hex[:6]}"
    os.makedirs(d, mode=0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_vm_boots_through_the_api_with_dhcp_and_metadata(lab, workdir):
    t = boot(lab, workdir)
    print(f"\nport create -> DHCP lease {t['lease']*1000:.0f} ms "
          f"(after plug {t['lease_after_plug']*1000:.0f} ms), "
          f"-> first metadata answer {t['metadata']*1000:.0f} ms")
