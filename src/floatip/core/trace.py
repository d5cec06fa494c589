"""``floatip trace``'s pure half: facts observed on the host -> the hops of one packet.

The shell (``dataplane.trace``) reads the facts: the links, neighbours and NAT of the router
namespace that holds the destination, route lookups, OVS ports and ``ofproto/trace`` of the
bridges, and optionally the API's record of the floating IP. ``build`` walks them the way
the packet goes: in from upstream, through the external bridge, ``qg-``, DNAT, the route
lookup, ``qr-`` and its VLAN, the integration bridge, the VM port; then the reply back with
the float-SNAT. Each hop says what matched and the command that shows it; the first hop that
does not pass is where the packet stops, and says why. Nothing here needs root.
"""
from __future__ import annotations

import ipaddress
import shlex
from dataclasses import asdict, dataclass, field

PROTOS = ("tcp", "udp", "icmp")
# The kernel backend's security-group tables on the integration bridge (Neutron's openvswitch
# firewall layout: egress 71-73, ingress 81-83). A trace whose ofproto/trace went through
# them gets a "security groups" hop with the rules that decided.
FIREWALL_TABLES = {71, 72, 73, 81, 82, 83}


@dataclass(frozen=True)
class Query:
    source: str                 # "upstream", or a port (its OVS name, Neutron id or name)
    dest: str                   # an IPv4 address
    proto: str = "tcp"
    port: int | None = None     # destination port (tcp, udp)


@dataclass(frozen=True)
class Hop:
    name: str
    ok: bool
    matched: str                # what matched, or why nothing did
    command: str                # the exact command that shows it
    direction: str = "forward"  # forward | reply


@dataclass
class OfTrace:
    """One ``ovs-appctl ofproto/trace`` run: the rules it went through and where it output."""
    bridge: str
    flow: str                                        # the flow given to ofproto/trace
    rules: list[str] = field(default_factory=list)   # "table. match" + actions, in order
    actions: str = ""                                # the datapath actions line
    outputs: list[str] = field(default_factory=list)  # port names the packet leaves by

    @property
    def command(self) -> str:
        return shlex.join(["ovs-appctl", "ofproto/trace", self.bridge, self.flow])


@dataclass
class Port:
    """An OVS port with its interface's identity."""
    name: str
    bridge: str
    ofport: int | None = None
    tag: int | None = None
    mac: str | None = None            # external_ids:attached-mac, else the MAC in use
    iface_id: str | None = None       # external_ids:iface-id (the Neutron port)
    router_id: str | None = None      # external_ids:floatip-router: a port floatip made


@dataclass
class Link:
    name: str
    mac: str
    up: bool
    addresses: list[str]              # "ip/prefix", IPv4


@dataclass
class Route:
    dev: str | None
    via: str | None = None
    kind: str = "unicast"             # unicast | local | unreachable | ...


@dataclass
class RouterFacts:
    router_id: str
    namespace: str
    links: dict[str, Link]
    neighbours: dict[str, tuple[str, str, str]]   # ip -> (dev, mac, state)
    nat_driver: str | None                        # "nftables" | "iptables" | None (no table)
    dnat: dict[str, str]                          # floating -> fixed, as programmed
    snat: dict[str, str]                          # fixed -> floating (float-SNAT)
    dnat_rule: str | None = None                  # the rule that DNATs (map rule / iptables)
    snat_rule: str | None = None
    snat_nets: list[tuple[str, str]] = field(default_factory=list)  # (subnet, SNAT address)

    @property
    def gateway(self) -> Link | None:
        return next((v for k, v in sorted(self.links.items()) if k.startswith("qg-")), None)

    def nat_command(self, what: str) -> str:
        ns = ["ip", "netns", "exec", self.namespace]
        if self.nat_driver == "iptables":
            return shlex.join(ns + ["iptables-save", "-t", "nat"])
        if what in ("dnat", "snat"):
            return shlex.join(ns + ["nft", "list", "map", "ip", "floatip", f"fip_{what}"])
        return shlex.join(ns + ["nft", "list", "table", "ip", "floatip"])


