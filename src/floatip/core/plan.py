"""Observed kernel facts + desired layouts -> ordered steps. Pure: no I/O, no root.

Each Step says what to change and why; ``commands(step)`` prints the same change as the
shell commands a person would type (the seed's style), which is what ``--dry-run`` shows.
The dataplane executes steps through netlink and OVSDB, not through those commands.
"""
from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field, replace
from typing import Any

from .layout import OWNER_KEY, RouterLayout, forward_elements, namespace_name
from .tc import TcFacts, commands_text, matches

# Phases: the plan runs every step of a phase, for every router, before the next phase.
# NAT rules go in before floating IP addresses appear (Neutron's order: a FIP answers ARP
# only once its DNAT is in place), conntrack is cleared after the rules changed.
# radvd starts once the addresses and forwarding are there, and stops before the cleanup.
PHASES = ("bridge", "namespace", "ovs", "move", "link", "address", "route", "nat", "sysctl",
          "fip", "qos", "conntrack", "radvd", "cleanup")


@dataclass(frozen=True)
class Link:
    name: str
    mac: str
    mtu: int
    up: bool
    addresses: frozenset[str]
    qdisc: str | None = None   # its root qdisc's kind


@dataclass(frozen=True)
class OvsPort:
    name: str
    bridge: str
    tag: int | None
    type: str
    router_id: str | None  # external_ids:floatip-router, set only on ports floatip made
    instance: str | None = None  # external_ids:floatip-instance: the server that made it


@dataclass
class NsFacts:
    name: str
    router_id: str
    links: dict[str, Link] = field(default_factory=dict)
    default_route: tuple[str, str] | None = None
    extra_routes: frozenset[tuple[str, str]] = frozenset()  # (destination, via), main table
    sysctls: dict[str, str] = field(default_factory=dict)
    nat: Any = None                      # the NAT driver's own facts
    fip_map: dict[str, str] = field(default_factory=dict)  # floating ip -> fixed, as programmed
    # port forwardings as programmed: (floating ip, protocol, first, last port) -> (fixed, port)
    pf_map: dict = field(default_factory=dict)
    instance: str | None = None          # the floatip server instance that made it
    default_route6: tuple[str, str] | None = None
    # (destination, device) of the routes without a gateway; None: not read (the event
    # path plans against what it applied, where they came with the addresses)
    connected: frozenset[tuple[str, str]] | None = None
    radvd: str | None = None             # the configuration a live radvd of floatip's reads
    radvd_stale: bool = False            # files of a radvd that is gone (dead, or not started)
    qos: TcFacts | None = None           # floatip's bandwidth limits on qg- (None: none)


@dataclass
class Observed:
    bridges: set[str] = field(default_factory=set)
    ports: dict[str, OvsPort] = field(default_factory=dict)   # floatip's ports by name
    other_ports: set[str] = field(default_factory=set)       # port names floatip does not own
    root_links: set[str] = field(default_factory=set)
    namespaces: dict[str, NsFacts] = field(default_factory=dict)  # floatip's namespaces
    foreign_namespaces: set[str] = field(default_factory=set)     # qrouter-* not made by floatip
    # routers another floatip server (instance) made on this host: router id -> instance
    other_instances: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    phase: str
    action: str
    target: str            # namespace or bridge the step works in
    args: tuple            # action-specific, see commands()
    why: str
    router: str = ""       # the router the step is for (errors are filed under it)

    @property
    def order(self) -> int:
        return PHASES.index(self.phase)


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # router id -> why it was skipped

    def __bool__(self) -> bool:
        return bool(self.steps)


