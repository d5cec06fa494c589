"""Validation of desired state: pure, every error collected, each with Neutron's type."""
from __future__ import annotations

import functools
import ipaddress
import re
import socket
import uuid

from .errors import InvalidState, NeutronError
from .model import Network, State

# ---------------------------------------------------------------------------------------
# Validation: pure, every error collected, each with Neutron's exception type.

@functools.lru_cache(maxsize=4096)
def _network(cidr: str):
    """Parsed once: a subnet's CIDR is checked against every address in it."""
    return ipaddress.ip_network(cidr)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _ip(value: str, what: str, errors: list, v6: bool = True
        ) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:  # a dotted quad, fast (10,000 floating IPs are checked on a full read)
        return ipaddress.IPv4Address(int.from_bytes(socket.inet_pton(socket.AF_INET, value),
                                                    "big"))
    except (OSError, TypeError):
        pass
    try:
        addr = ipaddress.ip_address(value)
    except (ValueError, TypeError):
        errors.append(NeutronError(f"Invalid IP address '{value}' for {what}"))
        return None
    if addr.version != 4 and not v6:
        errors.append(NeutronError(f"Only IPv4 is supported ({what}: {value})"))
        return None
    return addr


def _uuid(value: str, what: str, errors: list) -> None:
    if isinstance(value, str) and _UUID.fullmatch(value):
        return
    try:
        uuid.UUID(str(value))
    except ValueError:
        errors.append(NeutronError(f"'{value}' is not a valid UUID ({what})"))


class _Errors(list):
    """Errors, each also filed under the object being checked when it was found."""

    def __init__(self):
        super().__init__()
        self.owner: tuple[str, str] = ("", "")
        self.by_owner: dict[tuple[str, str], list[NeutronError]] = {}

    def append(self, e: NeutronError) -> None:
        super().append(e)
        self.by_owner.setdefault(self.owner, []).append(e)


def validate(state: State) -> None:
    """Raise InvalidState listing every problem of ``state``; return None if it is sound."""
    errors = _check(state)
    if errors:
        raise InvalidState(list(errors))


def problems(state: State) -> dict[tuple[str, str], list[NeutronError]]:
    """Every problem of ``state``, filed under the object it was found on: ("network", id),
    ("subnet", id), ("port", id), ("router", id) or ("floatingip", id). An address claimed
    twice is the problem of the later claimant (ports, then routers, then floating IPs)."""
    return _check(state).by_owner


