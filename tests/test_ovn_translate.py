"""The OVN backend's pure parts: desired state -> NB rows, and rows -> the smallest write."""
from __future__ import annotations

import copy
import uuid
from dataclasses import replace

from floatip.backends.ovn.diff import Actual, diff
from floatip.backends.ovn.translate import (KEY, OBJECT, OWNER, TABLES, ChassisInfo, Options,
                                            fip_mac, gateway_chassis_for, translate)
from floatip.core.document import load

OPTS = Options("floatip@test")
GW1 = ChassisInfo("gw1", "gw1", True, frozenset({"physnet1"}))
GW2 = ChassisInfo("gw2", "gw2", True, frozenset({"physnet1"}))
COMPUTE = ChassisInfo("c1", "c1", False, frozenset({"physnet1"}))
BARE = ChassisInfo("c2", "c2", False, frozenset())

DOC = {
    "networks": [
        {"name": "ext", "router:external": True, "provider:physical_network": "physnet1",
         "provider:network_type": "vlan", "provider:segmentation_id": 7},
        {"name": "ten"}],
    "subnets": [
        {"name": "exts", "network": "ext", "cidr": "203.0.113.0/24", "gateway_ip": "203.0.113.1"},
        {"name": "tens", "network": "ten", "cidr": "198.51.100.0/24",
         "gateway_ip": "198.51.100.1"}],
    "ports": [{"name": "vm1", "network": "ten", "fixed_ip": "198.51.100.10"},
              {"name": "vm2", "network": "ten", "fixed_ip": "198.51.100.11"}],
    "routers": [{"name": "r", "external_gateway_info": {"network": "ext",
                                                         "ip_address": "203.0.113.11"},
                 "interfaces": ["tens"], "routes": [{"destination": "192.0.2.0/24",
                                                     "nexthop": "198.51.100.11"}]}],
    "floatingips": [{"floating_ip_address": "203.0.113.50", "port": "vm1"}]}


def state(**changes):
    doc = copy.deepcopy(DOC)
    doc.update(changes)
    return load(doc)


def by_table(desired, table):
    return [r for r in desired.rows.values() if r.table == table]


def as_actual(desired) -> dict[str, Actual]:
    """What the NB would hold after writing ``desired``."""
    return {r.key: Actual(uuid.uuid4(), r.table, r.key, r.obj, copy.deepcopy(r.columns),
                          r.parent, holders=frozenset(r.holders))
            for r in desired.rows.values()}


def test_a_forwardings_load_balancer_is_on_the_router_and_its_internal_switches():
    """Neutron's OVN driver puts it on the router's switches too (hairpin: a VM reaches
    another through the floating IP's port); a switch left out is added to an existing one."""
    st = state(floatingips=[{"floating_ip_address": "203.0.113.50", "port_forwardings": [
        {"protocol": "tcp", "internal_port_name": "vm1", "internal_port": 80,
         "external_port": 8080}]}])
    d = translate(st, OPTS, [GW1, COMPUTE])
    ten = next(n for n in st.networks.values() if n.name == "ten")
    r = next(iter(st.routers))
    (lb,) = by_table(d, "Load_Balancer")
    assert lb.parent == f"lr:{r}" and lb.holders == (f"ls:{ten.id}",)
    actual = as_actual(d)
    assert not diff(d, actual)
    have = actual[lb.key]
    actual[lb.key] = Actual(have.uuid, have.table, have.key, have.obj, have.columns,
                            have.parent, holders=frozenset())   # on the router only
    plan = diff(d, actual)
    assert [(row.key, add, drop) for row, _, add, drop in plan.hold] == \
        [(lb.key, (f"ls:{ten.id}",), ())]
    assert not plan.create and not plan.update and not plan.delete