def plan(desired: dict[str, RouterLayout], observed: Observed, nat_driver,
         remove: set[str] = frozenset(), prune: bool = False,
         hold: set[str] = frozenset()) -> Plan:
    """Steps turning ``observed`` into ``desired``. Routers absent from ``desired`` are removed
    when listed in ``remove``, or, with ``prune``, whenever floatip owns them; routers in
    ``hold`` (invalid now: reported ERROR) are left as they are."""
    p = Plan()
    for bridge in sorted({d.bridge for lay in desired.values() for d in lay.devices}):
        if bridge not in observed.bridges:
            p.steps.append(Step("bridge", "ensure_bridge", bridge, (), "bridge missing"))
    for rid, lay in sorted(desired.items()):
        if lay.namespace in observed.foreign_namespaces:
            p.problems[rid] = f"namespace {lay.namespace} exists and was not made by floatip"
            continue
        clash = [d.name for d in lay.devices if d.name in observed.other_ports]
        if clash:
            p.problems[rid] = f"OVS ports {', '.join(clash)} exist and were not made by floatip"
            continue
        p.steps += [replace(s, router=rid) for s in _plan_router(lay, observed, nat_driver)]
    gone = set(remove)
    if prune:
        gone |= {f.router_id for f in observed.namespaces.values()}
        gone |= {port.router_id for port in observed.ports.values()}
    for rid in sorted(gone - set(desired) - set(hold)):
        p.steps += [replace(s, router=rid) for s in _plan_removal(rid, observed)]
    p.steps.sort(key=lambda s: s.order)  # stable: keeps per-router order inside a phase
    return p


