"""Dual stack, pure: validation (Neutron's mode rules, FIPs IPv4 only, one bad router alone),
the layout (IPv6 addresses, shared ports, the IPv6 default route, SNAT for IPv4 only), radvd's
configuration per mode, DHCPv6 in dnsmasq's files, the plan and its shell commands."""
from __future__ import annotations

import dataclasses

import pytest

from floatip.core.dhcp import dhcp_specs, dnsmasq_argv, render_hosts, render_opts
from floatip.core.errors import InvalidState
from floatip.core.layout import AgentConfig, router_layouts
from floatip.core.model import (FloatingIP, Gateway, Interface, Network, Port, Router, State,
                                Subnet, state_from_json, state_to_json)
from floatip.core.plan import Link, NsFacts, Observed, commands, plan
from floatip.core.validate import problems, validate

CFG = AgentConfig("br-int", {"physnet1": "br-ex"})
NET, EXT, SUB4, SUB6, SUB6B, EXT4, EXT6 = ("11111111-0000-4000-8000-00000000000" + c
                                           for c in "1234567")
# router port ids differ in their first 11 characters: the device names
DHCP, VM, RTR, FIP, QR4, QR6, QG = (c * 8 + "-0000-4000-8000-000000000002" for c in "abcdef9")


def state(mode: str | None = "slaac", shared: bool = False, **subnet6) -> State:
    nets = {NET: Network(NET, "ten", local_vlan=3, mtu=1450),
            EXT: Network(EXT, "ext", external=True, network_type="flat",
                         physical_network="physnet1")}
    subs = {SUB4: Subnet(SUB4, NET, "198.51.100.0/24", "198.51.100.1", enable_dhcp=True),
            SUB6: Subnet(SUB6, NET, "2001:db8:1::/64", "2001:db8:1::1", enable_dhcp=True,
                         ip_version=6, ipv6_ra_mode=mode, ipv6_address_mode=mode,
                         dns_nameservers=("2001:db8::53",), **subnet6),
            SUB6B: Subnet(SUB6B, NET, "2001:db8:2::/64", "2001:db8:2::1", ip_version=6,
                          ipv6_ra_mode="slaac", ipv6_address_mode="slaac"),
            EXT4: Subnet(EXT4, EXT, "203.0.113.0/24", "203.0.113.1"),
            EXT6: Subnet(EXT6, EXT, "2001:db8:ff::/64", "2001:db8:ff::1", ip_version=6)}
    ports = {DHCP: Port(DHCP, NET, ((SUB4, "198.51.100.2"), (SUB6, "2001:db8:1::2")),
                        "fa:16:3e:00:00:02", device_owner="network:dhcp"),
             VM: Port(VM, NET, ((SUB6, "2001:db8:1::84"), (SUB4, "198.51.100.84")),
                      "fa:16:3e:00:00:84", "vm", "compute:nova")}
    itfs = (Interface(QR4, SUB4, "198.51.100.1", "fa:16:3e:00:01:01"),
            Interface(QR6, SUB6, "2001:db8:1::1", "fa:16:3e:00:01:06"))
    if shared:  # Neutron shares one port between the IPv6 subnets of a network
        itfs += (Interface(QR6, SUB6B, "2001:db8:2::1", "fa:16:3e:00:01:06"),)
    router = Router(RTR, "r", Gateway(EXT, QG, EXT4, "203.0.113.11", "fa:16:3e:00:01:11",
                                      extra_ips=((EXT6, "2001:db8:ff::11"),)), itfs)
    return State(nets, subs, ports, {RTR: router},
                 {FIP: FloatingIP(FIP, "203.0.113.84", EXT, VM, "198.51.100.84")})


def test_layout_routes_ipv6_and_nats_ipv4_only():
    validate(state())
    lay = router_layouts(state(), CFG)[RTR]
    devs = {d.name: d for d in lay.devices}
    assert devs["qr-" + QR4[:11]].addresses == {"198.51.100.1/24"}
    assert devs["qr-" + QR6[:11]].addresses == {"2001:db8:1::1/64"}
    assert devs["qg-" + QG[:11]].addresses == {"203.0.113.11/24", "2001:db8:ff::11/64"}
    assert lay.default_route == ("203.0.113.1", "qg-" + QG[:11])
    assert lay.default_route6 == ("2001:db8:ff::1", "qg-" + QG[:11])
    assert lay.nat.snat_cidrs == ("198.51.100.0/24",) and lay.nat.gateway_ip == "203.0.113.11"
    assert lay.nat.fips == (("203.0.113.84", "198.51.100.84"),)
    assert ("net.ipv6.conf.all.forwarding", "1") in lay.sysctls