def test_rows_follow_neutron_names_and_carry_the_owner_marker():
    st = state()
    d = translate(st, OPTS, [GW1, COMPUTE])
    net = {n.name: n for n in st.networks.values()}
    names = {r.columns["name"] for r in by_table(d, "Logical_Switch")}
    assert names == {f"neutron-{n.id}" for n in st.networks.values()}
    localnet = [r for r in by_table(d, "Logical_Switch_Port") if r.columns["type"] == "localnet"]
    assert len(localnet) == 1
    assert localnet[0].columns["options"] == {"network_name": "physnet1"}
    assert localnet[0].columns["tag"] == [7] and localnet[0].parent == f"ls:{net['ext'].id}"
    vm1 = next(p for p in st.ports.values() if p.name == "vm1")
    lsp = d.rows[f"lsp:{vm1.id}"]
    assert lsp.columns["name"] == vm1.id
    assert lsp.columns["addresses"] == [f"{vm1.mac_address} 198.51.100.10"]
    assert lsp.columns["port_security"] == lsp.columns["addresses"]
    for row in d.rows.values():
        ext = row.columns["external_ids"]
        assert ext[OWNER] == "floatip@test" and ext[KEY] == row.key and ext[OBJECT] == row.obj


def test_router_ports_snat_routes_and_fip():
    st = state()
    r = next(iter(st.routers.values()))
    d = translate(st, OPTS, [GW1, COMPUTE])
    lrps = {x.columns["name"]: x for x in by_table(d, "Logical_Router_Port")}
    assert lrps[f"lrp-{r.gateway.port_id}"].columns["networks"] == ["203.0.113.11/24"]
    assert lrps[f"lrp-{r.interfaces[0].port_id}"].columns["networks"] == ["198.51.100.1/24"]
    peer = d.rows[f"lsp:{r.gateway.port_id}"]
    assert peer.columns["type"] == "router" and peer.columns["options"] == {
        "router-port": f"lrp-{r.gateway.port_id}", "nat-addresses": "router"}
    nats = {(x.columns["type"], x.columns["external_ip"], x.columns["logical_ip"])
            for x in by_table(d, "NAT")}
    assert nats == {("snat", "203.0.113.11", "198.51.100.0/24"),
                    ("dnat_and_snat", "203.0.113.50", "198.51.100.10")}
    routes = {(x.columns["ip_prefix"], x.columns["nexthop"])
              for x in by_table(d, "Logical_Router_Static_Route")}
    assert routes == {("0.0.0.0/0", "203.0.113.1"), ("192.0.2.0/24", "198.51.100.11")}
    gcs = by_table(d, "Gateway_Chassis")
    assert [(g.columns["chassis_name"], g.columns["priority"]) for g in gcs] == [("gw1", 1)]
    assert not d.problems


def test_no_snat_without_enable_snat_and_no_fip_without_port():
    doc = copy.deepcopy(DOC)
    doc["routers"][0]["external_gateway_info"]["enable_snat"] = False
    doc["floatingips"] = [{"floating_ip_address": "203.0.113.50", "port": None}]
    d = translate(load(doc), OPTS, [GW1])
    assert by_table(d, "NAT") == []


def test_gateway_scheduling_needs_a_gateway_chassis_with_the_mapping():
    d = translate(state(), OPTS, [COMPUTE, BARE])
    assert by_table(d, "Gateway_Chassis") == []
    assert "no gateway chassis" in next(iter(d.problems.values()))
    sched = gateway_chassis_for("r1", "physnet1", [GW1, GW2, COMPUTE])
    assert sorted(p for _, p in sched) == [1, 2] and {c for c, _ in sched} == {"gw1", "gw2"}
    firsts = {gateway_chassis_for(f"r{i}", "physnet1", [GW1, GW2])[0][0] for i in range(20)}
    assert firsts == {"gw1", "gw2"}  # routers spread over the gateways


def test_distributed_fip_only_where_the_vm_chassis_maps_the_network():
    st = state()
    vm1 = next(p for p in st.ports.values() if p.name == "vm1")
    fid = next(iter(st.floatingips))
    opts = Options("floatip@test", distributed_fip=True)
    nat = next(r for r in by_table(translate(st, opts, [GW1, COMPUTE], {vm1.id: "c1"}), "NAT")
               if r.columns["type"] == "dnat_and_snat")
    assert nat.columns["logical_port"] == [vm1.id]
    assert nat.columns["external_mac"] == [fip_mac(fid)]
    for chassis, bound in (([GW1, BARE], {vm1.id: "c2"}), ([GW1, COMPUTE], {})):
        nat = next(r for r in by_table(translate(st, opts, chassis, bound), "NAT")
                   if r.columns["type"] == "dnat_and_snat")
        assert nat.columns["logical_port"] == [] and nat.columns["external_mac"] == []


