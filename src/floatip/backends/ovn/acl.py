"""Security groups and port security in the OVN Northbound, as Neutron's ML2/OVN driver
writes them (``ovn_client`` / ``acl.py``). Pure: no I/O.

- a ``Port_Group`` ``pg_<group id with _>`` per security group (object ``sg:<id>``), its
  ``ports`` the LSPs of the ports with port security in that group, its ``acls`` one ACL
  per rule: ingress ``to-lport`` / egress ``from-lport``, priority 1002, ``allow-related``
  (``allow-stateless`` for a stateless group), the match Neutron builds (direction,
  ethertype, remote prefix / remote group / remote address group, protocol and ports or
  ICMP type/code). A remote group is OVN's own address set of its port group
  (``$pg_<id>_ip4``, made by ovn-northd from the ports' addresses, as Neutron 23+ uses it):
  a member joining changes the port group's ``ports`` and nothing else;
- ``Address_Set`` ``ag_<id>_ip4`` / ``ag_<id>_ip6`` per address group (object ``ag:<id>``);
- the drop group (Neutron's ``neutron_pg_drop``; floatip's own name, ``floatip_pg_drop``,
  object ``portsec:drop``) with every port with port security and two ACLs at priority 1001
  dropping IP both ways: what no group allows is dropped (no port with port security: no
  drop group, so a cloud emptied leaves no row); and one at 1003, above the groups' allows,
  dropping DHCP server replies a VM sends (floatip's, not Neutron's: OVN's port security
  lets them through; router advertisements cannot be stopped by an ACL: the chassis
  agent drops them on br-int, raguard.py);
- ``port_security`` on each LSP with port security: MAC, fixed IPs and the allowed address
  pairs with that MAC in one entry, a pair with another MAC an entry of its own (whose MAC
  also goes to ``addresses``); none for trusted ports and ports with port security off.
"""
from __future__ import annotations

import ipaddress

from ...core.firewall import PORTED
from ...core.model import Port, SecurityGroupRule, State
from .dhcp import Ref

PRIORITY_ALLOW, PRIORITY_DROP = 1002, 1001    # Neutron's ACL_PRIORITY_ALLOW / _DROP
PRIORITY_NO_SERVER = 1003                      # above every group's allow
DROP_PG = "floatip_pg_drop"
DHCP_SERVER_MATCH = (f"inport == @{DROP_PG} && "
                     "((ip4 && udp.src == 67) || (ip6 && udp.src == 547))")
DROP_OBJ = "portsec:drop"
RULE_ID = "neutron:security_group_rule_id"
SG_ID = "neutron:security_group_id"
ICMP = (1, 58)


def pg_name(group_id: str) -> str:
    return "pg_" + group_id.replace("-", "_")


def ag_name(group_id: str, version: int) -> str:
    return f"ag_{group_id.replace('-', '_')}_ip{version}"


def lsp_addresses(port: Port) -> tuple[list[str], list[str]]:
    """(``addresses``, ``port_security``) of a VM port's LSP (Neutron's
    ``_get_allowed_addresses_from_port``)."""
    own = " ".join([port.mac_address, *[ip for _, ip in port.fixed_ips]])
    if not port.port_security_enabled:
        # a VM port without port security may send from any MAC: "unknown" (as Neutron)
        # has frames to MACs OVN does not know delivered to it too
        return [own] + ([] if port.device_owner.startswith("network:") else ["unknown"]), []
    mine, others, macs = [own], [], []
    for ip, mac in port.allowed_address_pairs:
        if not mac or mac.lower() == port.mac_address.lower():
            mine.append(ip)
        else:
            others.append(f"{mac} {ip}")
            if mac not in macs:
                macs.append(mac)
    return [own, *macs], [" ".join(mine), *sorted(set(others))]


def rule_match(pg: str, r: SecurityGroupRule) -> str | None:
    """The ACL match of a rule of port group ``pg`` (None: OVN cannot express it, e.g.
    ports of a protocol OVN has no fields for; the rule then allows nothing)."""
    ingress = r.direction == "ingress"
    match = f"{'outport' if ingress else 'inport'} == @{pg}"
    ip = "ip4" if r.ethertype == "IPv4" else "ip6"
    match += f" && {ip}"
    side = "src" if ingress else "dst"
    if r.remote_ip_prefix:
        match += f" && {ip}.{side} == {r.remote_ip_prefix}"
    if r.remote_group_id:
        match += f" && {ip}.{side} == ${pg_name(r.remote_group_id)}_{ip}"
    if r.remote_address_group_id:
        match += f" && {ip}.{side} == ${ag_name(r.remote_address_group_id, int(ip[-1]))}"
    proto, lo, hi = r.protocol, r.port_range_min, r.port_range_max
    if proto is None:
        return match
    if proto in PORTED:
        name = PORTED[proto]
        match += f" && {name}"
        if lo is not None and lo == hi:
            match += f" && {name}.dst == {lo}"
        else:
            if lo is not None:
                match += f" && {name}.dst >= {lo}"
            if hi is not None:
                match += f" && {name}.dst <= {hi}"
    elif proto in ICMP:
        icmp = "icmp4" if ip == "ip4" else "icmp6"
        match += f" && {icmp}"
        if lo is not None:
            match += f" && {icmp}.type == {lo}"
        if hi is not None:
            match += f" && {icmp}.code == {hi}"
    elif lo is not None or hi is not None:
        return None
    else:
        match += f" && ip.proto == {proto}"
    return match