def _plan_router(lay: RouterLayout, obs: Observed, nat_driver) -> list[Step]:
    ns = lay.namespace
    steps: list[Step] = []
    facts = obs.namespaces.get(ns)
    if facts is None:
        steps.append(Step("namespace", "create_namespace", ns, (lay.router_id,), "namespace missing"))
        # before any device moves in: devices take the namespace's IPv6 defaults
        steps.append(Step("namespace", "set_sysctls", ns, lay.sysctls, "new namespace"))
        facts = NsFacts(ns, lay.router_id, sysctls=dict(lay.sysctls))
    wanted = {d.name for d in lay.devices}
    for dev in lay.devices:
        port = obs.ports.get(dev.name)
        link = facts.links.get(dev.name)
        fresh = port is None or port.bridge != dev.bridge or \
            (link is None and dev.name not in obs.root_links)
        if fresh:
            if port is not None:
                steps.append(Step("ovs", "del_port", port.bridge, (dev.name,),
                                  "port on the wrong bridge or its device vanished"))
            ids = {"iface-id": dev.port_id, "iface-status": "active",
                   "attached-mac": dev.mac, OWNER_KEY: lay.router_id}
            steps.append(Step("ovs", "add_port", dev.bridge,
                              (dev.name, dev.tag, tuple(sorted(ids.items()))), "port missing"))
            link = None
        elif port.tag != dev.tag:
            steps.append(Step("ovs", "set_tag", dev.bridge, (dev.name, dev.tag),
                              f"tag {port.tag} should be {dev.tag}"))
        if link is None:
            steps.append(Step("move", "move_link", ns, (dev.name,), "device not in namespace"))
        if link is None or (link.mac, link.mtu, link.up) != (dev.mac, dev.mtu, True):
            steps.append(Step("link", "set_link", ns, (dev.name, dev.mac, dev.mtu),
                              "new device" if link is None else "mac, mtu or state differs"))
        have = link.addresses if link else frozenset()
        if dev.role == "qg":  # /32s on the gateway device are floating IPs, handled below
            have = frozenset(a for a in have if not _is_fip(a))
        for addr in sorted(dev.addresses - have):
            steps.append(Step("address", "add_address", ns, (dev.name, addr), "address missing"))
        for addr in sorted(have - dev.addresses):
            steps.append(Step("address", "del_address", ns, (dev.name, addr), "address not wanted"))
        for addr in sorted(_lost_routes(dev.name, dev.addresses & have, facts.connected)):
            steps.append(Step("route", "add_connected_route", ns, (dev.name, addr),
                              "connected route missing"))
    for name, link in sorted(facts.links.items()):
        port = obs.ports.get(name)
        if name not in wanted and port is not None and port.router_id == lay.router_id:
            steps.append(Step("cleanup", "del_port", port.bridge, (name,), "stale router port"))
    for name, port in sorted(obs.ports.items()):
        if port.router_id == lay.router_id and name not in wanted and name not in facts.links:
            steps.append(Step("cleanup", "del_port", port.bridge, (name,), "stale router port"))
    if facts.default_route != lay.default_route:
        if lay.default_route:
            steps.append(Step("route", "replace_default_route", ns, lay.default_route,
                              f"default route is {facts.default_route}"))
        else:
            steps.append(Step("route", "del_default_route", ns, (), "no gateway"))
    if facts.default_route6 != lay.default_route6:
        if lay.default_route6:
            steps.append(Step("route", "replace_default_route", ns, lay.default_route6,
                              f"IPv6 default route is {facts.default_route6}"))
        else:
            steps.append(Step("route", "del_default_route", ns, ("::",), "no IPv6 gateway"))
    for dest, via in sorted(lay.extra_routes - facts.extra_routes):
        steps.append(Step("route", "replace_route", ns, (dest, via), "extra route missing"))
    for dest, via in sorted(facts.extra_routes - lay.extra_routes):
        steps.append(Step("route", "del_route", ns, (dest, via), "extra route not wanted"))
    nat_step = nat_driver.plan(ns, lay.nat, facts.nat)
    if nat_step is not None:
        steps.append(nat_step)
    diff = tuple((k, v) for k, v in lay.sysctls if facts.sysctls.get(k) != v)
    if diff:
        steps.append(Step("sysctl", "set_sysctls", ns, diff, "sysctls differ"))
    qg = lay.gateway_device
    link = facts.links.get(qg.name) if qg else None
    have_fips = {a.split("/")[0] for a in link.addresses if _is_fip(a)} if link else set()
    if qg is not None:
        add = sorted(lay.fip_addresses - have_fips, key=ipaddress.ip_address)
        if add:
            steps.append(Step("fip", "add_fips", ns, (qg.name, qg.mac, tuple(add)),
                              f"{len(add)} floating IP address(es) missing"))
    drop = sorted(have_fips - lay.fip_addresses, key=ipaddress.ip_address)
    if drop and link is not None:
        steps.append(Step("fip", "del_fips", ns, (qg.name, tuple(drop)),
                          f"{len(drop)} floating IP address(es) no longer wanted"))
    if qg is not None and not matches(lay.qos, facts.qos):
        steps.append(Step("qos", "set_qos", ns, (qg.name, lay.qos),
                          "bandwidth limits differ"))
    want_map = dict(lay.nat.fips)
    flush = sorted((f for f, fixed in facts.fip_map.items() if want_map.get(f) != fixed),
                   key=ipaddress.ip_address)
    if flush:
        steps.append(Step("conntrack", "flush_conntrack", ns, tuple(flush),
                          "floating IP removed or moved: cut its flows"))
    want_fwd = forward_elements(lay.nat.forwards)
    gone = sorted(k for k, v in facts.pf_map.items() if want_fwd.get(k) != v)
    if gone:
        steps.append(Step("conntrack", "flush_forwards", ns, tuple(gone),
                          "port forwarding removed or changed: cut its flows"))
    if lay.radvd is not None and (facts.radvd != lay.radvd):
        steps.append(Step("radvd", "ensure_radvd", ns, (lay.router_id, lay.radvd),
                          "radvd not running" if facts.radvd is None else "radvd config changed"))
    elif lay.radvd is None and (facts.radvd is not None or facts.radvd_stale):
        steps.append(Step("radvd", "stop_radvd", ns, (lay.router_id,),
                          "no interface with an IPv6 RA mode"))
    return steps