def test_diff_creates_leaves_first_then_nothing():
    d = translate(state(), OPTS, [GW1])
    plan = diff(d, {})
    assert len(plan.create) == len(d.rows)
    ranks = [TABLES.index(r.table) for r in plan.create]
    assert ranks == sorted(ranks)
    assert not diff(d, as_actual(d))


def test_diff_updates_changed_columns_and_removes_stale_owned_rows():
    d = translate(state(), OPTS, [GW1])
    actual = as_actual(d)
    fip_key = next(k for k in d.rows if ":fip:" in k)
    actual[fip_key].columns["logical_ip"] = "198.51.100.99"   # changed by hand
    stale = Actual(uuid.uuid4(), "NAT", "nat:gone", "fip:gone", {}, "lr:x", uuid.uuid4())
    actual["nat:gone"] = stale
    plan = diff(d, actual)
    assert [(r.key, cols) for r, _, cols in plan.update] == [
        (fip_key, {"logical_ip": "198.51.100.10"})]
    assert plan.delete == [stale]
    # a per-object sync leaves the other objects alone
    plan = diff(d, actual, objects={"fip:gone"})
    assert plan.update == [] and plan.delete == [stale]


def test_diff_reattaches_a_row_held_by_the_wrong_parent():
    d = translate(state(), OPTS, [GW1])
    actual = as_actual(d)
    fip_key = next(k for k in d.rows if ":fip:" in k)
    actual[fip_key].parent = None
    plan = diff(d, actual)
    assert [r.key for r, _ in plan.attach] == [fip_key]


def test_diff_never_takes_a_name_another_owner_holds():
    st = state()
    d = translate(st, OPTS, [GW1])
    vm1 = next(p for p in st.ports.values() if p.name == "vm1")
    plan = diff(d, {}, {"Logical_Switch_Port": {vm1.id}})
    assert f"port:{vm1.id}" in plan.conflicts
    assert f"lsp:{vm1.id}" not in {r.key for r in plan.create}


def test_diff_of_some_objects_writes_the_switch_a_port_needs():
    st = state()
    d = translate(st, OPTS, [GW1])
    actual = as_actual(d)
    vm1 = next(p for p in st.ports.values() if p.name == "vm1")
    ls = f"ls:{vm1.network_id}"
    del actual[ls], actual[f"lsp:{vm1.id}"]
    plan = diff(d, actual, objects={f"port:{vm1.id}"})
    # the switch (another object, deleted by hand) comes with the port, parent first
    assert [r.key for r in plan.create] == [f"lsp:{vm1.id}", ls]
    assert not plan.delete and not plan.update
    # nothing of an object out of scope is looked at
    assert not diff(d, actual, objects=set())


def test_diff_leaves_held_objects_as_they_are():
    st = state()
    d = translate(st, OPTS, [GW1])
    rid = next(iter(st.routers))
    held = translate(st, OPTS, [GW1], skip={f"router:{rid}"})
    assert not any(r.obj == f"router:{rid}" for r in held.rows.values())
    fip = f"fip:{next(iter(st.floatingips))}"   # its floating IP sits in it: held too
    assert not diff(held, as_actual(d), hold={f"router:{rid}", fip})
    assert {a.obj for a in diff(held, as_actual(d)).delete} == {f"router:{rid}", fip}


def test_a_translation_moved_forward_object_by_object_equals_a_new_one():
    st = state()
    whole = translate(st, OPTS, [GW1])
    doc = copy.deepcopy(DOC)
    doc["floatingips"][0]["port"] = "vm2"
    doc["ports"].append({"name": "vm3", "network": "ten", "fixed_ip": "198.51.100.12"})
    new = load(doc)
    fid = next(iter(st.floatingips))
    vm3 = next(p for p in new.ports.values() if p.name == "vm3")
    touched = {f"fip:{fid}", f"port:{vm3.id}"}
    part = translate(new, OPTS, [GW1], objects=touched)
    assert {r.obj for r in part.rows.values()} == touched
    whole.replace(touched, part)
    again = translate(new, OPTS, [GW1])
    assert whole.rows == again.rows
    assert {o: sorted(k) for o, k in whole.by_obj.items()} == \
        {o: sorted(k) for o, k in again.by_obj.items()}
    # applied to the NB as it was, the partial diff writes exactly the change
    plan = diff(whole, as_actual(translate(st, OPTS, [GW1])), objects=touched)
    assert [r.key for r in plan.create] == [f"lsp:{vm3.id}"]
    assert [(r.obj, cols) for r, _, cols in plan.update] == [
        (f"fip:{fid}", {"logical_ip": "198.51.100.11"})]


