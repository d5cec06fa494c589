"""The seed's scenario through openstacksdk on every backend: the kernel agent on this host,
and OVN on two chassis (the VMs on the chassis that is not the gateway). The same checks
after each step: ping, TCP with the real source address both ways, SNAT source, the address
without a floating IP silent, disassociate cuts access, a move reaches the other VM.

A backend is a ``Deployment``: the API's URL, the upstream host, a way to plug a port into
a VM namespace, and "wait until the dataplane caught up". Names carry ``fa`` (kernel) or
``fo`` (OVN) prefixes and random suffixes; everything goes in finalizers.
"""
from __future__ import annotations

import ipaddress
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import pytest

from floatip import lab as L
from floatip.cli.demo import run_checks

pytestmark = [pytest.mark.kernel,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*influxdb:DeprecationWarning")]

from cloud import wait_for

EXT_CIDR, UPSTREAM_IP, EXT_GW = "203.0.113.0/24", "203.0.113.1", "203.0.113.1"
POOL = ("203.0.113.10", "203.0.113.99")
TENANT_CIDR = "198.51.100.0/24"
VM1_IP, VM2_IP = "198.51.100.10", "198.51.100.11"
FIP, NOT_FIP = "203.0.113.50", "203.0.113.51"
TCP_PORT = 8080


@dataclass
class Deployment:
    name: str
    url: str
    upstream: str
    lab: object                                   # .serve(ns, port=) for the probes
    plug: Callable[[str, dict, dict], str]        # (vm name, API port, subnets) -> namespace
    wait_synced: Callable[[], bool]
    expected_host: str | None = None              # binding:host_id of the VMs' ports
    extra: object = None                          # backend-specific handle (OvnLab, backend)


def _kernel(tmp_path):
    from test_e2e_sdk import Env
    from floatip.agent import binding
    from floatip.client import Client
    from floatip.dataplane.ovs import datapath_type
    from floatip.cli.demo_api import remove_all
    from floatip.server import Server, free_port
    lab = L.Lab(datapath_type())
    env = srv = None
    try:
        env = Env(lab)
        srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}", env.config,
                     prune_scope="known", interval=30).start()
        vms = {"vm1": env.vm1, "vm2": env.vm2}

        def plug(name, port, subnets):
            binding.plug(port, subnets, vms[name], env.int_br)
            return vms[name]
        yield Deployment("kernel", srv.url, env.upstream, lab, plug, srv.wait_for_agent)
    finally:
        try:
            if srv is not None:
                try:
                    with Client(srv.url) as c:
                        env.router_ids |= {r["id"] for r in c.list("router")}
                        remove_all(c)
                    srv.wait_for_agent()
                finally:
                    srv.close()
            if env is not None:
                env.remove_routers()
        finally:
            left = lab.cleanup()
        assert not left, f"could not clean up: {left}"


def ovn_deployment(tmp_path, distributed: bool = False, interval: float = 30.0,
                   chassis: int = 2, gateways: int = 1, agent_down_time: float = 75.0,
                   firewall: bool = False, prefix: str = "fo", auth=None):
    """Two chassis (or ``chassis``, the first ``gateways`` of them gateways); the API server
    without the kernel agent, the OVN backend following its database (a full pass every
    ``interval`` seconds). VMs go on the last chassis (not a gateway). ``auth``: the
    server's AuthSettings (an agents' secret). Skips when this host cannot run kernel or OVN
    tests."""
    from conftest import KERNEL_SKIP, _ovn_ready
    why = KERNEL_SKIP or _ovn_ready()
    if why:
        pytest.skip(why)
    from floatip.backends.ovn import OvnConfig
    from floatip.client import Client
    from floatip.cli.demo_api import remove_all
    from floatip.ovnlab import OvnLab
    from floatip.server import Server, free_port
    lab = OvnLab(prefix, mappings="all" if distributed else "gateway", chassis=chassis,
                 gateways=gateways)
    lab.start()
    srv = backend = None
    try:
        # as ``floatip serve --backend ovn`` does it (the API lists the chassis as agents)
        srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}",
                     backend="ovn", ovn=OvnConfig(
                         lab.nb, lab.sb, owner=f"floatip@{lab.tag}", distributed_fip=distributed,
                         interval=interval, agent_down_time=agent_down_time,
                         firewall=firewall), auth=auth)
        backend = srv.backend
        srv.start()

        def plug(name, port, subnets):
            ip = port["fixed_ips"][0]
            sub = subnets[ip["subnet_id"]]
            prefix = ipaddress.ip_network(sub["cidr"]).prefixlen
            return lab.vm(name, -1, port["id"], port["mac_address"],
                          f"{ip['ip_address']}/{prefix}", sub["gateway_ip"])
        yield Deployment("ovn", srv.url, lab.upstream, lab, plug, srv.wait_for_agent,
                         expected_host=lab.chassis[-1].name, extra=(lab, backend))
    finally:
        try:
            if srv is not None:
                try:
                    with Client(srv.url) as c:
                        remove_all(c)
                    if backend is not None:
                        assert srv.wait_for_agent(20), f"OVN backend did not catch up: {backend.stats}"
                        owned, _ = backend.nb.actual()
                        assert owned == {}, f"owned NB rows left: {sorted(owned)}"
                finally:
                    srv.close()   # stops the backend too
        finally:
            left = lab.close()
        assert not left, f"could not clean up: {left}"


@pytest.fixture(params=["kernel", "ovn"])
def deployment(request, tmp_path):
    if request.param == "ovn":
        yield from ovn_deployment(tmp_path)
    else:
        yield from _kernel(tmp_path)