def _lost_routes(dev: str, addrs: frozenset[str], connected) -> list[str]:
    """The addresses on ``dev`` whose subnet route the kernel made is gone (deleted by hand
    or by a route over it): re-adding the address would drop the floating IPs behind it
    (secondaries go with the primary), so the route alone is put back."""
    if connected is None:
        return []
    out = []
    for addr in addrs:
        net = ipaddress.ip_interface(addr).network
        if net.prefixlen < net.max_prefixlen and (str(net), dev) not in connected:
            out.append(addr)
    return out


def _is_fip(addr: str) -> bool:
    """A floating IP on the gateway device: an IPv4 /32."""
    return addr.endswith("/32") and ":" not in addr


def _plan_removal(rid: str, obs: Observed) -> list[Step]:
    steps = [Step("cleanup", "del_port", port.bridge, (name,), "router removed")
             for name, port in sorted(obs.ports.items()) if port.router_id == rid]
    ns = namespace_name(rid)
    facts = obs.namespaces.get(ns)
    if facts is not None and (facts.radvd is not None or facts.radvd_stale):
        steps.append(Step("radvd", "stop_radvd", ns, (rid,), "router removed"))
    if facts is not None:
        steps.append(Step("cleanup", "delete_namespace", ns, (), "router removed"))
    return steps


def _family(ip: str) -> str:
    return "-6 " if ":" in ip else ""


def summary(step: Step) -> str:
    """One line for people: the action, what it acts on, and why."""
    a = step.args
    detail = {"add_port": lambda: f"{a[0]} on {step.target}" + (f" tag {a[1]}" if a[1] else ""),
              "add_fips": lambda: f"{a[0]} " + " ".join(a[2][:3]) + (" ..." if len(a[2]) > 3 else ""),
              "del_fips": lambda: f"{a[0]} " + " ".join(a[1][:3]) + (" ..." if len(a[1]) > 3 else ""),
              "set_sysctls": lambda: " ".join(f"{k}={v}" for k, v in a),
              "iptables_restore": lambda: f"{a[0].count(chr(10))} lines",
              "nft": lambda: f"{a[0].count(chr(10))} lines",
              "flush_conntrack": lambda: " ".join(a),
              "flush_forwards": lambda: " ".join(f"{k[0]}:{k[1]}/{k[2]}-{k[3]}" for k in a),
              "set_qos": lambda: f"{a[0]} " + " ".join(f"{x[0]}:{x[1]}={x[2]}kbit"
                                                       for x in a[1][:4]),
              "create_namespace": lambda: "",
              "ensure_radvd": lambda: f"{a[1].count('prefix ')} prefix(es)",
              "stop_radvd": lambda: "",
              "delete_namespace": lambda: ""}.get(step.action,
                                                  lambda: " ".join(str(x) for x in a))()
    where = step.target if step.target.startswith("qrouter-") else ""
    return f"{step.action} {detail}".strip() + (f"  [{where[:16]}…]" if where else "") \
        + f"  ({step.why})"


# ---------------------------------------------------------------------------------------
# The same steps as shell commands, for --dry-run.

