"""The seed's scenario through the clients users already have: openstacksdk (in-process
server) and the ``openstack`` CLI (``floatip serve`` as a subprocess), with real namespaces,
veths and OVS bridges. The dataplane is checked after each step: ping and the TCP source
address each side sees (demo.run_checks and lab probes).

Every name carries a random suffix and the ``fa`` prefix; bridges, namespaces, router
namespaces and processes are removed in finalizers, whether the test passed or not.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from floatip.agent import binding
from floatip import lab as L
from floatip.cli.demo import run_checks
from floatip.core.layout import AgentConfig

from cloud import stop_process, wait_for

pytestmark = [pytest.mark.kernel,  # conftest skips it, saying why, without root or OVS
              # openstacksdk's own notices about its future releases
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*influxdb:DeprecationWarning")]

BIN = os.path.dirname(sys.executable)
EXT_CIDR, UPSTREAM_IP, EXT_GW = "203.0.113.0/24", "203.0.113.1", "203.0.113.1"
POOL = ("203.0.113.10", "203.0.113.99")
TENANT_CIDR = "198.51.100.0/24"
VM1_IP, VM2_IP = "198.51.100.10", "198.51.100.11"
FIP = "203.0.113.50"
NOT_FIP = "203.0.113.51"
TCP_PORT = 8080


class Env:
    """Bridges, an upstream host on the external bridge and two empty VM namespaces."""

    def __init__(self, lab: L.Lab, prefix: str = "fa"):
        sfx = uuid.uuid4().hex[:5]
        self.sfx = sfx
        self.lab = lab
        p = prefix
        self.int_br, self.ex_br = f"{p}{sfx}i", f"{p}{sfx}e"
        self.upstream, self.vm1, self.vm2 = f"{p}{sfx}up", f"{p}{sfx}v1", f"{p}{sfx}v2"
        self.config = AgentConfig(self.int_br, {"physnet1": self.ex_br})
        self.router_ids: set[str] = set()
        lab.bridge(self.int_br)
        lab.bridge(self.ex_br)
        lab.host(self.upstream, self.ex_br, f"{p}{sfx}u0", f"{UPSTREAM_IP}/24")
        for ns in (self.vm1, self.vm2):
            L.sh("ip", "netns", "add", ns)
            lab.namespaces.append(ns)

    def remove_routers(self) -> None:
        """Safety net after the API cleanup: floatip's router namespaces and ports of this
        test's routers go, even if the agent failed."""
        if not self.router_ids:
            return
        from floatip.agent.reconciler import reconcile
        from floatip.dataplane.kernel import Dataplane
        from floatip.core.model import State
        for attempt in range(5):
            dp = Dataplane(self.config.nat_driver)
            try:
                reconcile(dp, State(), self.config, remove=set(self.router_ids))
                return
            except RuntimeError:  # the OVSDB IDL changed under observe(): other tests' bridges
                if attempt == 4:
                    raise
            finally:
                dp.close()


@pytest.fixture
def env(request):
    from floatip.dataplane.ovs import datapath_type
    lab = L.Lab(datapath_type())
    e = None
    try:
        e = Env(lab, getattr(request.module, "NAME_PREFIX", "fa"))
        yield e
    finally:
        try:
            if e is not None:
                e.remove_routers()
        finally:  # hosts and bridges go even if the router safety net failed
            left = lab.cleanup()
        assert not left, f"could not clean up: {left}"


def assert_checks(checks) -> None:
    bad = [f"({c.key}) {c.text}: {c.detail}" for c in checks if not c.ok]
    assert not bad, "dataplane checks failed:\n" + "\n".join(bad)


def unreachable(env: Env, ip: str) -> bool:
    return not L.ping(env.upstream, ip, count=1, timeout=0.5)


def source_seen(env: Env, vm: str) -> str | None:
    srv = env.lab.serve(env.upstream, port=TCP_PORT)
    try:
        return L.tcp_source(vm, UPSTREAM_IP, TCP_PORT)
    finally:
        srv.close()


# ---------------------------------------------------------------------------------------

