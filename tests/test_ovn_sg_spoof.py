"""Port security and security groups on OVN, the attacks of issue 22 not covered by
test_ovn_sg.py: an IPv6 rule, ARP and gratuitous ARP for a neighbour's address, a DHCP
server reply sent by a VM; and a port with port security off (the ``unknown`` address: it
may use any MAC, and the ARP attack then works). Two chassis through floatip.ovnlab.

A router advertisement sent by a VM: test_ovn_ra_guard.py (OVN 23.03 lets it skip every
ACL; the chassis agent drops it on br-int)."""
from __future__ import annotations

import uuid

import pytest

from floatip import lab as L
from test_e2e_backends import (EXT_CIDR, EXT_GW, POOL, TENANT_CIDR, UPSTREAM_IP,
                               ovn_deployment, wait_for)
from test_ovn_sg import nbctl, reaches
from fwprobe import UdpSink, neigh_mac, send_arp, send_udp, wait_for as poll

pytestmark = [pytest.mark.kernel, pytest.mark.ovn,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*influxdb:DeprecationWarning")]

PROJECT = "irproj"
V6_CIDR = "2001:db8:22::/64"
VMS = {"vm1": ("198.51.100.21", "2001:db8:22::21"), "vm2": ("198.51.100.22", "2001:db8:22::22"),
       "vm3": ("198.51.100.23", "2001:db8:22::23")}


@pytest.fixture
def ovn_fw(tmp_path):
    yield from ovn_deployment(tmp_path, firewall=True, prefix="ir")


def cloud(d):
    """A dual-stack tenant network behind a router and three VMs (v4 and v6 addresses)."""
    import openstack
    net = openstack.connect(auth_type="none", auth={"endpoint": d.url}, region_name="").network
    sfx = uuid.uuid4().hex[:5]
    ext = net.create_network(name=f"ir-ext-{sfx}", is_router_external=True,
                             provider_network_type="flat", provider_physical_network="physnet1")
    net.create_subnet(network_id=ext.id, cidr=EXT_CIDR, ip_version=4, gateway_ip=EXT_GW,
                      is_dhcp_enabled=False,
                      allocation_pools=[{"start": POOL[0], "end": POOL[1]}])
    tenant = net.create_network(name=f"ir-net-{sfx}", project_id=PROJECT)
    sub = net.create_subnet(network_id=tenant.id, cidr=TENANT_CIDR, ip_version=4,
                            project_id=PROJECT)
    sub6 = net.create_subnet(network_id=tenant.id, cidr=V6_CIDR, ip_version=6,
                             project_id=PROJECT, is_dhcp_enabled=False)
    router = net.create_router(name=f"ir-r-{sfx}", external_gateway_info={"network_id": ext.id})
    net.add_interface_to_router(router, subnet=sub.id)
    ports, ns = {}, {}
    for name, (ip, ip6) in VMS.items():
        p = net.create_port(network_id=tenant.id, name=f"ir-{name}", project_id=PROJECT,
                            fixed_ips=[{"subnet_id": sub.id, "ip_address": ip},
                                       {"subnet_id": sub6.id, "ip_address": ip6}])
        ports[name] = p
        body = p.to_dict()
        body["fixed_ips"] = sorted(body["fixed_ips"], key=lambda f: ":" in f["ip_address"])
        ns[name] = d.plug(name, body, {sub.id: {"cidr": sub.cidr,
                                                "gateway_ip": sub.gateway_ip}})
        L.Lab.add_ipv6(ns[name], f"{ip6}/64")
    return net, ports, ns


def test_ipv6_rule_opens_exactly_its_port_on_ovn(ovn_fw):
    d = ovn_fw
    lab, _ = d.extra
    net, ports, ns = cloud(d)
    # vm1 alone in a group that lets nothing in (vm2 is in the default group)
    web = net.create_security_group(name=f"ir-web6-{uuid.uuid4().hex[:4]}", project_id=PROJECT)
    net.update_port(ports["vm1"], security_group_ids=[web.id])
    for port in (8080, 8081):
        lab.serve(ns["vm1"], "::", port)
    assert d.wait_synced()
    ip4, ip6 = VMS["vm1"]
    assert wait_for(lambda: not reaches(ns["vm2"], ip6, 8080), what="v6 8080 closed")
    rule = net.create_security_group_rule(security_group_id=web.id, direction="ingress",
                                          ethertype="IPv6", protocol="tcp",
                                          port_range_min=8080, port_range_max=8080)
    assert wait_for(lambda: reaches(ns["vm2"], ip6, 8080), timeout=15,
                    what="v6 8080 open after the IPv6 rule")
    assert d.wait_synced()
    assert not reaches(ns["vm2"], ip6, 8081)      # that port only
    assert not reaches(ns["vm2"], ip4, 8080)      # an IPv6 rule opens no IPv4
    net.delete_security_group_rule(rule)
    assert wait_for(lambda: not reaches(ns["vm2"], ip6, 8080), timeout=15,
                    what="v6 8080 closed again")


def test_arp_and_dhcp_server_spoofing_blocked_on_ovn_and_port_security_off(ovn_fw):
    d = ovn_fw
    net, ports, ns = cloud(d)
    vm1, vm2, vm3 = ns["vm1"], ns["vm2"], ns["vm3"]
    ip1, mac1, mac2 = VMS["vm1"][0], ports["vm1"].mac_address, ports["vm2"].mac_address
    assert d.wait_synced()
    # vm3 knows vm1's MAC (all three are in the default group: they reach each other)
    assert wait_for(lambda: L.ping(vm3, ip1, timeout=0.5), what="vm3 -> vm1")
    assert neigh_mac(vm3, ip1) == mac1
    offers = UdpSink(vm1, 68)

    def attack(tag: bytes) -> None:
        # ARP reply to vm3 and a gratuitous ARP: "vm1's address is at vm2's MAC"
        send_arp(vm2, "eth0", mac2, ip1, VMS["vm3"][0], ports["vm3"].mac_address)
        send_arp(vm2, "eth0", mac2, ip1, ip1, op=1)
        # a DHCP server's reply, broadcast and to vm1 (vm1 lets members of its group in)
        send_udp(vm2, VMS["vm2"][0], "255.255.255.255", 68, tag, sport=67)
        send_udp(vm2, VMS["vm2"][0], ip1, 68, tag, sport=67)

    try:
        attack(b"offer-secured")
        poll(lambda: False, timeout=1.5)   # what is dropped cannot be polled for
        assert neigh_mac(vm3, ip1) == mac1, "ARP spoofed"
        assert not offers.seen(b"offer-secured"), "a DHCP server reply from a VM"
        # the same datagram from vm2's own address to another port is not a DHCP reply
        send_udp(vm2, VMS["vm2"][0], ip1, 68, b"not-a-reply", sport=1067)
        assert wait_for(lambda: offers.seen(b"not-a-reply"), timeout=5, what="plain UDP")

        # port security off on vm2: its LSP takes any MAC ("unknown"), and the same
        # attacks get through
        net.update_port(ports["vm2"], security_group_ids=[], is_port_security_enabled=False)
        assert d.wait_synced()
        assert nbctl(d, "lsp-get-port-security", ports["vm2"].id) == ""
        assert nbctl(d, "lsp-get-addresses", ports["vm2"].id).splitlines() == [
            f"{mac2} {VMS['vm2'][0]} {VMS['vm2'][1]}", "unknown"]
        attack(b"offer-open")
        assert wait_for(lambda: neigh_mac(vm3, ip1) == mac2, timeout=5, what="ARP spoofed")
        # vm2 answers on a MAC OVN never heard of: delivered to the port with "unknown"
        other = "02:00:5e:22:00:02"
        L.sh("ip", "netns", "exec", vm2, "ip", "link", "set", "eth0", "address", other)
        L.sh("ip", "netns", "exec", vm3, "ip", "neigh", "replace", VMS["vm2"][0], "lladdr",
             other, "dev", "eth0", "nud", "permanent")
        assert wait_for(lambda: L.ping(vm3, VMS["vm2"][0], timeout=0.5), timeout=10,
                        what="vm3 -> vm2 on its new MAC")
    finally:
        offers.close()


def test_allowed_address_pairs_let_exactly_the_listed_addresses_through_on_ovn(ovn_fw):
    d = ovn_fw
    net, ports, ns = cloud(d)
    net.update_port(ports["vm2"], allowed_address_pairs=[
        {"ip_address": "198.51.100.96/30"}, {"ip_address": "198.51.100.90"}])
    assert d.wait_synced()
    assert nbctl(d, "lsp-get-port-security", ports["vm2"].id) == \
        f"{ports['vm2'].mac_address} {' '.join(VMS['vm2'])} 198.51.100.96/30 198.51.100.90"
    sink = UdpSink(d.upstream, 9999)
    try:
        # leaving through the router's SNAT: the sink sees the router, the tag says who sent
        srcs = ("198.51.100.90", "198.51.100.97", "198.51.100.91", "198.51.100.95")
        for src in srcs:
            send_udp(ns["vm2"], src, UPSTREAM_IP, 9999, src.encode())
        assert wait_for(lambda: sink.seen(b"198.51.100.90") and sink.seen(b"198.51.100.97"),
                        timeout=10, what="the pairs' datagrams")
        poll(lambda: False, timeout=1.0)   # what is dropped cannot be polled for
        assert not sink.seen(b"198.51.100.91") and not sink.seen(b"198.51.100.95")
    finally:
        sink.close()


def test_broadcast_to_a_vm_is_filtered_by_its_ingress_rules_on_ovn(ovn_fw):
    """OVN runs the receiver's to-lport ACLs on broadcast too (the kernel backend, like
    Neutron's openvswitch driver, floods it: docs/firewall.md)."""
    d = ovn_fw
    net, ports, ns = cloud(d)
    default = ports["vm1"].security_group_ids
    lone = net.create_security_group(name=f"ir-lone-{uuid.uuid4().hex[:4]}",
                                     project_id=PROJECT)
    net.update_port(ports["vm1"], security_group_ids=[lone.id])   # lets nothing in
    assert d.wait_synced()
    sink = UdpSink(ns["vm1"], 7777)
    try:
        for dst in ("255.255.255.255", "198.51.100.255"):
            send_udp(ns["vm2"], VMS["vm2"][0], dst, 7777, b"closed")
        poll(lambda: False, timeout=1.5)   # what is dropped cannot be polled for
        assert sink.seen(b"closed") == []
        net.update_port(ports["vm1"], security_group_ids=default)   # vm2 is a member
        assert d.wait_synced()
        for dst in ("255.255.255.255", "198.51.100.255"):
            send_udp(ns["vm2"], VMS["vm2"][0], dst, 7777, b"open")
        assert wait_for(lambda: len(sink.seen(b"open")) == 6, timeout=10, what="broadcast")
    finally:
        sink.close()
