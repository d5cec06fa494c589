"""Dual stack through the API with the agent: IPv6 subnets and a router interface created
with Neutron's calls, a VM whose kernel takes the address the API computed (EUI-64 from its
MAC) from radvd's advertisement and reaches the IPv6 upstream with it, while its IPv4 leaves
through its floating IP; removing the interface removes the address and radvd."""
from __future__ import annotations

import os
import shutil
import uuid

import pytest

from floatip import lab as L
from floatip.core.layout import namespace_name
from floatip.dataplane.process import running

from cloud import Cloud, ok, wait_for

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("radvd") is None,
                                 reason="radvd needed (make install)")]
EXT6_GW, TEN6 = "2001:db8:ff::1", "2001:db8:1::/64"
PORT = 8087


@pytest.fixture
def cloud(lab, tmp_path):
    c = Cloud(lab, tmp_path)
    yield c
    c.close()


@pytest.fixture
def dhcp_cloud(lab, tmp_path):
    """With the agent's DHCP on; dnsmasq and radvd files in a run dir of this test."""
    run = f"/run/v6d-{uuid.uuid4().hex[:6]}"
    os.makedirs(run, mode=0o755)
    c = Cloud(lab, tmp_path, run_dir=run)
    c.run_dir = run
    yield c
    try:
        c.close()
    finally:
        shutil.rmtree(run, ignore_errors=True)


def ext_ipv6(c: Cloud) -> None:
    """An IPv6 subnet on the external network."""
    c.post("subnet", {"network_id": c.ext["id"], "cidr": "2001:db8:ff::/64", "ip_version": 6,
                      "gateway_ip": EXT6_GW, "enable_dhcp": False})


def tenant_ipv6(c: Cloud, r: dict, mode: str) -> dict:
    """An IPv6 subnet in ``mode`` on the router's network, a router interface on it, and the
    upstream host's route back through the router's IPv6 gateway address."""
    sub6 = c.post("subnet", {"network_id": r["net"]["id"], "cidr": TEN6, "ip_version": 6,
                             "ipv6_ra_mode": mode, "ipv6_address_mode": mode})
    ok(c.api.put(f"/v2.0/routers/{r['id']}/add_router_interface",
                 json={"subnet_id": sub6["id"]}))
    gw = c.get("router", r["id"])["external_gateway_info"]["external_fixed_ips"]
    gw6 = next(f["ip_address"] for f in gw if ":" in f["ip_address"])
    L.Lab.add_ipv6(c.upstream, f"{EXT6_GW}/64", ((TEN6, gw6),))
    return sub6


def v6_global(ns: str, dev: str | None = None) -> list[str]:
    """Non-tentative global IPv6 addresses in ``ns`` (of ``dev``)."""
    out = L.sh("ip", "netns", "exec", ns, "ip", "-6", "-o", "addr", "show", "scope",
               "global", *(["dev", dev] if dev else [])).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines()
            if "tentative" not in line]


