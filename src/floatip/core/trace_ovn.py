"""``floatip trace`` on the OVN backend (pure): the Northbound rows that make the router
answer for the address (its NAT rows and router ports), ``ovn-trace``'s logical pipeline
(the external switch, the router's DNAT, its routing, the tenant switch to the VM's logical
port), and ``ofproto/trace`` of the gateway chassis' external bridge, as hops."""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from .trace import ApiFip, Hop, OfTrace, Query, Trace

_SECTION = re.compile(r'^\s*(ingress|egress)\(dp="([^"]+)", inport="([^"]+)"'
                      r'(?:, outport="([^"]+)")?\)')
_TABLE = re.compile(r"^\s*(\d+)\. (\S+) \([^)]*\): (.*), priority (\d+), uuid")
_OUTPUT = re.compile(r'/\* output to "([^"]+)", type "([^"]*)" \*/')
_DNAT = re.compile(r"ct_dnat(?:_in_czone)?\(([0-9.]+)\)")


@dataclass
class LogicalTrace:
    """What ``ovn-trace`` says of one packet."""
    text: str
    command: str
    steps: list[str] = field(default_factory=list)          # "dp pipeline: table name: match"
    outputs: list[tuple[str, str, str]] = field(default_factory=list)  # (dp, port, type)
    dnat: tuple[str, str] | None = None                      # (fixed ip, the table line)
    drop: str | None = None                                   # the table line that dropped


def parse_ovn_trace(text: str, command: str) -> LogicalTrace:
    t = LogicalTrace(text, command)
    dp = pipe = table = ""
    for line in text.splitlines():
        if line.startswith("# ") and t.steps:  # a second flow (ovn-trace follows replies)
            break
        m = _SECTION.match(line)
        if m:
            pipe, dp = m.group(1), m.group(2)
            continue
        m = _TABLE.match(line)
        if m:
            table = f"{dp} {pipe} table {m.group(1)} {m.group(2)}: {m.group(3)}"
            t.steps.append(table)
            continue
        m = _OUTPUT.search(line)
        if m:
            t.outputs.append((dp, m.group(1), m.group(2)))
            continue
        m = _DNAT.search(line)
        if m and t.dnat is None:
            t.dnat = (m.group(1), table)
        elif line.strip() in ("drop;", "drop") and t.drop is None and table:
            t.drop = table
    return t


@dataclass
class OvnFacts:
    query: Query
    source_ip: str
    nat: dict[str, tuple[str, str]]          # external ip -> (type, logical ip) of dnat NATs
    router: str | None                       # the logical router holding the address
    router_ips: list[str]                    # its ports' addresses ("ip/prefix")
    vm_ports: set[str]                       # logical switch ports of VMs (type "")
    logical: LogicalTrace | None = None
    chassis: OfTrace | None = None           # the gateway chassis' external bridge
    chassis_text: str = ""
    api: ApiFip | None = None
    nb_command: str = ""
    src_mac: str | None = None               # the upstream's MAC (SB MAC_Binding)
    gw_mac: str | None = None                # the router's gateway port
    bridge: str | None = None                # the gateway chassis' external bridge
    uplink: str | None = None                # and its port to upstream


def build_ovn(f: OvnFacts) -> Trace:
    q = f.query
    hops: list[Hop] = []
    out = Trace(q, hops, False)

    def stop(hop: Hop) -> Trace:
        hops.append(hop)
        out.stopped, out.reason = hop.name, hop.matched
        out.disagreements = ovn_disagreements(f)
        return out

    nat = f.nat.get(q.dest)
    own = any(a.split("/")[0] == q.dest for a in f.router_ips)
    if nat is None and not own:
        return stop(Hop("ARP", False, f"no NAT row has external_ip {q.dest} and no router port "
                                      f"has it: no router answers ARP for it; the upstream "
                                      f"cannot deliver", f.nb_command))
    hops.append(Hop("ARP", True, (f"{nat[0]} NAT row {q.dest} -> {nat[1]} on {f.router}"
                                  if nat else f"{q.dest} is an address of {f.router}'s port") +
                    ": the gateway chassis answers ARP for it", f.nb_command))
    ch = f.chassis
    if ch is not None:
        ok = 'bridge("br-int")' in f.chassis_text and ch.actions not in ("", "drop")
        hops.append(Hop("gateway chassis", ok, f"{ch.bridge} -> br-int: datapath actions "
                                               f"{ch.actions or 'none'}", ch.command))
        if not ok:
            return stop(hops.pop())
    lt = f.logical
    if lt is None:
        return stop(Hop("logical pipeline", False, "ovn-trace did not run", ""))
    first = next((o for o in lt.outputs if o[2] == "patch"), None)
    hops.append(Hop("external logical switch", first is not None,
                    f"output to {first[1]} (the router's port)" if first else
                    "never reached the router", lt.command))
    if first is None:
        return stop(hops.pop())
    if lt.dnat is None:
        why = f"dropped at {lt.drop}" if lt.drop else "routed on without DNAT"
        return stop(Hop("DNAT", False, f"{q.dest} is not DNATed ({why}): "
                                       + (f"{q.dest} is the router's own address" if own
                                          else "no dnat_and_snat NAT row takes it"),
                        lt.command))
    fixed, table = lt.dnat
    hops.append(Hop("DNAT", True, f"{table}: ct_dnat -> {fixed}", lt.command))
    vm = next((o for o in lt.outputs if o[2] == "" and o[1] in f.vm_ports), None)
    if vm is None:
        where = f"dropped at {lt.drop}" if lt.drop else \
            f"left by {', '.join(p for _, p, _ in lt.outputs) or 'nothing'}"
        return stop(Hop("tenant logical switch", False, f"never output to a VM port: {where}",
                        lt.command))
    hops.append(Hop("tenant logical switch", True, f"output to logical port {vm[1]} "
                                                   f"(the VM, {fixed})", lt.command))
    out.delivered = True
    out.disagreements = ovn_disagreements(f)
    return out


def ovn_disagreements(f: OvnFacts) -> list[str]:
    a, ip = f.api, f.query.dest
    if a is None:
        return []
    nat = f.nat.get(ip)
    if a.status == "ACTIVE" and a.fixed_ip:
        if nat is None:
            return [f"the API says floating IP {ip} ({a.id}) is ACTIVE -> {a.fixed_ip}, but "
                    f"the Northbound database has no dnat_and_snat NAT row for it"]
        if nat[1] != a.fixed_ip:
            return [f"the API says {ip} -> {a.fixed_ip}, the NAT row says {nat[1]}"]
    elif nat is not None:
        return [f"the API says floating IP {ip} is {a.status}, but a NAT row still DNATs "
                f"it to {nat[1]}"]
    return []


def logical_flow(inport: str, src_mac: str, dst_mac: str, q: Query, src: str) -> str:
    """``ovn-trace``'s microflow for the query's packet from upstream."""
    parts = [f'inport == "{inport}"', f"eth.src == {src_mac}", f"eth.dst == {dst_mac}",
             f"ip4.src == {src}", f"ip4.dst == {q.dest}", "ip.ttl == 64"]
    if q.proto in ("tcp", "udp"):
        parts.append(f"{q.proto}.dst == {q.port or 80}")
    else:
        parts.append("icmp4.type == 8")
    return " && ".join(parts)


def command(*argv: str) -> str:
    return shlex.join(argv)
