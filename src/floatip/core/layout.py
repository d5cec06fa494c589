"""Desired state -> the kernel layout Neutron's legacy L3 agent would build, per router.

Pure: the same input always gives the same layout, and nothing here needs root.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field, replace

from .errors import NeutronError
from .model import State
from .names import check_ifname
from .ra import radvd_config

NS_PREFIX = "qrouter-"
DEV_LEN = 14  # Linux allows 15 characters; Neutron keeps 14 (LINUX_DEV_LEN)
OWNER_KEY = "floatip-router"  # external_ids key marking the OVS ports floatip owns

# Neutron's router namespace sysctls (neutron/agent/l3/namespaces.py, router_info.py).
ROUTER_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.conf.all.promote_secondaries", "1"),
    ("net.ipv4.conf.all.arp_ignore", "1"),
    ("net.ipv4.conf.all.arp_announce", "2"),
    ("net.netfilter.nf_conntrack_tcp_be_liberal", "1"),
    # IPv6 is routed (never NATed). Devices moved into the namespace take its ``default``
    # values: no router advertisements accepted (Neutron's accept_ra=0 on a gateway with an
    # IPv6 gateway IP) and no DAD, so link-local addresses (radvd sends from them) and the
    # addresses floatip adds (nodad, IPAM made them unique) are usable at once.
    ("net.ipv6.conf.all.forwarding", "1"),
    ("net.ipv6.conf.default.accept_ra", "0"),
    ("net.ipv6.conf.default.accept_dad", "0"),
)


@dataclass(frozen=True)
class AgentConfig:
    integration_bridge: str = "br-int"
    bridge_mappings: dict[str, str] = field(default_factory=lambda: {"physnet1": "br-ex"})
    nat_driver: str = "nftables"  # flat cost per FIP; see docs/design.md "NAT drivers"
    instance: str | None = None   # the server's instance id: marks what it makes, prunes only that


def namespace_name(router_id: str) -> str:
    return NS_PREFIX + router_id


def device_name(prefix: str, port_id: str) -> str:
    return (prefix + port_id)[:DEV_LEN]


@dataclass(frozen=True)
class Device:
    name: str
    role: str               # "qr" (router interface) or "qg" (gateway)
    port_id: str
    bridge: str
    tag: int | None
    mac: str
    mtu: int
    addresses: frozenset[str]  # "ip/prefix" (IPv4 and IPv6), floating IPs excluded


@dataclass(frozen=True)
class NatSpec:
    """Everything the NAT drivers need; both render the same meaning from it."""
    gateway_device: str | None
    gateway_ip: str | None
    snat_cidrs: tuple[str, ...]           # tenant subnets SNATed to gateway_ip
    fips: tuple[tuple[str, str], ...]     # (floating ip, fixed ip), sorted
    # port forwardings: (floating ip, protocol, external first, last port, fixed ip,
    # internal first, last port, forwarding id), sorted
    forwards: tuple[tuple[str, str, int, int, str, int, int, str], ...] = ()


Forward = tuple[str, str, int, int]          # (floating ip, protocol, first, last port)


def forward_of(address: str, pf) -> tuple:
    """The ``NatSpec.forwards`` entry of one port forwarding of floating IP ``address``."""
    return (address, pf.protocol, pf.external_port_start, pf.external_port_end,
            pf.internal_ip_address, pf.internal_port_start, pf.internal_port_end, pf.id)


def forwards_of(fip) -> list[tuple]:
    """``NatSpec.forwards`` entries of a floating IP's port forwardings."""
    return [forward_of(fip.floating_ip_address, pf) for pf in fip.port_forwardings]


def forward_key(f: tuple) -> tuple:
    """``NatSpec.forwards``' order: by floating address, then the rest."""
    return (socket.inet_aton(f[0]), *f[1:])


def forward_order(forwards) -> tuple:
    return tuple(sorted(forwards, key=forward_key))


def forward_elements(forwards) -> dict[Forward, tuple[str, int]]:
    """What the kernel maps for ``NatSpec.forwards``: (floating ip, protocol, external
    port range) -> (fixed ip, internal port). A single port, or a range to one port, is one
    element; a range to a range of the same length (Neutron's N-N: port i to port i) is
    an element per port, since a NAT map's value is one port."""
    out: dict[Forward, tuple[str, int]] = {}
    for fip, proto, elo, ehi, fixed, ilo, ihi, _ in forwards:
        if ilo == ihi or elo == ehi:
            out[(fip, proto, elo, ehi)] = (fixed, ilo)
        else:  # as Neutron's mask: the internal port is the offset into the range, wrapped
            for i, port in enumerate(range(elo, ehi + 1)):
                out[(fip, proto, port, port)] = (fixed, ilo + i % (ihi - ilo + 1))
    return out


