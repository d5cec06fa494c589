"""Desired state in Neutron's vocabulary: networks, subnets, ports, routers, floating IPs,
security groups and address groups.

Pure data; nothing here touches the kernel (validation: ``validate``). The API persists the same
resources; a YAML/JSON file (``floatip apply FILE``) loads into them through ``load``.
"""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field
from functools import cached_property

# Stable ids for resources a file names but gives no id: applying the same file twice
# must address the same router, namespace and ports.
_ID_NAMESPACE = uuid.UUID("5f0c1d6e-8a53-4c38-9a4e-6f3d1c2b7a90")


def stable_id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"{kind}:{name}"))


def stable_mac(port_id: str) -> str:
    """Neutron's default base MAC fa:16:3e, the rest derived from the port id."""
    h = hashlib.sha256(port_id.encode()).digest()
    return "fa:16:3e:%02x:%02x:%02x" % (h[0], h[1], h[2])


@dataclass(frozen=True)
class Network:
    id: str
    name: str = ""
    external: bool = False
    network_type: str = "local"          # flat | vlan | local
    physical_network: str | None = None  # external/flat networks: mapped to a bridge by agent config
    segmentation_id: int | None = None   # vlan: the VLAN id
    local_vlan: int | None = None        # tenant networks: the tag on the integration bridge
    mtu: int = 1500


@dataclass(frozen=True)
class Subnet:
    id: str
    network_id: str
    cidr: str
    gateway_ip: str | None = None
    allocation_pools: tuple[tuple[str, str], ...] = ()
    name: str = ""
    enable_dhcp: bool = False            # the API's default is True; files opt in
    dns_nameservers: tuple[str, ...] = ()
    host_routes: tuple[tuple[str, str], ...] = ()  # (destination CIDR, nexthop)
    ip_version: int = 4
    ipv6_ra_mode: str | None = None       # IPv6: slaac | dhcpv6-stateful | dhcpv6-stateless
    ipv6_address_mode: str | None = None  # IPv6: the same values


@dataclass(frozen=True)
class Port:
    id: str
    network_id: str
    fixed_ips: tuple[tuple[str, str], ...]  # (subnet_id, ip address)
    mac_address: str = ""
    name: str = ""
    device_owner: str = ""
    device_id: str = ""
    project_id: str = ""
    # floatip's metadata extension: what the port's VM reads from 169.254.169.254
    user_data: str | None = None
    public_keys: tuple[tuple[str, str], ...] = ()  # (key name, OpenSSH public key)
    admin_state_up: bool = True  # the agents' JSON is positional: new fields go last; down = dead VLAN
    # port security (issue 22). ``port_security_enabled`` means "filter this port": False for
    # trusted ports (device_owner network:*) whatever the API shows, and for ports of files
    # that do not ask for it. With it on and no groups, the port gets no ingress at all.
    security_groups: tuple[str, ...] = ()       # SecurityGroup ids, sorted
    port_security_enabled: bool = False
    # (IP address or CIDR, MAC) the port may also send from; the MAC is the port's when the
    # API was given none (as Neutron fills it)
    allowed_address_pairs: tuple[tuple[str, str], ...] = ()
    # extra_dhcp_opt: (opt_name, opt_value, ip_version) the DHCP server adds for this port
    extra_dhcp_opts: tuple[tuple[str, str, int], ...] = ()
    dns_name: str = ""                   # dns-integration: its hostname ('' : host-<ip>)


@dataclass(frozen=True)
class Gateway:
    network_id: str
    port_id: str
    subnet_id: str
    ip_address: str
    mac_address: str
    enable_snat: bool = True
    # subnet_id/ip_address are the IPv4 address when the port has one (FIPs and SNAT use it);
    # the port's other fixed IPs (IPv6, routed) are here as (subnet_id, ip address)
    extra_ips: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Interface:
    port_id: str
    subnet_id: str
    ip_address: str
    mac_address: str


