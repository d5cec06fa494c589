"""Security groups as OpenFlow flows on the integration bridge (the kernel backend's
firewall), the way Neutron's ``openvswitch`` firewall driver lays them out. Pure: ports and
rules in, flows out; ``dataplane.firewall`` installs them.

Tables (ahead of ``NORMAL``, which still does the switching and keeps VLANs apart):

- 0: a filtered port's traffic (``in_port``) gets ``reg5`` = its ofport and ``reg6`` = its
  network's conntrack zone (the local VLAN) and goes to 71; everything else goes to 60.
- 71 egress base: anti-spoofing (source MAC, IPv4/IPv6 source, ARP sender, neighbour
  advertisement target; no DHCP server replies, no router advertisements); DHCP client and
  ND pass; IP goes through conntrack into 72 (without conntrack when the port is stateless).
- 72 egress rules: invalid or marked (``ct_mark=1``) dropped, replies and related accepted,
  the port's rules; an established connection that no rule allows any more is marked
  ``ct_mark=1`` (a removed rule stops what it allowed, as Neutron does) and dropped.
- 73 egress accept: ``ct(commit)`` for a new connection, then 60.
- 60 dispatch: unicast to a filtered port's MAC (or an allowed pair's) gets that port's
  ``reg5``/``reg6`` and goes to 81; the rest ``NORMAL``.
- 81/82/83: the same for ingress; the last step is ``NORMAL``, so a frame never crosses to
  another VLAN (traffic DNATed by a router arrives from its ``qr-`` port through 0 -> 60).

Remote groups use conjunctive matches: rule side ``conjunction(id,2/2)`` per port and rule,
member side ``conjunction(id,1/2)`` per member address, one conjunction per (remote group,
direction, ethertype). A member joining or leaving changes one flow per table it is used in,
whatever the size of the group.

Every flow carries floatip's cookie prefix (the top 16 bits); the rest of the cookie is a
hash of the flow's text, so the installed set can be compared with the wanted one by cookie
alone, and nothing else on the bridge is ever touched.
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Mapping

COOKIE_PREFIX = 0xF1A7 << 48
COOKIE_MASK = 0xFFFF << 48

T_CLASSIFY, T_DISPATCH = 0, 60
T_EGRESS, T_EGRESS_RULES, T_EGRESS_ACCEPT = 71, 72, 73
T_INGRESS, T_INGRESS_RULES, T_INGRESS_ACCEPT = 81, 82, 83

P_RULE, P_CONJ = 70, 60   # direct rules and conjunctions at different priorities (OVS'
# conjunctive matches must not overlap ordinary flows of the same priority)
ZONE = "NXM_NX_REG6[0..15]"
CT_MARK_DROP = 1

# Neutron's protocol names (neutron_lib.constants.IP_PROTOCOL_MAP)
PROTOCOLS = {"ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1,
             "icmpv6": 58, "igmp": 2, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44,
             "ipv6-icmp": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43,
             "ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17,
             "udplite": 136, "vrrp": 112}
PORTED = {6: "tcp", 17: "udp", 132: "sctp"}   # protocols with tp_src/tp_dst in OpenFlow
ND_PASS = (130, 131, 132, 133, 135, 143)      # MLD, router and neighbour solicitation
RA, NA = 134, 136


class FirewallError(ValueError):
    """A rule or port floatip cannot express (the port fails alone, with this reason)."""


@dataclass(frozen=True)
class Flow:
    table: int
    priority: int
    match: str      # ovs-ofctl syntax, "" for every packet
    actions: str

    @property
    def text(self) -> str:
        m = f",{self.match}" if self.match else ""
        return f"table={self.table},priority={self.priority}{m},actions={self.actions}"

    @property
    def cookie(self) -> int:
        h = int.from_bytes(hashlib.blake2b(self.text.encode(), digest_size=6).digest(), "big")
        return COOKIE_PREFIX | h

    def add_line(self) -> str:
        return f"add cookie={self.cookie:#x},{self.text}"


@dataclass(frozen=True)
class Rule:
    """One security group rule, its remote already resolved to a prefix or a group id."""
    direction: str                   # ingress | egress
    ethertype: str = "IPv4"          # IPv4 | IPv6
    protocol: str | int | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None


@dataclass(frozen=True)
class FwPort:
    """A VM port as the firewall sees it. ``filtered`` is port security on and the port not
    a trusted one (router, DHCP, metadata): a port that is not filtered gets no flow."""
    id: str
    ofport: int
    mac: str
    zone: int                                   # conntrack zone: the network's local VLAN
    addresses: tuple[str, ...] = ()             # fixed IPs
    pairs: tuple[tuple[str, str | None], ...] = ()  # allowed address pairs (IP/CIDR, MAC)
    rules: tuple[Rule, ...] = ()
    stateful: bool = True
    filtered: bool = True


def is_trusted(device_owner: str) -> bool:
    """Neutron leaves ``network:*`` ports (router interfaces, DHCP, metadata) unfiltered."""
    return device_owner.startswith("network:")


def link_local(mac: str) -> str:
    """The EUI-64 IPv6 link-local address of ``mac`` (the VM's own ND source)."""
    b = bytes(int(x, 16) for x in mac.split(":"))
    eui = bytes([b[0] ^ 2]) + b[1:3] + b"\xff\xfe" + b[3:6]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


def protocol_number(protocol: str | int | None, ethertype: str) -> int | None:
    if protocol in (None, "", "any"):
        return None
    if isinstance(protocol, int) or str(protocol).isdigit():
        n = int(protocol)
    elif str(protocol).lower() in PROTOCOLS:
        n = PROTOCOLS[str(protocol).lower()]
    else:
        raise FirewallError(f"unknown protocol {protocol!r}")
    if not 0 <= n <= 255:
        raise FirewallError(f"protocol {n} out of range")
    if ethertype == "IPv6" and n == 1:
        n = 58  # Neutron: "icmp" with IPv6 means ICMPv6
    return n


def port_masks(lo: int, hi: int) -> list[str]:
    """A port range as value/mask matches (OpenFlow has no ranges)."""
    if not (0 <= lo <= hi <= 0xFFFF):
        raise FirewallError(f"bad port range {lo}-{hi}")
    if lo == 0 and hi == 0xFFFF:
        return []
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 0x10000
        while size > hi - lo + 1:
            size >>= 1
        out.append(str(lo) if size == 1 else f"{lo:#x}/{(0xFFFF ^ (size - 1)):#x}")
        lo += size
    return out


def conj_id(group: str, direction: str, ethertype: str) -> int:
    """A stable conjunction id per (remote group, direction, ethertype): the same in every
    pass, so a member change never renumbers other flows."""
    d = hashlib.blake2b(f"{group}/{direction}/{ethertype}".encode(), digest_size=4).digest()
    return int.from_bytes(d, "big") & 0x7FFFFFFF or 1


def _version(ethertype: str) -> int:
    if ethertype not in ("IPv4", "IPv6"):
        raise FirewallError(f"unknown ethertype {ethertype!r}")
    return 4 if ethertype == "IPv4" else 6


@functools.lru_cache(maxsize=1 << 16)   # member addresses are parsed again each pass
def _parse(text: str) -> ipaddress._BaseNetwork:
    return ipaddress.ip_network(text, strict=False)


def _net(text: str, version: int | None = None) -> ipaddress._BaseNetwork:
    try:
        net = _parse(text)
    except ValueError as e:
        raise FirewallError(f"bad address {text!r}") from e
    if version is not None and net.version != version:
        raise FirewallError(f"{text} is not IPv{version}")
    return net


def _addr_match(field4: str, field6: str, net) -> str:
    f = field4 if net.version == 4 else field6
    return f"{f}={net.network_address}" if net.prefixlen == net.max_prefixlen else f"{f}={net}"


# ---------------------------------------------------------------------------------------
# flows every bridge with a firewall has (owner "base")

def base_flows() -> list[Flow]:
    ct = lambda table: f"ct(table={table},zone={ZONE})"          # noqa: E731
    commit = f"ct(commit,zone={ZONE})"
    mark = f"ct(commit,zone={ZONE},exec(set_field:{CT_MARK_DROP}->ct_mark))"
    out = [Flow(T_CLASSIFY, 1, "", f"resubmit(,{T_DISPATCH})"),
           Flow(T_DISPATCH, 0, "", "NORMAL"),
           Flow(T_EGRESS, 0, "", "drop"),
           # ingress base: ARP, DHCP replies, ND and MLD always reach the VM (the sender's
           # egress is where they are checked); IP goes through conntrack
           Flow(T_INGRESS, 95, "arp", "NORMAL"),
           Flow(T_INGRESS, 95, "udp,tp_src=67,tp_dst=68", "NORMAL"),
           Flow(T_INGRESS, 95, "udp6,tp_src=547,tp_dst=546", "NORMAL"),
           Flow(T_INGRESS, 90, "ip", ct(T_INGRESS_RULES)),
           Flow(T_INGRESS, 90, "ipv6", ct(T_INGRESS_RULES)),
           Flow(T_INGRESS, 0, "", "drop")]
    out += [Flow(T_INGRESS, 95, f"icmp6,icmp_type={t}", "NORMAL") for t in (*ND_PASS, RA, NA)]
    for rules, accept, then in ((T_EGRESS_RULES, T_EGRESS_ACCEPT, f"resubmit(,{T_DISPATCH})"),
                                (T_INGRESS_RULES, T_INGRESS_ACCEPT, "NORMAL")):
        for ip in ("ip", "ipv6"):
            out += [Flow(rules, 100, f"{ip},ct_state=+trk+inv", "drop"),
                    Flow(rules, 100, f"{ip},ct_state=+trk,ct_mark={CT_MARK_DROP}", "drop"),
                    Flow(rules, 90, f"{ip},ct_state=+trk+est+rpl", f"resubmit(,{accept})"),
                    Flow(rules, 90, f"{ip},ct_state=+trk+rel", f"resubmit(,{accept})"),
                    # an established connection no rule allows any more (a removed rule)
                    Flow(rules, 40, f"{ip},ct_state=+trk+est-rpl", mark),
                    Flow(accept, 90, f"{ip},ct_state=+trk+new", f"{commit},{then}")]
        out += [Flow(rules, 0, "", "drop"), Flow(accept, 0, "", then)]
    return out


# ---------------------------------------------------------------------------------------
# one port's flows (owner "port:<id>")

def _sources(p: FwPort) -> list[tuple[str, ipaddress._BaseNetwork]]:
    """(MAC, network) pairs the port may send from: fixed IPs and the IPv6 link-local
    address with its MAC, each allowed pair with its own MAC or the port's."""
    out = [(p.mac, _net(a)) for a in p.addresses]
    out.append((p.mac, _net(link_local(p.mac))))
    for ip, mac in p.pairs:
        m = (mac or p.mac).lower()
        out.append((m, _net(ip)))
        if m != p.mac:
            out.append((m, _net(link_local(m))))
    return list(dict.fromkeys(out))


def _egress_base(p: FwPort) -> list[Flow]:
    r = f"reg5={p.ofport}"
    ok = f"resubmit(,{T_DISPATCH})"
    into = f"ct(table={T_EGRESS_RULES},zone={ZONE})" if p.stateful \
        else f"resubmit(,{T_EGRESS_RULES})"
    out = [Flow(T_CLASSIFY, 100, f"in_port={p.ofport}",
                f"set_field:{p.ofport}->reg5,set_field:{p.zone}->reg6,resubmit(,{T_EGRESS})"),
           # a VM is no DHCP server and no router
           Flow(T_EGRESS, 97, f"{r},udp,tp_src=67", "drop"),
           Flow(T_EGRESS, 97, f"{r},udp6,tp_src=547", "drop"),
           Flow(T_EGRESS, 97, f"{r},icmp6,icmp_type={RA}", "drop")]
    macs = list(dict.fromkeys(m for m, _ in _sources(p)))
    for mac in macs:
        out += [Flow(T_EGRESS, 95, f"{r},udp,dl_src={mac},tp_src=68,tp_dst=67", ok),
                Flow(T_EGRESS, 95, f"{r},udp6,dl_src={mac},tp_src=546,tp_dst=547", ok)]
        out += [Flow(T_EGRESS, 95, f"{r},icmp6,dl_src={mac},icmp_type={t}", ok)
                for t in ND_PASS]
    for mac, net in _sources(p):
        if net.version == 4:
            out += [Flow(T_EGRESS, 95, f"{r},arp,dl_src={mac},arp_sha={mac},arp_spa={net}", ok),
                    Flow(T_EGRESS, 90, f"{r},ip,dl_src={mac},{_addr_match('nw_src', '', net)}",
                         into)]
        else:
            out += [Flow(T_EGRESS, 95, f"{r},icmp6,dl_src={mac},icmp_type={NA},nd_target={net}",
                         ok),
                    Flow(T_EGRESS, 90, f"{r},ipv6,dl_src={mac},"
                         f"{_addr_match('', 'ipv6_src', net)}", into)]
    return out


def _ingress_base(p: FwPort) -> list[Flow]:
    out = []
    for mac in dict.fromkeys(m for m, _ in _sources(p)):
        out.append(Flow(T_DISPATCH, 100, f"dl_dst={mac}",
                        f"set_field:{p.ofport}->reg5,set_field:{p.zone}->reg6,"
                        f"resubmit(,{T_INGRESS})"))
    if not p.stateful:
        r = f"reg5={p.ofport}"
        out += [Flow(T_INGRESS, 92, f"{r},ip", f"resubmit(,{T_INGRESS_RULES})"),
                Flow(T_INGRESS, 92, f"{r},ipv6", f"resubmit(,{T_INGRESS_RULES})")]
    return out


def _rule_matches(p: FwPort, rule: Rule) -> tuple[int, list[str], int | None]:
    """(table, matches, conjunction id or None) of one rule on one port."""
    if rule.direction not in ("ingress", "egress"):
        raise FirewallError(f"unknown direction {rule.direction!r}")
    version = _version(rule.ethertype)
    ingress = rule.direction == "ingress"
    table = T_INGRESS_RULES if ingress else T_EGRESS_RULES
    head = [f"reg5={p.ofport}", "ip" if version == 4 else "ipv6"]
    if p.stateful:
        head.append("ct_state=+trk-rpl")   # new or established, never a reply
    proto = protocol_number(rule.protocol, rule.ethertype)
    tails = [[]]
    if proto is not None:
        head.append(f"nw_proto={proto}")
        lo, hi = rule.port_range_min, rule.port_range_max
        if proto in PORTED and (lo is not None or hi is not None):
            field_ = "tp_dst"   # Neutron's port range is the destination port, both ways
            tails = [[f"{field_}={m}"] for m in port_masks(lo if lo is not None else hi,
                                                            hi if hi is not None else lo)] \
                or [[]]
        elif proto in (1, 58) and lo is not None:
            t = "icmp_type" if proto == 1 else "icmpv6_type"
            c = "icmp_code" if proto == 1 else "icmpv6_code"
            if not (0 <= lo <= 255) or (hi is not None and not 0 <= hi <= 255):
                raise FirewallError(f"bad ICMP type/code {lo}/{hi}")
            tails = [[f"{t}={lo}"] + ([f"{c}={hi}"] if hi is not None else [])]
    if rule.remote_ip_prefix and rule.remote_group_id:
        raise FirewallError("a rule has a remote prefix or a remote group, not both")
    if rule.remote_ip_prefix:
        net = _net(rule.remote_ip_prefix, version)
        if net.prefixlen:
            head.append(_addr_match("nw_src" if ingress else "nw_dst",
                                    "ipv6_src" if ingress else "ipv6_dst", net))
    conj = conj_id(rule.remote_group_id, rule.direction, rule.ethertype) \
        if rule.remote_group_id else None
    return table, [",".join(head + t) for t in tails], conj


def port_flows(p: FwPort) -> list[Flow]:
    """Every flow of one port (none when it is not filtered)."""
    if not p.filtered:
        return []
    out = _egress_base(p) + _ingress_base(p)
    conjs: dict[tuple[int, str], list[str]] = {}
    for rule in p.rules:
        table, matches, conj = _rule_matches(p, rule)
        accept = f"resubmit(,{T_INGRESS_ACCEPT if table == T_INGRESS_RULES else T_EGRESS_ACCEPT})"
        for m in matches:
            if conj is None:
                out.append(Flow(table, P_RULE, m, accept))
            else:  # identical matches of rules with other remote groups share one flow
                conjs.setdefault((table, m), []).append(f"conjunction({conj},2/2)")
    for (table, m), acts in conjs.items():
        out.append(Flow(table, P_CONJ, m, ",".join(sorted(set(acts)))))
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------------
# remote group members (owners "member:<table>:<address>" and "conj:<id>")

def used_conjunctions(ports: Iterable[FwPort]) -> set[tuple[str, str, str]]:
    """(remote group, direction, ethertype) that some filtered port's rule refers to."""
    unique = {id(p.rules): p.rules for p in ports if p.filtered}   # shared tuples: once
    return {(r.remote_group_id, r.direction, r.ethertype) for rules in unique.values()
            for r in rules if r.remote_group_id}


def member_flows(members: Mapping[str, Iterable[str]], used: set[tuple[str, str, str]],
                 only: set[str] | None = None) -> dict[str, list[Flow]]:
    """The member side of the conjunctions: per (table, member address) one flow naming
    every conjunction the address belongs to, and one ``conj_id`` flow per conjunction.
    ``only``: the flows of these member addresses (those whose groups changed) only."""
    by_addr: dict[tuple[int, str], set[int]] = {}
    out: dict[str, list[Flow]] = {}
    seen: dict[int, tuple] = {}
    for group, direction, ethertype in sorted(used):
        cid = conj_id(group, direction, ethertype)
        if seen.setdefault(cid, (group, direction, ethertype)) != (group, direction, ethertype):
            raise FirewallError(f"conjunction id {cid} of group {group} collides")
        ingress = direction == "ingress"
        table = T_INGRESS_RULES if ingress else T_EGRESS_RULES
        accept = T_INGRESS_ACCEPT if ingress else T_EGRESS_ACCEPT
        version = _version(ethertype)
        ip = "ip" if version == 4 else "ipv6"
        out[f"conj:{cid}"] = [Flow(table, P_CONJ, f"conj_id={cid},{ip}", f"resubmit(,{accept})")]
        for a in members.get(group, ()):
            if only is not None and a not in only:
                continue
            net = _net(a)
            if net.version == version:
                by_addr.setdefault((table, str(net)), set()).add(cid)
    for (table, addr), cids in by_addr.items():
        net = _net(addr)
        ingress = table == T_INGRESS_RULES
        m = _addr_match("nw_src" if ingress else "nw_dst", "ipv6_src" if ingress else "ipv6_dst",
                        net)
        out[f"member:{table}:{addr}"] = [Flow(
            table, P_CONJ, f"{'ip' if net.version == 4 else 'ipv6'},{m}",
            ",".join(f"conjunction({c},1/2)" for c in sorted(cids)))]
    return out


def member_owners(addr: str) -> list[str]:
    """The owners ``member_flows`` may give the address ``addr``."""
    return [f"member:{t}:{_net(addr)}" for t in (T_INGRESS_RULES, T_EGRESS_RULES)]


def member_addresses(p: FwPort) -> list[str]:
    """What a port contributes to the groups it is in: fixed IPs and allowed pairs (as
    Neutron counts them)."""
    return list(dict.fromkeys([*p.addresses, *(ip for ip, _ in p.pairs)]))


@dataclass
class Compiled:
    """Flows by owner; ``errors`` names ports that could not be compiled (they get only
    their anti-spoofing and no rule: closed rather than open)."""
    flows: dict[str, list[Flow]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def compile_port(p: FwPort) -> tuple[list[Flow], str | None]:
    """One port's flows; a port whose rules cannot be expressed keeps its anti-spoofing and
    drops everything else (fails closed, alone, with its reason)."""
    try:
        return port_flows(p), None
    except FirewallError as e:
        safe = FwPort(p.id, p.ofport, p.mac, p.zone, p.addresses, (), (), p.stateful, p.filtered)
        return port_flows(safe), str(e)


def compile_all(ports: Iterable[FwPort], members: Mapping[str, Iterable[str]]) -> Compiled:
    ports = list(ports)
    out = Compiled({"base": base_flows()})
    for p in ports:
        out.flows[f"port:{p.id}"], err = compile_port(p)
        if err:
            out.errors[p.id] = err
    out.flows.update(member_flows(members, used_conjunctions(ports)))
    return out


# ---------------------------------------------------------------------------------------
# from the desired state (core.model) to the firewall's ports

def fw_ports(state, ofports: Mapping[str, int], cache: dict | None = None,
             only: Iterable[str] | None = None) -> tuple[list[FwPort], dict[str, list[str]]]:
    """The firewall's view of ``state``: a FwPort per port with an interface on this
    bridge (``ofports``: port id -> ofport), and the members of every security group
    (fixed IPs and allowed pairs of its ports, on any host). An address group is expanded
    into one rule per address. ``cache`` (the caller's, kept between passes) skips the
    ports whose model objects are the very ones of the last pass (the desired state
    replaces what changes): a pass costs what changed, not every port's rules. ``only``:
    the ids of the only ports that changed since the cache's pass; the others are taken
    from the cache unseen, and the members are not computed (the caller counts them)."""
    cache = {} if cache is None else cache
    members: dict[str, list[str]] = {}
    for p in state.ports.values() if only is None else ():
        for g in p.security_groups:
            members.setdefault(g, []).extend(
                [ip for _, ip in p.fixed_ips] + [ip for ip, _ in p.allowed_address_pairs])
    out, seen = [], set()
    rules_of: dict = {}   # this pass: group id -> (its address groups, its rules)
    for pid in ofports if only is None else only:
        p, ofport = state.ports.get(pid), ofports.get(pid)
        net = state.networks.get(p.network_id) if p is not None else None
        if p is None or net is None or net.local_vlan is None or ofport is None or ofport < 1:
            cache.pop(pid, None) if only is not None else None
            continue
        groups = tuple(state.security_groups[g] for g in p.security_groups
                       if g in state.security_groups)
        ags = tuple(a for g in groups for a in _group_ags(g, state, rules_of))
        key = (p, net, ofport, groups, ags)
        seen.add(pid)
        hit = cache.get(pid)
        if hit is not None and len(hit[0]) == len(key) and \
                all(a is b for a, b in zip(hit[0], key[:3])) and hit[0][3:] == key[3:]:
            out.append(hit[1])
            continue
        fp = FwPort(pid, ofport, p.mac_address.lower(), net.local_vlan,
                    tuple(ip for _, ip in p.fixed_ips),
                    tuple((ip, mac.lower() if mac else None)
                          for ip, mac in p.allowed_address_pairs),
                    _port_rules(groups, state, rules_of),
                    all(g.stateful for g in groups),
                    p.port_security_enabled and not is_trusted(p.device_owner))
        cache[pid] = (key, fp)
        out.append(fp)
    if only is not None:
        return [e[1] for e in cache.values()], members
    for pid in set(cache) - seen:
        del cache[pid]
    return out, members


def _group_ags(g, state, rules_of: dict) -> tuple:
    if g.id not in rules_of:
        rules_of[g.id] = (tuple(state.address_groups.get(r.remote_address_group_id)
                                for r in g.rules if r.remote_address_group_id), None)
    return rules_of[g.id][0]


def _port_rules(groups, state, rules_of: dict) -> tuple[Rule, ...]:
    """The rules of a set of groups: one tuple shared by the ports with the same groups
    (``used_conjunctions`` walks each once)."""
    key = tuple(g.id for g in groups)
    if key not in rules_of:
        rules_of[key] = tuple(dict.fromkeys(r for g in groups for r in _group_rules(g, state)))
    return rules_of[key]


def _group_rules(g, state) -> list[Rule]:
    rules = []
    for r in g.rules:
        ag = r.remote_address_group_id
        if ag is None:
            rules.append(Rule(r.direction, r.ethertype, r.protocol, r.port_range_min,
                              r.port_range_max, r.remote_ip_prefix, r.remote_group_id))
            continue
        for cidr in getattr(state.address_groups.get(ag), "addresses", ()):
            if _net(cidr).version == _version(r.ethertype):
                rules.append(Rule(r.direction, r.ethertype, r.protocol, r.port_range_min,
                                  r.port_range_max, cidr))
    return rules
