"""IP allocation: requested or any free address, the database's unique key settles races.

Neutron's rules for which subnets a port gets addresses on: a port created without
``fixed_ips`` gets one address from an IPv4 subnet, one from a stateful IPv6 subnet, and its
EUI-64 address on every auto-address (SLAAC, DHCPv6-stateless) subnet; explicit ``fixed_ips``
still get the auto-address ones. Router interfaces are the exception (they hold the gateway
address they are given); floating IP ports take IPv4 only (floatip's: a floating IP is IPv4).
"""
from __future__ import annotations

import ipaddress

from sqlalchemy.orm import Session

from .. import store as S
from ..core.errors import NeutronError
from .common import (OWNER_FIP, OWNER_RI, _uuid, bad, err, is_auto_address, new_id,
                     not_found, random_mac, valid_for_subnet)


CHUNK = 128
FIRST_CHUNK = 8
_next: dict[str, int] = {}  # subnet id -> pool offset after the last address given here
NO_AUTO = (OWNER_RI, OWNER_FIP)  # ports that never get EUI-64 addresses
EXHAUSTED = ("IpAddressGenerationFailure", "ExternalIpAddressExhausted")


def eui64(cidr: str, mac: str) -> str:
    """The address SLAAC gives ``mac`` in the /64 ``cidr`` (RFC 4291 appendix A, as oslo's
    get_ipv6_addr_by_EUI64): the MAC with ff:fe in the middle and the universal/local bit
    flipped, after the prefix."""
    b = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(b) != 6:
        raise ValueError(f"not a MAC address: {mac}")
    iid = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:]
    net = ipaddress.IPv6Network(cidr)
    return str(net.network_address + int.from_bytes(iid, "big"))


def address(version: int, n: int) -> str:
    """An integer as an address of ``version`` (ipaddress.ip_address would make a small
    IPv6 integer an IPv4 address)."""
    return str(ipaddress.IPv4Address(n) if version == 4 else ipaddress.IPv6Address(n))


def _pool_ranges(sn: S.Subnet) -> list[tuple[int, int]]:
    return [(int(ipaddress.ip_address(p["start"])), int(ipaddress.ip_address(p["end"])))
            for p in sn.allocation_pools]


def _at(ranges: list[tuple[int, int]], offset: int) -> int:
    for a, b in ranges:
        if offset <= b - a:
            return a + offset
        offset -= b - a + 1
    raise IndexError(offset)


def _parse_ip(v) -> str:
    try:
        return str(ipaddress.ip_address(v))
    except (ValueError, TypeError):
        raise bad(f"Invalid input for ip_address. Reason: '{v}' is not a valid IP "
                  "address.") from None


def _subnet_for(s: Session, net: S.Network, subnets: list[S.Subnet], req: dict,
                owner: str) -> tuple[S.Subnet, str | None]:
    """The subnet a fixed_ips entry names (by id or by address) and its address, checked
    as Neutron's _get_subnet_for_fixed_ip does."""
    if not isinstance(req, dict):
        raise bad("Invalid input for fixed_ips. Reason: each entry must be an object.")
    ip = _parse_ip(req["ip_address"]) if req.get("ip_address") else None
    if req.get("subnet_id"):
        sid = _uuid(req["subnet_id"], "subnet_id")
        sn = next((x for x in subnets if x.id == sid), None)
        if sn is None:
            if S.get(s, S.Subnet, sid) is None:
                raise not_found("subnet", sid)
            raise bad(f"Invalid input for operation: Failed to create port on network "
                      f"{net.id}, because fixed_ips included invalid subnet {sid}.")
        if ip and not valid_for_subnet(ipaddress.ip_network(sn.cidr), ipaddress.ip_address(ip),
                                       owner):
            raise err("InvalidIpForSubnet", 400, f"IP address {ip} is not a valid IP for "
                                                 f"the specified subnet.")
        return sn, ip
    if not ip:
        raise bad("Invalid input for fixed_ips: subnet_id or ip_address required.")
    addr = ipaddress.ip_address(ip)
    sn = next((x for x in subnets if valid_for_subnet(ipaddress.ip_network(x.cidr), addr,
                                                      owner)), None)
    if sn is None:
        raise err("InvalidIpForNetwork", 400, f"IP address {ip} is not a valid IP for any of "
                                              f"the subnets on the specified network.")
    return sn, ip