def _check(state: State) -> _Errors:
    errors = _Errors()
    nets, subnets, ports = state.networks, state.subnets, state.ports
    used: dict[tuple[str, str], str] = {}  # (subnet id, ip) -> who holds it

    def claim(subnet_id: str, ip: str, who: str) -> None:
        key = (subnet_id, ip)
        if key in used:
            errors.append(NeutronError(
                f"IP address {ip} already allocated in subnet {subnet_id} (to {used[key]}, "
                f"wanted by {who})", "IpAddressAlreadyAllocated", 409))
        else:
            used[key] = who

    def in_subnet(subnet_id: str, ip: str, what: str) -> bool:
        sub = subnets.get(subnet_id)
        if sub is None:
            errors.append(NeutronError(f"Subnet {subnet_id} could not be found ({what})",
                                       "SubnetNotFound", 404))
            return False
        addr = _ip(ip, what, errors)
        if addr is None:
            return False
        net = _network(sub.cidr)
        if addr not in net or (net.version == 4 and
                               addr in (net.network_address, net.broadcast_address)):
            errors.append(NeutronError(f"IP address {ip} is not a valid IP for subnet "
                                       f"{sub.cidr} ({what})", "InvalidIpForSubnet"))
            return False
        return True

    for n in nets.values():
        errors.owner = ("network", n.id)
        _uuid(n.id, f"network {n.name}", errors)
        if n.network_type not in ("flat", "vlan", "local"):
            errors.append(NeutronError(f"Network type {n.network_type} is not supported"))
        if n.network_type == "vlan" and not (n.segmentation_id and 1 <= n.segmentation_id <= 4094):
            errors.append(NeutronError(f"Network {n.name or n.id}: vlan needs a segmentation_id "
                                       "in 1..4094"))
        if n.external and not n.physical_network:
            errors.append(NeutronError(f"External network {n.name or n.id} needs a "
                                       "physical_network"))
        if not n.external and n.local_vlan is not None and not 1 <= n.local_vlan <= 4094:
            errors.append(NeutronError(f"Network {n.name or n.id}: local VLAN {n.local_vlan} "
                                       "outside 1..4094"))
    for s in subnets.values():
        errors.owner = ("subnet", s.id)
        _uuid(s.id, f"subnet {s.name}", errors)
        if s.network_id not in nets:
            errors.append(NeutronError(f"Network {s.network_id} could not be found",
                                       "NetworkNotFound", 404))
        try:
            net = ipaddress.ip_network(s.cidr)
        except ValueError:
            errors.append(NeutronError(f"Invalid CIDR {s.cidr!r} for subnet {s.name or s.id}"))
            continue
        if net.version != s.ip_version:
            errors.append(NeutronError(f"Subnet {s.cidr}: not an IPv{s.ip_version} CIDR"))
            continue
        if net.version == 4 and net.prefixlen > 30:
            errors.append(NeutronError(f"Subnet {s.cidr}: IPv4 with prefix /30 or shorter needed"))
            continue
        if not _modes_ok(s, net, errors):
            continue
        if s.gateway_ip:
            in_subnet(s.id, s.gateway_ip, f"gateway of subnet {s.name or s.id}")
        for start, end in s.allocation_pools:
            ok = in_subnet(s.id, start, "allocation pool start") and \
                in_subnet(s.id, end, "allocation pool end")
            if ok and ipaddress.ip_address(start) > ipaddress.ip_address(end):
                errors.append(NeutronError(f"Allocation pool {start}-{end} is reversed"))
    # Same tenant CIDR on two subnets of one router would make routing ambiguous.
    for p in ports.values():
        errors.owner = ("port", p.id)
        _uuid(p.id, f"port {p.name}", errors)
        if p.network_id not in nets:
            errors.append(NeutronError(f"Network {p.network_id} could not be found (port "
                                       f"{p.name or p.id})", "NetworkNotFound", 404))
        for sid, ip in p.fixed_ips:
            if sid in subnets and subnets[sid].network_id != p.network_id:
                errors.append(NeutronError(f"Subnet {sid} is not on the port's network"))
            if in_subnet(sid, ip, f"port {p.name or p.id}"):
                claim(sid, ip, f"port {p.name or p.id}")
    for r in state.routers.values():
        errors.owner = ("router", r.id)
        _uuid(r.id, f"router {r.name}", errors)
        gw = r.gateway
        if gw is not None:
            _uuid(gw.port_id, "gateway port", errors)
            net = nets.get(gw.network_id)
            if net is None:
                errors.append(NeutronError(f"Network {gw.network_id} could not be found",
                                           "NetworkNotFound", 404))
            elif not net.external:
                errors.append(NeutronError(f"Bad router request: Network {gw.network_id} is not "
                                           "an external network"))
            for sid, ip in ((gw.subnet_id, gw.ip_address), *gw.extra_ips):
                if sid in subnets and subnets[sid].network_id != gw.network_id:
                    errors.append(NeutronError(f"Gateway subnet {sid} is not on network "
                                               f"{gw.network_id}"))
                elif in_subnet(sid, ip, f"gateway of router {r.name or r.id}"):
                    claim(sid, ip, f"router {r.name or r.id} gateway")
        cidrs: list = []
        for itf in r.interfaces:
            _uuid(itf.port_id, "interface port", errors)
            sub = subnets.get(itf.subnet_id)
            if sub is not None and nets.get(sub.network_id, Network("")).external:
                errors.append(NeutronError(f"Router {r.name or r.id}: subnet {sub.cidr} is on an "
                                           "external network; use it as the gateway"))
            if in_subnet(itf.subnet_id, itf.ip_address, f"interface of router {r.name or r.id}"):
                claim(itf.subnet_id, itf.ip_address, f"router {r.name or r.id} interface")
                cidr = ipaddress.ip_network(sub.cidr)
                if any(cidr.overlaps(c) for c in cidrs):
                    errors.append(NeutronError(
                        f"Bad router request: Cidr {cidr} of subnet {sub.id} overlaps with "
                        f"another subnet of router {r.name or r.id}"))
                cidrs.append(cidr)
        connected = [ipaddress.ip_network(subnets[i].cidr) for i in
                     [itf.subnet_id for itf in r.interfaces] +
                     ([gw.subnet_id, *(sid for sid, _ in gw.extra_ips)] if gw else [])
                     if i in subnets]
        for dest, nexthop in r.routes:
            version = None
            try:
                net = ipaddress.ip_network(dest, strict=False)
                version = net.version
                if net.prefixlen == 0:
                    raise ValueError("the default route comes from the external gateway")
            except ValueError:
                errors.append(NeutronError(f"Invalid route destination {dest!r} on router "
                                           f"{r.name or r.id}", "InvalidRoutes"))
            hop = _ip(nexthop, f"nexthop of a route on router {r.name or r.id}", errors)
            if hop is not None and version is not None and hop.version != version:
                errors.append(NeutronError(f"Invalid route {dest} via {nexthop} on router "
                                           f"{r.name or r.id}: address families differ",
                                           "InvalidRoutes"))
                continue
            if hop is not None and not any(hop in c for c in connected):
                errors.append(NeutronError(
                    f"Invalid format for routes: the nexthop {nexthop} is not connected with "
                    f"router {r.name or r.id}", "InvalidRoutes"))
    fixed_taken: dict[str, str] = {}
    for f in state.floatingips.values():
        errors.owner = ("floatingip", f.id)
        _uuid(f.id, "floating IP", errors)
        net = nets.get(f.floating_network_id)
        if net is None:
            errors.append(NeutronError(f"Network {f.floating_network_id} could not be found",
                                       "NetworkNotFound", 404))
            continue
        if not net.external:
            errors.append(NeutronError(f"Network {f.floating_network_id} is not a valid external "
                                       "network", "BadRequest"))
            continue
        addr = _ip(f.floating_ip_address, "floating IP", errors, v6=False)
        ext = [s for s in subnets.values() if s.network_id == net.id and addr is not None
               and addr in _network(s.cidr)]
        if addr is not None and not ext:
            errors.append(NeutronError(f"Floating IP {f.floating_ip_address} is not in a subnet "
                                       f"of network {net.name or net.id}", "InvalidIpForNetwork"))
        elif ext and in_subnet(ext[0].id, f.floating_ip_address, "floating IP"):
            claim(ext[0].id, f.floating_ip_address, f"floating IP {f.id}")
        if f.port_id is None:
            continue
        port = ports.get(f.port_id)
        if port is None:
            errors.append(NeutronError(f"Port {f.port_id} could not be found", "PortNotFound", 404))
            continue
        if f.fixed_ip_address is not None and \
                f.fixed_ip_address not in {ip for _, ip in port.fixed_ips}:
            errors.append(NeutronError(f"Port {port.id} does not have fixed ip "
                                       f"{f.fixed_ip_address}", "BadRequest"))
            continue
        fixed = f.fixed_ip_address or next((ip for _, ip in port.fixed_ips if ":" not in ip),
                                           None)
        if fixed is None:
            errors.append(NeutronError(f"Port {port.id} has no fixed IPv4 address"))
            continue
        if ":" in fixed:  # floating IPs are IPv4; IPv6 is routed
            errors.append(NeutronError(f"Cannot associate floating IP {f.floating_ip_address} "
                                       f"with the IPv6 fixed IP {fixed} of port {port.id}",
                                       "BadRequest"))
            continue
        if state.router_for_fip(f) is None:
            sid = next((s for s, ip in port.fixed_ips if ip == fixed), "?")
            errors.append(NeutronError(
                f"External network {f.floating_network_id} is not reachable from subnet {sid}. "
                f"Therefore, cannot associate Port {port.id} with a Floating IP.",
                "ExternalGatewayForFloatingIPNotFound", 404))
        key = f"{port.id}/{fixed}"
        if key in fixed_taken:
            errors.append(NeutronError(
                f"Cannot associate floating IP {f.floating_ip_address} ({f.id}) with port "
                f"{port.id} using fixed IP {fixed}, as that fixed IP already has a floating IP "
                f"on external network {f.floating_network_id}.",
                "FloatingIPPortAlreadyAssociated", 409))
        fixed_taken[key] = f.id
    return errors


