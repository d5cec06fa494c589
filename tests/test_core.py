"""Pure logic: validation, layout, rule rendering, planning. No root, no kernel."""
from __future__ import annotations

import copy

import pytest

from floatip.dataplane.nat import iptables
from floatip.cli.demo import SEED
from floatip.core.layout import AgentConfig, router_layouts
from floatip.core.document import load
from floatip.core.errors import InvalidState
from floatip.core.model import stable_id
from floatip.core.names import parse_mappings
from floatip.core.plan import PHASES, Link, NsFacts, Observed, OvsPort, commands, plan

CFG = AgentConfig("br-int", {"physnet1": "br-ex"})


class Driver:
    """The iptables driver's pure half, as the planner sees it."""

    def plan(self, ns, spec, facts):
        from floatip.dataplane.nat.iptables import IptablesDriver
        return IptablesDriver.plan(self, ns, spec, facts)

    random_fully = True


def seed(**changes):
    doc = copy.deepcopy(SEED)
    for k, v in changes.items():
        doc[k] = v
    return doc


def errors_of(doc) -> list[str]:
    with pytest.raises(InvalidState) as e:
        load(doc)
    return [x.type for x in e.value.errors]


# -- validation -------------------------------------------------------------------------

def test_seed_loads_with_stable_ids():
    a, b = load(seed()), load(seed())
    assert a == b
    (router,) = a.routers.values()
    assert router.id == stable_id("router", "router02")
    assert router.gateway.ip_address == "10.255.253.11"
    (fip,) = a.floatingips.values()
    assert fip.fixed_ip_address == "10.0.2.84"
    assert a.router_for_fip(fip) is router


def test_address_outside_subnet():
    doc = seed()
    doc["ports"][0]["fixed_ips"] = [{"subnet": "tenant-subnet", "ip_address": "10.0.3.5"}]
    del doc["ports"][0]["fixed_ip"]
    assert "InvalidIpForSubnet" in errors_of(doc)


def test_duplicate_address_and_gateway_clash():
    doc = seed()
    doc["ports"][1]["fixed_ip"] = "10.0.2.84"
    assert "IpAddressAlreadyAllocated" in errors_of(doc)
    doc = seed()
    doc["ports"][1]["fixed_ip"] = "10.0.2.1"  # the router interface holds the gateway address
    assert "IpAddressAlreadyAllocated" in errors_of(doc)


def test_fip_needs_a_router_with_a_gateway_on_its_network():
    doc = seed()
    doc["routers"][0]["interfaces"] = []
    assert errors_of(doc) == ["ExternalGatewayForFloatingIPNotFound"]
    doc = seed()
    del doc["routers"][0]["external_gateway_info"]
    assert "ExternalGatewayForFloatingIPNotFound" in errors_of(doc)


def test_one_fip_per_fixed_ip_and_one_owner_per_fip():
    doc = seed()
    doc["floatingips"].append({"floating_ip_address": "10.255.253.90", "port": "vm4"})
    assert errors_of(doc) == ["FloatingIPPortAlreadyAssociated"]
    doc = seed()
    doc["floatingips"].append({"id": stable_id("x", "y"), "floating_ip_address": "10.255.253.84",
                               "port": "vm5"})
    assert "IpAddressAlreadyAllocated" in errors_of(doc)


def test_other_bad_input():
    doc = seed()
    doc["subnets"][1]["cidr"] = "10.0.2.0/33"
    assert "BadRequest" in errors_of(doc)
    doc = seed()
    doc["routers"][0]["external_gateway_info"]["network"] = "tenant-net"
    assert "BadRequest" in errors_of(doc)
    doc = seed()
    doc["floatingips"][0]["port"] = "no-such-port"
    assert "PortNotFound" in errors_of(doc)
    doc = seed()
    doc["networks"][1]["provider:segmentation_id"] = 5000
    assert "BadRequest" in errors_of(doc)
    with pytest.raises(Exception, match="Unknown top-level"):
        load({"routerz": []})


def test_interface_names_are_validated():
    from floatip.core.layout import check_ifname
    from floatip.core.errors import NeutronError
    assert check_ifname("br-ex") == "br-ex"
    for bad in ("", "x" * 16, "br ex", "br;rm", "../x", "a/b"):
        with pytest.raises(NeutronError):
            check_ifname(bad)
    with pytest.raises(NeutronError):
        parse_mappings(["physnet1:br ex"])


# -- layout -----------------------------------------------------------------------------

