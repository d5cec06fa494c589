"""DHCP for tenant networks the way Neutron's DHCP agent does it with dnsmasq. Pure.

Desired state -> per network a ``DhcpSpec``: the namespace ``qdhcp-<network id>``, the
``tap<port id>`` device of the network's DHCP port (``device_owner: network:dhcp``) on the
integration bridge with the network's VLAN, and the hosts dnsmasq answers (MAC -> fixed IP,
hostname). A spec renders into dnsmasq's command line (changes only when the subnets or
the DHCP port's addresses change: a restart) and its hosts and options files (every port
change: rewritten, then SIGHUP).

A port's ``dns_name`` is its hostname; its extra DHCP options (extra_dhcp_opt) are tagged
``port-<id>`` on its host entries and given for that tag in the options file, as Neutron's
dnsmasq driver writes them.

IPv6 as Neutron's dnsmasq driver serves it: a ``dhcpv6-stateful`` subnet gets a static range
and a host entry per port (MAC -> address, used for DHCPv6 requests only), a
``dhcpv6-stateless`` one a static range and its DNS servers only; SLAAC subnets are the
router advertisement's business (radvd in the router), not dnsmasq's.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .model import State

NS_PREFIX = "qdhcp-"
OWNER_KEY = "floatip-dhcp"          # external_ids key on the taps floatip owns: the network id
MARK_PREFIX = "floatip dhcp="       # the ``lo`` alias marking a DHCP namespace as floatip's
DHCP_OWNER = "network:dhcp"
DEAD_VLAN = 4095                    # the L2 agent's VLAN for admin-down ports: drops all
LEASE_SECONDS = 86400               # Neutron's dhcp_lease_duration
LEASE_MAX = 2 ** 24                 # Neutron's dnsmasq_lease_max: an IPv6 /64 is not counted
STATEFUL, STATELESS = "dhcpv6-stateful", "dhcpv6-stateless"
DEV_LEN = 14
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True)
class DhcpSubnet:
    id: str
    cidr: str
    gateway_ip: str | None
    dns_nameservers: tuple[str, ...] = ()
    host_routes: tuple[tuple[str, str], ...] = ()
    ip_version: int = 4


@dataclass(frozen=True)
class DhcpHost:
    mac: str
    ip: str
    hostname: str
    tag: str = ""                       # "port-<id>" when the port has extra options

    @property
    def v6(self) -> bool:
        return ":" in self.ip


@dataclass(frozen=True)
class DhcpSpec:
    network_id: str
    namespace: str
    port_id: str
    device: str
    mac: str
    bridge: str
    tag: int
    mtu: int
    addresses: tuple[str, ...]          # the DHCP port's "ip/prefix"
    subnets: tuple[DhcpSubnet, ...]
    hosts: tuple[DhcpHost, ...]
    # (port id, ip version, option name, value): the ports' extra options
    port_opts: tuple[tuple[str, int, str, str], ...] = ()


def namespace_name(network_id: str) -> str:
    return NS_PREFIX + network_id


def tap_name(port_id: str) -> str:
    return ("tap" + port_id)[:DEV_LEN]


def hostname(port_name: str, ip: str, dns_name: str = "") -> str:
    """The port's dns_name (its first label), else its name when it is a valid DNS label,
    else Neutron's ``host-<ip dashed>``."""
    for name in ((dns_name or "").split(".")[0], (port_name or "").lower()):
        if _LABEL.match(name):
            return name
    return "host-" + ip.replace(".", "-").replace(":", "-")


def _served(s) -> bool:
    """dnsmasq serves IPv4 subnets with DHCP, and IPv6 ones in a DHCPv6 mode (or in none,
    which Neutron's driver serves as static as well)."""
    if s.ip_version == 4:
        return True
    return s.ipv6_address_mode in (STATEFUL, STATELESS) or \
        (s.ipv6_address_mode is None and s.ipv6_ra_mode is None)