def test_shared_port_is_one_device_with_an_address_per_subnet():
    lay = router_layouts(state(shared=True), CFG)[RTR]
    qr6 = [d for d in lay.devices if d.port_id == QR6]
    assert len(qr6) == 1 and qr6[0].addresses == {"2001:db8:1::1/64", "2001:db8:2::1/64"}
    assert lay.radvd.count("interface ") == 1 and lay.radvd.count("prefix ") == 2


@pytest.mark.parametrize("mode, managed, other, auto", [
    ("slaac", False, False, "on"),
    ("dhcpv6-stateful", True, False, "off"),
    ("dhcpv6-stateless", False, True, "on")])
def test_radvd_flags_per_mode_as_neutron(mode, managed, other, auto):
    conf = router_layouts(state(mode), CFG)[RTR].radvd
    assert conf.startswith(f"interface qr-{QR6[:11]}\n")
    assert ("AdvManagedFlag on;" in conf) is managed
    assert ("AdvOtherConfigFlag on;" in conf) is other
    assert f"prefix 2001:db8:1::/64\n   {{\n      AdvOnLink on;\n      AdvAutonomous {auto};" \
        in conf
    assert "AdvLinkMTU 1450;" in conf
    assert ("RDNSS 2001:db8::53 {};" in conf) is (mode == "slaac")  # Neutron: SLAAC only


def test_no_ra_mode_no_radvd():
    assert router_layouts(state(None), CFG)[RTR].radvd is None


@pytest.mark.parametrize("changes, why", [
    ({"ipv6_ra_mode": "slaac", "ipv6_address_mode": "dhcpv6-stateful"}, "must be the same"),
    ({"ipv6_ra_mode": "bogus", "ipv6_address_mode": None}, "is not one of"),
    ({"cidr": "2001:db8:1::/80"}, "requires the prefix to be /64"),
    ({"ip_version": 4}, "not an IPv4 CIDR")])
def test_neutron_mode_rules(changes, why):
    st = state()
    st.subnets[SUB6] = dataclasses.replace(st.subnets[SUB6], **changes)
    with pytest.raises(InvalidState) as e:
        validate(st)
    assert any(why in x.message for x in e.value.errors), e.value.errors


def test_floating_ips_stay_ipv4():
    st = state()
    st.floatingips[FIP] = dataclasses.replace(st.floatingips[FIP],
                                              fixed_ip_address="2001:db8:1::84")
    assert "IPv6 fixed IP" in problems(st)[("floatingip", FIP)][0].message
    st.floatingips[FIP] = dataclasses.replace(st.floatingips[FIP],
                                              floating_ip_address="2001:db8:ff::84")
    assert "Only IPv4" in problems(st)[("floatingip", FIP)][0].message


def test_a_bad_ipv6_gateway_address_is_its_router_problem_alone():
    st = state()
    r = st.routers[RTR]
    st.routers[RTR] = dataclasses.replace(r, gateway=dataclasses.replace(
        r.gateway, extra_ips=((EXT6, "2001:db8:77::11"),)))
    assert set(problems(st)) == {("router", RTR)}


def test_ipv6_extra_routes_and_families_must_match():
    st = state()
    st.routers[RTR] = dataclasses.replace(st.routers[RTR], routes=(
        ("2001:db8:99::/64", "2001:db8:1::84"),))
    validate(st)
    assert router_layouts(st, CFG)[RTR].extra_routes == {("2001:db8:99::/64", "2001:db8:1::84")}
    st.routers[RTR] = dataclasses.replace(st.routers[RTR], routes=(
        ("2001:db8:99::/64", "198.51.100.84"),))
    assert "families differ" in problems(st)[("router", RTR)][0].message