_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")


def _modes_ok(s, net, errors: list) -> bool:
    """Neutron's IPv6 mode rules: modes only on IPv6 subnets, known values, equal when both
    are set, and a /64 for the modes that make addresses from the prefix (EUI-64)."""
    modes = [m for m in (s.ipv6_ra_mode, s.ipv6_address_mode) if m is not None]
    if modes and net.version != 6:
        errors.append(NeutronError(f"Subnet {s.cidr}: ipv6_ra_mode and ipv6_address_mode "
                                   "are for IPv6 subnets"))
        return False
    bad = [m for m in modes if m not in _MODES]
    if bad:
        errors.append(NeutronError(f"Subnet {s.cidr}: IPv6 mode {bad[0]!r} is not one of "
                                   f"{', '.join(_MODES)}"))
        return False
    if len(modes) == 2 and modes[0] != modes[1]:
        errors.append(NeutronError(f"Subnet {s.cidr}: ipv6_ra_mode set to '{modes[0]}' with "
                                   f"ipv6_address_mode set to '{modes[1]}' is not valid. If "
                                   "both attributes are set, they must be the same value"))
        return False
    if net.version == 6 and net.prefixlen != 64 and \
            set(modes) & {"slaac", "dhcpv6-stateless"}:
        errors.append(NeutronError(f"Invalid CIDR {s.cidr} for IPv6 address mode. OpenStack "
                                   "uses the EUI-64 address format, which requires the prefix "
                                   "to be /64"))
        return False
    return True



