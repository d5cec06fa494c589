"""DHCP on real namespaces, OVS and dnsmasq, answered to ISC dhclient in a VM namespace."""
from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import time
import uuid

import pytest

from floatip.core.dhcp import OWNER_KEY
from floatip.agent.dhcp import DhcpAgent
from floatip.core.model import Network, Port, State, Subnet, stable_mac

from dhcpvm import Vm, sh

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("dnsmasq") is None or shutil.which("dhclient") is None,
                                 reason="dnsmasq-base and isc-dhcp-client needed (make install)")]
CIDR, GW = "198.51.100.0/24", "198.51.100.1"


class Net:
    """A tenant network with DHCP in the desired state, its bridge and DHCP agent."""

    def __init__(self, lab, workdir: str):
        sid = uuid.uuid4().hex[:6]
        self.sid, self.workdir = sid, workdir
        self.bridge = lab.bridge(f"fd-int-{sid}")
        self.net = Network(id=str(uuid.uuid4()), name=f"fd-net-{sid}", local_vlan=7, mtu=1400)
        self.subnet = Subnet(id=str(uuid.uuid4()), network_id=self.net.id, cidr=CIDR,
                             gateway_ip=GW, enable_dhcp=True, dns_nameservers=("192.0.2.53",),
                             host_routes=(("192.0.2.0/24", "198.51.100.254"),))
        dhcp_id = str(uuid.uuid4())
        self.ports = {dhcp_id: Port(id=dhcp_id, network_id=self.net.id,
                                    fixed_ips=((self.subnet.id, "198.51.100.2"),),
                                    mac_address=stable_mac(dhcp_id), device_owner="network:dhcp",
                                    device_id=f"dhcp-{self.net.id}")}
        self.dhcp_port = dhcp_id
        # its own instance: a server under test elsewhere on the host (prune all) leaves
        # another instance's namespaces alone, never an unmarked one
        self.instance = f"fdt-{sid}"
        self.agent = DhcpAgent(self.bridge, state_dir=os.path.join(workdir, "dhcp"),
                               prune_scope="known", instance=self.instance)
        self.vms: list[Vm] = []

    def port(self, name: str, ip: str) -> Port:
        pid = str(uuid.uuid4())
        p = Port(id=pid, network_id=self.net.id, fixed_ips=((self.subnet.id, ip),),
                 mac_address=stable_mac(pid), name=name, device_owner="compute:nova")
        self.ports[pid] = p
        return p

    def state(self) -> State:
        return State({self.net.id: self.net}, {self.subnet.id: self.subnet}, dict(self.ports))

    def sync(self, state: State | None = None) -> None:
        errors = self.agent.sync(state or self.state())
        assert not errors, errors

    def vm(self, port: Port) -> Vm:
        vm = Vm(f"fd-vm{len(self.vms)}-{self.sid}", self.bridge, port.mac_address, self.workdir,
                tag=self.net.local_vlan)
        self.vms.append(vm)
        return vm

    @property
    def ns(self) -> str:
        return f"qdhcp-{self.net.id}"

    def close(self) -> None:
        for vm in self.vms:
            vm.close()
        try:  # the DHCP namespace through floatip: prune what this agent served
            self.agent.sync(State())
        finally:
            self.agent.close()


@pytest.fixture
def net(lab, tmp_path_factory):
    workdir = f"/run/fd-test-{uuid.uuid4().hex[:6]}"  # dnsmasq rereads its files as nobody
    os.makedirs(workdir, mode=0o755)
    n = Net(lab, workdir)
    yield n
    n.close()
    shutil.rmtree(workdir, ignore_errors=True)
    assert not os.path.exists(f"/run/netns/{n.ns}")