@pytest.fixture
def sdk_server(env, tmp_path):
    from floatip.server import Server, free_port
    srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}", env.config,
                 prune_scope="known", interval=30).start()
    try:
        yield srv
    finally:
        try:
            from floatip.client import Client
            from floatip.cli.demo_api import remove_all
            with Client(srv.url) as c:
                env.router_ids |= {r["id"] for r in c.list("router")}
                remove_all(c)
            srv.wait_for_agent()
        finally:
            srv.close()


def test_seed_scenario_through_openstacksdk(env, sdk_server):
    import openstack
    conn = openstack.connect(auth_type="none", auth={"endpoint": sdk_server.url},
                             region_name="")
    net = conn.network
    ext = net.create_network(name=f"fa-ext-{env.sfx}", is_router_external=True,
                             provider_network_type="flat", provider_physical_network="physnet1")
    ext_sub = net.create_subnet(network_id=ext.id, cidr=EXT_CIDR, ip_version=4,
                                gateway_ip=EXT_GW, is_dhcp_enabled=False,
                                allocation_pools=[{"start": POOL[0], "end": POOL[1]}])
    tenant = net.create_network(name=f"fa-net-{env.sfx}")
    sub = net.create_subnet(network_id=tenant.id, cidr=TENANT_CIDR, ip_version=4)
    router = net.create_router(name=f"fa-r-{env.sfx}",
                               external_gateway_info={"network_id": ext.id})
    env.router_ids.add(router.id)
    router_ip = router.external_gateway_info["external_fixed_ips"][0]["ip_address"]
    net.add_interface_to_router(router, subnet=sub.id)
    vm1 = net.create_port(network_id=tenant.id, name="fa-vm1",
                          fixed_ips=[{"subnet_id": sub.id, "ip_address": VM1_IP}])
    vm2 = net.create_port(network_id=tenant.id, name="fa-vm2",
                          fixed_ips=[{"subnet_id": sub.id, "ip_address": VM2_IP}])
    subnets = {sub.id: {"cidr": sub.cidr, "gateway_ip": sub.gateway_ip}}
    for port, ns in ((vm1, env.vm1), (vm2, env.vm2)):
        binding.plug(port.to_dict(), subnets, ns, env.int_br)
    # the agent sees iface-id, tags the VM ports and binds them
    wait_for(lambda: all(net.get_port(p.id).status == "ACTIVE" for p in (vm1, vm2)),
             what="VM ports ACTIVE")
    assert net.get_port(vm1.id).binding_host_id
    wait_for(lambda: net.get_router(router.id).status == "ACTIVE", what="router ACTIVE")
    assert sdk_server.wait_for_agent()
    # a router this agent cannot build (no bridge for its physical network) is ERROR and
    # does not hold up the others
    odd = net.create_network(name=f"fa-odd-{env.sfx}", is_router_external=True,
                             provider_network_type="flat", provider_physical_network="fa-nomap")
    net.create_subnet(network_id=odd.id, cidr="192.0.2.0/24", ip_version=4)
    odd_router = net.create_router(name=f"fa-odd-{env.sfx}",
                                   external_gateway_info={"network_id": odd.id})
    env.router_ids.add(odd_router.id)
    wait_for(lambda: net.get_router(odd_router.id).status == "ERROR", what="odd router ERROR")
    assert net.get_router(router.id).status == "ACTIVE"
    odd_net = net.create_network(name=f"fa-oddn-{env.sfx}")
    odd_sub = net.create_subnet(network_id=odd_net.id, cidr="100.64.20.0/24", ip_version=4)
    net.add_interface_to_router(odd_router, subnet=odd_sub.id)
    odd_port = net.create_port(network_id=odd_net.id)
    odd_fip = net.create_ip(floating_network_id=odd.id, port_id=odd_port.id)
    wait_for(lambda: net.get_ip(odd_fip.id).status == "ERROR", what="its floating IP ERROR")
    net.delete_ip(odd_fip)
    net.remove_interface_from_router(odd_router, subnet=odd_sub.id)
    net.delete_router(odd_router)
    # no floating IP yet: both VMs leave through SNAT; nothing answers on the FIP address
    assert source_seen(env, env.vm1) == router_ip
    assert unreachable(env, FIP)

    # create + associate: DOWN until the agent programmed it, then ACTIVE
    fip = net.create_ip(floating_network_id=ext.id, floating_ip_address=FIP, port_id=vm1.id)
    t0 = time.perf_counter()
    assert fip.router_id == router.id and fip.fixed_ip_address == VM1_IP
    wait_for(lambda: net.get_ip(fip.id).status == "ACTIVE", what="floating IP ACTIVE")
    wait_for(lambda: L.ping(env.upstream, FIP, timeout=0.2), what="first ping through the FIP")
    print(f"\nassociate -> first ping through the FIP: {(time.perf_counter() - t0) * 1000:.0f} ms")
    assert_checks(run_checks(env.upstream, env.vm1, env.vm2, FIP, router_ip, NOT_FIP,
                             UPSTREAM_IP, env.lab, TCP_PORT))
    assert [f.id for f in net.ips(port_id=vm1.id)] == [fip.id]

    # drift: someone removes the FIP address from the router; a full resync repairs it
    ns = f"qrouter-{router.id}"
    qg = next(net.ports(device_id=router.id, device_owner="network:router_gateway"))
    L.sh("ip", "netns", "exec", ns, "ip", "addr", "del", f"{FIP}/32", "dev", ("qg-" + qg.id)[:14])
    # upstream forgets the MAC it had cached; nobody answers ARP for the address now
    L.sh("ip", "netns", "exec", env.upstream, "ip", "neigh", "flush", "dev", "eth0")
    wait_for(lambda: unreachable(env, FIP), what="FIP gone after the drift")
    from floatip.client import Client
    full_passes = sdk_server.agent.stats.full_passes
    with Client(sdk_server.url) as c:
        c.sync(full=True)
    wait_for(lambda: sdk_server.agent.stats.full_passes > full_passes, what="a full pass")
    wait_for(lambda: L.ping(env.upstream, FIP, timeout=0.2), what="FIP repaired by resync")

    # move to vm2: the FIP now reaches vm2, vm1 falls back to SNAT
    fip = net.update_ip(fip, port_id=vm2.id)
    assert fip.fixed_ip_address == VM2_IP
    wait_for(lambda: net.get_ip(fip.id).status == "ACTIVE", what="moved FIP ACTIVE")
    assert sdk_server.wait_for_agent()
    assert_checks(run_checks(env.upstream, env.vm2, env.vm1, FIP, router_ip, NOT_FIP,
                             UPSTREAM_IP, env.lab, TCP_PORT))

    # disassociate: the address stops answering, vm2 leaves through SNAT
    fip = net.update_ip(fip, port_id=None)
    assert fip.port_id is None and fip.router_id is None
    assert sdk_server.wait_for_agent()
    assert net.get_ip(fip.id).status == "DOWN"
    wait_for(lambda: unreachable(env, FIP), what="FIP unreachable after disassociate")
    assert source_seen(env, env.vm2) == router_ip

    # associate again, then delete: the address goes away with it
    net.update_ip(fip, port_id=vm1.id)
    wait_for(lambda: net.get_ip(fip.id).status == "ACTIVE", what="re-associated FIP ACTIVE")
    wait_for(lambda: L.ping(env.upstream, FIP, timeout=0.2), what="ping after re-associate")
    assert source_seen(env, env.vm1) == FIP
    net.delete_ip(fip)
    with pytest.raises(openstack.exceptions.NotFoundException):
        net.get_ip(fip.id)
    assert sdk_server.wait_for_agent()
    wait_for(lambda: unreachable(env, FIP), what="FIP unreachable after delete")
    assert source_seen(env, env.vm1) == router_ip

    # extra routes: the router routes 192.0.2.0/24 via vm2, which holds 192.0.2.1
    L.sh("ip", "netns", "exec", env.vm2, "ip", "addr", "add", "192.0.2.1/32", "dev", "lo")
    router = net.update_router(router, routes=[{"destination": "192.0.2.0/24",
                                                "nexthop": VM2_IP}])
    assert router.routes == [{"destination": "192.0.2.0/24", "nexthop": VM2_IP}]
    assert sdk_server.wait_for_agent()
    wait_for(lambda: L.ping(ns, "192.0.2.1", timeout=0.2), what="ping over the extra route")
    net.update_router(router, routes=[])
    assert sdk_server.wait_for_agent()
    wait_for(lambda: L.sh("ip", "netns", "exec", ns, "ip", "route", "show", "192.0.2.0/24")
             .stdout == "", what="extra route removed")

    # an interface whose iface-id floatip does not know gets no VLAN and is left alone
    stray = f"fa{env.sfx}x"
    L.sh("ip", "link", "add", stray, "type", "veth", "peer", "name", stray + "p")
    env.lab.veths.append(stray)
    L.sh("ovs-vsctl", "add-port", env.int_br, stray, "--", "set", "Interface", stray,
         f"external_ids:iface-id={uuid.uuid4()}")
    sdk_server.agent.request_full()
    time.sleep(0.3)
    assert sdk_server.wait_for_agent()
    assert L.sh("ovs-vsctl", "get", "Port", stray, "tag").stdout.strip() == "[]"
    # ... but on an integration bridge floatip made itself, floatip is the L2 agent and parks
    # it on the dead VLAN, as Neutron's OVS agent does
    L.sh("ovs-vsctl", "br-set-external-id", env.int_br, "floatip-owned", "true")
    sdk_server.agent.request_full()
    wait_for(lambda: L.sh("ovs-vsctl", "get", "Port", stray, "tag").stdout.strip() == "4095",
             what="unknown iface-id on the dead VLAN")
    # the VM's tap and the router's qr- port share the tenant network's local VLAN
    qr = next(net.ports(device_id=router.id, device_owner="network:router_interface"))
    tags = {L.sh("ovs-vsctl", "get", "Port", name, "tag").stdout.strip()
            for name in (binding.tap_name(vm1.id), ("qr-" + qr.id)[:14])}
    assert len(tags) == 1 and tags != {"4095"}, tags

    # a port that is administratively down goes to the dead VLAN, and comes back
    net.update_port(vm2, is_admin_state_up=False)
    wait_for(lambda: L.sh("ovs-vsctl", "get", "Port", binding.tap_name(vm2.id), "tag")
             .stdout.strip() == "4095", what="admin-down port on VLAN 4095")
    net.update_port(vm2, is_admin_state_up=True)
    wait_for(lambda: L.sh("ovs-vsctl", "get", "Port", binding.tap_name(vm2.id), "tag")
             .stdout.strip() in tags, what="admin-up port back on its VLAN")

    # a deleted port's interface falls back to the dead VLAN
    spare = net.create_port(network_id=tenant.id, name="fa-spare")
    spare_ns = f"fa{env.sfx}v3"
    L.sh("ip", "netns", "add", spare_ns)
    env.lab.namespaces.append(spare_ns)
    binding.plug(spare.to_dict(), subnets, spare_ns, env.int_br)
    wait_for(lambda: net.get_port(spare.id).status == "ACTIVE", what="spare port ACTIVE")
    net.delete_port(spare)
    wait_for(lambda: L.sh("ovs-vsctl", "get", "Port", binding.tap_name(spare.id), "tag")
             .stdout.strip() == "4095", what="deleted port's interface on VLAN 4095")

    # removing the router through the API removes its namespace
    net.remove_interface_from_router(router, subnet=sub.id)
    net.delete_router(router)
    assert sdk_server.wait_for_agent()
    assert f"qrouter-{router.id}" not in L.sh("ip", "netns", "list").stdout
    _ = ext_sub


