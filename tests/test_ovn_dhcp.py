"""On OVN a VM boots (issue 23): on the chassis that is not the gateway, a real ``dhclient``
gets the port's IPv4 address, the network's MTU, the router and the metadata route from
OVN's native DHCP; ``dhclient -6`` the port's DHCPv6-stateful address; a VM on a SLAAC
network configures its address, default route and MTU from the router's advertisements; a VM
on a DHCPv6-stateless network its SLAAC address from the RA and its DNS server from OVN's
DHCPv6 (``dhclient -6 -S``, an information-request).
Disabling DHCP takes the options away; deleting everything leaves no owned row."""
from __future__ import annotations

import pytest

from floatip import lab as L
from test_e2e_backends import ovn_deployment, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.ovn,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*influxdb:DeprecationWarning")]


@pytest.fixture
def ovn(tmp_path):
    yield from ovn_deployment(tmp_path)


def v6_addresses(ns: str, scope: str = "global") -> list[str]:
    out = L.sh("ip", "netns", "exec", ns, "ip", "-6", "-o", "addr", "show", "dev", "eth0",
               "scope", scope).stdout.split("\n")
    return [line.split()[3] for line in out if line.split()]


def test_vms_on_a_compute_chassis_get_addresses_by_dhcp_dhcpv6_and_slaac(ovn):
    import openstack
    d = ovn
    lab, backend = d.extra
    conn = openstack.connect(auth_type="none", auth={"endpoint": d.url}, region_name="")
    net = conn.network
    n1 = net.create_network(name="dhcp-net", mtu=1400)
    s4 = net.create_subnet(network_id=n1.id, cidr="198.51.100.0/24", ip_version=4,
                           dns_nameservers=["192.0.2.53"])
    s6 = net.create_subnet(network_id=n1.id, cidr="2001:db8:1::/64", ip_version=6,
                           ipv6_ra_mode="dhcpv6-stateful", ipv6_address_mode="dhcpv6-stateful")
    n2 = net.create_network(name="slaac-net", mtu=1380)
    sl = net.create_subnet(network_id=n2.id, cidr="2001:db8:2::/64", ip_version=6,
                           ipv6_ra_mode="slaac", ipv6_address_mode="slaac")
    n3 = net.create_network(name="stateless-net")
    st = net.create_subnet(network_id=n3.id, cidr="2001:db8:3::/64", ip_version=6,
                           ipv6_ra_mode="dhcpv6-stateless",
                           ipv6_address_mode="dhcpv6-stateless",
                           dns_nameservers=["2001:db8:3::53"])
    router = net.create_router(name="r")
    for sub in (s4, s6, sl, st):
        net.add_interface_to_router(router, subnet_id=sub.id)
    vm1 = net.create_port(network_id=n1.id, name="vm1")
    vm2 = net.create_port(network_id=n2.id, name="vm2")
    vm3 = net.create_port(network_id=n3.id, name="vm3")
    ip4 = next(a["ip_address"] for a in vm1.fixed_ips if a["subnet_id"] == s4.id)
    ip6 = next(a["ip_address"] for a in vm1.fixed_ips if a["subnet_id"] == s6.id)
    slaac = vm2.fixed_ips[0]["ip_address"]
    slaac3 = vm3.fixed_ips[0]["ip_address"]
    dhcp_port = next(net.ports(network_id=n1.id, device_owner="network:dhcp"))
    dhcp_ip = next(a["ip_address"] for a in dhcp_port.fixed_ips if a["subnet_id"] == s4.id)
    ns1 = lab.vm("vm1", -1, vm1.id, vm1.mac_address)
    ns2 = lab.vm("vm2", -1, vm2.id, vm2.mac_address)
    ns3 = lab.vm("vm3", -1, vm3.id, vm3.mac_address)
    wait_for(lambda: all(net.get_port(p.id).status == "ACTIVE" for p in (vm1, vm2, vm3)),
             what="VM ports ACTIVE")
    assert d.wait_synced()

    got = lab.dhcp(ns1)
    assert got is not None, "no DHCPv4 lease"
    assert got["new_ip_address"] == ip4
    assert got["new_interface_mtu"] == "1400" and got["new_routers"] == "198.51.100.1"
    assert got["new_domain_name_servers"] == "192.0.2.53"
    # RFC 3442: 169.254.169.254/32 via the network's DHCP port, then the default route
    routes = got["new_rfc3442_classless_static_routes"].split()
    assert routes == ["32", "169", "254", "169", "254", *dhcp_ip.split("."),
                      "0", "198", "51", "100", "1"]
    shown = L.sh("ip", "netns", "exec", ns1, "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert f"{ip4}/24" in shown
    assert L.ping_until(ns1, "198.51.100.1")
    # DHCPv6 stateful: the address the API allocated, once the link-local address is ready
    wait_for(lambda: [a for a in v6_addresses(ns1, "link") if "tentative" not in a],
             what="vm1's link-local address")
    wait_for(lambda: "tentative" not in L.sh("ip", "netns", "exec", ns1, "ip", "-6", "addr",
                                             "show", "dev", "eth0").stdout,
             what="DAD done")
    got6 = lab.dhcp(ns1, v6=True)
    assert got6 is not None and got6.get("new_ip6_address") == ip6, (
        got6, lab.dhcp_error, L.sh("ovn-nbctl", f"--db={lab.nb}", "list", "DHCP_Options").stdout,
        L.sh("ovn-nbctl", f"--db={lab.nb}", "list", "Logical_Switch_Port", vm1.id).stdout,
        L.sh("ovn-sbctl", f"--db={lab.sb}", "lflow-list").stdout.count("put_dhcpv6_opts"))
    # SLAAC: the address (EUI-64, as the API allocated it), the route and the MTU from the RA
    wait_for(lambda: f"{slaac}/64" in v6_addresses(ns2), timeout=30,
             what="vm2's SLAAC address")
    wait_for(lambda: "default via fe80::" in L.sh("ip", "netns", "exec", ns2, "ip", "-6",
                                                  "route").stdout, what="the RA's default route")
    mtu = L.sh("ip", "netns", "exec", ns2, "cat", "/proc/sys/net/ipv6/conf/eth0/mtu").stdout
    assert mtu.strip() == "1380"
    # DHCPv6 stateless: the address from the RA (SLAAC), the DNS server from OVN's DHCPv6
    # answer to an information-request; no address in it
    wait_for(lambda: f"{slaac3}/64" in v6_addresses(ns3), timeout=30,
             what="vm3's SLAAC address")
    info = lab.dhcp(ns3, v6=True, stateless=True)
    assert info is not None, lab.dhcp_error
    # (dhclient -S reports a refreshed answer as RENEW6)
    assert info.get("reason") in ("INFORM6", "RENEW6") and not info.get("new_ip6_address"), info
    assert info.get("new_dhcp6_name_servers") == "2001:db8:3::53", info

    # DHCP off on the IPv4 subnet: its options go, and vm1's port no longer refers to them
    nb = f"--db={lab.nb}"
    assert L.sh("ovn-nbctl", nb, "dhcp-options-list").stdout.count("\n") == 3
    net.update_subnet(s4, is_dhcp_enabled=False)
    wait_for(lambda: L.sh("ovn-nbctl", nb, "--bare", "--columns=dhcpv4_options", "list",
                          "Logical_Switch_Port", vm1.id).stdout.strip() == "",
             what="vm1's DHCPv4 options gone")
    assert d.wait_synced()
    rows = L.sh("ovn-nbctl", nb, "--bare", "--columns=cidr", "list", "DHCP_Options").stdout
    assert sorted(rows.split()) == ["2001:db8:1::/64", "2001:db8:3::/64"]