def test_layout_is_neutrons():
    state = load(seed())
    (lay,) = router_layouts(state, CFG).values()
    router = next(iter(state.routers.values()))
    assert lay.namespace == "qrouter-" + router.id
    qr, qg = lay.devices
    assert qr.name == ("qr-" + router.interfaces[0].port_id)[:14] and len(qr.name) == 14
    assert (qr.bridge, qr.tag, qr.addresses) == ("br-int", 3, frozenset({"10.0.2.1/24"}))
    assert (qg.bridge, qg.tag, qg.addresses) == ("br-ex", None, frozenset({"10.255.253.11/24"}))
    assert lay.default_route == ("10.255.253.1", qg.name)
    assert lay.fip_addresses == {"10.255.253.84"}
    assert lay.nat.fips == (("10.255.253.84", "10.0.2.84"),)
    assert lay.nat.snat_cidrs == ("10.0.2.0/24",)
    assert dict(lay.sysctls)["net.ipv4.conf.all.arp_announce"] == "2"


def test_enable_snat_false_keeps_floating_ips():
    doc = seed()
    doc["routers"][0]["external_gateway_info"]["enable_snat"] = False
    (lay,) = router_layouts(load(doc), CFG).values()
    assert lay.nat.snat_cidrs == () and lay.nat.fips


# -- iptables rendering -------------------------------------------------------------------

def test_rules_have_the_seed_layout_and_meaning():
    (lay,) = router_layouts(load(seed()), CFG).values()
    rs = iptables.render(lay.nat)
    qg = lay.nat.gateway_device
    nat = {ch: rules for (t, ch), rules in rs.chains.items() if t == "nat"}
    assert "-A floatip-l3-PREROUTING -d 10.255.253.84/32 -j DNAT --to-destination 10.0.2.84" \
        in nat["floatip-l3-PREROUTING"]
    assert "-A floatip-l3-OUTPUT -d 10.255.253.84/32 -j DNAT --to-destination 10.0.2.84" \
        in nat["floatip-l3-OUTPUT"]
    assert nat["floatip-l3-float-snat"] == [
        "-A floatip-l3-float-snat -s 10.0.2.84/32 -j SNAT --to-source 10.255.253.84"]
    assert nat["floatip-l3-snat"][0] == "-A floatip-l3-snat -j floatip-l3-float-snat"
    assert f"-A floatip-l3-snat -s 10.0.2.0/24 -o {qg} -j SNAT --to-source 10.255.253.11 " \
        "--random-fully" in nat["floatip-l3-snat"]
    assert nat["floatip-l3-POSTROUTING"] == [
        f"-A floatip-l3-POSTROUTING ! -o {qg} -m conntrack ! --ctstate DNAT -j ACCEPT"]
    assert any("REDIRECT --to-ports 9697" in r for r in nat["floatip-l3-PREROUTING"])
    assert rs.jumps[("nat", "POSTROUTING")] == ["floatip-l3-POSTROUTING",
                                                "floatip-postrouting-bottom"]
    assert rs.fip_map() == {"10.255.253.84": "10.0.2.84"}
    assert "--random-fully" not in str(iptables.render(lay.nat, random_fully=False).chains)


SAVE = """# Generated by iptables-save
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:neutron-l3-agent-PREROUTING - [0:0]
:floatip-l3-PREROUTING - [0:0]
:floatip-old - [0:0]
-A PREROUTING -j neutron-l3-agent-PREROUTING
-A PREROUTING -j floatip-l3-PREROUTING
-A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE
-A neutron-l3-agent-PREROUTING -d 192.0.2.5/32 -j DNAT --to-destination 10.1.1.1
-A floatip-l3-PREROUTING -d 203.0.113.9/32 -j DNAT --to-destination 198.51.100.9
COMMIT
"""


def test_parse_save_keeps_only_ours():
    rs = iptables.parse_save(SAVE)
    assert set(rs.chains) == {("nat", "floatip-l3-PREROUTING"), ("nat", "floatip-old")}
    assert rs.jumps == {("nat", "PREROUTING"): ["floatip-l3-PREROUTING"]}
    assert rs.fip_map() == {"203.0.113.9": "198.51.100.9"}


def test_restore_input_touches_only_floatip_chains():
    (lay,) = router_layouts(load(seed()), CFG).values()
    desired = iptables.render(lay.nat)
    text = iptables.restore_input(desired, iptables.parse_save(SAVE))
    for line in text.splitlines():
        if line.startswith((":", "-A", "-I", "-D", "-X")):
            assert "floatip-" in line, line
            assert "neutron" not in line and "MASQUERADE" not in line
        assert not line.startswith(("-F", ":PREROUTING", ":POSTROUTING"))
    assert "-X floatip-old" in text
    # applying it would give the desired rules: equal rulesets need no restore at all
    assert iptables.restore_input(desired, desired) is None