# ---------------------------------------------------------------------------------------

@pytest.fixture
def cli_server(env, tmp_path):
    """``floatip serve --no-agent`` and ``floatip agent --server URL`` as two processes, on
    this test's bridges: the agent follows the API the way it does on a network node."""
    from floatip.server import free_port
    url = f"http://127.0.0.1:{free_port()}"
    log = open(tmp_path / "serve.log", "w")
    glob = [f"{BIN}/floatip", "--integration-bridge", env.int_br, "--bridge-mapping",
            f"physnet1:{env.ex_br}"]
    procs = [subprocess.Popen([*glob, "serve", "--no-agent", "--listen",
                               url.removeprefix("http://"), "--db",
                               f"sqlite:///{tmp_path}/floatip.db"],
                              stdout=log, stderr=subprocess.STDOUT)]
    try:
        wait_for(lambda: procs[0].poll() is not None or _answers(url), timeout=30,
                 what="floatip serve")
        assert procs[0].poll() is None, (tmp_path / "serve.log").read_text()
        # the firewall (on by default) is test_firewall_e2e's: these steps check the routing
        procs.append(subprocess.Popen([*glob, "agent", "--server", url, "--prune", "known",
                                       "--no-firewall"],
                                      stdout=log, stderr=subprocess.STDOUT))
        yield url
    finally:
        try:
            from floatip.client import Client
            from floatip.cli.demo_api import remove_all
            if procs[0].poll() is None:
                with Client(url) as c:
                    env.router_ids |= {r["id"] for r in c.list("router")}
                    remove_all(c)
                time.sleep(1.0)  # the agent follows at once; give it a moment
        finally:
            for proc in reversed(procs):
                stop_process(proc)
            log.close()
            print((tmp_path / "serve.log").read_text()[-3000:])


