"""A VM on OVN sends no IPv6 router advertisement to its neighbours (issue 22), while the
router's still arrive and neighbour discovery works: OVN 23.03 lets RAs skip every ACL, so
the chassis agent (``floatip ovn-metadata``) drops them on br-int (raguard.py). Two chassis
through floatip.ovnlab: one neighbour beside the VM, one on the other chassis."""
from __future__ import annotations

import os
import uuid

import pytest

from floatip import lab as L
from floatip.backends.ovn import raguard
from floatip.backends.ovn.metadata import OvnMetadataAgent
from floatip.backends.remote import RemoteSource
from fwprobe import IcmpV6Sink, link_local_ready, send_ra, send_rs, wait_for as poll
from test_e2e_backends import ovn_deployment, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.ovn,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*influxdb:DeprecationWarning")]

PROJECT = "oraproj"
CIDR6 = "2001:db8:86::/64"


@pytest.fixture
def ovn_fw(tmp_path):
    yield from ovn_deployment(tmp_path, firewall=True, prefix="ora")


def lla(ns: str) -> str:
    out = L.sh("ip", "netns", "exec", ns, "ip", "-6", "-o", "addr", "show", "dev", "eth0",
               "scope", "link").stdout.split()
    return out[out.index("inet6") + 1].split("/")[0]


def ras_from(sink: IcmpV6Sink, src: str) -> int:
    return sum(1 for t, s in list(sink.got) if t == 134 and s == src)


def guarded(ch) -> set[int]:
    return raguard.installed(ch.ofctl("dump-flows", f"cookie={raguard.COOKIE:#x}/-1"))


def test_a_vm_sends_no_router_advertisement_on_ovn_and_the_router_still_does(ovn_fw):
    import openstack
    d = ovn_fw
    lab, _ = d.extra
    net = openstack.connect(auth_type="none", auth={"endpoint": d.url}, region_name="").network
    sfx = uuid.uuid4().hex[:5]
    n = net.create_network(name=f"ora-net-{sfx}", project_id=PROJECT)
    sub = net.create_subnet(network_id=n.id, cidr=CIDR6, ip_version=6, project_id=PROJECT,
                            ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    router = net.create_router(name=f"ora-r-{sfx}", project_id=PROJECT)
    net.add_interface_to_router(router, subnet_id=sub.id)
    compute, other = lab.chassis[-1], lab.chassis[0]
    ports, ns = {}, {}
    for name, ch in (("vm1", compute), ("vm2", compute), ("vm3", other)):
        p = ports[name] = net.create_port(network_id=n.id, name=f"ora-{name}",
                                          project_id=PROJECT)
        ns[name] = lab.vm(name, ch, p.id, p.mac_address)
        L.Lab.add_ipv6(ns[name], f"{p.fixed_ips[0]['ip_address']}/64")
    agents = [OvnMetadataAgent(RemoteSource(d.url), lab.sb, os.path.join(lab.dir, "meta"),
                               ovs=ch.db, ovs_netns=ch.ns, chassis=ch.name,
                               ns_prefix=f"{ch.ns}-meta-", interval=60,
                               guard_interval=60).start() for ch in (compute, other)]
    sinks = []
    try:
        assert wait_for(lambda: all(link_local_ready(x) for x in ns.values()), timeout=20,
                        what="link-local addresses")
        assert wait_for(lambda: all(net.get_port(p.id).status == "ACTIVE"
                                    for p in ports.values()), what="VM ports ACTIVE")
        assert d.wait_synced()
        attacker = lla(ns["vm1"])
        sinks = [IcmpV6Sink(ns["vm2"]), IcmpV6Sink(ns["vm3"])]
        # the router answers a solicitation from either neighbour (its RAs still arrive)
        rlla = {}
        for x, sink in zip(("vm2", "vm3"), sinks):
            assert wait_for(lambda: send_rs(ns[x]) or poll(
                lambda: any(t == 134 for t, _ in list(sink.got)), timeout=1.0),
                timeout=20, what=f"the router's RA at {x}")
            rlla[x] = next(s for t, s in list(sink.got) if t == 134)
        assert rlla["vm2"] == rlla["vm3"] != attacker
        # neighbour discovery works: vm2 and vm3 reach vm1 (the default group lets them in)
        ip1 = ports["vm1"].fixed_ips[0]["ip_address"]
        for x in ("vm2", "vm3"):
            assert wait_for(lambda: L.ping(ns[x], ip1, timeout=0.5), what=f"{x} -> vm1")

        # vm1 poses as a router: neither neighbour hears it
        assert wait_for(lambda: agents[0].guard == {p.id for p in ports.values()},
                        what="the agent guards the VMs")
        # on the ports plugged into each chassis: vm1 and vm2 here, vm3 on the other
        assert wait_for(lambda: len(guarded(compute)) == 2 and len(guarded(other)) == 1,
                        what="the drops on br-int")
        send_ra(ns["vm1"])
        poll(lambda: False, timeout=1.5)   # what is dropped cannot be polled for
        assert [ras_from(s, attacker) for s in sinks] == [0, 0], "a VM's RA got through"
        assert not [r for r in L.sh("ip", "netns", "exec", ns["vm2"], "ip", "-6", "route",
                                    "show", "default").stdout.splitlines() if attacker in r]

        # ovn-controller restarts and clears br-int: the guard comes back with its flows
        # a drop deleted by hand is back at once (the agent's flow monitor; its periodic
        # checks are a minute apart here)
        guards = guarded(compute)
        compute.ofctl("del-flows", f"cookie={raguard.COOKIE:#x}/-1")
        assert wait_for(lambda: guarded(compute) == guards, timeout=20, what="drops repaired")
        repairs = agents[0].repairs
        lab.restart_controller(compute)
        # the bridge was cleared and the agent put its flows back (it counts the repair)
        assert wait_for(lambda: agents[0].repairs > repairs and guarded(compute) == guards,
                        timeout=20, what="the guard back")
        assert wait_for(lambda: L.ping(ns["vm3"], ip1, timeout=0.5), timeout=30,
                        what="vm3 -> vm1 after the restart")
        send_ra(ns["vm1"])
        poll(lambda: False, timeout=1.5)
        assert [ras_from(s, attacker) for s in sinks] == [0, 0], "an RA after the restart"

        # port security off on vm1 (it may send anything, as on Neutron): its RAs arrive
        net.update_port(ports["vm1"], security_group_ids=[], is_port_security_enabled=False)
        assert wait_for(lambda: ports["vm1"].id not in agents[0].guard, what="vm1 unguarded")
        assert wait_for(lambda: len(guarded(compute)) == 1, what="vm1's drop removed")
        assert wait_for(lambda: send_ra(ns["vm1"]) or all(ras_from(s, attacker)
                                                          for s in sinks),
                        timeout=15, what="vm1's RAs without port security")
    finally:
        for s in sinks:
            s.close()
        for a in agents:
            a.stop()
    assert not guarded(compute) and not guarded(other)   # stopped: nothing of ours left
