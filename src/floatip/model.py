"""Desired state in Neutron's vocabulary: networks, subnets, ports, routers, floating IPs.

Pure data and pure validation; nothing here touches the kernel. The API persists the same
resources; a YAML/JSON file (``floatip apply FILE``) loads into them through ``load``.
"""
from __future__ import annotations

import hashlib
import ipaddress
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

# Stable ids for resources a file names but gives no id: applying the same file twice
# must address the same router, namespace and ports.
_ID_NAMESPACE = uuid.UUID("5f0c1d6e-8a53-4c38-9a4e-6f3d1c2b7a90")


def stable_id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"{kind}:{name}"))


def stable_mac(port_id: str) -> str:
    """Neutron's default base MAC fa:16:3e, the rest derived from the port id."""
    h = hashlib.sha256(port_id.encode()).digest()
    return "fa:16:3e:%02x:%02x:%02x" % (h[0], h[1], h[2])


class NeutronError(Exception):
    """An error with a Neutron exception type name, so the API can return it unchanged."""

    type = "BadRequest"
    code = 400

    def __init__(self, message: str, type: str | None = None, code: int | None = None):
        super().__init__(message)
        self.message = message
        if type:
            self.type = type
        if code:
            self.code = code


class InvalidState(NeutronError):
    """One or more validation errors; ``errors`` holds each of them."""

    def __init__(self, errors: list[NeutronError]):
        self.errors = errors
        first = errors[0]
        super().__init__("; ".join(e.message for e in errors), first.type, first.code)


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


@dataclass(frozen=True)
class Gateway:
    network_id: str
    port_id: str
    subnet_id: str
    ip_address: str
    mac_address: str
    enable_snat: bool = True


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


@dataclass(frozen=True)
class FloatingIP:
    id: str
    floating_ip_address: str
    floating_network_id: str
    port_id: str | None = None
    fixed_ip_address: str | None = None


@dataclass(frozen=True)
class State:
    networks: dict[str, Network] = field(default_factory=dict)
    subnets: dict[str, Subnet] = field(default_factory=dict)
    ports: dict[str, Port] = field(default_factory=dict)
    routers: dict[str, Router] = field(default_factory=dict)
    floatingips: dict[str, FloatingIP] = field(default_factory=dict)

    @cached_property
    def _routers_by_gateway_and_subnet(self) -> dict[tuple[str, str], tuple[int, Router]]:
        """(external network, tenant subnet) -> the first router with that gateway and an
        interface on that subnet: the index behind router_for_fip."""
        index: dict[tuple[str, str], tuple[int, Router]] = {}
        for pos, router in enumerate(self.routers.values()):
            if router.gateway is not None:
                for itf in router.interfaces:
                    index.setdefault((router.gateway.network_id, itf.subnet_id), (pos, router))
        return index

    def router_for_fip(self, fip: FloatingIP) -> Router | None:
        """The router that carries ``fip``: it has an interface on the subnet of the port's
        fixed IP and its gateway on the FIP's external network (Neutron's rule)."""
        port = self.ports.get(fip.port_id) if fip.port_id else None
        if port is None:
            return None
        index = self._routers_by_gateway_and_subnet
        found = [index[k] for k in ((fip.floating_network_id, sid) for sid, ip in port.fixed_ips
                                    if fip.fixed_ip_address in (None, ip)) if k in index]
        return min(found, key=lambda c: c[0])[1] if found else None


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


# ---------------------------------------------------------------------------------------
# Loading a desired-state document (YAML or JSON, already parsed into a dict).
# Resources refer to each other by name or id; ids and router port MACs default to values
# derived from names, so a file is stable across applies.

def _get(d: dict, *keys: str, default: Any = None) -> Any:
    for k in keys:
        if k in d:
            return d[k]
    return default


