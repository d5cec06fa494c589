"""Security groups and port security -> OVN NB rows (pure): Port_Groups with their ACLs as
Neutron's ML2/OVN driver writes them, address sets of address groups, the drop group, each
LSP's port_security, and the smallest write for a rule or member change."""
from __future__ import annotations

import copy
import uuid
from dataclasses import replace

from floatip.backends.ovn.acl import DROP_PG, pg_name
from floatip.backends.ovn.diff import Actual, diff
from floatip.backends.ovn.translate import Options, translate
from floatip.core.document import load
from floatip.core.model import AddressGroup, SecurityGroup, SecurityGroupRule as R

OPTS = Options("floatip@test", firewall=True)
SG, OTHER, AG = (str(uuid.UUID(int=i)) for i in (1, 2, 3))
PG = pg_name(SG)

DOC = {
    "networks": [{"name": "ten"}],
    "subnets": [{"name": "tens", "network": "ten", "cidr": "198.51.100.0/24",
                 "gateway_ip": "198.51.100.1"}],
    "ports": [{"name": "vm1", "network": "ten", "fixed_ip": "198.51.100.10"},
              {"name": "vm2", "network": "ten", "fixed_ip": "198.51.100.11"},
              {"name": "vm3", "network": "ten", "fixed_ip": "198.51.100.12"}]}


def state(groups=None, **ports):
    """vm1/vm2 in SG with port security unless ``ports`` says otherwise (name -> changes)."""
    st = load(copy.deepcopy(DOC))
    byname = {p.name: p for p in st.ports.values()}
    new = {}
    for name, p in byname.items():
        ch = {"port_security_enabled": True, "security_groups": (SG,)} \
            if name in ("vm1", "vm2") else {}
        ch.update(ports.get(name, {}))
        new[p.id] = replace(p, **ch)
    rules = (R("r1", "ingress", "IPv4", 6, 22, 22, remote_ip_prefix="0.0.0.0/0"),
             R("r2", "ingress", "IPv4", remote_group_id=SG),
             R("r3", "egress", "IPv4"),
             R("r4", "egress", "IPv6"),
             R("r5", "ingress", "IPv4", 1, 8, None),
             R("r6", "ingress", "IPv6", 58, 128, 0),
             R("r7", "ingress", "IPv4", 17, 1000, 2000, remote_address_group_id=AG),
             R("r8", "egress", "IPv4", 112))
    sgs = groups if groups is not None else {
        SG: SecurityGroup(SG, rules=rules),
        OTHER: SecurityGroup(OTHER, stateful=False, rules=(
            R("s1", "ingress", "IPv4", 6, 80, 80),))}
    return replace(st, ports=new, security_groups=sgs, address_groups={
        AG: AddressGroup(AG, addresses=("192.0.2.0/24", "2001:db8::/64"))})


def port(st, name):
    return next(p for p in st.ports.values() if p.name == name)


def rows(d, table):
    return [r for r in d.rows.values() if r.table == table]


def test_a_port_group_per_group_with_acls_as_neutron_writes_them():
    st = state()
    d = translate(st, OPTS)
    pg = d.rows[f"pg:{SG}"]
    assert pg.table == "Port_Group" and pg.columns["name"] == PG
    assert pg.columns["external_ids"]["neutron:security_group_id"] == SG
    assert sorted(pg.columns["ports"]) == sorted(f"lsp:{port(st, n).id}" for n in ("vm1", "vm2"))
    acls = {r.columns["external_ids"]["neutron:security_group_rule_id"]: r.columns
            for r in rows(d, "ACL") if r.parent == f"pg:{SG}"}
    assert {k: (c["direction"], c["priority"], c["action"], c["match"])
            for k, c in acls.items()} == {
        "r1": ("to-lport", 1002, "allow-related",
               f"outport == @{PG} && ip4 && ip4.src == 0.0.0.0/0 && tcp && tcp.dst == 22"),
        "r2": ("to-lport", 1002, "allow-related",
               f"outport == @{PG} && ip4 && ip4.src == ${PG}_ip4"),
        "r3": ("from-lport", 1002, "allow-related", f"inport == @{PG} && ip4"),
        "r4": ("from-lport", 1002, "allow-related", f"inport == @{PG} && ip6"),
        "r5": ("to-lport", 1002, "allow-related",
               f"outport == @{PG} && ip4 && icmp4 && icmp4.type == 8"),
        "r6": ("to-lport", 1002, "allow-related",
               f"outport == @{PG} && ip6 && icmp6 && icmp6.type == 128 && icmp6.code == 0"),
        "r7": ("to-lport", 1002, "allow-related",
               f"outport == @{PG} && ip4 && ip4.src == $ag_{AG.replace('-', '_')}_ip4"
               " && udp && udp.dst >= 1000 && udp.dst <= 2000"),
        "r8": ("from-lport", 1002, "allow-related", f"inport == @{PG} && ip4 && ip.proto == 112"),
    }
    # a stateless group: allow-stateless; a group without members still has its port group
    other = d.rows[f"pg:{OTHER}"]
    assert other.columns["ports"] == []
    [s1] = [r for r in rows(d, "ACL") if r.parent == f"pg:{OTHER}"]
    assert s1.columns["action"] == "allow-stateless"
    # address sets of the address group, per IP version
    sets = {r.columns["name"]: r.columns["addresses"] for r in rows(d, "Address_Set")}
    ag = AG.replace("-", "_")
    assert sets == {f"ag_{ag}_ip4": ["192.0.2.0/24"], f"ag_{ag}_ip6": ["2001:db8::/64"]}


