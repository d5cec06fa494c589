"""Shared by the service modules: Neutron's device owners, errors, and the checks of requested
addresses against the state. Request bodies arrive validated (``api.schemas``): the service
functions take the attributes a request set, as a dict with Neutron's names."""
from __future__ import annotations

import ipaddress
import random
import uuid
from typing import Any

from sqlalchemy.orm import Session

from .. import store as S
from ..core.errors import NeutronError


OWNER_RI = "network:router_interface"
OWNER_GW = "network:router_gateway"
OWNER_FIP = "network:floatingip"
NETWORK_OWNERS = (OWNER_RI, OWNER_GW, OWNER_FIP)
DEFAULT_PHYSNET = "physnet1"
DEAD_VLAN = 4095


def err(type_: str, code: int, message: str) -> NeutronError:
    return NeutronError(message, type_, code)


SG_NOT_FOUND = {
    "security_group": ("SecurityGroupNotFound", "Security group {} does not exist"),
    "security_group_rule": ("SecurityGroupRuleNotFound", "Security group rule {} does not exist"),
    "address_group": ("AddressGroupNotFound", "Address group {} could not be found."),
}


def not_found(kind: str, rid: str) -> NeutronError:
    if kind in SG_NOT_FOUND:
        typ, text = SG_NOT_FOUND[kind]
        return err(typ, 404, text.format(rid))
    label = {"floatingip": "Floating IP", "network": "Network", "subnet": "Subnet",
             "port": "Port", "router": "Router", "subnetpool": "Subnet pool"}[kind]
    typ = {"floatingip": "FloatingIPNotFound", "subnetpool": "SubnetPoolNotFound"}.get(
        kind, kind.capitalize() + "NotFound")
    return err(typ, 404, f"{label} {rid} could not be found.")


def bad(message: str) -> NeutronError:
    return err("BadRequest", 400, message)


def ts(value) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def new_id() -> str:
    return str(uuid.uuid4())


def random_mac() -> str:
    return "fa:16:3e:%02x:%02x:%02x" % tuple(random.randint(0, 255) for _ in range(3))



# _uuid and _ipv4 re-check ids and addresses deep in allocation, where a value comes from
# another resource's body (floating IPs are IPv4 only).
def _uuid(v: Any, key: str) -> str:
    try:
        return str(uuid.UUID(str(v)))
    except (ValueError, TypeError):
        raise bad(f"Invalid input for {key}. Reason: '{v}' is not a valid UUID.") from None


def _ipv4(v: Any, key: str) -> str:
    try:
        addr = ipaddress.ip_address(v)
    except (ValueError, TypeError):
        raise bad(f"Invalid input for {key}. Reason: '{v}' is not a valid IP address.") from None
    if addr.version != 4:
        raise bad(f"Invalid input for {key}. Reason: only IPv4 is supported.")
    return str(addr)


def _ignored_ok(d: dict, key: str, allowed_values: tuple) -> None:
    if key in d and d[key] not in allowed_values:
        raise bad(f"Invalid input for {key}: floatip supports only {allowed_values}")


def _must(s: Session, kind: str, rid: Any, lock: bool = False, related: bool = True):
    row = S.get(s, S.MODELS[kind], str(rid), lock=lock, related=related) \
        if isinstance(rid, str) else None
    if row is None:
        raise not_found(kind, str(rid))
    return row


IPV6_MODES = ("dhcpv6-stateful", "dhcpv6-stateless", "slaac")
AUTO_MODES = ("slaac", "dhcpv6-stateless")


def is_auto_address(sn) -> bool:
    """Neutron's is_auto_address_subnet: SLAAC or DHCPv6-stateless, by either mode: every
    port's address on it is EUI-64 from its MAC."""
    return sn.ipv6_address_mode in AUTO_MODES or sn.ipv6_ra_mode in AUTO_MODES


