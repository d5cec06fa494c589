"""The seed's scenario as a member of a project, with a real Keystone in front
(``auth_strategy = keystone``) and the real agent behind: openstacksdk with password auth
finds floatip in Keystone's catalog; an admin provides the external network; the member
builds the rest and the dataplane is checked as in test_e2e_sdk.py (the source address the
upstream host sees, the floating IP answering)."""
from __future__ import annotations

import secrets
import uuid

import pytest

from floatip.agent import binding
from floatip.api.auth import AuthSettings
from floatip.client import Client
from floatip.cli.demo_api import remove_all
from floatip.server import Server, free_port
from test_e2e_sdk import (EXT_CIDR, EXT_GW, POOL, TENANT_CIDR, VM1_IP, VM2_IP, env,  # noqa: F401
                          source_seen, unreachable, wait_for)

NAME_PREFIX = "fk"  # bridges, namespaces and veths of this module (test_e2e_sdk.Env)
pytestmark = [pytest.mark.kernel,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture
def ks_server(env, keystone, tmp_path):  # noqa: F811
    srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}", env.config,
                 prune_scope="known", interval=30,
                 auth=AuthSettings("keystone", keystone.authtoken())).start()
    keystone.set_network_endpoint(srv.url)
    try:
        yield srv
    finally:
        try:
            with Client(srv.url) as c:
                c.headers["X-Auth-Token"] = keystone.token()
                env.router_ids |= {r["id"] for r in c.list("router")}
                remove_all(c)
            srv.wait_for_agent()
        finally:
            srv.close()


def test_seed_scenario_as_a_project_member(env, keystone, ks_server):  # noqa: F811
    import openstack
    sfx = uuid.uuid4().hex[:6]
    password = secrets.token_urlsafe(12)
    user, project = f"fk-m-{sfx}", f"fk-p-{sfx}"
    keystone.user(user, password, project, ["member"])
    admin = openstack.connect(**keystone.cloud("admin", keystone.admin_password, "admin"))
    member = openstack.connect(**keystone.cloud(user, password, project))
    try:
        ext = admin.network.create_network(name=f"fk-ext-{sfx}", is_router_external=True,
                                           provider_network_type="flat",
                                           provider_physical_network="physnet1")
        admin.network.create_subnet(network_id=ext.id, cidr=EXT_CIDR, ip_version=4,
                                    gateway_ip=EXT_GW, is_dhcp_enabled=False,
                                    allocation_pools=[{"start": POOL[0], "end": POOL[1]}])
        net = member.network
        tenant = net.create_network(name=f"fk-net-{sfx}")
        assert tenant.project_id == keystone.project(project)
        sub = net.create_subnet(network_id=tenant.id, cidr=TENANT_CIDR, ip_version=4)
        router = net.create_router(name=f"fk-r-{sfx}",
                                   external_gateway_info={"network_id": ext.id})
        env.router_ids.add(router.id)
        router_ip = router.external_gateway_info["external_fixed_ips"][0]["ip_address"]
        net.add_interface_to_router(router, subnet_id=sub.id)
        vm1 = net.create_port(network_id=tenant.id, name="vm1",
                              fixed_ips=[{"subnet_id": sub.id, "ip_address": VM1_IP}])
        vm2 = net.create_port(network_id=tenant.id, name="vm2",
                              fixed_ips=[{"subnet_id": sub.id, "ip_address": VM2_IP}])
        subnets = {sub.id: {"cidr": sub.cidr, "gateway_ip": sub.gateway_ip}}
        for port, ns in ((vm1, env.vm1), (vm2, env.vm2)):
            binding.plug(port.to_dict(), subnets, ns, env.int_br)
        wait_for(lambda: all(net.get_port(p.id).status == "ACTIVE" for p in (vm1, vm2)),
                 what="VM ports ACTIVE")
        wait_for(lambda: net.get_router(router.id).status == "ACTIVE", what="router ACTIVE")
        assert ks_server.wait_for_agent()
        assert source_seen(env, env.vm1) == router_ip

        fip = net.create_ip(floating_network_id=ext.id, port_id=vm1.id)
        assert fip.project_id == tenant.project_id
        wait_for(lambda: net.get_ip(fip.id).status == "ACTIVE", what="floating IP ACTIVE")
        assert ks_server.wait_for_agent()
        assert source_seen(env, env.vm1) == fip.floating_ip_address
        assert source_seen(env, env.vm2) == router_ip
        assert not unreachable(env, fip.floating_ip_address)

        net.update_ip(fip, port_id=None)
        assert ks_server.wait_for_agent()
        assert source_seen(env, env.vm1) == router_ip
        assert unreachable(env, fip.floating_ip_address)
        net.delete_ip(fip)
    finally:
        member.close()
        admin.close()
