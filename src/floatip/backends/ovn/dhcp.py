"""OVN's native DHCP and router advertisements for floatip's subnets, as Neutron's ML2/OVN
driver writes them (ovn_client: ``_get_ovn_dhcpv4_opts``, ``_get_ovn_dhcpv6_opts``,
``_get_router_ports_ipv6_ra_configs``). Pure: no I/O.

- a ``DHCP_Options`` row per DHCP-enabled subnet of a tenant network (``dhcp:<subnet id>``,
  object ``subnet:<id>``): IPv4 with the router, DNS servers, classless static routes (the
  metadata route to the network's DHCP port, the host routes, the default route: RFC 3442
  clients ignore the router option when they get these), MTU, lease time, server MAC and
  address; IPv6 in ``dhcpv6-stateful`` and ``dhcpv6-stateless`` mode (SLAAC subnets are the
  router advertisement's business, as in Neutron), server id = the server MAC;
- a VM port's LSP refers to the row of its first DHCP-enabled subnet of each IP version
  (``dhcpv4_options`` / ``dhcpv6_options``);
- the network's DHCP port (``network:dhcp``, one per network, made by the API) is the
  ``localport`` every chassis has: the DHCP server's address and the metadata next hop;
- ``ipv6_ra_configs`` on a router interface with IPv6 subnets that have an ``ipv6_ra_mode``:
  the mode, periodic advertisements, the network MTU, DNS servers (RDNSS) of SLAAC subnets.
"""
from __future__ import annotations

import ipaddress

from ...core.dhcp import DHCP_OWNER, LEASE_SECONDS
from ...core.model import State, Subnet, stable_mac
from ...core.ra import (IPV6_MIN_MTU, MAX_RTR_ADV_INTERVAL, MIN_RTR_ADV_INTERVAL,
                        SLAAC, STATEFUL, STATELESS)

METADATA_IP = "169.254.169.254"
# OVN's address_mode values for Neutron's ipv6_ra_mode ones; with several IPv6 subnets on
# one router port the one that asks clients for most wins (managed > other-config > none)
RA_MODES = {STATEFUL: "dhcpv6_stateful", STATELESS: "dhcpv6_stateless", SLAAC: "slaac"}
_RA_RANK = {SLAAC: 0, STATELESS: 1, STATEFUL: 2}


class Ref(str):
    """A column value naming another owned row by its key; the diff compares it with that
    row's uuid and the write passes the row (created in the same transaction, or not)."""


def served(sub: Subnet) -> bool:
    """OVN answers DHCP for IPv4 subnets and IPv6 ones in a DHCPv6 mode (a mode-less IPv6
    subnet with DHCP enabled as stateful, like the kernel backend's dnsmasq)."""
    if not sub.enable_dhcp:
        return False
    if sub.ip_version == 4:
        return True
    return sub.ipv6_address_mode in (STATEFUL, STATELESS) or \
        (sub.ipv6_address_mode is None and sub.ipv6_ra_mode is None)


def dhcp_ports(state: State) -> dict[str, object]:
    """network id -> its DHCP port (the first, by id, if several)."""
    out: dict[str, object] = {}
    for p in sorted(state.ports.values(), key=lambda p: p.id):
        if p.device_owner == DHCP_OWNER:
            out.setdefault(p.network_id, p)
    return out


def _set(values) -> str:
    """OVN's DHCP option set syntax: ``{a, b}``."""
    return "{" + ", ".join(values) + "}"


def _v(text: str, version: int) -> str | None:
    try:
        a = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(a) if a.version == version else None


def options_row(state: State, sub: Subnet, dhcp_port) -> dict | None:
    """The DHCP_Options columns of ``sub`` (None: OVN does not serve it)."""
    net = state.networks.get(sub.network_id)
    if net is None or net.external or not served(sub):
        return None
    server_mac = (dhcp_port.mac_address.lower() if dhcp_port is not None and dhcp_port.mac_address
                  else stable_mac("dhcp:" + sub.id))
    port_ip = next((ip for sid, ip in dhcp_port.fixed_ips if sid == sub.id), None) \
        if dhcp_port is not None else None
    cidr = str(ipaddress.ip_network(sub.cidr, strict=False))
    ext = {"subnet_id": sub.id, "neutron:network_id": sub.network_id}
    if sub.ip_version == 6:
        opts = {"server_id": server_mac}
        dns = [a for x in sub.dns_nameservers if (a := _v(x, 6))]
        if dns:
            opts["dns_server"] = _set(dns)
        if sub.ipv6_address_mode == STATELESS:
            opts["dhcpv6_stateless"] = "true"
        return {"cidr": cidr, "options": opts, "external_ids": ext}
    server_id = sub.gateway_ip or port_ip
    if server_id is None:   # OVN needs a server address: the first usable one
        server_id = str(next(ipaddress.ip_network(cidr).hosts()))
    opts = {"server_id": server_id, "server_mac": server_mac,
            "lease_time": str(LEASE_SECONDS), "mtu": str(net.mtu)}
    if sub.gateway_ip:
        opts["router"] = sub.gateway_ip
    dns = [a for x in sub.dns_nameservers if (a := _v(x, 4))]
    if dns:
        opts["dns_server"] = _set(dns)
    routes = []
    if port_ip is not None:
        routes.append(f"{METADATA_IP}/32,{port_ip}")
    for dest, hop in sub.host_routes:
        try:
            d = ipaddress.IPv4Network(dest, strict=False)
            h = ipaddress.IPv4Address(hop)
        except ValueError:
            continue
        if d.prefixlen:
            routes.append(f"{d},{h}")
    if routes:
        if sub.gateway_ip:
            routes.append(f"0.0.0.0/0,{sub.gateway_ip}")
        opts["classless_static_route"] = _set(routes)
    return {"cidr": cidr, "options": opts, "external_ids": ext}


def port_refs(state: State, port, offered: set[str]) -> dict:
    """A VM port's ``dhcpv4_options`` / ``dhcpv6_options``: the row of its first subnet of
    each version that OVN serves (``offered``: subnet ids with a DHCP_Options row)."""
    out = {"dhcpv4_options": [], "dhcpv6_options": []}
    if port.device_owner.startswith("network:"):
        return out
    for sid, _ in port.fixed_ips:
        sub = state.subnets.get(sid)
        if sub is None or sid not in offered:
            continue
        col = "dhcpv4_options" if sub.ip_version == 4 else "dhcpv6_options"
        if not out[col]:
            out[col] = [Ref(f"dhcp:{sid}")]
    return out


def ra_configs(state: State, subnet_ids: list[str]) -> dict[str, str]:
    """``ipv6_ra_configs`` of a router interface on ``subnet_ids`` ({}: no advertisement)."""
    subs = [s for sid in subnet_ids if (s := state.subnets.get(sid)) is not None
            and s.ip_version == 6 and s.ipv6_ra_mode in RA_MODES]
    if not subs:
        return {}
    mode = max((s.ipv6_ra_mode for s in subs), key=_RA_RANK.__getitem__)
    out = {"address_mode": RA_MODES[mode], "send_periodic": "true",
           "max_interval": str(MAX_RTR_ADV_INTERVAL), "min_interval": str(MIN_RTR_ADV_INTERVAL)}
    net = state.networks.get(subs[0].network_id)
    if net is not None and net.mtu >= IPV6_MIN_MTU:
        out["mtu"] = str(net.mtu)
    dns = [a for s in subs if s.ipv6_ra_mode == SLAAC for x in s.dns_nameservers
           if (a := _v(x, 6))]
    if dns:   # OVN announces one RDNSS address
        out["rdnss"] = dns[0]
    return out