def test_plan_and_commands_for_ipv6():
    lay = router_layouts(state("dhcpv6-stateful"), CFG)
    steps = plan(lay, Observed(), _NoNat()).steps
    text = "\n".join(c for s in steps for c in commands(s))
    assert "ip -6 addr add 2001:db8:1::1/64 dev qr-" in text and "nodad" in text
    assert "ip -6 route replace default via 2001:db8:ff::1 dev qg-" in text
    assert "AdvManagedFlag on;" in text
    # the namespace's IPv6 defaults are set before any device moves in
    order = [s.action for s in steps]
    assert order.index("set_sysctls") < order.index("move_link")
    assert order.index("ensure_radvd") > order.index("add_address")
    # what is there already is not planned again; a running radvd with other config reloads
    [l6] = lay.values()
    ns = l6.namespace
    links = {d.name: Link(d.name, d.mac, d.mtu, True, d.addresses |
                          ({"203.0.113.84/32"} if d.role == "qg" else set()))
             for d in l6.devices}
    facts = NsFacts(ns, RTR, links, l6.default_route, sysctls=dict(l6.sysctls),
                    fip_map=dict(l6.nat.fips), default_route6=l6.default_route6, radvd=l6.radvd)
    obs = Observed(bridges={"br-int", "br-ex"}, namespaces={ns: facts})
    from floatip.core.plan import OvsPort
    obs.ports = {d.name: OvsPort(d.name, d.bridge, d.tag, "internal", RTR) for d in l6.devices}
    assert plan(lay, obs, _NoNat()).steps == []
    facts.radvd = "old"
    assert [s.action for s in plan(lay, obs, _NoNat()).steps] == ["ensure_radvd"]
    # no RA mode left: radvd stops; router removed: radvd stops before the namespace goes
    facts.radvd = l6.radvd
    lay2 = router_layouts(state(None), CFG)
    assert "stop_radvd" in [s.action for s in plan(lay2, obs, _NoNat()).steps]
    gone = [s.action for s in plan({}, obs, _NoNat(), remove={RTR}).steps]
    assert gone.index("stop_radvd") < gone.index("delete_namespace")


class _NoNat:
    def plan(self, ns, spec, facts):
        return None


def test_dhcpv6_stateful_hosts_and_ranges():
    [spec] = dhcp_specs(state("dhcpv6-stateful"), "br-int").values()
    assert spec.addresses == ("198.51.100.2/24", "2001:db8:1::2/64")
    assert render_hosts(spec) == ("fa:16:3e:00:00:84,tag:dhcpv6,vm,[2001:db8:1::84]\n"
                                  "fa:16:3e:00:00:84,vm,198.51.100.84\n")
    assert f"tag:subnet-{SUB6},option6:dns-server,[2001:db8::53]" in render_opts(spec)
    argv = dnsmasq_argv(spec, "/run/x")
    assert f"--dhcp-range=set:subnet-{SUB6},2001:db8:1::,static,64,86400s" in argv
    assert "--dhcp-lease-max=16777216" in argv


def test_dhcpv6_stateless_options_only_and_slaac_not_served():
    [spec] = dhcp_specs(state("dhcpv6-stateless"), "br-int").values()
    assert "2001:db8:1::84" not in render_hosts(spec)
    assert "option6:dns-server,[2001:db8::53]" in render_opts(spec)
    [spec] = dhcp_specs(state("slaac"), "br-int").values()
    assert spec.addresses == ("198.51.100.2/24",) and "option6" not in render_opts(spec)
    assert not any("2001:db8" in a for a in dnsmasq_argv(spec, "/run/x"))


def test_remote_agent_json_keeps_ipv6():
    st = state("dhcpv6-stateless", shared=True)
    assert state_from_json(state_to_json(st)) == st


def test_an_ipv6_only_gateway_routes_and_nats_nothing():
    st = state()
    r = st.routers[RTR]
    st.routers[RTR] = dataclasses.replace(r, gateway=dataclasses.replace(
        r.gateway, subnet_id=EXT6, ip_address="2001:db8:ff::11", extra_ips=()))
    del st.floatingips[FIP]
    validate(st)
    lay = router_layouts(st, CFG)[RTR]
    assert lay.gateway_device.addresses == {"2001:db8:ff::11/64"}
    assert lay.default_route is None and lay.default_route6 == ("2001:db8:ff::1",
                                                                lay.gateway_device.name)
    assert lay.nat.gateway_ip is None and lay.nat.snat_cidrs == () and lay.nat.fips == ()
