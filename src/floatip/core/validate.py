"""Validation of desired state: pure, every error collected, each with Neutron's type."""
from __future__ import annotations

import ipaddress
import uuid

from .errors import InvalidState, NeutronError
from .model import Network, State

# ---------------------------------------------------------------------------------------
# Validation: pure, every error collected, each with Neutron's exception type.

def _ip(value: str, what: str, errors: list) -> ipaddress.IPv4Address | None:
    try:
        addr = ipaddress.ip_address(value)
    except (ValueError, TypeError):
        errors.append(NeutronError(f"Invalid IP address '{value}' for {what}"))
        return None
    if addr.version != 4:
        errors.append(NeutronError(f"Only IPv4 is supported ({what}: {value})"))
        return None
    return addr


def _uuid(value: str, what: str, errors: list) -> None:
    try:
        uuid.UUID(str(value))
    except ValueError:
        errors.append(NeutronError(f"'{value}' is not a valid UUID ({what})"))


def validate(state: State) -> None:
    """Raise InvalidState listing every problem of ``state``; return None if it is sound."""
    errors: list[NeutronError] = []
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
        net = ipaddress.ip_network(sub.cidr)
        if addr not in net or addr in (net.network_address, net.broadcast_address):
            errors.append(NeutronError(f"IP address {ip} is not a valid IP for subnet "
                                       f"{sub.cidr} ({what})", "InvalidIpForSubnet"))
            return False
        return True

    for n in nets.values():
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
        _uuid(s.id, f"subnet {s.name}", errors)
        if s.network_id not in nets:
            errors.append(NeutronError(f"Network {s.network_id} could not be found",
                                       "NetworkNotFound", 404))
        try:
            net = ipaddress.ip_network(s.cidr)
        except ValueError:
            errors.append(NeutronError(f"Invalid CIDR {s.cidr!r} for subnet {s.name or s.id}"))
            continue
        if net.version != 4 or net.prefixlen > 30:
            errors.append(NeutronError(f"Subnet {s.cidr}: IPv4 with prefix /30 or shorter needed"))
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
            elif gw.subnet_id in subnets and subnets[gw.subnet_id].network_id != gw.network_id:
                errors.append(NeutronError(f"Gateway subnet {gw.subnet_id} is not on network "
                                           f"{gw.network_id}"))
            if in_subnet(gw.subnet_id, gw.ip_address, f"gateway of router {r.name or r.id}"):
                claim(gw.subnet_id, gw.ip_address, f"router {r.name or r.id} gateway")
        cidrs: list[ipaddress.IPv4Network] = []
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
                     [itf.subnet_id for itf in r.interfaces] + ([gw.subnet_id] if gw else [])
                     if i in subnets]
        for dest, nexthop in r.routes:
            try:
                if ipaddress.IPv4Network(dest, strict=False).prefixlen == 0:
                    raise ValueError("the default route comes from the external gateway")
            except ValueError:
                errors.append(NeutronError(f"Invalid route destination {dest!r} on router "
                                           f"{r.name or r.id}", "InvalidRoutes"))
            hop = _ip(nexthop, f"nexthop of a route on router {r.name or r.id}", errors)
            if hop is not None and not any(hop in c for c in connected):
                errors.append(NeutronError(
                    f"Invalid format for routes: the nexthop {nexthop} is not connected with "
                    f"router {r.name or r.id}", "InvalidRoutes"))
    fixed_taken: dict[str, str] = {}
    for f in state.floatingips.values():
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
        addr = _ip(f.floating_ip_address, "floating IP", errors)
        ext = [s for s in subnets.values() if s.network_id == net.id and addr is not None
               and addr in ipaddress.ip_network(s.cidr)]
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
        fixed = f.fixed_ip_address or (port.fixed_ips[0][1] if port.fixed_ips else None)
        if fixed is None:
            errors.append(NeutronError(f"Port {port.id} has no fixed IP"))
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
    if errors:
        raise InvalidState(errors)