def running(pid: int) -> bool:
    """Alive and not a zombie (here PID 1 may not reap daemons' exits)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def dnsmasq_pid(net: Net) -> int:
    with open(os.path.join(net.agent.dp.conf_dir(net.net.id), "pid")) as f:
        return int(f.read())


def test_vm_gets_its_address_and_options_from_dnsmasq(net):
    p = net.port("web-1", "198.51.100.10")
    net.sync()
    # the namespace is floatip's, its tap on the network's VLAN, owned by floatip
    assert sh("ip", "netns", "exec", net.ns, "ip", "-o", "link", "show", "lo").stdout.find(
        "floatip dhcp=" + net.net.id) > 0
    tap = "tap" + net.dhcp_port[:11]
    assert sh("ovs-vsctl", "get", "Port", tap, "tag").stdout.strip() == "7"
    assert sh("ovs-vsctl", "get", "Interface", tap, f"external_ids:{OWNER_KEY}").stdout.strip() \
        .strip('"') == net.net.id
    assert "198.51.100.2/24" in sh("ip", "netns", "exec", net.ns, "ip", "-4", "-o", "addr").stdout

    vm = net.vm(p)
    got = vm.dhclient()
    assert got["new_ip_address"] == "198.51.100.10"
    assert got["new_routers"] == GW
    assert got["new_domain_name_servers"] == "192.0.2.53"
    assert got["new_interface_mtu"] == "1400"
    assert got.get("new_host_name") == "web-1"
    assert got["new_dhcp_lease_time"] == "86400"
    # host route and default route as classless static routes (RFC 3442), applied by the VM
    routes = vm.run("ip", "-4", "route").stdout
    assert "192.0.2.0/24 via 198.51.100.254" in routes and f"default via {GW}" in routes
    assert "198.51.100.10/24" in vm.run("ip", "-4", "-o", "addr").stdout
    assert "mtu 1400" in vm.run("ip", "link", "show", "eth0").stdout


def test_port_changes_signal_dnsmasq_and_a_dead_one_is_restarted(net):
    net.port("a", "198.51.100.10")
    net.sync()
    pid = dnsmasq_pid(net)
    # a second VM port: hosts file rewritten, same dnsmasq (SIGHUP, no restart)
    p2 = net.port("b", "198.51.100.11")
    net.sync()
    assert dnsmasq_pid(net) == pid
    hosts = open(os.path.join(net.agent.dp.conf_dir(net.net.id), "host")).read()
    assert f"{p2.mac_address},b,198.51.100.11" in hosts
    assert net.vm(p2).dhclient()["new_ip_address"] == "198.51.100.11"
    # nothing changed: no write at all
    before = net.agent.dp.writes
    net.sync()
    assert net.agent.dp.writes == before
    # dnsmasq dies: the next pass starts it again
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}") or \
                open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.02)
    net.sync()
    assert dnsmasq_pid(net) != pid and net.agent.dp.restarts == 1
    # a subnet change on the command line's side (DHCP port address) restarts it
    pid = dnsmasq_pid(net)
    net.ports[net.dhcp_port] = dataclasses.replace(
        net.ports[net.dhcp_port], fixed_ips=((net.subnet.id, "198.51.100.3"),))
    net.sync()
    assert "198.51.100.3/24" in sh("ip", "netns", "exec", net.ns, "ip", "-4", "-o", "addr").stdout
    assert "198.51.100.2/24" not in sh("ip", "netns", "exec", net.ns, "ip", "-4", "-o", "addr").stdout


def test_dhcp_disabled_removes_dnsmasq_namespace_and_tap(net):
    p = net.port("a", "198.51.100.10")
    net.sync()
    pid = dnsmasq_pid(net)
    tap = "tap" + net.dhcp_port[:11]
    net.sync(dataclasses.replace(net.state(), subnets={
        net.subnet.id: dataclasses.replace(net.subnet, enable_dhcp=False)}))
    assert not os.path.exists(f"/proc/{pid}") or \
        open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    assert not os.path.exists(f"/run/netns/{net.ns}")
    assert sh("ovs-vsctl", "--if-exists", "get", "Port", tap, "name", check=False).stdout == ""
    assert not os.path.exists(net.agent.dp.conf_dir(net.net.id))
    # a VM asking now gets no answer (the DHCP server is gone)
    vm = net.vm(p)
    with pytest.raises(Exception):
        vm.dhclient(timeout=8)


def test_an_unknown_mac_gets_no_address(net):
    net.port("a", "198.51.100.10")
    net.sync()
    stranger = Port(id=str(uuid.uuid4()), network_id=net.net.id, fixed_ips=(),
                    mac_address="fa:16:3e:00:00:99")
    vm = net.vm(stranger)
    with pytest.raises(Exception):
        vm.dhclient(timeout=8)


def test_a_network_without_router_gets_its_integration_bridge(net, lab):
    """DHCP alone (an isolated network): the agent makes the integration bridge it needs,
    marked as floatip's, as the routers' agent does."""
    bridge = f"fd-new-{net.sid}"
    lab.bridges.append(bridge)  # removed by the lab whatever happens
    net.agent.close()
    net.agent = DhcpAgent(bridge, state_dir=os.path.join(net.workdir, "dhcp"),
                          prune_scope="known", instance=net.instance)
    net.bridge = bridge
    p = net.port("a", "198.51.100.10")
    net.sync()
    assert sh("ovs-vsctl", "br-get-external-id", bridge, "floatip-owned").stdout.strip() == "true"
    assert net.vm(p).dhclient()["new_ip_address"] == "198.51.100.10"


def test_a_pass_enters_no_namespace_it_already_knows_and_sees_one_replaced(net, monkeypatch):
    """The mark of a DHCP namespace is read once per namespace (by its identity), not at
    every pass; a namespace replaced by hand under the same name is read again, and the
    next pass rebuilds DHCP in it."""
    p = net.port("web-4", "198.51.100.13")
    net.sync()
    dp = net.agent.dp
    assert net.ns in dp._marks, "the namespace made by the pass holds its mark"
    # what is checked: no read of a namespace whose identity the cache already holds. A read
    # after the cache lost it (a mark unreadable on a starved machine, a namespace missing
    # from one directory listing while others come and go) is by design.
    reads: list[str] = []
    needless: list[str] = []
    real = dp._marked

    def spy(ns):
        st = os.stat(os.path.join("/run/netns", ns))
        cached = dp._marks.get(ns)
        if cached is not None and cached[0] == (st.st_dev, st.st_ino):
            needless.append(ns)
        reads.append(ns)
        return real(ns)
    monkeypatch.setattr(dp, "_marked", spy)
    for _ in range(4):
        net.sync()
    assert needless == []
    assert len(reads) <= 1, reads          # not at every pass
    reads.clear()
    pid = dnsmasq_pid(net)
    sh("ip", "netns", "del", net.ns)          # by hand: dnsmasq lives on in the lost one
    sh("ip", "netns", "add", net.ns)          # same name, another namespace, unmarked
    seen = net.agent.dp.observe().get(net.net.id)
    assert seen is None or seen.namespace is None  # not floatip's: no mark
    assert reads == [net.ns]                  # read again: its identity changed
    sh("ip", "netns", "del", net.ns)
    net.sync()                                # gone: made anew, marked, tap and dnsmasq back
    assert net.agent.dp.observe()[net.net.id].namespace == net.ns
    assert dnsmasq_pid(net) != pid and not running(pid)  # the lost one was ended
    assert net.vm(p).dhclient()["new_ip_address"] == "198.51.100.13"


def test_an_admin_down_dhcp_port_stays_on_the_dead_vlan_across_passes(net):
    """The DHCP pass and the port binder agree: an admin-down DHCP port's tap is on the dead
    VLAN after every pass of both, and dnsmasq answers nobody."""
    from floatip.agent.binding import Binder
    p = net.port("a", "198.51.100.10")
    net.ports[net.dhcp_port] = dataclasses.replace(net.ports[net.dhcp_port], admin_state_up=False)
    tap = "tap" + net.dhcp_port[:11]
    binder = Binder(net.bridge, "lft-host")
    # the agent's vm_ports: every port of the network, the DHCP one admin-down
    vm_ports = {pid: {"tag": net.net.local_vlan, "admin_state_up": q.admin_state_up, "host": ""}
                for pid, q in net.ports.items()}
    try:
        for _ in range(3):
            net.sync()
            binder.sync(vm_ports)
            assert sh("ovs-vsctl", "get", "Port", tap, "tag").stdout.strip() == "4095"
        writes = net.agent.dp.writes
        net.sync()
        binder.sync(vm_ports)
        assert net.agent.dp.writes == writes  # nothing rewritten: no fight
    finally:
        binder.close()
    vm = net.vm(p)
    with pytest.raises(Exception):
        vm.dhclient(timeout=8)


def test_a_restarted_agent_prunes_its_instances_stale_dhcp_namespace_only(lab, tmp_path):
    """A network deleted while the agent was down: the new agent (same instance, knowing
    nothing) kills its dnsmasq and removes the namespace; another instance's stays."""
    workdir = f"/run/lft-test-{uuid.uuid4().hex[:6]}"
    os.makedirs(workdir, mode=0o755)
    mine, other = Net(lab, workdir), Net(lab, workdir)
    for n, inst in ((mine, "lft-a"), (other, "lft-b")):
        n.agent.close()
        n.agent = DhcpAgent(n.bridge, state_dir=os.path.join(workdir, "dhcp"),
                            prune_scope="known", instance=inst)
    try:
        mine.sync()
        other.sync()
        pid = dnsmasq_pid(mine)
        mine.agent.close()  # the agent goes down; the network is deleted meanwhile
        mine.agent = DhcpAgent(mine.bridge, state_dir=os.path.join(workdir, "dhcp"),
                               prune_scope="known", instance="lft-a")
        mine.sync(State())
        assert not running(pid)
        assert not os.path.exists(f"/run/netns/{mine.ns}")
        assert os.path.exists(f"/run/netns/{other.ns}") and running(dnsmasq_pid(other))
    finally:
        mine.close()
        other.close()
        shutil.rmtree(workdir, ignore_errors=True)
    assert not os.path.exists(f"/run/netns/{other.ns}")


def test_floatip_show_lists_the_dhcp_namespace_its_dnsmasq_and_addresses(net):
    import json
    import subprocess
    import sys
    net.port("a", "198.51.100.10")
    net.sync()
    pid = dnsmasq_pid(net)

    def shown():
        out = subprocess.run([sys.executable, "-m", "floatip.cli.main", "show", "--json"],
                             capture_output=True, text=True, env=os.environ)
        assert out.returncode == 0, out.stderr
        return {n["network_id"]: n for n in json.loads(out.stdout)["dhcp"]}[net.net.id]

    n = shown()
    assert n["namespace"] == net.ns and n["dnsmasq_pid"] == pid and n["dnsmasq_alive"]
    assert "198.51.100.2/24" in n["addresses"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not shown()["dnsmasq_alive"]
