"""Security groups and port security on the OVN backend, end to end on two chassis: the
API (through openstacksdk), the backend's port groups, ACLs and port_security in the NB,
and VMs reached from an outside namespace through a floating IP."""
from __future__ import annotations

import time
import uuid

import pytest

from floatip import lab as L
from floatip.backends.ovn.acl import DHCP_SERVER_MATCH, DROP_PG, pg_name
from test_e2e_backends import (EXT_CIDR, EXT_GW, FIP, POOL, TENANT_CIDR, UPSTREAM_IP,
                               ovn_deployment, wait_for)
from fwprobe import UdpSink, send_udp

pytestmark = [pytest.mark.kernel, pytest.mark.ovn,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*influxdb:DeprecationWarning")]

PROJECT = "isoproj"
VMS = {"vm1": "198.51.100.10", "vm2": "198.51.100.11", "vm3": "198.51.100.12"}


@pytest.fixture
def ovn_fw(tmp_path):
    yield from ovn_deployment(tmp_path, firewall=True, prefix="iso")


def nbctl(d, *args) -> str:
    lab, _ = d.extra
    return L.sh("ovn-nbctl", f"--db={lab.nb}", *args).stdout.strip()


def acls(d, pg: str) -> set[tuple[str, int, str, str]]:
    """(direction, priority, action, match) of the port group's ACLs, as ovn-nbctl lists them."""
    out = set()
    for line in nbctl(d, "acl-list", pg).splitlines():
        # e.g.  to-lport  1002 (outport == @pg_x && ip4) allow-related
        direction, prio, rest = line.split(None, 2)
        match, _, action = rest.rpartition(") ")
        out.add((direction, int(prio), action.strip(), match.lstrip("(")))
    return out


def pg_ports(d, pg: str) -> set[str]:
    uuids = nbctl(d, "--bare", "--columns=ports", "find", "Port_Group", f"name={pg}").split()
    return {nbctl(d, "--bare", "--columns=name", "list", "Logical_Switch_Port", u)
            for u in uuids}


def reaches(ns: str, ip: str, port: int, timeout: float = 0.5) -> bool:
    return L.tcp_source(ns, ip, port, timeout) is not None


def test_groups_rules_and_port_security_on_ovn(ovn_fw):
    d = ovn_fw
    lab, backend = d.extra
    import openstack
    net = openstack.connect(auth_type="none", auth={"endpoint": d.url},
                            region_name="").network
    sfx = uuid.uuid4().hex[:5]
    ext = net.create_network(name=f"iso-ext-{sfx}", is_router_external=True,
                             provider_network_type="flat", provider_physical_network="physnet1")
    net.create_subnet(network_id=ext.id, cidr=EXT_CIDR, ip_version=4, gateway_ip=EXT_GW,
                      is_dhcp_enabled=False,
                      allocation_pools=[{"start": POOL[0], "end": POOL[1]}])
    tenant = net.create_network(name=f"iso-net-{sfx}", project_id=PROJECT)
    sub = net.create_subnet(network_id=tenant.id, cidr=TENANT_CIDR, ip_version=4,
                            project_id=PROJECT)
    router = net.create_router(name=f"iso-r-{sfx}", external_gateway_info={"network_id": ext.id})
    router_ip = router.external_gateway_info["external_fixed_ips"][0]["ip_address"]
    net.add_interface_to_router(router, subnet=sub.id)
    ports, ns = {}, {}
    for name, ip in VMS.items():
        p = net.create_port(network_id=tenant.id, name=f"iso-{name}", project_id=PROJECT,
                            fixed_ips=[{"subnet_id": sub.id, "ip_address": ip}])
        ports[name] = p
        ns[name] = d.plug(name, p.to_dict(), {sub.id: {"cidr": sub.cidr,
                                                       "gateway_ip": sub.gateway_ip}})
    vm1 = ports["vm1"]
    assert vm1.is_port_security_enabled and len(vm1.security_group_ids) == 1
    default = vm1.security_group_ids[0]
    pg = pg_name(default)
    fip = net.create_ip(floating_network_id=ext.id, floating_ip_address=FIP, port_id=vm1.id)
    wait_for(lambda: net.get_ip(fip.id).status == "ACTIVE", what="floating IP ACTIVE")
    assert d.wait_synced()

    # the NB rows: the default group's port group with Neutron's ACLs, the drop group,
    # each port's port_security
    assert pg_ports(d, pg) == {p.id for p in ports.values()}
    assert pg_ports(d, DROP_PG) == {p.id for p in ports.values()}
    assert acls(d, pg) == {
        ("from-lport", 1002, "allow-related", f"inport == @{pg} && ip4"),
        ("from-lport", 1002, "allow-related", f"inport == @{pg} && ip6"),
        ("to-lport", 1002, "allow-related", f"outport == @{pg} && ip4 && ip4.src == ${pg}_ip4"),
        ("to-lport", 1002, "allow-related", f"outport == @{pg} && ip6 && ip6.src == ${pg}_ip6")}
    assert acls(d, DROP_PG) == {("from-lport", 1001, "drop", f"inport == @{DROP_PG} && ip"),
                                ("to-lport", 1001, "drop", f"outport == @{DROP_PG} && ip"),
                                ("from-lport", 1003, "drop", DHCP_SERVER_MATCH)}
    assert nbctl(d, "lsp-get-port-security", vm1.id) == f"{vm1.mac_address} {VMS['vm1']}"

    # the default group: its own outbound works (replies come back), no new inbound
    for port in (22, 8080):
        lab.serve(ns["vm1"], port=port)
    lab.serve(d.upstream, port=8081)
    assert wait_for(lambda: L.tcp_source(ns["vm1"], UPSTREAM_IP, 8081, 1.0) == FIP,
                    what="vm1's outbound connection")
    assert not reaches(d.upstream, FIP, 22) and not reaches(d.upstream, FIP, 8080)
    assert not L.ping(d.upstream, FIP, timeout=0.5)
    # members of the default group reach each other (its remote-group rule)
    assert wait_for(lambda: reaches(ns["vm2"], VMS["vm1"], 8080), what="vm2 -> vm1 inside")

    # a tcp/22 rule opens 22 only
    t0 = time.monotonic()
    rule = net.create_security_group_rule(security_group_id=default, direction="ingress",
                                          ethertype="IPv4", protocol="tcp",
                                          port_range_min=22, port_range_max=22)
    wait_for(lambda: reaches(d.upstream, FIP, 22, 0.3), timeout=15,
             what="port 22 through the FIP")
    print(f"\nOVN: rule create -> port 22 answers through the FIP: "
          f"{(time.monotonic() - t0) * 1000:.0f} ms")
    assert not reaches(d.upstream, FIP, 8080)
    net.delete_security_group_rule(rule)
    wait_for(lambda: not reaches(d.upstream, FIP, 22, 0.3), timeout=15,
             what="no new connection to 22 after the rule's removal")
    assert d.wait_synced()
    # an ICMP rule (echo request) opens ping, and only ping
    icmp = net.create_security_group_rule(security_group_id=default, direction="ingress",
                                          ethertype="IPv4", protocol="icmp",
                                          port_range_min=8, port_range_max=0)
    wait_for(lambda: L.ping(d.upstream, FIP, timeout=0.3), what="ping after the ICMP rule")
    assert not reaches(d.upstream, FIP, 22)
    net.delete_security_group_rule(icmp)
    assert d.wait_synced()

    # remote group: vm1 behind "web" (tcp/8080 from members of "clients" only)
    web = net.create_security_group(name=f"iso-web-{sfx}", project_id=PROJECT)
    clients = net.create_security_group(name=f"iso-clients-{sfx}", project_id=PROJECT)
    net.create_security_group_rule(security_group_id=web.id, direction="ingress",
                                   ethertype="IPv4", protocol="tcp", port_range_min=8080,
                                   port_range_max=8080, remote_group_id=clients.id)
    net.update_port(vm1, security_group_ids=[web.id])
    assert d.wait_synced()
    assert pg_ports(d, pg_name(web.id)) == {vm1.id} and vm1.id not in pg_ports(d, pg)
    assert wait_for(lambda: not reaches(ns["vm2"], VMS["vm1"], 8080), what="vm2 shut out")
    assert not reaches(ns["vm3"], VMS["vm1"], 8080)
    writes = backend.stats.writes
    net.update_port(ports["vm2"], security_group_ids=[default, clients.id])
    assert d.wait_synced()
    # one write, the port group of "clients" only
    assert backend.stats.writes == writes + 1
    assert backend.stats.last_plan == "0 create, 1 update, 0 attach, 0 delete"
    assert wait_for(lambda: reaches(ns["vm2"], VMS["vm1"], 8080), what="the member reaches")
    assert not reaches(ns["vm3"], VMS["vm1"], 8080)
    assert not reaches(d.upstream, FIP, 8080)
    # drift: the rule's ACL deleted by hand comes back, and the member reaches again
    web_pg = pg_name(web.id)
    before = acls(d, web_pg)   # the rule's, and a new group's egress rules
    [(direction, prio, _, match)] = [a for a in before if a[0] == "to-lport"]
    assert match == (f"outport == @{web_pg} && ip4 && ip4.src == ${pg_name(clients.id)}_ip4"
                     " && tcp && tcp.dst == 8080")
    nbctl(d, "acl-del", web_pg, direction, str(prio), match)
    wait_for(lambda: acls(d, web_pg) == before, what="the ACL back")
    assert wait_for(lambda: reaches(ns["vm2"], VMS["vm1"], 8080), what="reached after repair")

    # port security: vm2 forging vm1's address does not leave through vm1's floating IP;
    # with vm1's MAC nothing of vm2 leaves at all
    sink = UdpSink(d.upstream, 9999)
    try:
        send_udp(ns["vm2"], VMS["vm2"], UPSTREAM_IP, 9999, b"own")
        assert wait_for(lambda: sink.seen(b"own") == [router_ip] * 3, what="vm2's own UDP")
        send_udp(ns["vm2"], VMS["vm1"], UPSTREAM_IP, 9999, b"forged")
        L.sh("ip", "netns", "exec", ns["vm2"], "ip", "link", "set", "eth0", "address",
             vm1.mac_address)
        send_udp(ns["vm2"], VMS["vm2"], UPSTREAM_IP, 9999, b"stolen-mac")
        time.sleep(1.0)   # what was dropped cannot be polled for
        assert sink.seen(b"forged") == [] and sink.seen(b"stolen-mac") == []
    finally:
        sink.close()