@dataclass(frozen=True)
class RouterLayout:
    router_id: str
    namespace: str
    devices: tuple[Device, ...]
    default_route: tuple[str, str] | None   # (via, dev)
    nat: NatSpec
    fip_addresses: frozenset[str]           # floating IPs, each a /32 on the gateway device
    sysctls: tuple[tuple[str, str], ...] = ROUTER_SYSCTLS
    extra_routes: frozenset[tuple[str, str]] = frozenset()  # router "routes": (dest, nexthop)
    default_route6: tuple[str, str] | None = None  # (via, dev): the external IPv6 gateway
    radvd: str | None = None   # radvd's configuration, when an interface has an RA mode
    # bandwidth limits on qg- (qos-fip, qos-gateway-ip): (address, direction, max_kbps,
    # max_burst_kbps), sorted; egress: from the address to the outside
    qos: tuple[tuple[str, str, int, int], ...] = ()

    @property
    def gateway_device(self) -> Device | None:
        return next((d for d in self.devices if d.role == "qg"), None)


def router_layouts(state: State, config: AgentConfig) -> dict[str, RouterLayout]:
    """One RouterLayout per router that is administratively up."""
    fips_by_router: dict[str, list[tuple[str, str]]] = {}
    fwd_by_router: dict[str, list[tuple]] = {}
    qos_by_router: dict[str, list[tuple]] = {}
    for fip in state.floatingips.values():
        if fip.qos:
            router = state.router_for_fip(fip) if fip.fixed_ip_address or \
                fip.port_forwardings else None
            if router is not None:
                qos_by_router.setdefault(router.id, []).extend(
                    (fip.floating_ip_address, *limit) for limit in fip.qos)
        if fip.port_forwardings and not fip.port_id:
            router = state.router_for_fip(fip)
            if router is not None:
                fwd_by_router.setdefault(router.id, []).extend(forwards_of(fip))
            continue
        router = state.router_for_fip(fip) if fip.fixed_ip_address else None
        if router is not None:
            fips_by_router.setdefault(router.id, []).append(
                (fip.floating_ip_address, fip.fixed_ip_address))
    out = {}
    for router in state.routers.values():
        if router.admin_state_up:
            lay = _layout(state, config, router.id,
                          _fip_order(fips_by_router.get(router.id, [])),
                          fwd_by_router.get(router.id, ()))
            gw = lay.nat.gateway_ip
            limits = qos_by_router.get(router.id, []) + \
                [(gw, *limit) for limit in router.gateway_qos if gw]
            out[router.id] = replace(lay, qos=_qos_order(
                x for x in limits if x[0] in lay.fip_addresses or x[0] == gw))
    return out


def _qos_order(limits) -> tuple[tuple[str, str, int, int], ...]:
    return tuple(sorted(limits, key=lambda x: (ipaddress.ip_address(x[0]), *x[1:])))


def _fip_order(pairs) -> list[tuple[str, str]]:
    """(floating, fixed) pairs in a layout's order: by floating address."""
    return sorted(pairs, key=lambda p: ipaddress.ip_address(p[0]))


def with_fips(lay: RouterLayout, fips: dict[str, str]) -> RouterLayout:
    """``lay`` with these floating IPs (floating -> fixed) instead of its own."""
    if lay.nat.gateway_device is None:  # no IPv4 gateway: no floating IP is laid out
        return lay
    addresses = frozenset(fips) | {f[0] for f in lay.nat.forwards}
    return replace(lay, nat=replace(lay.nat, fips=tuple(_fip_order(fips.items()))),
                   fip_addresses=addresses,
                   qos=tuple(x for x in lay.qos if x[0] in addresses
                             or x[0] == lay.nat.gateway_ip))


def _prefixed(ip: str, cidr: str) -> str:
    """``ip/prefix`` in canonical text (IPv6 compressed, lower case), as the kernel reports it."""
    return f"{ipaddress.ip_address(ip)}/{ipaddress.ip_network(cidr).prefixlen}"