def members(state: State) -> tuple[dict[str, set[str]], set[str]]:
    """(security group id -> its member ports, the ports with port security)."""
    groups: dict[str, set[str]] = {}
    secured: set[str] = set()
    for p in state.ports.values():
        if p.port_security_enabled and p.network_id in state.networks:
            secured.add(p.id)
            for g in p.security_groups:
                groups.setdefault(g, set()).add(p.id)
    return groups, secured


def membership(state: State, port_id: str) -> tuple[frozenset[str], bool]:
    """(the groups port ``port_id`` is a member of, whether it is in the drop group)."""
    p = state.ports.get(port_id)
    if p is None or not p.port_security_enabled or p.network_id not in state.networks:
        return frozenset(), False
    return frozenset(p.security_groups), True


def _refs(ports) -> list[Ref]:
    return [Ref(f"lsp:{p}") for p in sorted(ports)]


def add_groups(d, state: State, want: dict[str, set[str]] | None, skip, own: str,
               group_ports: dict[str, set[str]] | None = None,
               secured: set[str] | None = None) -> None:
    """The Port_Group, ACL and Address_Set rows of the objects in ``want`` (None: all) into
    ``d`` (``translate.Desired``). ``group_ports``/``secured``: ``members(state)`` when the
    caller keeps them up to date (else found here)."""
    if group_ports is None or secured is None:
        group_ports, secured = members(state)

    def pick(kind: str, table: dict) -> list:
        ids = table if want is None else sorted(want.get(kind, ()))
        return [table[i] for i in ids if i in table and f"{kind}:{i}" not in skip]

    for g in pick("sg", state.security_groups):
        obj, pg = f"sg:{g.id}", pg_name(g.id)
        d.add("Port_Group", f"pg:{g.id}", obj, {
            "name": pg, "ports": _refs(group_ports.get(g.id, ())),
            "external_ids": {SG_ID: g.id}}, owner=own)
        action = "allow-related" if g.stateful else "allow-stateless"
        for r in g.rules:
            match = rule_match(pg, r)
            if match is None:
                continue
            d.add("ACL", f"acl:{g.id}:{r.id}", obj, {
                "direction": "to-lport" if r.direction == "ingress" else "from-lport",
                "priority": PRIORITY_ALLOW, "action": action, "match": match, "log": False,
                "external_ids": {RULE_ID: r.id}}, parent=f"pg:{g.id}", owner=own)

    for ag in pick("ag", state.address_groups):
        for version in (4, 6):
            d.add("Address_Set", f"as:{ag.id}:{version}", f"ag:{ag.id}", {
                "name": ag_name(ag.id, version),
                "addresses": [a for a in ag.addresses
                              if ipaddress.ip_network(a, strict=False).version == version],
                "external_ids": {"neutron:address_group_id": ag.id}}, owner=own)

    if secured and (want is None or "drop" in want.get("portsec", ())):
        d.add("Port_Group", "pg:drop", DROP_OBJ, {"name": DROP_PG, "ports": _refs(secured)},
              owner=own)
        for direction, side in (("from-lport", "inport"), ("to-lport", "outport")):
            d.add("ACL", f"acl:drop:{direction}", DROP_OBJ, {
                "direction": direction, "priority": PRIORITY_DROP, "action": "drop",
                "match": f"{side} == @{DROP_PG} && ip", "log": False},
                parent="pg:drop", owner=own)
        # a VM is no DHCP server: OVN's port security lets a reply from the VM's own address
        # through and the groups' egress rules allow it (the kernel backend drops it too)
        d.add("ACL", "acl:drop:dhcp-server", DROP_OBJ, {
            "direction": "from-lport", "priority": PRIORITY_NO_SERVER, "action": "drop",
            "match": DHCP_SERVER_MATCH, "log": False}, parent="pg:drop", owner=own)