def commands(step: Step, datapath_type: str = "netdev") -> list[str]:
    q = shlex.quote
    ns, a = step.target, step.args
    inns = f"ip netns exec {q(ns)} "
    match step.action:
        case "ensure_bridge":
            return [f"ovs-vsctl --may-exist add-br {q(ns)} -- set bridge {q(ns)} "
                    f"datapath_type={datapath_type} external_ids:floatip-owned=true",
                    f"ip link set {q(ns)} up"]
        case "create_namespace":
            return [f"ip netns add {q(ns)}", inns + "ip link set lo up",
                    inns + f"ip link set lo alias {q('floatip router=' + a[0])}"]
        case "add_port":
            name, tag, ids = a
            cmd = (f"ovs-vsctl -- --may-exist add-port {q(ns)} {name} -- set Interface {name} "
                   "type=internal " + " ".join(f"external_ids:{k}={q(v)}" for k, v in ids))
            return [cmd + (f" -- set Port {name} tag={tag}" if tag is not None else "")]
        case "set_tag":
            return [f"ovs-vsctl set Port {a[0]} tag={a[1]}" if a[1] is not None
                    else f"ovs-vsctl clear Port {a[0]} tag"]
        case "del_port":
            return [f"ovs-vsctl --if-exists del-port {q(ns)} {a[0]}"]
        case "move_link":
            return [f"ip link set {a[0]} netns {q(ns)}"]
        case "set_link":
            return [inns + f"ip link set {a[0]} address {a[1]} mtu {a[2]} up"]
        case "add_address" | "del_address":
            net = ipaddress.ip_interface(a[1]).network
            verb = "add" if step.action == "add_address" else "del"
            if net.version == 6:
                return [inns + f"ip -6 addr {verb} {a[1]} dev {a[0]}" +
                        (" nodad" if verb == "add" else "")]
            return [inns + f"ip -4 addr {verb} {a[1]} brd {net.broadcast_address} scope global "
                    f"dev {a[0]}"]
        case "replace_default_route":
            return [inns + f"ip {_family(a[0])}route replace default via {a[0]} dev {a[1]}"]
        case "del_default_route":
            return [inns + f"ip {_family(a[0] if a else '')}route del default"]
        case "replace_route":
            return [inns + f"ip {_family(a[1])}route replace {a[0]} via {a[1]}"]
        case "del_route":
            return [inns + f"ip {_family(a[1])}route del {a[0]} via {a[1]}"]
        case "add_connected_route":
            itf = ipaddress.ip_interface(a[1])
            if itf.version == 6:
                return [inns + f"ip -6 route replace {itf.network} dev {a[0]} proto kernel "
                        "metric 256"]
            return [inns + f"ip route replace {itf.network} dev {a[0]} proto kernel scope link "
                    f"src {itf.ip}"]
        case "ensure_radvd":
            d = f"/run/floatip/ra/{a[0]}"
            return [f"mkdir -p {d} && cat > {d}/radvd.conf <<'EOF'\n{a[1]}EOF",
                    inns + f"radvd -C {d}/radvd.conf -p {d}/pid -m logfile -l {d}/log"
                    f"  # or kill -HUP $(cat {d}/pid)"]
        case "stop_radvd":
            d = f"/run/floatip/ra/{a[0]}"
            return [f"kill $(cat {d}/pid)", f"rm -r {d}"]
        case "set_sysctls":
            return [inns + "sysctl -w " + " ".join(f"{k}={v}" for k, v in a)]
        case "add_fips":
            dev, _mac, ips = a
            return [line for ip in ips for line in (
                inns + f"ip -4 addr add {ip}/32 brd {ip} scope global dev {dev}",
                inns + f"arping -U -I {dev} -c 3 {ip} &")]
        case "del_fips":
            dev, ips = a
            return [inns + f"ip -4 addr del {ip}/32 dev {dev}" for ip in ips]
        case "flush_conntrack":
            return [line for ip in a for line in (inns + f"conntrack -D -d {ip}",
                                                  inns + f"conntrack -D -q {ip}")]
        case "flush_forwards":
            return [inns + f"conntrack -D -d {ip} -p {proto} --dport {port}"
                    for ip, proto, lo, hi in a for port in range(lo, hi + 1)]
        case "delete_namespace":
            return [f"ip netns delete {q(ns)}"]
        case "set_qos":  # the whole set (the dataplane changes only what differs)
            return [inns + line for line in commands_text(a[0], a[1])]
        case "iptables_restore":
            return [inns + "iptables-restore -n <<'EOF'\n" + a[0] + "EOF"]
        case "nft":
            return [inns + "nft -f - <<'EOF'\n" + a[0] + "EOF"]
    raise ValueError(f"unknown step {step.action}")