def _allocate(s: Session, port: S.Port, net: S.Network, requests: list[dict],
              in_use_error: str = "IpAddressAlreadyAllocated", default: bool = False,
              subnets: list[S.Subnet] | None = None) -> None:
    """Give ``port`` the addresses ``requests`` names ({subnet_id?, ip_address?} each), or
    with ``default`` Neutron's default set; then its EUI-64 address on each auto-address
    subnet it has none on. ``subnets``: the network's, when the caller has read them."""
    subnets = S.subnets_of(s, net.id) if subnets is None else subnets
    owner = port.device_owner or ""
    auto_ok = owner not in NO_AUTO
    have = {a.subnet_id for a in port.fixed_ips}
    if default:
        groups = [[x for x in subnets if x.ip_version == 4]]
        if owner != OWNER_FIP:
            groups.append([x for x in subnets if x.ip_version == 6 and not is_auto_address(x)])
        for group in groups:
            if group:
                _allocate_first(s, port, net, group)
    for req in requests:
        sn, ip = _subnet_for(s, net, subnets, req, owner)
        if is_auto_address(sn) and auto_ok:
            if sn.id in have and not ip:
                continue  # its one address there
            mine = eui64(sn.cidr, port.mac_address)
            if ip and ip != mine:
                raise err("AllocationOnAutoAddressSubnet", 400, f"IPv6 address {ip} cannot be directly assigned "
                                               f"to a port on subnet {sn.id} as the subnet is "
                                               f"configured for automatic addresses")
            ip = mine
        if ip:
            _take(s, port, net, sn, ip, in_use_error)
        else:
            _allocate_any(s, port, net, sn)
        have.add(sn.id)
    if auto_ok:
        for sn in subnets:
            if is_auto_address(sn) and sn.id not in have:
                _take(s, port, net, sn, eui64(sn.cidr, port.mac_address), "IpAddressInUse")


def _take(s: Session, port: S.Port, net: S.Network, sn: S.Subnet, ip: str,
          in_use_error: str) -> None:
    if S.try_allocate(s, port, sn, ip):
        return
    if in_use_error == "IpAddressInUse":
        raise err("IpAddressInUse", 409, f"Unable to complete operation for network "
                                         f"{net.id}. The IP address {ip} is in use.")
    raise err("IpAddressAlreadyAllocated", 409, f"IP address {ip} already allocated in "
                                                f"subnet {sn.id}")


def _allocate_first(s: Session, port: S.Port, net: S.Network, group: list[S.Subnet]) -> str:
    """Any free address from the first of ``group`` that has one (Neutron's list of
    candidate subnets of one IP version)."""
    for sn in group[:-1]:
        try:
            return _allocate_any(s, port, net, sn)
        except NeutronError as e:
            if e.type not in EXHAUSTED:
                raise
    return _allocate_any(s, port, net, group[-1])