def _answers(url: str) -> bool:
    import httpx
    try:
        return httpx.get(url + "/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_main_steps_with_the_openstack_cli(env, cli_server):
    import json

    def osc(*args) -> str:
        r = subprocess.run([f"{BIN}/openstack", "--os-auth-type", "none", "--os-endpoint",
                            cli_server, *args], capture_output=True, text=True)
        assert r.returncode == 0, f"openstack {' '.join(args)}: {r.stderr}"
        return r.stdout.strip()

    def floatip(*args) -> str:
        r = subprocess.run([f"{BIN}/floatip", "--integration-bridge", env.int_br, *args,
                            "--url", cli_server], capture_output=True, text=True)
        assert r.returncode == 0, f"floatip {' '.join(args)}: {r.stdout}{r.stderr}"
        return r.stdout

    s = env.sfx
    osc("network", "create", "--external", "--provider-network-type", "flat",
        "--provider-physical-network", "physnet1", f"fa-ext-{s}")
    osc("subnet", "create", "--network", f"fa-ext-{s}", "--subnet-range", EXT_CIDR,
        "--gateway", EXT_GW, "--allocation-pool", f"start={POOL[0]},end={POOL[1]}",
        "--no-dhcp", f"fa-extsub-{s}")
    osc("network", "create", f"fa-net-{s}")
    osc("subnet", "create", "--network", f"fa-net-{s}", "--subnet-range", TENANT_CIDR,
        f"fa-sub-{s}")
    rid = osc("router", "create", f"fa-r-{s}", "-f", "value", "-c", "id")
    env.router_ids.add(rid)
    osc("router", "set", "--external-gateway", f"fa-ext-{s}", f"fa-r-{s}")
    osc("router", "add", "subnet", f"fa-r-{s}", f"fa-sub-{s}")
    router = json.loads(osc("router", "show", f"fa-r-{s}", "-f", "json"))
    router_ip = router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]
    for name, ip, ns in (("fa-vm1", VM1_IP, env.vm1), ("fa-vm2", VM2_IP, env.vm2)):
        osc("port", "create", "--network", f"fa-net-{s}", "--fixed-ip",
            f"subnet=fa-sub-{s},ip-address={ip}", f"{name}-{s}")
        floatip("port", "plug", f"{name}-{s}", "--netns", ns)  # waits for ACTIVE
    osc("floating", "ip", "create", "--floating-ip-address", FIP, "--port", f"fa-vm1-{s}",
        f"fa-ext-{s}")
    wait_for(lambda: osc("floating", "ip", "show", FIP, "-f", "value", "-c", "status")
             == "ACTIVE", what="floating IP ACTIVE")
    assert_checks(run_checks(env.upstream, env.vm1, env.vm2, FIP, router_ip, NOT_FIP,
                             UPSTREAM_IP, env.lab, TCP_PORT))
    osc("floating", "ip", "set", "--port", f"fa-vm2-{s}", FIP)
    wait_for(lambda: source_seen(env, env.vm2) == FIP, what="vm2 leaves from the moved FIP")
    assert source_seen(env, env.vm1) == router_ip
    osc("floating", "ip", "unset", "--port", FIP)
    wait_for(lambda: unreachable(env, FIP), what="FIP unreachable after unset")
    assert source_seen(env, env.vm2) == router_ip
    osc("floating", "ip", "delete", FIP)
    assert FIP not in osc("floating", "ip", "list", "-f", "value")
    floatip("port", "unplug", f"fa-vm1-{s}")
    wait_for(lambda: json.loads(osc("port", "show", f"fa-vm1-{s}", "-f", "json"))["status"]
             == "DOWN", what="unplugged port DOWN")