def dhcp_specs(state: State, integration_bridge: str) -> dict[str, DhcpSpec]:
    """A spec per tenant network that has a DHCP port and a subnet with DHCP enabled."""
    dhcp_ports = {}
    for p in state.ports.values():
        if p.device_owner == DHCP_OWNER and p.network_id not in dhcp_ports:
            dhcp_ports[p.network_id] = p
    out = {}
    for nid, dport in sorted(dhcp_ports.items()):
        net = state.networks.get(nid)
        if net is None or net.external:
            continue
        tag = net.local_vlan if net.local_vlan is not None else net.segmentation_id
        subnets = sorted((s for s in state.subnets.values()
                          if s.network_id == nid and s.enable_dhcp and _served(s)),
                         key=lambda s: s.id)
        if tag is None or not subnets:
            continue
        by_id = {s.id: s for s in subnets}
        addresses = tuple(f"{ipaddress.ip_address(ip)}/"
                          f"{ipaddress.ip_network(by_id[sid].cidr).prefixlen}"
                          for sid, ip in dport.fixed_ips if sid in by_id)
        if not addresses:
            continue
        hosts, port_opts = [], []
        for p in sorted(state.ports.values(), key=lambda p: p.id):
            # what reaches dnsmasq's files is checked here too: exact MACs and addresses
            if p.network_id != nid or p.id == dport.id or not _MAC.match(p.mac_address.lower()):
                continue
            opts = _port_opts(p)
            ptag = f"port-{p.id}" if opts else ""
            for sid, ip in p.fixed_ips:
                sub = by_id.get(sid)
                if sub is None:
                    continue
                if sub.ip_version == 4 and _ipv4(ip):
                    hosts.append(DhcpHost(p.mac_address.lower(), ip,
                                          hostname(p.name, ip, p.dns_name), ptag))
                elif sub.ip_version == 6 and sub.ipv6_address_mode != STATELESS and _ipv6(ip):
                    ip = str(ipaddress.IPv6Address(ip))
                    hosts.append(DhcpHost(p.mac_address.lower(), ip,
                                          hostname(p.name, ip, p.dns_name), ptag))
            versions = {6 if ":" in ip else 4 for _, ip in p.fixed_ips}
            port_opts += [(p.id, v, n, val) for n, val, v in opts if v in versions]
        out[nid] = DhcpSpec(
            network_id=nid, namespace=namespace_name(nid), port_id=dport.id,
            device=tap_name(dport.id), mac=dport.mac_address.lower(), bridge=integration_bridge,
            # admin-down: its tap on the dead VLAN as Neutron's L2 agent puts it, so dnsmasq
            # serves nobody and the port binder (which skips DHCP taps) never disagrees
            tag=tag if dport.admin_state_up else DEAD_VLAN, mtu=net.mtu, addresses=addresses,
            subnets=tuple(DhcpSubnet(s.id, str(ipaddress.ip_network(s.cidr)), s.gateway_ip,
                                     tuple(a for a in s.dns_nameservers if _ipv4(a))
                                     if s.ip_version == 4 else
                                     tuple(str(ipaddress.IPv6Address(a))
                                           for a in s.dns_nameservers if _ipv6(a)),
                                     _routes(s.host_routes) if s.ip_version == 4 else (),
                                     s.ip_version)
                          for s in subnets),
            hosts=tuple(hosts), port_opts=tuple(port_opts))
    return out


def _port_opts(p) -> list[tuple[str, str, int]]:
    """The port's extra options dnsmasq gets: one line each, client-id left out (Neutron
    gives it as the host entry's id, which floatip does not)."""
    return [(str(n).split("\n", 1)[0], str(v).split("\n", 1)[0], int(ver))
            for n, v, ver in p.extra_dhcp_opts
            if str(n) not in ("client-id", "61") and "\x00" not in f"{n}{v}"]


def _ipv4(text: str) -> bool:
    try:
        return str(ipaddress.IPv4Address(text)) == text
    except ValueError:
        return False


def _ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
        return True
    except ValueError:
        return False


def _routes(routes) -> tuple[tuple[str, str], ...]:
    """Host routes in canonical form; anything else is left out."""
    out = []
    for dest, hop in routes:
        try:
            out.append((str(ipaddress.IPv4Network(dest, strict=False)),
                        str(ipaddress.IPv4Address(hop))))
        except ValueError:
            continue
    return tuple(out)