def test_ipv6_addresses_go_on_ports_and_router_ports_without_nat():
    """Subnets of both versions (the API's IPv6 contract; built here without the v4-only
    validation of files): v6 addresses on the LSP and the LRPs, a v6 default route, NAT for
    IPv4 only."""
    from floatip.core.model import Subnet
    st = state()
    r = next(iter(st.routers.values()))
    ten = next(n for n in st.networks.values() if n.name == "ten")
    ext = next(n for n in st.networks.values() if n.name == "ext")
    st.subnets["s6"] = Subnet("s6", ten.id, "2001:db8:1::/64", "2001:db8:1::1", ip_version=6)
    st.subnets["e6"] = Subnet("e6", ext.id, "2001:db8:ff::/64", "2001:db8:ff::1", ip_version=6)
    vm1 = next(p for p in st.ports.values() if p.name == "vm1")
    st.ports[vm1.id] = vm1 = replace(vm1, fixed_ips=(*vm1.fixed_ips, ("s6", "2001:db8:1::10")))
    itf = r.interfaces[0]
    st.routers[r.id] = r = replace(
        r, interfaces=(itf, replace(itf, subnet_id="s6", ip_address="2001:db8:1::1")),
        gateway=replace(r.gateway, extra_ips=(("e6", "2001:db8:ff::11"),)))
    d = translate(st, OPTS, [GW1])
    assert d.rows[f"lsp:{vm1.id}"].columns["addresses"] == [
        f"{vm1.mac_address} 198.51.100.10 2001:db8:1::10"]
    assert sorted(d.rows[f"lrp:{itf.port_id}"].columns["networks"]) == [
        "198.51.100.1/24", "2001:db8:1::1/64"]
    assert sorted(d.rows[f"lrp:{r.gateway.port_id}"].columns["networks"]) == [
        "2001:db8:ff::11/64", "203.0.113.11/24"]
    nats = {(x.columns["type"], x.columns["logical_ip"]) for x in by_table(d, "NAT")}
    assert nats == {("snat", "198.51.100.0/24"), ("dnat_and_snat", "198.51.100.10")}
    routes = {(x.columns["ip_prefix"], x.columns["nexthop"])
              for x in by_table(d, "Logical_Router_Static_Route")}
    assert {("0.0.0.0/0", "203.0.113.1"), ("::/0", "2001:db8:ff::1")} <= routes


def test_tenant_vlan_networks_are_overlays_unless_provider_networks_are_asked_for():
    doc = copy.deepcopy(DOC)
    doc["networks"][1] = {"name": "ten", "provider:network_type": "vlan",
                          "provider:segmentation_id": 3, "provider:physical_network": "physnet1"}
    st = load(doc)
    ten = next(n for n in st.networks.values() if n.name == "ten")
    assert f"provnet:{ten.id}" not in translate(st, OPTS, [GW1]).rows
    row = translate(st, Options("floatip@test", provider_tenant_networks=True), [GW1]).rows[
        f"provnet:{ten.id}"]
    assert row.columns["tag"] == [3] and row.columns["options"] == {"network_name": "physnet1"}


def test_config():
    from floatip.backends.ovn.backend import OvnConfig
    c = OvnConfig.of({"ovn-nb": "tcp:a:6641", "ovn_sb": "tcp:a:6642", "distributed_fip": True})
    assert (c.nb, c.sb, c.distributed_fip) == ("tcp:a:6641", "tcp:a:6642", True)
    assert c.owner.startswith("floatip@")


