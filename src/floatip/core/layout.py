"""Desired state -> the kernel layout Neutron's legacy L3 agent would build, per router.

Pure: the same input always gives the same layout, and nothing here needs root.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .errors import NeutronError
from .model import State

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
)


@dataclass(frozen=True)
class AgentConfig:
    integration_bridge: str = "br-int"
    bridge_mappings: dict[str, str] = field(default_factory=lambda: {"physnet1": "br-ex"})
    nat_driver: str = "nftables"  # flat cost per FIP; see README "NAT drivers"

    @staticmethod
    def parse_mappings(items: list[str]) -> dict[str, str]:
        out = {}
        for item in items:
            physnet, sep, bridge = item.partition(":")
            if not sep or not physnet or not bridge:
                raise NeutronError(f"Bridge mapping {item!r} is not PHYSNET:BRIDGE")
            out[physnet] = check_ifname(bridge)
        return out


def check_ifname(name: str) -> str:
    """Interface and bridge names go to the kernel and OVS: keep them short and plain."""
    if not (1 <= len(name) <= 15) or not all(c.isalnum() or c in "-_." for c in name) \
            or name in (".", ".."):
        raise NeutronError(f"Invalid interface name {name!r}: 1-15 characters of [A-Za-z0-9-_.]")
    return name


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
    addresses: frozenset[str]  # "ip/prefix", floating IPs excluded


@dataclass(frozen=True)
class NatSpec:
    """Everything the NAT drivers need; both render the same meaning from it."""
    gateway_device: str | None
    gateway_ip: str | None
    snat_cidrs: tuple[str, ...]           # tenant subnets SNATed to gateway_ip
    fips: tuple[tuple[str, str], ...]     # (floating ip, fixed ip), sorted


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

    @property
    def gateway_device(self) -> Device | None:
        return next((d for d in self.devices if d.role == "qg"), None)


def router_layouts(state: State, config: AgentConfig) -> dict[str, RouterLayout]:
    """One RouterLayout per router that is administratively up."""
    fips_by_router: dict[str, list[tuple[str, str]]] = {}
    for fip in state.floatingips.values():
        router = state.router_for_fip(fip) if fip.fixed_ip_address else None
        if router is not None:
            fips_by_router.setdefault(router.id, []).append(
                (fip.floating_ip_address, fip.fixed_ip_address))
    out = {}
    for router in state.routers.values():
        if router.admin_state_up:
            out[router.id] = _layout(state, config, router.id,
                                     sorted(fips_by_router.get(router.id, []),
                                            key=lambda p: ipaddress.ip_address(p[0])))
    return out


def _prefixed(ip: str, cidr: str) -> str:
    return f"{ip}/{ipaddress.ip_network(cidr).prefixlen}"


def _layout(state: State, config: AgentConfig, router_id: str,
            fips: list[tuple[str, str]]) -> RouterLayout:
    router = state.routers[router_id]
    devices = []
    snat_cidrs = []
    for itf in router.interfaces:
        subnet = state.subnets[itf.subnet_id]
        net = state.networks[subnet.network_id]
        tag = net.local_vlan if net.local_vlan is not None else net.segmentation_id
        if tag is None:
            raise NeutronError(f"Network {net.name or net.id} has no local VLAN on "
                               f"{config.integration_bridge}")
        devices.append(Device(device_name("qr-", itf.port_id), "qr", itf.port_id,
                              config.integration_bridge, tag, itf.mac_address, net.mtu,
                              frozenset({_prefixed(itf.ip_address, subnet.cidr)})))
        snat_cidrs.append(str(ipaddress.ip_network(subnet.cidr)))
    gw = router.gateway
    default_route = None
    gw_dev = None
    if gw is not None:
        subnet = state.subnets[gw.subnet_id]
        net = state.networks[gw.network_id]
        bridge = config.bridge_mappings.get(net.physical_network or "")
        if bridge is None:
            raise NeutronError(f"No bridge mapped for physical network {net.physical_network} "
                               f"(bridge mappings: {config.bridge_mappings})")
        gw_dev = device_name("qg-", gw.port_id)
        devices.append(Device(gw_dev, "qg", gw.port_id, bridge,
                              net.segmentation_id if net.network_type == "vlan" else None,
                              gw.mac_address, net.mtu,
                              frozenset({_prefixed(gw.ip_address, subnet.cidr)})))
        if subnet.gateway_ip:
            default_route = (subnet.gateway_ip, gw_dev)
    nat = NatSpec(
        gateway_device=gw_dev,
        gateway_ip=gw.ip_address if gw else None,
        snat_cidrs=tuple(sorted(snat_cidrs)) if gw and gw.enable_snat else (),
        fips=tuple(fips) if gw else ())
    return RouterLayout(router_id=router_id, namespace=namespace_name(router_id),
                        devices=tuple(devices), default_route=default_route, nat=nat,
                        fip_addresses=frozenset(f for f, _ in nat.fips),
                        extra_routes=frozenset((str(ipaddress.ip_network(dest, strict=False)), hop)
                                               for dest, hop in router.routes))