@dataclass
class ApiFip:
    """The API's record of the floating IP (the database's view), to compare with the host."""
    id: str
    status: str
    fixed_ip: str | None
    router_id: str | None
    port_id: str | None


@dataclass
class Facts:
    query: Query
    source_ip: str                           # the packet's source address
    router: RouterFacts | None = None
    uplink: Port | None = None               # the external bridge's port to upstream
    gateway_port: Port | None = None         # qg- on the external bridge
    router_port: Port | None = None          # qr- on the integration bridge
    vm_port: Port | None = None
    vm_mac: str | None = None
    upstream_mac: str | None = None          # the source's MAC as the router knows it
    routes: dict[str, Route] = field(default_factory=dict)     # "forward", "reply"
    traces: dict[str, OfTrace] = field(default_factory=dict)   # "ex_in", "int_out", ...
    api: ApiFip | None = None
    api_note: str | None = None              # why the API was not compared


@dataclass
class Trace:
    query: Query
    hops: list[Hop]
    delivered: bool
    stopped: str | None = None               # the hop where the packet stops
    reason: str | None = None
    disagreements: list[str] = field(default_factory=list)
    probe: dict | None = None                # what a real packet showed (dataplane.probe)

    def to_dict(self) -> dict:
        return asdict(self)


def _ns(r: RouterFacts, *argv: str) -> str:
    return shlex.join(["ip", "netns", "exec", r.namespace, *argv])


def _ip_of(addr: str) -> str:
    return addr.split("/")[0]


def _holds(link: Link, ip: str) -> str | None:
    """The address of ``link`` that is ``ip`` ("ip/prefix"), if any."""
    return next((a for a in link.addresses if _ip_of(a) == ip), None)