def test_a_change_touches_only_the_objects_whose_rows_it_alters():
    """The backend's scope per change (no databases needed): the objects to translate and
    compare again, from the change feed's changed ids."""
    from floatip.backends.ovn.backend import OvnBackend, OvnConfig
    from floatip.core.model import fip_routers
    st = state()
    b = OvnBackend(None, OvnConfig("unix:nb", "unix:sb", owner="floatip@test"))
    b.desired.load({"generation": 1, "state": st, "vm_ports": {}, "known_routers": set()})
    b._fip_router = fip_routers(st)
    fid = next(iter(st.floatingips))
    rid = next(iter(st.routers))
    ports = {p.name: p for p in st.ports.values()}
    gen = iter(range(2, 100))

    def apply(kind, obj=None, delete=None):
        return b._touched(b.desired.apply({
            "generation": next(gen), "upserts": {kind: {obj.id: obj}} if obj else {},
            "deletes": {kind: [delete]} if delete else {}}), set())
    # a floating IP moved: its NAT row only
    moved = replace(st.floatingips[fid], port_id=ports["vm2"].id, fixed_ip_address=None)
    assert apply("floatingips", moved) == {f"fip:{fid}"}
    assert b._fip_router == {fid: rid}
    # a port: its LSP and the floating IPs on it
    assert apply("ports", replace(ports["vm2"], name="x")) == {
        f"port:{ports['vm2'].id}", f"fip:{fid}"}
    # the router loses its interface: the router, and the floating IP it no longer carries
    router = b.desired.state.routers[rid]
    assert apply("routers", replace(router, interfaces=())) == {f"router:{rid}", f"fip:{fid}"}
    assert b._fip_router == {}
    # a network: its rows, its subnets' DHCP options (MTU), its ports, the routers on it,
    # the floating IPs from it
    nets = b.desired.state.networks
    ten = ports["vm1"].network_id
    subs = {s.name: s.id for s in st.subnets.values()}
    assert apply("networks", replace(nets[ten], name="t")) == {
        f"network:{ten}", f"subnet:{subs['tens']}", f"port:{ports['vm1'].id}",
        f"port:{ports['vm2'].id}"}
    ext = st.floatingips[fid].floating_network_id
    assert apply("networks", replace(nets[ext], name="e")) == {
        f"network:{ext}", f"subnet:{subs['exts']}", f"router:{rid}", f"fip:{fid}"}
    # a subnet: its DHCP options and the ports with an address on it (their references;
    # the router that would advertise it lost its interface above)
    tens = b.desired.state.subnets[subs["tens"]]
    assert apply("subnets", replace(tens, dns_nameservers=("192.0.2.53",))) == {
        f"subnet:{tens.id}", f"port:{ports['vm1'].id}", f"port:{ports['vm2'].id}"}
    # drift reported by the NB is in scope as it is
    assert b._touched({}, {"drift:router:x", "pb:y"}) == {"router:x"}


# -- native DHCP and router advertisements (issue 23) ---------------------------------------
DHCP_DOC = {
    "networks": [{"name": "ten", "mtu": 1400}],
    "subnets": [
        {"name": "v4", "network": "ten", "cidr": "198.51.100.0/24", "gateway_ip": "198.51.100.1",
         "enable_dhcp": True, "dns_nameservers": ["192.0.2.53", "192.0.2.54"]},
        {"name": "st", "network": "ten", "cidr": "2001:db8:1::/64", "ip_version": 6,
         "gateway_ip": "2001:db8:1::1", "enable_dhcp": True, "ipv6_ra_mode": "dhcpv6-stateful",
         "ipv6_address_mode": "dhcpv6-stateful", "dns_nameservers": ["2001:db8::53"]},
        {"name": "nodhcp", "network": "ten", "cidr": "192.0.2.0/28", "enable_dhcp": False}],
    "ports": [
        {"name": "vm1", "network": "ten",
         "fixed_ips": [{"subnet": "v4", "ip_address": "198.51.100.10"},
                       {"subnet": "st", "ip_address": "2001:db8:1::10"}]},
        {"name": "dhcp", "network": "ten", "device_owner": "network:dhcp",
         "fixed_ips": [{"subnet": "v4", "ip_address": "198.51.100.2"},
                       {"subnet": "st", "ip_address": "2001:db8:1::2"}]}],
    "routers": [{"name": "r", "interfaces": ["v4", "st"]}]}


def _dhcp_state(**subnet_changes):
    doc = copy.deepcopy(DHCP_DOC)
    for s in doc["subnets"]:
        s.update(subnet_changes.get(s["name"], {}))
    st = load(doc)
    for s in st.subnets.values():   # host routes: not in the file format
        if s.name == "v4":
            st.subnets[s.id] = replace(s, host_routes=(("192.0.2.0/24", "198.51.100.9"),))
    return st