def host_range(cidr) -> tuple[int, int]:
    """The first and last address a pool may hold: IPv4 without the network and broadcast
    addresses, IPv6 without the subnet-router anycast (network) address."""
    first, last = int(cidr.network_address), int(cidr.broadcast_address)
    return first + 1, last - (cidr.version == 4)


def family_mismatch(version: int, nameservers: list[str],
                    routes: list[tuple[str, str]]) -> str | None:
    """Why a subnet's nameservers or host routes (destination, nexthop) are not all of its
    IP version (neutron's _validate_ip_version), or None."""
    for ns in nameservers:
        if ipaddress.ip_address(ns).version != version:
            return f"dns_nameserver '{ns}' does not match the ip_version '{version}'"
    for dest, hop in routes:
        if ipaddress.ip_address(hop).version != version:
            return f"nexthop '{hop}' does not match the ip_version '{version}'"
        if ipaddress.ip_network(dest).version != version:
            return f"destination '{dest}' does not match the ip_version '{version}'"
    return None


def valid_for_subnet(cidr, addr, owner: str) -> bool:
    """Neutron's check_subnet_ip: an IPv4 host address; in IPv6 any address of the prefix,
    the network address only for router ports (or a port without owner yet)."""
    if addr not in cidr:
        return False
    if cidr.version == 4:
        return addr not in (cidr.network_address, cidr.broadcast_address)
    return addr != cidr.network_address or owner in ("", OWNER_RI, OWNER_GW)


def check_requested(s: Session, net: S.Network, requests: list[dict], owner: str) -> None:
    """Addresses asked for on ``net``: valid addresses of their subnet (not its network or
    broadcast address), and never the subnet's gateway unless the port is, or is made to
    become (no owner yet), a router interface: a floating IP or router gateway on the
    upstream gateway's address would answer ARP for it and pull in other routers' traffic."""
    if not any(req.get("ip_address") for req in requests):
        return  # nothing asked for by address (the subnets are not read)
    subnets = S.subnets_of(s, net.id)
    for req in requests:
        ip = req.get("ip_address")
        if not ip:
            continue
        addr = ipaddress.ip_address(ip)
        sn = next((x for x in subnets if x.id == req.get("subnet_id")
                   or (not req.get("subnet_id") and addr in ipaddress.ip_network(x.cidr))), None)
        if sn is None or addr not in ipaddress.ip_network(sn.cidr):
            continue  # allocation says why (InvalidIpForNetwork / InvalidIpForSubnet)
        if not valid_for_subnet(ipaddress.ip_network(sn.cidr), addr, owner):
            raise err("InvalidIpForSubnet", 400, f"IP address {ip} is not a valid IP for the "
                                                 f"specified subnet.")
        if ip == sn.gateway_ip and owner not in ("", OWNER_RI):
            raise err("IpAddressInUse", 409, f"Unable to complete operation for network "
                                             f"{net.id}. The IP address {ip} is in use: it is "
                                             f"the gateway of subnet {sn.id}.")


def created_project(ctx, d: dict) -> str:
    """The project a create's body names (``project_id``, ``tenant_id``: one, or the same
    twice; checked as ``body_project``), else the caller's."""
    pid, tid = d.get("project_id"), d.get("tenant_id")
    if pid and tid and pid != tid:
        raise err("HTTPBadRequest", 400, "'project_id' and 'tenant_id' do not match")
    body_project(ctx, d)
    return pid or tid or ctx.project_id


def body_project(ctx, d: dict) -> None:
    """neutron-lib's _validate_privileges: only an admin or a service (Neutron's
    ``can_set_project_id``) names another project in a body, create or update."""
    named = d.get("project_id", d.get("tenant_id"))
    if ("project_id" in d or "tenant_id" in d) and named != ctx.project_id and not (
            ctx.is_admin or "service" in ctx.roles):
        raise err("HTTPBadRequest", 400, "Specifying 'project_id' other than the authenticated "
                  "project in request is not allowed for the current user.")