def _on_link(link: Link, ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(addr in ipaddress.ip_interface(a).network for a in link.addresses
               if not a.endswith("/32"))


def _of_hop(name: str, t: OfTrace | None, want: str | None, direction: str) -> Hop:
    if t is None or want is None:
        return Hop(name, False, "not traced: " + ("no port to send to" if want is None
                                                  else "ofproto/trace did not run"),
                   "", direction)
    rules = "; ".join(t.rules) or "no rule"
    if want in t.outputs:
        extra = [o for o in t.outputs if o != want]
        flood = f" (flooded: also {', '.join(extra)})" if extra else ""
        return Hop(name, True, f"{rules} -> output to {want}{flood}", t.command, direction)
    where = ", ".join(t.outputs) if t.outputs else "nowhere (dropped)"
    return Hop(name, False, f"{rules} -> datapath actions {t.actions or 'drop'}: leaves by "
                            f"{where}, not {want}", t.command, direction)


def firewall_hop(t: OfTrace | None, want: str | None, direction: str) -> Hop | None:
    """The security groups' verdict in an integration-bridge trace (None: no firewall flow
    on the path, e.g. no group on the port)."""
    if t is None:
        return None
    rules = [r for r in t.rules if r.split(" ")[1].isdigit()
             and int(r.split(" ")[1]) in FIREWALL_TABLES]
    if not rules:
        return None
    ok = want is not None and want in t.outputs
    return Hop("security groups", ok, ("allowed: " if ok else "DROPPED by the firewall: ")
               + "; ".join(rules), t.command, direction)


def build(f: Facts) -> Trace:
    """The hops of ``f.query`` from upstream, forward then reply."""
    q, r = f.query, f.router
    hops: list[Hop] = []
    out = Trace(q, hops, False)

    def stop(hop: Hop) -> Trace:
        hops.append(hop)
        out.stopped, out.reason = hop.name, hop.matched
        out.disagreements = disagreements(f)
        return out

    if r is None or r.gateway is None:
        return stop(Hop("router", False,
                        f"no floatip router on this host has {q.dest} or its network on a "
                        f"gateway port: nobody here answers ARP for it",
                        "ip netns exec qrouter-<id> ip -4 addr show (each router)"))
    qg = r.gateway
    # 1. external bridge: upstream's packet to the router's MAC
    hop = _of_hop("external bridge", f.traces.get("ex_in"),
                  f.gateway_port.name if f.gateway_port else None, "forward")
    if not hop.ok:
        return stop(hop)
    hops.append(hop)
    # 2. qg-: the address answers ARP only when it is on qg- (arp_ignore=1)
    held = _holds(qg, q.dest)
    if held is None:
        why = ("floating IPs are /32s on it" if _on_link(qg, q.dest) else "not on its network")
        return stop(Hop(f"gateway port {qg.name}", False,
                        f"{q.dest} is not an address of {qg.name} in {r.namespace} ({why}): "
                        f"with arp_ignore=1 nobody answers ARP for it; the upstream "
                        f"cannot deliver", _ns(r, "ip", "-4", "addr", "show", "dev", qg.name)))
    neigh = r.neighbours.get(f.source_ip)
    seen = (f"; neighbour {f.source_ip} lladdr {neigh[1]} {neigh[2]}" if neigh
            else f"; no neighbour entry for {f.source_ip} yet")
    hops.append(Hop(f"gateway port {qg.name}", qg.up,
                    f"{held} on {qg.name} ({'up' if qg.up else 'DOWN'}) in {r.namespace}{seen}",
                    _ns(r, "ip", "-4", "addr", "show", "dev", qg.name) + " ; "
                    + _ns(r, "ip", "neigh", "show", "dev", qg.name)))
    if not qg.up:
        return stop(hops.pop())
    # 3. DNAT
    fixed = r.dnat.get(q.dest)
    if fixed is None:
        if r.nat_driver is None:
            what = f"no floatip NAT table in {r.namespace}"
        elif held.endswith("/32"):
            what = (f"{q.dest} has no element in map fip_dnat" if r.nat_driver == "nftables"
                    else f"{q.dest} has no DNAT rule in floatip-l3-PREROUTING")
        else:
            what = f"{q.dest} is the router's own gateway address, not a floating IP"
        return stop(Hop("DNAT", False, f"{what}: not DNATed, the packet goes to the router "
                                       f"namespace itself (input), not to a VM",
                        r.nat_command("dnat")))
    rule = f" by `{r.dnat_rule}`" if r.dnat_rule else ""
    elem = (f"element {q.dest} : {fixed} of map fip_dnat" if r.nat_driver == "nftables"
            else f"rule -d {q.dest}/32 -j DNAT --to-destination {fixed}")
    hops.append(Hop("DNAT", True, f"{elem}{rule}: destination becomes {fixed}",
                    r.nat_command("dnat")))
    # 4. route lookup
    rt = f.routes.get("forward")
    if rt is None or rt.kind != "unicast" or not (rt.dev or "").startswith("qr-"):
        return stop(Hop("route lookup", False,
                        f"{fixed}: {rt.kind + ' via ' + str(rt.dev) if rt else 'no route'}, "
                        f"not a router interface (qr-)", _ns(r, "ip", "route", "get", fixed)))
    hops.append(Hop("route lookup", True, f"{fixed} dev {rt.dev}" +
                    (f" via {rt.via}" if rt.via else " (connected)"),
                    _ns(r, "ip", "route", "get", fixed)))
    # 5. qr- and its VLAN
    qr = r.links.get(rt.dev)
    rp = f.router_port
    neigh = r.neighbours.get(fixed)
    if rp is None or qr is None or not qr.up:
        return stop(Hop(f"router port {rt.dev}", False,
                        f"{rt.dev} is {'DOWN' if qr and not qr.up else 'not an OVS port'}",
                        shlex.join(["ovs-vsctl", "list", "Port", rt.dev])))
    hops.append(Hop(f"router port {rt.dev}", True,
                    f"{rt.dev} on {rp.bridge} VLAN tag {rp.tag}; " +
                    (f"neighbour {fixed} lladdr {neigh[1]} {neigh[2]}" if neigh
                     else f"no neighbour entry for {fixed}: the router ARPs for it"),
                    shlex.join(["ovs-vsctl", "get", "Port", rt.dev, "tag"]) + " ; " +
                    _ns(r, "ip", "neigh", "show", fixed)))
    # 6. integration bridge, and the security groups' verdict when its flows were met
    if f.vm_mac is None:
        return stop(Hop("integration bridge", False,
                        f"the MAC of {fixed} is unknown (no neighbour entry, no port with it): "
                        f"nothing answered ARP on VLAN {rp.tag}",
                        _ns(r, "ip", "neigh", "show", fixed)))
    hop = _of_hop("integration bridge", f.traces.get("int_out"),
                  f.vm_port.name if f.vm_port else None, "forward")
    fw = firewall_hop(f.traces.get("int_out"), f.vm_port.name if f.vm_port else None,
                      "forward")
    if fw is not None and not fw.ok:
        return stop(fw)
    if not hop.ok:
        return stop(hop)
    hops.append(hop)
    if fw is not None:
        hops.append(fw)
    vm = f.vm_port
    hops.append(Hop("VM port", True,
                    f"{vm.name} (MAC {f.vm_mac}" + (f", Neutron port {vm.iface_id}"
                                                   if vm.iface_id else "") + f") gets "
                    f"{q.proto} {f.source_ip} -> {fixed}" + (f":{q.port}" if q.port else ""),
                    shlex.join(["ovs-vsctl", "list", "Interface", vm.name])))
    # reply: VM -> qr- -> un-DNAT (conntrack) / float-SNAT -> qg- -> upstream
    hop = _of_hop("integration bridge", f.traces.get("int_reply"), rt.dev, "reply")
    if not hop.ok:
        return stop(hop)
    hops.append(hop)
    fip_snat = r.snat.get(fixed)
    snat = (f"float-SNAT element {fixed} : {fip_snat} of map fip_snat" if r.nat_driver ==
            "nftables" else f"float-SNAT rule -s {fixed}/32 -j SNAT --to-source {fip_snat}")
    if fip_snat is None:
        hops.append(Hop("NAT", True, f"conntrack un-DNATs the reply (source {q.dest}); "
                                     f"{fixed} has no float-SNAT: connections it opens leave "
                                     f"by the router's SNAT address",
                        r.nat_command("snat"), "reply"))
    else:
        hops.append(Hop("NAT", True, f"conntrack un-DNATs the reply: source {fixed} -> "
                                     f"{q.dest}; new connections from {fixed}: {snat}",
                        r.nat_command("snat"), "reply"))
    rt2 = f.routes.get("reply")
    if rt2 is None or rt2.dev != qg.name:
        return stop(Hop("route lookup", False,
                        f"{f.source_ip} from {fixed}: "
                        f"{'dev ' + str(rt2.dev) if rt2 else 'no route'}, not the gateway "
                        f"{qg.name}",
                        _ns(r, "ip", "route", "get", f.source_ip, "from", fixed, "iif",
                            rt.dev), "reply"))
    hops.append(Hop("route lookup", True, f"{f.source_ip} dev {rt2.dev}" +
                    (f" via {rt2.via}" if rt2.via else " (connected)"),
                    _ns(r, "ip", "route", "get", f.source_ip, "from", fixed, "iif", rt.dev),
                    "reply"))
    hop = _of_hop("external bridge", f.traces.get("ex_reply"),
                  f.uplink.name if f.uplink else None, "reply")
    if not hop.ok:
        return stop(hop)
    hops.append(hop)
    out.delivered = True
    out.disagreements = disagreements(f)
    return out


def disagreements(f: Facts) -> list[str]:
    """Where the API (the database) and the host differ about the floating IP."""
    a, r, ip = f.api, f.router, f.query.dest
    if a is None:
        return []
    out = []
    where = f"in {r.namespace}" if r else "on this host"
    have = r.dnat.get(ip) if r else None
    if a.status == "ACTIVE" and a.fixed_ip:
        if r is None or r.router_id != a.router_id:
            out.append(f"the API says floating IP {ip} ({a.id}) is ACTIVE on router "
                       f"{a.router_id}, but qrouter-{a.router_id} does not hold it here")
        elif have is None:
            what = ("element " + ip + " is missing from map fip_dnat" if r.nat_driver ==
                    "nftables" else "its DNAT rule is missing")
            out.append(f"the API says floating IP {ip} ({a.id}) is ACTIVE -> {a.fixed_ip}, "
                       f"but {what} {where}")
        elif have != a.fixed_ip:
            out.append(f"the API says {ip} -> {a.fixed_ip}, the host DNATs it to {have}")
        if r is not None and r.gateway is not None and _holds(r.gateway, ip) is None:
            out.append(f"the API says {ip} is ACTIVE, but {r.gateway.name} {where} does not "
                       f"hold {ip}/32")
    elif have is not None:
        out.append(f"the API says floating IP {ip} is {a.status}"
                   f"{' and not associated' if not a.fixed_ip else ''}, but the host still "
                   f"DNATs it to {have} {where}")
    return out


def render(t: Trace) -> str:
    """The trace as text, one hop a paragraph."""
    q = t.query
    lines = [f"trace {q.proto} {q.source} -> {q.dest}" + (f":{q.port}" if q.port else "")]
    for i, h in enumerate(t.hops, 1):
        mark = "ok  " if h.ok else "STOP"
        lines.append(f"{i:2}. {mark} [{h.direction}] {h.name}: {h.matched}")
        if h.command:
            lines.append(f"           $ {h.command}")
    for d in t.disagreements:
        lines.append(f"DISAGREE {d}")
    if t.probe is not None:
        p = t.probe
        lines.append(f"probe: {'delivered' if p.get('delivered') else 'NOT delivered'}"
                     + (f", dropped at {p['dropped_at']}" if p.get("dropped_at") else ""))
        lines += [f"   {e}" for e in p.get("evidence", [])]
    lines.append("delivered" if t.delivered else f"NOT delivered: stops at {t.stopped}")
    return "\n".join(lines)


# -- parsers of the tools' output (pure) ---------------------------------------------------

def parse_dpif_show(text: str) -> dict[str, dict[int, str]]:
    """``ovs-appctl dpif/show`` -> bridge -> datapath port number -> port name."""
    out: dict[str, dict[int, str]] = {}
    bridge = None
    for line in text.splitlines():
        if line.startswith("  ") and not line.startswith("    ") and line.strip().endswith(":"):
            bridge = line.strip()[:-1]
            out[bridge] = {}
        elif line.startswith("    ") and bridge is not None:
            name, _, rest = line.strip().partition(" ")
            try:
                out[bridge][int(rest.split("/")[1].split(":")[0])] = name
            except (IndexError, ValueError):
                continue
    return out


def parse_of_trace(bridge: str, flow: str, text: str, odp: dict[int, str]) -> OfTrace:
    """``ofproto/trace`` output -> the rules of this bridge it went through and the ports
    (by name, through ``odp``: datapath port -> name) the packet leaves by."""
    t = OfTrace(bridge, flow)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        s = line.strip()
        head, dot, rest = s.partition(". ")
        if dot and head.isdigit() and not line.startswith("     "):
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            t.rules.append(f"table {head} {rest}: {nxt}")
        elif s.startswith("Datapath actions:"):
            t.actions = s.partition(":")[2].strip()
    for act in _split_actions(t.actions):
        if act.isdigit() and int(act) in odp:
            t.outputs.append(odp[int(act)])
    return t


def _split_actions(actions: str) -> list[str]:
    """Top-level comma-separated datapath actions (commas inside parentheses kept)."""
    out, depth, cur = [], 0, ""
    for ch in actions:
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def of_flow(in_port: str, src_mac: str | None, dst_mac: str, q: Query, src: str, dst: str,
            reply: bool = False) -> str:
    """The ``ofproto/trace`` flow of the query's packet (or its reply) on a bridge."""
    parts = [f"in_port={in_port}"]
    if src_mac:
        parts.append(f"dl_src={src_mac}")
    parts += [f"dl_dst={dst_mac}", q.proto if q.proto != "icmp" else "icmp",
              f"nw_src={src}", f"nw_dst={dst}"]
    if q.proto in ("tcp", "udp") and q.port:
        parts.append(f"tp_src={q.port}" if reply else f"tp_dst={q.port}")
    return ",".join(parts)
