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
  (``dhcpv4_options`` / ``dhcpv6_options``); a port with extra DHCP options OVN knows
  (extra_dhcp_opt, Neutron's SUPPORTED_DHCP_OPTS_MAPPING) gets a row of its own: the
  subnet's options and its own (``dhcp:<subnet id>:<port id>``, external_ids ``port_id``);
  ``dhcp_disabled: true`` leaves it without DHCP;
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


def port_refs(state: State, port, offered: set[str],
              dports: dict | None = None) -> tuple[dict, dict[str, dict]]:
    """A VM port's ``dhcpv4_options`` / ``dhcpv6_options``: the row of its first subnet of
    each version that OVN serves (``offered``: subnet ids with a DHCP_Options row), or its
    own row when it has extra options (returned too: key -> columns; ``dports``: the
    networks' DHCP ports, ``dhcp_ports(state)``)."""
    out: dict = {"dhcpv4_options": [], "dhcpv6_options": []}
    rows: dict[str, dict] = {}
    if port.device_owner.startswith("network:"):
        return out, rows
    for sid, _ in port.fixed_ips:
        sub = state.subnets.get(sid)
        if sub is None or sid not in offered:
            continue
        col = "dhcpv4_options" if sub.ip_version == 4 else "dhcpv6_options"
        if out[col]:
            continue
        disabled, extra = lsp_dhcp_opts(port, sub.ip_version)
        if disabled:
            continue
        out[col] = [Ref(f"dhcp:{sid}")]
        if extra and (row := options_row(state, sub, (dports or {}).get(sub.network_id))):
            for opt in MAP_OPTS & set(extra):  # _merge_map_dhcp_option: the subnet's first
                if row["options"].get(opt):
                    extra[opt] = "{" + row["options"][opt][1:-1] + ", " + extra[opt][1:-1] + "}"
            key = f"dhcp:{sid}:{port.id}"
            rows[key] = {"cidr": row["cidr"], "options": {**row["options"], **extra},
                         "external_ids": {**row["external_ids"], "port_id": port.id}}
            out[col] = [Ref(key)]
    return out, rows


# Neutron's SUPPORTED_DHCP_OPTS_MAPPING, OVN_STR_TYPE_DHCP_OPTS, OVN_MAP_TYPE_DHCP_OPTS
# (neutron/common/ovn/constants.py): extra_dhcp_opt names -> OVN's option names
_V4 = {"arp-timeout": "arp_cache_timeout", "tcp-keepalive": "tcp_keepalive_interval",
       "netmask": "netmask", "router": "router", "dns-server": "dns_server",
       "log-server": "log_server", "lpr-server": "lpr_server", "domain-name": "domain_name",
       "domain-search": "domain_search_list", "swap-server": "swap_server",
       "policy-filter": "policy_filter", "router-solicitation": "router_solicitation",
       "nis-server": "nis_server", "ntp-server": "ntp_server", "server-id": "server_id",
       "tftp-server": "tftp_server", "classless-static-route": "classless_static_route",
       "ms-classless-static-route": "ms_classless_static_route",
       "ip-forward-enable": "ip_forward_enable", "router-discovery": "router_discovery",
       "ethernet-encap": "ethernet_encap", "default-ttl": "default_ttl", "tcp-ttl": "tcp_ttl",
       "mtu": "mtu", "lease-time": "lease_time", "T1": "T1", "T2": "T2",
       "bootfile-name": "bootfile_name", "bootfile-name-alt": "bootfile_name_alt",
       "wpad": "wpad", "path-prefix": "path_prefix",
       "tftp-server-address": "tftp_server_address", "server-ip-address": "next_server",
       "1": "netmask", "3": "router", "6": "dns_server", "7": "log_server", "9": "lpr_server",
       "15": "domain_name", "16": "swap_server", "21": "policy_filter",
       "32": "router_solicitation", "35": "arp_cache_timeout", "38": "tcp_keepalive_interval",
       "41": "nis_server", "42": "ntp_server", "54": "server_id", "66": "tftp_server",
       "121": "classless_static_route", "249": "ms_classless_static_route",
       "19": "ip_forward_enable", "31": "router_discovery", "36": "ethernet_encap",
       "23": "default_ttl", "37": "tcp_ttl", "26": "mtu", "51": "lease_time", "58": "T1",
       "59": "T2", "67": "bootfile_name", "119": "domain_search_list", "252": "wpad",
       "210": "path_prefix", "150": "tftp_server_address", "255": "next_server"}
_V6 = {"bootfile-name": "bootfile_name", "server-id": "server_id", "dns-server": "dns_server",
       "domain-search": "domain_search", "ia-addr": "ia_addr", "2": "server_id", "5": "ia_addr",
       "24": "domain_search", "23": "dns_server", "59": "bootfile_name"}
OVN_OPTS = {4: _V4, 6: _V6}
STR_OPTS = {"domain_name", "domain_search_list", "bootfile_name", "bootfile_name_alt",
            "path_prefix", "wpad", "tftp_server"}
MAP_OPTS = {"classless_static_route"}


def lsp_dhcp_opts(port, version: int) -> tuple[bool, dict[str, str]]:
    """Neutron's get_lsp_dhcp_opts: (DHCP disabled by ``dhcp_disabled: true``, the port's
    options of ``version`` OVN knows, by OVN's names; others are ignored, as Neutron's)."""
    out: dict[str, str] = {}
    for name, value, ver in port.extra_dhcp_opts:
        if ver != version:
            continue
        if name == "dhcp_disabled" and str(value).lower() == "true":
            return True, {}
        opt = OVN_OPTS[version].get(name)
        if opt is None or "\n" in str(value):
            continue
        value = str(value)
        if opt in STR_OPTS and not (value.startswith('"') and value.endswith('"')):
            value = f'"{value}"'
        elif opt in MAP_OPTS and not (value.startswith("{") and value.endswith("}")):
            value = "{" + value + "}"
        out[opt] = value
    return False, out


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