def _layout(state: State, config: AgentConfig, router_id: str,
            fips: list[tuple[str, str]], forwards=()) -> RouterLayout:
    router = state.routers[router_id]
    devices = []
    snat_cidrs = []
    # One qr- device per port: Neutron shares a port between the IPv6 subnets of a network,
    # which arrive as one Interface per fixed IP with the same port id.
    by_port: dict[str, list] = {}
    for itf in router.interfaces:
        by_port.setdefault(itf.port_id, []).append(itf)
    ra_ports = []
    for port_id, itfs in by_port.items():
        subnets = [state.subnets[itf.subnet_id] for itf in itfs]
        net = state.networks[subnets[0].network_id]
        tag = net.local_vlan if net.local_vlan is not None else net.segmentation_id
        if tag is None:
            raise NeutronError(f"Network {net.name or net.id} has no local VLAN on "
                               f"{config.integration_bridge}")
        name = device_name("qr-", port_id)
        devices.append(Device(name, "qr", port_id, config.integration_bridge, tag,
                              itfs[0].mac_address, net.mtu,
                              frozenset(_prefixed(itf.ip_address, sub.cidr)
                                        for itf, sub in zip(itfs, subnets))))
        snat_cidrs += [str(ipaddress.ip_network(sub.cidr)) for sub in subnets
                       if sub.ip_version == 4]
        v6 = [sub for sub in subnets if sub.ip_version == 6 and sub.ipv6_ra_mode]
        if v6:
            ra_ports.append((name, net.mtu, sorted(v6, key=lambda s: s.cidr)))
    gw = router.gateway
    default_route = default_route6 = None
    gw_dev = None
    if gw is not None:
        net = state.networks[gw.network_id]
        bridge = config.bridge_mappings.get(net.physical_network or "")
        if bridge is None:
            raise NeutronError(f"No bridge mapped for physical network {net.physical_network} "
                               f"(bridge mappings: {config.bridge_mappings})")
        gw_dev = device_name("qg-", gw.port_id)
        fixed = ([(gw.subnet_id, gw.ip_address)] if gw.ip_address else []) + list(gw.extra_ips)
        devices.append(Device(gw_dev, "qg", gw.port_id, bridge,
                              net.segmentation_id if net.network_type == "vlan" else None,
                              gw.mac_address, net.mtu,
                              frozenset(_prefixed(ip, state.subnets[sid].cidr)
                                        for sid, ip in fixed)))
        for sid, _ in fixed:
            subnet = state.subnets[sid]
            if not subnet.gateway_ip:
                continue
            if subnet.ip_version == 4 and default_route is None:
                default_route = (subnet.gateway_ip, gw_dev)
            elif subnet.ip_version == 6 and default_route6 is None:
                default_route6 = (str(ipaddress.ip_address(subnet.gateway_ip)), gw_dev)
    # the NAT drivers see the gateway's IPv4 address only (a gateway on an IPv6-only
    # external network routes IPv6 and NATs nothing)
    v4_gw = gw is not None and bool(gw.ip_address) and ":" not in gw.ip_address
    nat = NatSpec(
        gateway_device=gw_dev if v4_gw else None,
        gateway_ip=gw.ip_address if v4_gw else None,
        snat_cidrs=tuple(sorted(snat_cidrs)) if v4_gw and gw.enable_snat else (),
        fips=tuple(fips) if v4_gw else (),
        forwards=forward_order(forwards) if v4_gw else ())
    # an extra route over a connected subnet (the API refuses them; older rows may hold
    # one) would replace the kernel's connected route: it is left out
    connected = {str(ipaddress.ip_interface(a).network) for d in devices for a in d.addresses}
    extra = {(str(ipaddress.ip_network(dest, strict=False)), str(ipaddress.ip_address(hop)))
             for dest, hop in router.routes}
    return RouterLayout(router_id=router_id, namespace=namespace_name(router_id),
                        devices=tuple(devices), default_route=default_route, nat=nat,
                        # a floating IP of forwardings is on qg- too (Neutron's /32)
                        fip_addresses=frozenset(f for f, _ in nat.fips)
                        | {f[0] for f in nat.forwards},
                        extra_routes=frozenset(r for r in extra if r[0] not in connected),
                        default_route6=default_route6,
                        radvd=radvd_config(sorted(ra_ports, key=lambda p: p[0]))
                        if ra_ports else None)