def bad_forwardings(state: State, fip, only=None) -> dict[str, str]:
    """A floating IP's port forwardings the kernel cannot hold, forwarding id -> why: an
    internal address on no subnet of the floating IP's router, an external port range
    overlapping one of the same protocol with a smaller id (a NAT map holds one value per
    port; the API refuses it, a file may not). Each bad one is left out alone. ``only``:
    these ids checked against the others (a delta of a few among 1,000), and the others
    they make bad."""
    router = state.router_for_fip(fip)
    if router is None or not fip.port_forwardings:
        return {}
    nets = [ipaddress.ip_network(state.subnets[i.subnet_id].cidr)
            for i in router.interfaces if i.subnet_id in state.subnets]
    out: dict[str, str] = {}
    pfs = fip.port_forwardings
    mine = pfs if only is None else [p for p in pfs if p.id in only]
    for pf in mine:
        try:
            ip = ipaddress.ip_address(pf.internal_ip_address)
        except ValueError:
            out[pf.id] = f"internal address {pf.internal_ip_address!r} is no address"
            continue
        if not any(ip in n for n in nets):
            out[pf.id] = f"internal address {ip} is on no subnet of router {router.id}"
    if only is None:  # groups of overlapping ranges (a sweep), each pair of a group checked
        groups, end = [], {}
        for pf in sorted(pfs, key=lambda p: (p.protocol, p.external_port_start)):
            if pf.external_port_start <= end.get(pf.protocol, 0):
                groups[-1].append(pf)
            else:
                groups.append([pf])
            end[pf.protocol] = max(end.get(pf.protocol, 0), pf.external_port_end)
        pairs = [(a, b) for g in groups if len(g) > 1 for a in g for b in g]
    else:
        pairs = [(a, b) for a in mine for b in pfs]
        pairs += [(b, a) for a, b in pairs]
    first: dict[str, tuple] = {}  # the overlapping one with the smallest id is named
    for a, b in pairs:
        if a.id > b.id and a.protocol == b.protocol and \
                a.external_port_start <= b.external_port_end and \
                b.external_port_start <= a.external_port_end and \
                (a.id not in first or b.id < first[a.id][1].id):
            first[a.id] = (a, b)
    for i, (a, b) in first.items():
        out.setdefault(i, f"external ports {a.external_port_start}:{a.external_port_end}/"
                          f"{a.protocol} overlap port forwarding {b.id}")
    return out