def test_slaac_through_the_api(cloud, lab):
    c = cloud
    ext_ipv6(c)
    r = c.router("198.51.100.0/24")
    sub6 = tenant_ipv6(c, r, "slaac")
    port, vm = c.vm(r)
    mine = next(f["ip_address"] for f in port["fixed_ips"] if f["subnet_id"] == sub6["id"])
    fip = c.fip(port)
    c.status("floatingip", fip["id"], "ACTIVE")
    assert c.wait_for_agent()
    # the VM's IPv6 starts once it is bound (as at boot): it solicits, the router answers
    c.status("port", port["id"], "ACTIVE")
    for off in ("1", "0"):
        L.sh("ip", "netns", "exec", vm, "sysctl", "-qw", f"net.ipv6.conf.eth0.disable_ipv6={off}")
    assert wait_for(lambda: mine in v6_global(vm), 20, "the SLAAC address")
    assert v6_global(vm) == [mine], "the kernel's EUI-64 address is the one the API gave"
    lab.serve(c.upstream, EXT6_GW, PORT)
    lab.serve(c.upstream, "203.0.113.1", PORT + 1)
    assert wait_for(lambda: L.tcp_source(vm, EXT6_GW, PORT), 10, "TCP over IPv6") == mine
    assert L.tcp_source(vm, "203.0.113.1", PORT + 1) == fip["floating_ip_address"]

    ns = namespace_name(r["id"])
    rdir = f"/run/floatip/ra/{r['id']}"
    pid = int(open(f"{rdir}/pid").read())
    assert running(pid) and "prefix 2001:db8:1::/64" in open(f"{rdir}/radvd.conf").read()
    # a second IPv6 subnet on the network shares the router's IPv6 port (as in Neutron): one
    # qr- device with both addresses, radvd reloaded (same process) with both prefixes
    sub6b = c.post("subnet", {"network_id": r["net"]["id"], "cidr": "2001:db8:2::/64",
                              "ip_version": 6, "ipv6_ra_mode": "slaac",
                              "ipv6_address_mode": "slaac"})
    itf = ok(c.api.put(f"/v2.0/routers/{r['id']}/add_router_interface",
                       json={"subnet_id": sub6b["id"]}))
    assert c.wait_for_agent()
    qr6 = "qr-" + itf["port_id"][:11]
    assert set(v6_global(ns, qr6)) == {"2001:db8:1::1", "2001:db8:2::1"}
    assert "prefix 2001:db8:2::/64" in open(f"{rdir}/radvd.conf").read()
    assert int(open(f"{rdir}/pid").read()) == pid
    ok(c.api.put(f"/v2.0/routers/{r['id']}/remove_router_interface",
                 json={"subnet_id": sub6b["id"]}))
    ok(c.api.put(f"/v2.0/routers/{r['id']}/remove_router_interface",
                 json={"subnet_id": sub6["id"]}))
    assert c.wait_for_agent()
    assert not {"2001:db8:1::1", "2001:db8:2::1"} & set(v6_global(ns))
    assert wait_for(lambda: not running(pid), 5, "radvd to stop") and not os.path.exists(rdir)
    assert L.tcp_source(vm, "203.0.113.1", PORT + 1) == fip["floating_ip_address"]


def test_dhcpv6_stateful_through_the_api(dhcp_cloud, lab):
    """The DHCP port's IPv6 address from the API, dnsmasq's host entry from the port, the
    managed flag from radvd: dhclient -6 in the VM gets the address the API allocated."""
    from test_ipv6_kernel import DHCLIENT6_SCRIPT
    c = dhcp_cloud
    ext_ipv6(c)
    r = c.router("198.51.100.0/24")
    sub6 = tenant_ipv6(c, r, "dhcpv6-stateful")
    port, vm = c.vm(r)
    mine = next(f["ip_address"] for f in port["fixed_ips"] if f["subnet_id"] == sub6["id"])
    c.status("port", port["id"], "ACTIVE")
    assert c.wait_for_agent()
    for off in ("1", "0"):
        L.sh("ip", "netns", "exec", vm, "sysctl", "-qw", f"net.ipv6.conf.eth0.disable_ipv6={off}")
    wait_for(lambda: "fe80::" in (out := L.sh("ip", "netns", "exec", vm, "ip", "-6", "-o",
                                               "addr", "show", "scope", "link").stdout)
             and "tentative" not in out, 10, "the VM's link-local address")
    script, env = f"{c.run_dir}/dhclient6-script", f"{c.run_dir}/bound6.env"
    with open(script, "w") as f:
        f.write(DHCLIENT6_SCRIPT)
    os.chmod(script, 0o755)
    r6 = L.sh("ip", "netns", "exec", vm, "dhclient", "-6", "-1", "-lf", f"{c.run_dir}/lease6",
              "-pf", f"{c.run_dir}/dhclient6.pid", "-sf", script, "-e",
              f"V6D_ENV_FILE={env}", "eth0", check=False)
    assert r6.returncode == 0, r6.stderr[-500:]  # dhclient stays to renew: the lab kills it
    bound = dict(line.rstrip("\n").partition("=")[::2] for line in open(env))
    assert bound["new_ip6_address"] == mine
    assert wait_for(lambda: v6_global(vm) == [mine], 10, "the DHCPv6 address")
    lab.serve(c.upstream, EXT6_GW, PORT)
    assert wait_for(lambda: L.tcp_source(vm, EXT6_GW, PORT), 10, "TCP over IPv6") == mine