def test_drop_group_and_port_security_only_for_ports_with_port_security():
    st = state(vm1={"allowed_address_pairs": (("198.51.100.100", ""),
                                              ("198.51.100.0/28", "fa:16:3e:aa:bb:cc"))})
    d = translate(st, OPTS)
    vm1, vm2, vm3 = (port(st, n) for n in ("vm1", "vm2", "vm3"))
    drop = d.rows["pg:drop"]
    assert drop.columns["name"] == DROP_PG
    assert sorted(drop.columns["ports"]) == sorted([f"lsp:{vm1.id}", f"lsp:{vm2.id}"])
    assert sorted((r.columns["direction"], r.columns["priority"], r.columns["action"],
                   r.columns["match"]) for r in rows(d, "ACL") if r.parent == "pg:drop") == [
        ("from-lport", 1001, "drop", f"inport == @{DROP_PG} && ip"),
        ("from-lport", 1003, "drop", f"inport == @{DROP_PG} && "
         "((ip4 && udp.src == 67) || (ip6 && udp.src == 547))"),
        ("to-lport", 1001, "drop", f"outport == @{DROP_PG} && ip")]
    lsp1 = d.rows[f"lsp:{vm1.id}"].columns
    assert lsp1["port_security"] == [f"{vm1.mac_address} 198.51.100.10 198.51.100.100",
                                     "fa:16:3e:aa:bb:cc 198.51.100.0/28"]
    assert lsp1["addresses"] == [f"{vm1.mac_address} 198.51.100.10", "fa:16:3e:aa:bb:cc"]
    assert d.rows[f"lsp:{vm2.id}"].columns["port_security"] == [
        f"{vm2.mac_address} 198.51.100.11"]
    # port security off: no port_security, in no group, any MAC ("unknown", as Neutron)
    assert d.rows[f"lsp:{vm3.id}"].columns["port_security"] == []
    assert d.rows[f"lsp:{vm3.id}"].columns["addresses"] == [
        f"{vm3.mac_address} 198.51.100.12", "unknown"]
    assert not any(f"lsp:{vm3.id}" in r.columns.get("ports", ()) for r in rows(d, "Port_Group"))
    # no port with port security: no drop group (an emptied cloud leaves no row)
    off = {"port_security_enabled": False, "security_groups": ()}
    assert "pg:drop" not in translate(state(vm1=off, vm2=off), OPTS).rows


def as_actual(desired) -> dict[str, Actual]:
    out = {r.key: Actual(uuid.uuid4(), r.table, r.key, r.obj, copy.deepcopy(r.columns),
                         r.parent) for r in desired.rows.values()}
    for a in out.values():   # references as the IDL gives them: the rows' uuids
        a.columns.update({c: [out[x].uuid if x in out else x for x in v]
                          for c, v in a.columns.items() if c == "ports"})
    return out


def test_a_rule_change_writes_its_acl_only_and_a_member_its_port_group_only():
    st = state()
    d = translate(st, OPTS)
    actual = as_actual(d)
    assert not diff(d, actual)
    # a rule added to the group: one ACL created (under the port group), nothing else
    g = st.security_groups[SG]
    st2 = replace(st, security_groups={**st.security_groups, SG: replace(
        g, rules=g.rules + (R("r9", "ingress", "IPv4", 6, 443, 443),))})
    part = translate(st2, OPTS, objects={f"sg:{SG}"})
    d.replace({f"sg:{SG}"}, part)
    plan = diff(d, actual, objects={f"sg:{SG}"})
    assert [r.key for r in plan.create] == [f"acl:{SG}:r9"]
    assert not plan.update and not plan.delete and not plan.attach
    # a member joining: the port group's ports, nothing else
    vm3 = port(st, "vm3")
    st3 = replace(st, ports={**st.ports, vm3.id: replace(
        vm3, port_security_enabled=True, security_groups=(SG,))})
    d3 = translate(st3, OPTS)
    plan = diff(d3, actual, objects={f"sg:{SG}"})
    assert not plan.create and not plan.delete
    assert [(r.key, list(cols)) for r, _, cols in plan.update] == [(f"pg:{SG}", ["ports"])]
    # a group deleted: its port group goes (its ACLs with it, held by nothing)
    st4 = replace(st, security_groups={OTHER: st.security_groups[OTHER]})
    plan = diff(translate(st4, OPTS), actual, objects={f"sg:{SG}"})
    assert {a.key for a in plan.delete} == {f"pg:{SG}"} | {
        f"acl:{SG}:{r.id}" for r in g.rules}


def test_router_advertisement_guard_covers_port_secured_vm_ports_and_moves_in_one_bundle():
    from floatip.backends.ovn import raguard
    st = state(vm2={"port_security_enabled": False, "security_groups": ()})
    dhcp = replace(port(st, "vm3"), id="dhcp", device_owner="network:dhcp",
                   port_security_enabled=True)
    st = replace(st, ports={**st.ports, "dhcp": dhcp})
    # vm1 only: vm2 has port security off, vm3 has none, a trusted port is never guarded
    assert raguard.guarded_ports(st) == [port(st, "vm1").id]
    assert raguard.bundle({3, 5}, {3, 4}) == [
        f"delete_strict cookie={raguard.COOKIE:#x}/-1,table=0,priority=200,icmp6,in_port=4,"
        "icmp_type=134",
        f"add cookie={raguard.COOKIE:#x},table=0,priority=200,icmp6,in_port=5,"
        "icmp_type=134,actions=drop"]
    assert raguard.bundle({3}, {3}) == []
    dump = (" cookie=0xf10a700000000086, table=0, priority=200,icmp6,in_port=7,icmp_type=134 "
            "actions=drop\n")
    assert raguard.installed(dump) == {7}
    assert raguard.target("unix:/tmp/x/db.sock", "br-int") == "unix:/tmp/x/br-int.mgmt"
    assert raguard.target(None, "br-int") == "br-int"