@dataclass(frozen=True)
class Router:
    id: str
    name: str = ""
    gateway: Gateway | None = None
    interfaces: tuple[Interface, ...] = ()
    admin_state_up: bool = True
    routes: tuple[tuple[str, str], ...] = ()  # extra routes: (destination CIDR, nexthop)
    # qos-gateway-ip: the gateway address's bandwidth limits, as FloatingIP.qos
    gateway_qos: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class PortForwarding:
    """floating IP ``protocol`` ports external_port_start..end -> internal_ip_address
    ports internal_port_start..end (a single port: start == end; N ports to one: the
    internal range is one port)."""
    id: str
    protocol: str                         # tcp | udp
    external_port_start: int
    external_port_end: int
    internal_ip_address: str
    internal_port_start: int
    internal_port_end: int
    internal_port_id: str = ""
    floatingip_id: str = ""  # its floating IP: a delta carries a forwarding on its own


@dataclass(frozen=True)
class FloatingIP:
    id: str
    floating_ip_address: str
    floating_network_id: str
    port_id: str | None = None
    fixed_ip_address: str | None = None
    router_id: str | None = None  # the router the API chose (None: chosen here, as Neutron)
    # Neutron's floating-ip-port-forwarding: a floating IP with forwardings has no port; it
    # lives on ``router_id``, which the API set when the first forwarding was made
    port_forwardings: tuple[PortForwarding, ...] = ()
    # qos-fip: (direction, max_kbps, max_burst_kbps) of its policy's bandwidth limit
    # rules, sorted; egress: from the floating IP to the outside
    qos: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class SecurityGroupRule:
    """One rule, normalised for a firewall (the API keeps what the user wrote)."""
    id: str
    direction: str                        # ingress | egress
    ethertype: str = "IPv4"               # IPv4 | IPv6
    protocol: int | None = None           # IP protocol number, None = any. Names resolved;
    #                                       "icmp" on IPv6 is 58, as Neutron's drivers read it
    port_range_min: int | None = None     # TCP/UDP/SCTP/DCCP/UDP-Lite ports; ICMP: the type
    port_range_max: int | None = None     # ICMP: the code
    remote_ip_prefix: str | None = None   # a CIDR, host bits cleared; at most one remote_*
    remote_group_id: str | None = None    # members: the ports in that group (fixed IPs and
    #                                       allowed pairs of the rule's ethertype)
    remote_address_group_id: str | None = None  # an AddressGroup id


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    project_id: str = ""
    stateful: bool = True                 # False: no conntrack, rules must allow both ways
    rules: tuple[SecurityGroupRule, ...] = ()  # sorted by id


@dataclass(frozen=True)
class AddressGroup:
    id: str
    project_id: str = ""
    addresses: tuple[str, ...] = ()       # CIDRs, host bits cleared, sorted


@dataclass(frozen=True)
class State:
    networks: dict[str, Network] = field(default_factory=dict)
    subnets: dict[str, Subnet] = field(default_factory=dict)
    ports: dict[str, Port] = field(default_factory=dict)
    routers: dict[str, Router] = field(default_factory=dict)
    floatingips: dict[str, FloatingIP] = field(default_factory=dict)
    security_groups: dict[str, SecurityGroup] = field(default_factory=dict)
    address_groups: dict[str, AddressGroup] = field(default_factory=dict)

    @cached_property
    def _routers_by_gateway_and_subnet(self) -> dict[tuple[str, str], dict[str, tuple]]:
        """(external network, tenant subnet) -> {router id: (rank, router)} of the routers
        with that gateway and an interface on that subnet; the lowest rank is Neutron's
        choice (get_router_for_floatingip): the one whose interface is the subnet's gateway
        address, then the first. The index behind router_for_fip and fip_routers."""
        index: dict[tuple[str, str], dict[str, tuple]] = {}
        for pos, router in enumerate(self.routers.values()):
            if router.gateway is None:
                continue
            for itf in router.interfaces:
                sn = self.subnets.get(itf.subnet_id)
                holds_gw = sn is not None and sn.gateway_ip == itf.ip_address
                rank = (not holds_gw, pos)
                there = index.setdefault((router.gateway.network_id, itf.subnet_id), {})
                if router.id not in there or rank < there[router.id][0]:
                    there[router.id] = (rank, router)
        return index

    def router_for_fip(self, fip: FloatingIP) -> Router | None:
        """The router that carries ``fip``: one with an interface on the subnet of the
        port's fixed IP and its gateway on the FIP's external network. The router the API
        named (``fip.router_id``) when it did, so that the kernel carries a floating IP
        where the API says it is; else Neutron's choice."""
        if fip.port_forwardings and not fip.port_id:
            r = self.routers.get(fip.router_id or "")
            gw_net = r.gateway.network_id if r is not None and r.gateway else None
            return r if gw_net == fip.floating_network_id else None
        port = self.ports.get(fip.port_id) if fip.port_id else None
        if port is None:
            return None
        index = self._routers_by_gateway_and_subnet
        found = [c for sid, ip in port.fixed_ips if fip.fixed_ip_address in (None, ip)
                 for c in index.get((fip.floating_network_id, sid), {}).items()]
        if fip.router_id is not None:
            return next((r for rid, (_, r) in found if rid == fip.router_id), None)
        return min((c for _, c in found), key=lambda c: c[0])[1] if found else None