# -- planning ---------------------------------------------------------------------------

def _observed_as(desired) -> Observed:
    """What the kernel would look like with ``desired`` fully applied."""
    obs = Observed(bridges={"br-int", "br-ex"})
    for lay in desired.values():
        f = NsFacts(lay.namespace, lay.router_id, default_route=lay.default_route,
                    sysctls=dict(lay.sysctls), nat=iptables.render(lay.nat),
                    fip_map=dict(lay.nat.fips))
        for d in lay.devices:
            extra = {f"{ip}/32" for ip in lay.fip_addresses} if d.role == "qg" else set()
            f.links[d.name] = Link(d.name, d.mac, d.mtu, True, d.addresses | extra)
            obs.ports[d.name] = OvsPort(d.name, d.bridge, d.tag, "internal", lay.router_id)
        obs.namespaces[lay.namespace] = f
    return obs


def test_plan_from_empty_is_ordered_and_complete():
    desired = router_layouts(load(seed()), CFG)
    p = plan(desired, Observed(), Driver())
    actions = [s.action for s in p.steps]
    assert actions[:3] == ["ensure_bridge", "ensure_bridge", "create_namespace"]
    assert [s.order for s in p.steps] == sorted(s.order for s in p.steps)
    assert actions.index("iptables_restore") < actions.index("add_fips"), \
        "NAT rules go in before the floating IP address appears"
    text = "\n".join(c for s in p.steps for c in commands(s))
    assert "ip -4 addr add 10.255.253.84/32" in text and "iptables-restore -n" in text
    assert "tag=3" in text


def test_plan_against_converged_state_is_empty():
    desired = router_layouts(load(seed()), CFG)
    assert plan(desired, _observed_as(desired), Driver()).steps == []


def test_moved_and_removed_fips_flush_conntrack():
    desired = router_layouts(load(seed()), CFG)
    obs = _observed_as(desired)
    doc = seed()
    doc["floatingips"] = [{"floating_ip_address": "10.255.253.84", "port": "vm5"}]
    p = plan(router_layouts(load(doc), CFG), obs, Driver())
    assert [(s.action, s.args) for s in p.steps if s.phase == "conntrack"] == \
        [("flush_conntrack", ("10.255.253.84",))]
    assert not any(s.action in ("add_fips", "del_fips") for s in p.steps)
    doc["floatingips"] = []
    p = plan(router_layouts(load(doc), CFG), obs, Driver())
    assert ("del_fips", ) == tuple(s.action for s in p.steps if s.phase == "fip")
    assert any(s.action == "flush_conntrack" for s in p.steps)


def test_removal_and_foreign_namespaces():
    desired = router_layouts(load(seed()), CFG)
    obs = _observed_as(desired)
    (rid,) = desired
    p = plan({}, obs, Driver(), remove={rid})
    assert {s.action for s in p.steps} == {"del_port", "delete_namespace"}
    assert plan({}, obs, Driver()).steps == [], "without remove or prune nothing is deleted"
    obs2 = Observed(bridges={"br-int", "br-ex"}, foreign_namespaces={"qrouter-" + rid})
    p = plan(desired, obs2, Driver(), prune=True)
    assert p.steps == [] and rid in p.problems
    assert set(PHASES) >= {s.phase for s in p.steps}


def test_extra_routes_are_validated_laid_out_and_planned():
    doc = seed()
    doc["routers"][0]["routes"] = [{"destination": "192.0.2.0/24", "nexthop": "10.0.2.85"}]
    desired = router_layouts(load(doc), CFG)
    (lay,) = desired.values()
    assert lay.extra_routes == {("192.0.2.0/24", "10.0.2.85")}
    p = plan(desired, _observed_as(router_layouts(load(seed()), CFG)), Driver())
    assert [(s.action, s.args) for s in p.steps] == [("replace_route", ("192.0.2.0/24", "10.0.2.85"))]
    assert "ip route replace 192.0.2.0/24 via 10.0.2.85" in commands(p.steps[0])[0]
    obs = _observed_as(desired)
    for f in obs.namespaces.values():
        f.extra_routes = lay.extra_routes
    assert plan(desired, obs, Driver()).steps == []
    assert [s.action for s in plan(router_layouts(load(seed()), CFG), obs, Driver()).steps] == \
        ["del_route"]
    doc["routers"][0]["routes"] = [{"destination": "192.0.2.0/24", "nexthop": "172.16.0.1"}]
    assert errors_of(doc) == ["InvalidRoutes"]
    doc["routers"][0]["routes"] = [{"destination": "0.0.0.0/0", "nexthop": "10.0.2.85"}]
    assert errors_of(doc) == ["InvalidRoutes"]