def _lrp6(d):
    return next(r for r in by_table(d, "Logical_Router_Port")
                if any(":" in n for n in r.columns["networks"]))


def test_a_dhcp_options_row_per_dhcp_subnet_as_neutron_writes_it():
    from floatip.backends.ovn.dhcp import Ref
    st = _dhcp_state()
    d = translate(st, OPTS)
    subs = {s.name: s for s in st.subnets.values()}
    ports = {p.name: p for p in st.ports.values()}
    rows = {r.columns["cidr"]: r for r in by_table(d, "DHCP_Options")}
    assert set(rows) == {"198.51.100.0/24", "2001:db8:1::/64"}   # not the one without DHCP
    v4 = rows["198.51.100.0/24"]
    assert v4.obj == f"subnet:{subs['v4'].id}" and v4.columns["external_ids"][OWNER]
    assert v4.columns["options"] == {
        "server_id": "198.51.100.1", "server_mac": ports["dhcp"].mac_address,
        "lease_time": "86400", "mtu": "1400", "router": "198.51.100.1",
        "dns_server": "{192.0.2.53, 192.0.2.54}",
        # the metadata route via the network's DHCP port; the default route with the others
        "classless_static_route": "{169.254.169.254/32,198.51.100.2, "
                                  "192.0.2.0/24,198.51.100.9, 0.0.0.0/0,198.51.100.1}"}
    v6 = rows["2001:db8:1::/64"]
    assert v6.columns["options"] == {"server_id": ports["dhcp"].mac_address,
                                     "dns_server": "{2001:db8::53}"}
    lsp = d.rows[f"lsp:{ports['vm1'].id}"].columns
    assert lsp["dhcpv4_options"] == [Ref(v4.key)] and lsp["dhcpv6_options"] == [Ref(v6.key)]
    # the DHCP port is the localport on every chassis, without DHCP options of its own
    dport = d.rows[f"lsp:{ports['dhcp'].id}"].columns
    assert dport["type"] == "localport" and dport["dhcpv4_options"] == []
    # the router port advertises the stateful mode with the MTU
    lrp = _lrp6(d)
    assert lrp.columns["ipv6_ra_configs"] == {
        "address_mode": "dhcpv6_stateful", "send_periodic": "true", "mtu": "1400",
        "max_interval": "100", "min_interval": "30"}


def test_dhcpv6_stateless_and_slaac_and_dhcp_off():
    st = _dhcp_state(st={"ipv6_ra_mode": "dhcpv6-stateless",
                         "ipv6_address_mode": "dhcpv6-stateless"})
    d = translate(st, OPTS)
    v6 = next(r for r in by_table(d, "DHCP_Options") if ":" in r.columns["cidr"])
    assert v6.columns["options"]["dhcpv6_stateless"] == "true"
    lrp = _lrp6(d)
    assert lrp.columns["ipv6_ra_configs"]["address_mode"] == "dhcpv6_stateless"
    # SLAAC: no DHCPv6 row, the advertisement carries the DNS server (RDNSS)
    st = _dhcp_state(st={"ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"})
    d = translate(st, OPTS)
    assert [r.columns["cidr"] for r in by_table(d, "DHCP_Options")] == ["198.51.100.0/24"]
    vm1 = next(p for p in st.ports.values() if p.name == "vm1")
    assert d.rows[f"lsp:{vm1.id}"].columns["dhcpv6_options"] == []
    ra = _lrp6(d).columns["ipv6_ra_configs"]
    assert ra["address_mode"] == "slaac" and ra["rdnss"] == "2001:db8::53"
    # DHCP off on the IPv4 subnet: no row, no reference
    st = _dhcp_state(v4={"enable_dhcp": False})
    d = translate(st, OPTS)
    assert all(":" in r.columns["cidr"] for r in by_table(d, "DHCP_Options"))
    assert d.rows[f"lsp:{vm1.id}"].columns["dhcpv4_options"] == []