# ---------------------------------------------------------------------------------------
# The event path: floating IPs added, moved or removed on routers that are otherwise known
# to be converged. Nothing is observed; the steps are planned against what was last applied.

def plan_fips(lay: RouterLayout, nat_driver, nat_facts, have: dict[str, str],
              add: dict[str, str], remove: set[str]) -> list[Step]:
    """Steps for floating IPs of one router: ``have`` maps each floating IP now programmed
    to its fixed IP, ``add`` gives new or moved ones (floating -> fixed), ``remove`` the
    floating IPs to drop. NAT element changes first, then addresses, then conntrack."""
    ns = lay.namespace
    qg = lay.gateway_device
    # a floating IP removed and added again (deleted and re-created within one pass) stays
    remove = {f for f in remove if f in have and f not in add}
    add = {f: x for f, x in add.items() if have.get(f) != x}
    if not add and not remove:
        return []
    steps: list[Step] = []
    nat_step = nat_driver.plan_fips(ns, nat_facts, add, remove, have)
    if nat_step is not None:
        steps.append(nat_step)
    new = sorted((f for f in add if f not in have), key=ipaddress.ip_address)
    if new and qg is not None:
        steps.append(Step("fip", "add_fips", ns, (qg.name, qg.mac, tuple(new)),
                          f"{len(new)} floating IP address(es) missing"))
    if remove and qg is not None:
        steps.append(Step("fip", "del_fips", ns,
                          (qg.name, tuple(sorted(remove, key=ipaddress.ip_address))),
                          f"{len(remove)} floating IP address(es) no longer wanted"))
    flush = sorted(remove | {f for f in add if f in have}, key=ipaddress.ip_address)
    if flush:
        steps.append(Step("conntrack", "flush_conntrack", ns, tuple(flush),
                          "floating IP removed or moved: cut its flows"))
    return [replace(s, router=lay.router_id) for s in steps]


def plan_forwards(old: RouterLayout, new: RouterLayout, nat_driver, nat_facts) -> list[Step]:
    """Steps for a router whose port forwardings changed, planned against what was applied
    (``old``, and the NAT driver's facts it keeps): the NAT rules as ``new`` has them, the
    floating IPs of forwardings added to or removed from ``qg-``, and the flows of removed
    or changed forwardings cut."""
    ns = new.namespace
    steps: list[Step] = []
    # only the forwardings that differ are laid out as elements: a set difference (in C)
    # over the router's forwardings, then Python work for the changed few (the 1,000th
    # forwarding cost two layouts of all 1,000 in Python: ~2 ms of a pass)
    now, before = set(new.nat.forwards), set(old.nat.forwards)
    want, had = forward_elements(sorted(now - before)), forward_elements(sorted(before - now))
    gone = sorted(k for k, v in had.items() if want.get(k) != v)
    nat_step = nat_driver.plan_forwards(ns, new.nat, nat_facts,
                                        {k: v for k, v in want.items() if had.get(k) != v},
                                        set(gone))
    if nat_step is not None:
        steps.append(nat_step)
    qg = new.gateway_device
    add = sorted(new.fip_addresses - old.fip_addresses, key=ipaddress.ip_address)
    drop = sorted(old.fip_addresses - new.fip_addresses, key=ipaddress.ip_address)
    if add and qg is not None:
        steps.append(Step("fip", "add_fips", ns, (qg.name, qg.mac, tuple(add)),
                          f"{len(add)} floating IP address(es) missing"))
    if drop and qg is not None:
        steps.append(Step("fip", "del_fips", ns, (qg.name, tuple(drop)),
                          f"{len(drop)} floating IP address(es) no longer wanted"))
    if gone:
        steps.append(Step("conntrack", "flush_forwards", ns, tuple(gone),
                          "port forwarding removed or changed: cut its flows"))
    return [replace(s, router=new.router_id) for s in steps]