def _allocate_any(s: Session, port: S.Port, net: S.Network, sn: S.Subnet) -> str:
    """The first free pool address from where this process left off (then wrapping
    around): candidates are tried a chunk at a time against the (subnet, address) primary
    key, so an allocation costs one indexed query, not a read of every used address (an
    IPv6 pool of 2^64 addresses costs the same as a /24)."""
    ranges = _pool_ranges(sn)
    total = sum(b - a + 1 for a, b in ranges)
    # claimed at once: this process' concurrent allocations start at different addresses,
    # not all at the same one (where all but one lost and tried the next: 2.2 tries each)
    claim = _next.get(sn.id, 0)
    _next[sn.id] = claim + 1
    start = claim % total if total else 0
    first = start
    while first < start + total:
        # the address after the last one given is mostly free: a short first chunk
        size = FIRST_CHUNK if first == start else CHUNK
        offsets = [o % total for o in range(first, min(first + size, start + total))]
        first += size
        candidates = [address(sn.ip_version, _at(ranges, o)) for o in offsets]
        got = S.allocate_among(s, port, sn, [ip for ip in candidates if ip != sn.gateway_ip])
        if got is not None:  # PostgreSQL: probe and insert in one statement
            ip, free = got
            if ip is not None:
                off = offsets[candidates.index(ip)]
                _next[sn.id] = max(_next[sn.id], claim + (off - start) % total + 1)
                return ip
            if not free:
                continue  # all taken
            # free ones, all busy or one taken meanwhile: tried one at a time below
        taken = S.allocated_among(s, sn.id, candidates)
        if sn.gateway_ip:
            taken.add(sn.gateway_ip)
        for off, ip in zip(offsets, candidates):
            # the key settles races; an address another request is taking is skipped
            if ip not in taken and S.try_allocate(s, port, sn, ip, skip_busy=True):
                _next[sn.id] = max(_next[sn.id], claim + (off - start) % total + 1)
                return ip
    if net.external:
        raise err("ExternalIpAddressExhausted", 400, f"Unable to find any IP address on "
                                                     f"external network {net.id}.")
    raise err("IpAddressGenerationFailure", 409, f"No more IP addresses available for subnet "
                                                 f"{sn.id}.")


def add_auto_addresses(s: Session, sn: S.Subnet) -> None:
    """A new auto-address subnet: every port on its network (router interfaces and floating
    IP ports aside) gets its EUI-64 address there, as Neutron's
    add_auto_addrs_on_network_ports does."""
    for port in S.ports_on_network(s, sn.network_id):
        if (port.device_owner or "") not in NO_AUTO:
            if S.try_allocate(s, port, sn, eui64(sn.cidr, port.mac_address)):
                S.touch(port)


def renumber_auto(s: Session, port: S.Port) -> None:
    """After a MAC change: the port's EUI-64 addresses follow the new MAC."""
    net = S.get(s, S.Network, port.network_id)
    for a in list(port.fixed_ips):
        sn = S.get(s, S.Subnet, a.subnet_id)
        if is_auto_address(sn) and (port.device_owner or "") not in NO_AUTO:
            port.fixed_ips.remove(a)
            s.flush()
            _take(s, port, net, sn, eui64(sn.cidr, port.mac_address), "IpAddressInUse")


def _new_port(s: Session, net: S.Network, *, owner: str, device_id: str, project_id: str = "",
              name: str = "", mac: str | None = None, requests: list[dict] | None = None,
              in_use_error: str = "IpAddressAlreadyAllocated", status: str = "DOWN",
              subnets: list[S.Subnet] | None = None) -> S.Port:
    """A port on ``net`` with the addresses ``requests`` names, or Neutron's default set
    when it names none. ``subnets``: the network's, when the caller has read them."""
    values = dict(id=new_id(), network_id=net.id, project_id=project_id, name=name,
                  device_owner=owner, device_id=device_id, status=status)
    for _ in range(8):  # a random MAC another port of the network has: another one
        port = S.insert_unless_taken(s, S.Port, {**values, "mac_address": mac or random_mac()})
        if port is not None:
            break
        if mac:
            raise err("MacAddressInUse", 409, f"Unable to complete operation for network "
                                              f"{net.id}. The mac address {mac} is in use.")
    else:
        raise err("MacAddressGenerationFailure", 503, "Unable to generate unique mac on "
                  f"network {net.id}.")
    _allocate(s, port, net, requests or [], in_use_error, default=not requests,
              subnets=subnets)
    return port