def assert_checks(checks) -> None:
    bad = [f"({c.key}) {c.text}: {c.detail}" for c in checks if not c.ok]
    assert not bad, "dataplane checks failed:\n" + "\n".join(bad)


def unreachable(d: Deployment, ip: str) -> bool:
    return not L.ping(d.upstream, ip, count=1, timeout=0.5)


def source_seen(d: Deployment, vm: str) -> str | None:
    srv = d.lab.serve(d.upstream, port=TCP_PORT)
    try:
        return L.tcp_source(vm, UPSTREAM_IP, TCP_PORT)
    finally:
        srv.close()


class Scenario:
    """The seed's resources through openstacksdk; VMs plugged by the deployment."""

    def __init__(self, d: Deployment):
        import openstack
        self.d = d
        sfx = uuid.uuid4().hex[:5]
        self.conn = openstack.connect(auth_type="none", auth={"endpoint": d.url}, region_name="")
        net = self.net = self.conn.network
        self.ext = net.create_network(name=f"ext-{sfx}", is_router_external=True,
                                      provider_network_type="flat",
                                      provider_physical_network="physnet1")
        net.create_subnet(network_id=self.ext.id, cidr=EXT_CIDR, ip_version=4,
                          gateway_ip=EXT_GW, is_dhcp_enabled=False,
                          allocation_pools=[{"start": POOL[0], "end": POOL[1]}])
        self.tenant = net.create_network(name=f"net-{sfx}")
        self.sub = net.create_subnet(network_id=self.tenant.id, cidr=TENANT_CIDR, ip_version=4)
        self.router = net.create_router(name=f"r-{sfx}",
                                        external_gateway_info={"network_id": self.ext.id})
        self.router_ip = self.router.external_gateway_info["external_fixed_ips"][0]["ip_address"]
        net.add_interface_to_router(self.router, subnet=self.sub.id)
        subnets = {self.sub.id: {"cidr": self.sub.cidr, "gateway_ip": self.sub.gateway_ip}}
        self.ports, self.ns = {}, {}
        for name, ip in (("vm1", VM1_IP), ("vm2", VM2_IP)):
            p = net.create_port(network_id=self.tenant.id, name=f"{name}-{sfx}",
                                fixed_ips=[{"subnet_id": self.sub.id, "ip_address": ip}])
            self.ports[name] = p
            self.ns[name] = d.plug(name, p.to_dict(), subnets)

    def checks(self, with_fip: str, plain: str):
        return run_checks(self.d.upstream, self.ns[with_fip], self.ns[plain], FIP,
                          self.router_ip, NOT_FIP, UPSTREAM_IP, self.d.lab, TCP_PORT)


def test_seed_scenario(deployment):
    d = deployment
    sc = Scenario(d)
    net = sc.net
    wait_for(lambda: all(net.get_port(p.id).status == "ACTIVE" for p in sc.ports.values()),
             what="VM ports ACTIVE")
    if d.expected_host:
        assert {net.get_port(p.id).binding_host_id for p in sc.ports.values()} == \
            {d.expected_host}
    wait_for(lambda: net.get_router(sc.router.id).status == "ACTIVE", what="router ACTIVE")
    assert d.wait_synced()
    # no floating IP: the VMs leave through SNAT; nothing answers on the FIP address
    wait_for(lambda: source_seen(d, sc.ns["vm1"]) == sc.router_ip, what="SNAT source")
    assert unreachable(d, FIP)

    fip = net.create_ip(floating_network_id=sc.ext.id, floating_ip_address=FIP,
                        port_id=sc.ports["vm1"].id)
    t0 = time.perf_counter()
    wait_for(lambda: net.get_ip(fip.id).status == "ACTIVE", what="floating IP ACTIVE")
    wait_for(lambda: L.ping(d.upstream, FIP, timeout=0.2), what="first ping through the FIP")
    print(f"\n[{d.name}] associate -> first ping: {(time.perf_counter() - t0) * 1000:.0f} ms")
    assert_checks(sc.checks("vm1", "vm2"))

    # move to vm2: the FIP reaches vm2, vm1 falls back to SNAT
    fip = net.update_ip(fip, port_id=sc.ports["vm2"].id)
    assert fip.fixed_ip_address == VM2_IP
    wait_for(lambda: net.get_ip(fip.id).status == "ACTIVE", what="moved FIP ACTIVE")
    assert d.wait_synced()
    assert_checks(sc.checks("vm2", "vm1"))

    # disassociate: the address stops answering, vm2 leaves through SNAT
    fip = net.update_ip(fip, port_id=None)
    assert d.wait_synced()
    assert net.get_ip(fip.id).status == "DOWN"
    wait_for(lambda: unreachable(d, FIP), what="FIP unreachable after disassociate")
    assert source_seen(d, sc.ns["vm2"]) == sc.router_ip

    # associate again, then delete: the address goes away with it
    net.update_ip(fip, port_id=sc.ports["vm1"].id)
    wait_for(lambda: net.get_ip(fip.id).status == "ACTIVE", what="re-associated FIP ACTIVE")
    wait_for(lambda: source_seen(d, sc.ns["vm1"]) == FIP, what="vm1 leaves from the FIP")
    net.delete_ip(fip)
    assert d.wait_synced()
    wait_for(lambda: unreachable(d, FIP), what="FIP unreachable after delete")
    assert source_seen(d, sc.ns["vm1"]) == sc.router_ip