# ---------------------------------------------------------------------------------------
# dnsmasq's inputs (Neutron's formats: neutron/agent/linux/dhcp.py)

def render_hosts(spec: DhcpSpec) -> str:
    """``--dhcp-hostsfile``: one ``mac,hostname,ip`` per fixed IP; an IPv6 one in brackets
    and for DHCPv6 requests only (``tag:dhcpv6``), so it never shadows the IPv4 entry of
    the same MAC."""
    return "".join((f"{h.mac},tag:dhcpv6,{h.hostname},[{h.ip}]" if h.v6 else
                    f"{h.mac},{h.hostname},{h.ip}") + (f",set:{h.tag}" if h.tag else "") + "\n"
                   for h in spec.hosts)


def render_opts(spec: DhcpSpec) -> str:
    """``--dhcp-optsfile``: per subnet the router (the gateway, or none), DNS servers, host
    routes as classless static routes (121, and 249 for Windows; RFC 3442 clients ignore
    the router option when they get these, so the default route goes in them too) and MTU."""
    lines = []
    for s in spec.subnets:
        tag = f"tag:subnet-{s.id}"
        if s.ip_version == 6:  # the router and MTU come with the router advertisement
            if s.dns_nameservers:
                lines.append(f"{tag},option6:dns-server,"
                             + ",".join(f"[{a}]" for a in s.dns_nameservers))
            continue
        if s.dns_nameservers:
            lines.append(f"{tag},option:dns-server,{','.join(s.dns_nameservers)}")
        if s.host_routes:
            routes = [f"{dest},{hop}" for dest, hop in s.host_routes
                      if ipaddress.ip_network(dest, strict=False).prefixlen > 0]
            if s.gateway_ip:
                routes.append(f"0.0.0.0/0,{s.gateway_ip}")
            lines.append(f"{tag},option:classless-static-route,{','.join(routes)}")
            lines.append(f"{tag},249,{','.join(routes)}")
        lines.append(f"{tag},option:router,{s.gateway_ip}" if s.gateway_ip
                     else f"{tag},option:router")
        lines.append(f"{tag},option:mtu,{spec.mtu}")
    lines += [_format_option(v, f"port-{pid}", name, value)
              for pid, v, name, value in spec.port_opts]
    return "".join(line + "\n" for line in lines)


def _format_option(version: int, tag: str, option: str, value: str) -> str:
    """Neutron's Dnsmasq._format_option: ``[tag:X,]name`` -> ``tag:<tag>[,tag:X],option:name``
    (``option6:`` for IPv6; a number stays a number on IPv4)."""
    extra, _, name = option.rpartition(",") if option.startswith("tag:") else ("", "", option)
    if version == 6:
        name = f"option6:{name}"
    elif not name.isdigit():
        name = f"option:{name}"
    return ",".join([f"tag:{tag}"] + ([extra] if extra else []) + [name, value])


def dnsmasq_argv(spec: DhcpSpec, conf_dir: str, binary: str = "dnsmasq") -> list[str]:
    """The command line: static ranges only (no dynamic pool: unknown MACs get nothing), no
    DNS service (``--port=0``), files in ``conf_dir``, bound to the tap alone."""
    argv = [binary, "--no-hosts", "--no-resolv", "--port=0", "--conf-file=/dev/null",
            f"--pid-file={conf_dir}/pid", f"--dhcp-hostsfile={conf_dir}/host",
            f"--dhcp-optsfile={conf_dir}/opts", f"--dhcp-leasefile={conf_dir}/leases",
            f"--log-facility={conf_dir}/log", f"--interface={spec.device}",
            "--except-interface=lo", "--bind-interfaces", "--dhcp-authoritative"]
    size = 0
    for s in spec.subnets:
        net = ipaddress.ip_network(s.cidr)
        size += net.num_addresses
        argv.append(f"--dhcp-range=set:subnet-{s.id},{net.network_address},static,"
                    f"{net.netmask if net.version == 4 else net.prefixlen},{LEASE_SECONDS}s")
    argv.append(f"--dhcp-lease-max={min(max(size, 16), LEASE_MAX)}")
    return argv