def test_diff_writes_the_options_row_with_the_port_that_refers_to_it():
    """A reference is compared with the referred row's uuid; a port written alone brings
    the DHCP options it needs when they are missing from the NB."""
    st = _dhcp_state()
    d = translate(st, OPTS)
    actual = as_actual(d)
    key = next(r.key for r in by_table(d, "DHCP_Options") if ":" not in r.columns["cidr"])
    vm1 = next(p for p in st.ports.values() if p.name == "vm1")
    lsp = f"lsp:{vm1.id}"
    # in place: the NB's column holds the referred row (the IDL gives rows with a uuid)
    for a in actual.values():
        for col, v in list(a.columns.items()):
            if isinstance(v, list) and v and hasattr(v[0], "upper") and v[0] in actual:
                a.columns[col] = [type("R", (), {"uuid": actual[v[0]].uuid})()]
    assert not diff(d, actual)
    # the options row gone: it comes back with the port, and the port is set again
    del actual[key]
    plan = diff(d, actual, objects={f"port:{vm1.id}"})
    assert [r.key for r in plan.create] == [key]
    assert [(r.key, list(c)) for r, _, c in plan.update] == [(lsp, ["dhcpv4_options"])]


def test_a_port_with_extra_dhcp_options_gets_its_own_row_as_neutron_writes_it():
    """extra_dhcp_opt on OVN (Neutron's get_lsp_dhcp_opts): the subnet's options plus the
    port's that OVN knows (by OVN's names, strings quoted, routes merged), in a row of the
    port's own (external_ids port_id) that its LSP refers to; unknown options ignored;
    ``dhcp_disabled: true``: no DHCP for the port; no options: the subnet's row again."""
    from floatip.backends.ovn.dhcp import Ref
    st = _dhcp_state()
    vm1 = next(p for p in st.ports.values() if p.name == "vm1")
    subs = {s.name: s for s in st.subnets.values()}
    st.ports[vm1.id] = replace(vm1, extra_dhcp_opts=(
        ("ntp-server", "192.0.2.123", 4), ("domain-search", "corp.example", 4),
        ("classless-static-route", "10.0.0.0/8,198.51.100.9", 4), ("mtu", "1300", 4),
        ("no-such-option", "x", 4), ("dns-server", "[2001:db8::99]", 6)))
    d = translate(st, OPTS)
    base = d.rows[f"dhcp:{subs['v4'].id}"].columns
    own = d.rows[f"dhcp:{subs['v4'].id}:{vm1.id}"]
    assert own.table == "DHCP_Options" and own.obj == f"port:{vm1.id}"
    assert own.columns["cidr"] == "198.51.100.0/24"
    assert own.columns["external_ids"]["port_id"] == vm1.id
    assert own.columns["external_ids"]["subnet_id"] == subs["v4"].id
    assert own.columns["options"] == {
        **base["options"], "ntp_server": "192.0.2.123", "mtu": "1300",
        "domain_search_list": '"corp.example"',
        "classless_static_route": "{169.254.169.254/32,198.51.100.2, 192.0.2.0/24,198.51.100.9,"
                                  " 0.0.0.0/0,198.51.100.1, 10.0.0.0/8,198.51.100.9}"}
    own6 = d.rows[f"dhcp:{subs['st'].id}:{vm1.id}"]
    assert own6.columns["options"]["dns_server"] == "[2001:db8::99]"
    lsp = d.rows[f"lsp:{vm1.id}"].columns
    assert lsp["dhcpv4_options"] == [Ref(own.key)] and lsp["dhcpv6_options"] == [Ref(own6.key)]
    # only options OVN does not know: the subnet's row
    st.ports[vm1.id] = replace(vm1, extra_dhcp_opts=(("no-such-option", "x", 4),))
    d = translate(st, OPTS)
    assert d.rows[f"lsp:{vm1.id}"].columns["dhcpv4_options"] == [Ref(f"dhcp:{subs['v4'].id}")]
    assert len(by_table(d, "DHCP_Options")) == 2
    # dhcp_disabled: no DHCPv4 for the port, DHCPv6 as before
    st.ports[vm1.id] = replace(vm1, extra_dhcp_opts=(("dhcp_disabled", "True", 4),))
    d = translate(st, OPTS)
    assert d.rows[f"lsp:{vm1.id}"].columns["dhcpv4_options"] == []
    assert d.rows[f"lsp:{vm1.id}"].columns["dhcpv6_options"] == [Ref(f"dhcp:{subs['st'].id}")]