def load(doc: dict) -> State:
    if not isinstance(doc, dict):
        raise NeutronError("A desired-state document must be a mapping")
    unknown = set(doc) - {"networks", "subnets", "ports", "routers", "floatingips"}
    if unknown:
        raise NeutronError(f"Unknown top-level keys: {', '.join(sorted(unknown))}")
    errors: list[NeutronError] = []
    by_name: dict[str, dict[str, str]] = {k: {} for k in ("network", "subnet", "port", "router")}

    def ident(kind: str, d: dict) -> str:
        if not isinstance(d, dict):
            raise NeutronError(f"Each {kind} must be a mapping, got {d!r}")
        rid = d.get("id") or (stable_id(kind, d["name"]) if d.get("name") else None)
        if rid is None:
            raise NeutronError(f"A {kind} needs a name or an id: {d!r}")
        if d.get("name"):
            by_name.setdefault(kind, {})[d["name"]] = str(rid)
        return str(rid)

    def ref(kind: str, value: str | None) -> str | None:
        if value is None:
            return None
        found = by_name[kind].get(value)
        if found:
            return found
        try:
            return str(uuid.UUID(value))
        except (ValueError, AttributeError):
            errors.append(NeutronError(f"{kind.capitalize()} {value} could not be found",
                                       f"{kind.capitalize()}NotFound", 404))
            return None

    networks: dict[str, Network] = {}
    for d in doc.get("networks") or []:
        nid = ident("network", d)
        ntype = _get(d, "provider:network_type", "network_type",
                     default="flat" if _get(d, "router:external", "external") else "local")
        seg = _get(d, "provider:segmentation_id", "segmentation_id")
        networks[nid] = Network(
            id=nid, name=d.get("name", ""),
            external=bool(_get(d, "router:external", "external", default=False)),
            network_type=ntype,
            physical_network=_get(d, "provider:physical_network", "physical_network",
                                  default="physnet1" if _get(d, "router:external", "external")
                                  else None),
            segmentation_id=seg,
            local_vlan=_get(d, "local_vlan", default=seg if ntype == "vlan" else None),
            mtu=int(d.get("mtu", 1500)))
    subnets: dict[str, Subnet] = {}
    for d in doc.get("subnets") or []:
        sid = ident("subnet", d)
        pools = tuple((p["start"], p["end"]) for p in d.get("allocation_pools") or [])
        try:
            ipaddress.ip_network(str(d.get("cidr", "")))
        except ValueError:
            errors.append(NeutronError(f"Invalid CIDR {d.get('cidr')!r} for subnet {d.get('name', sid)}"))
        subnets[sid] = Subnet(id=sid, name=d.get("name", ""),
                              network_id=ref("network", _get(d, "network", "network_id")) or "",
                              cidr=str(d.get("cidr", "")), gateway_ip=d.get("gateway_ip"),
                              allocation_pools=pools)
    ports: dict[str, Port] = {}
    for d in doc.get("ports") or []:
        pid = ident("port", d)
        net_id = ref("network", _get(d, "network", "network_id")) or ""
        fixed: list[tuple[str, str]] = []
        for f in d.get("fixed_ips") or ([{"ip_address": d["fixed_ip"]}] if "fixed_ip" in d else []):
            ip = f.get("ip_address")
            sid = ref("subnet", _get(f, "subnet", "subnet_id")) if _get(f, "subnet", "subnet_id") \
                else _subnet_of(subnets, net_id, ip)
            if sid is None:
                errors.append(NeutronError(f"No subnet of the port's network holds {ip} "
                                           f"(port {d.get('name', pid)})", "InvalidIpForNetwork"))
                continue
            fixed.append((sid, ip))
        ports[pid] = Port(id=pid, name=d.get("name", ""), network_id=net_id,
                          fixed_ips=tuple(fixed), mac_address=d.get("mac_address") or stable_mac(pid),
                          device_owner=d.get("device_owner", "compute:nova"),
                          device_id=d.get("device_id", ""))
    routers: dict[str, Router] = {}
    for d in doc.get("routers") or []:
        rid = ident("router", d)
        gw = None
        g = _get(d, "external_gateway_info", "external_gateway")
        if g:
            net_id = ref("network", _get(g, "network", "network_id")) or ""
            fixed = (g.get("external_fixed_ips") or [{}])[0]
            ip = _get(g, "ip_address", default=fixed.get("ip_address"))
            sid = ref("subnet", fixed.get("subnet_id")) if fixed.get("subnet_id") \
                else _subnet_of(subnets, net_id, ip)
            gw_port = g.get("port_id") or stable_id("gateway-port", rid)
            gw = Gateway(network_id=net_id, port_id=gw_port, subnet_id=sid or "", ip_address=ip or "",
                         mac_address=g.get("mac_address") or stable_mac(gw_port),
                         enable_snat=bool(g.get("enable_snat", True)))
        itfs = []
        for i in d.get("interfaces") or []:
            i = {"subnet": i} if isinstance(i, str) else i
            sid = ref("subnet", _get(i, "subnet", "subnet_id"))
            if sid is None:
                continue
            sub = subnets.get(sid)
            ip = i.get("ip_address") or (sub.gateway_ip if sub else None)
            port_id = i.get("port_id") or stable_id("interface-port", f"{rid}:{sid}")
            itfs.append(Interface(port_id=port_id, subnet_id=sid, ip_address=ip or "",
                                  mac_address=i.get("mac_address") or stable_mac(port_id)))
        routes = tuple((str(rt.get("destination")), str(rt.get("nexthop")))
                       for rt in d.get("routes") or [] if isinstance(rt, dict))
        routers[rid] = Router(id=rid, name=d.get("name", ""), gateway=gw, interfaces=tuple(itfs),
                              admin_state_up=bool(d.get("admin_state_up", True)),
                              routes=routes)
    fips: dict[str, FloatingIP] = {}
    for d in doc.get("floatingips") or []:
        addr = _get(d, "floating_ip_address", "address")
        fid = d.get("id") or stable_id("floatingip", str(addr))
        port_id = ref("port", _get(d, "port", "port_id"))
        net_id = ref("network", _get(d, "floating_network", "floating_network_id"))
        if net_id is None:  # default: the external network whose subnet holds the address
            net_id = next((s.network_id for s in subnets.values()
                           if networks.get(s.network_id, Network("")).external
                           and _contains(s.cidr, addr)), None)
        if net_id is None:
            errors.append(NeutronError(f"No external network holds floating IP {addr}",
                                       "ExternalGatewayForFloatingIPNotFound", 404))
            continue
        fixed_ip = d.get("fixed_ip_address")
        if port_id and fixed_ip is None and port_id in ports and ports[port_id].fixed_ips:
            fixed_ip = ports[port_id].fixed_ips[0][1]
        fips[fid] = FloatingIP(id=fid, floating_ip_address=str(addr), floating_network_id=net_id,
                               port_id=port_id, fixed_ip_address=fixed_ip)
    if errors:
        raise InvalidState(errors)
    state = State(networks, subnets, ports, routers, fips)
    validate(state)
    return state


def _contains(cidr: str, ip: str | None) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)
    except (ValueError, TypeError):
        return False


def _subnet_of(subnets: dict[str, Subnet], network_id: str, ip: str | None) -> str | None:
    return next((s.id for s in subnets.values()
                 if s.network_id == network_id and _contains(s.cidr, ip)), None)
