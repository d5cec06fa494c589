"""Issue 21, floating-IP placement in the kernel: the router the API names for a floating IP
(its ``router_id``) is the router whose namespace carries it, whatever other routers join
the subnet later. Before, the agent chose the oldest router on the subnet by itself: a project
attached its older router to another project's shared subnet (a port of its own) and took
that project's inbound floating-IP traffic while the API still named the right router.
API + agent on per-test bridges (tests/cloud.py), a VM plugged in its own namespace."""
from __future__ import annotations

import pytest

from floatip import lab as L
from floatip.agent import binding
from floatip.core.layout import namespace_name

from cloud import Cloud, ok, wait_for

pytestmark = pytest.mark.kernel


def carries(router_id: str, address: str) -> bool:
    """Does the router's namespace hold ``address`` (a floating IP: /32 on its gateway)?"""
    out = L.sh("ip", "-n", namespace_name(router_id), "-4", "-o", "addr", "show",
               check=False).stdout
    return f" {address}/32 " in out


def test_the_kernel_carries_a_floating_ip_on_the_router_the_api_names(lab, tmp_path):
    cloud = Cloud(lab, tmp_path)
    try:
        ext = {"network_id": cloud.ext["id"]}
        # B's router is the older one
        older = cloud.post("router", {"name": "ick-older", "project_id": "ick-b",
                                      "external_gateway_info": ext})
        cloud.router_ids.add(older["id"])
        net = cloud.post("network", {"name": "ick-shared", "shared": True,
                                     "project_id": "ick-a"})
        sub = cloud.post("subnet", {"network_id": net["id"], "cidr": "198.51.100.0/24",
                                    "ip_version": 4, "project_id": "ick-a"})
        mine = cloud.post("router", {"name": "ick-mine", "project_id": "ick-a",
                                     "external_gateway_info": ext})
        cloud.router_ids.add(mine["id"])
        ok(cloud.api.put(f"/v2.0/routers/{mine['id']}/add_router_interface",
                         json={"subnet_id": sub["id"]}))
        ns = f"ick{cloud.sfx}v1"
        L.sh("ip", "netns", "add", ns)
        lab.namespaces.append(ns)
        vm = cloud.post("port", {"network_id": net["id"], "name": ns, "project_id": "ick-a"})
        binding.plug(vm, {sub["id"]: {"cidr": sub["cidr"], "gateway_ip": sub["gateway_ip"]}},
                     ns, cloud.int_br)
        fip = cloud.fip(vm)
        addr = fip["floating_ip_address"]
        assert fip["router_id"] == mine["id"]
        cloud.status("floatingip", fip["id"], "ACTIVE")
        assert cloud.reachable(addr)
        assert carries(mine["id"], addr)

        # B attaches its older router to A's shared subnet with a port of its own
        bport = cloud.post("port", {"network_id": net["id"], "project_id": "ick-b"})
        ok(cloud.api.put(f"/v2.0/routers/{older['id']}/add_router_interface",
                         json={"port_id": bport["id"]}))
        assert cloud.wait_for_agent()
        assert cloud.get("floatingip", fip["id"])["router_id"] == mine["id"]
        assert carries(mine["id"], addr) and not carries(older["id"], addr)
        assert cloud.reachable(addr)

        # associated again with both routers there: the API names the router holding the
        # subnet's gateway (Neutron's choice, not the older one), and the kernel follows
        ok(cloud.put("floatingip", fip["id"], {"port_id": None}))
        assert cloud.wait_for_agent()
        assert wait_for(lambda: not carries(mine["id"], addr), 10, "the FIP removed")
        again = ok(cloud.put("floatingip", fip["id"], {"port_id": vm["id"]}))["floatingip"]
        assert again["router_id"] == mine["id"]
        cloud.status("floatingip", fip["id"], "ACTIVE")
        assert carries(mine["id"], addr) and not carries(older["id"], addr)
        assert cloud.reachable(addr)
    finally:
        cloud.close()