def fip_routers(state: State) -> dict[str, str]:
    """floating IP id -> id of the router that carries it (``State.router_for_fip``), for
    all of them at once (the kernel agent and the OVN backend alike)."""
    out = {}
    for fid, f in state.floatingips.items():
        r = state.router_for_fip(f)
        if r is not None:
            out[fid] = r.id
    return out


# ---------------------------------------------------------------------------------------
# JSON for a remote agent (``/floatip/v1/state``)

def state_to_json(state: State) -> dict:
    return {k: {i: asdict(v) for i, v in getattr(state, k).items()}
            for k in _FROM_JSON}


def _tup(x):
    return tuple(tuple(i) if isinstance(i, list) else i for i in x)


_FROM_JSON = {
    "networks": lambda v: Network(**v),
    "subnets": lambda v: Subnet(**{**v, "allocation_pools": _tup(v["allocation_pools"]),
                                   "dns_nameservers": _tup(v.get("dns_nameservers", ())),
                                   "host_routes": _tup(v.get("host_routes", ()))}),
    "ports": lambda v: Port(**{**v, "fixed_ips": _tup(v["fixed_ips"]),
                               "public_keys": _tup(v.get("public_keys", ())),
                               "security_groups": tuple(v.get("security_groups", ())),
                               "allowed_address_pairs": _tup(v.get("allowed_address_pairs", ())),
                               "extra_dhcp_opts": _tup(v.get("extra_dhcp_opts", ()))}),
    "routers": lambda v: Router(**{**v, "gateway": Gateway(**{**v["gateway"], "extra_ips": _tup(
                                       v["gateway"].get("extra_ips", ()))}) if v["gateway"]
                                   else None,
                                   "interfaces": tuple(Interface(**x) for x in v["interfaces"]),
                                   "routes": _tup(v.get("routes", ())),
                                   "gateway_qos": _tup(v.get("gateway_qos", ()))}),
    "floatingips": lambda v: FloatingIP(**{**v, "port_forwardings": tuple(
        PortForwarding(**x) for x in v.get("port_forwardings", ())),
                                           "qos": _tup(v.get("qos", ()))}),
    "security_groups": lambda v: SecurityGroup(**{**v, "rules": tuple(
        SecurityGroupRule(**r) for r in v.get("rules", ()))}),
    "address_groups": lambda v: AddressGroup(**{**v, "addresses": tuple(v.get("addresses", ()))}),
}


def state_from_json(doc: dict) -> State:
    # kinds an older server does not send are empty
    return State(**{k: {i: _FROM_JSON[k](v) for i, v in doc.get(k, {}).items()}
                    for k in _FROM_JSON})


def objects_to_json(objs: dict) -> dict:
    """{kind: {id: model object}} (a delta's upserts) as JSON."""
    return {k: {i: asdict(v) for i, v in d.items()} for k, d in objs.items()}


# a delta also carries port forwardings on their own (each names its floating IP)
_OBJECTS = {**_FROM_JSON, "port_forwardings": lambda v: PortForwarding(**v)}


def objects_from_json(doc: dict) -> dict:
    return {k: {i: _OBJECTS[k](v) for i, v in d.items()} for k, d in doc.items()}
