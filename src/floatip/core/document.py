"""Loading a desired-state document (``floatip apply FILE``: YAML or JSON, parsed to a dict)."""
from __future__ import annotations

import ipaddress
import uuid
from dataclasses import replace
from typing import Any

from .errors import InvalidState, NeutronError
from .model import (FloatingIP, Gateway, Interface, Network, Port, PortForwarding, Router,
                    State, Subnet, stable_id, stable_mac)
from .validate import validate

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
    state = parse(doc)
    validate(state)
    return state


def parse(doc: dict) -> State:
    """``doc`` as a State, unchecked but for what reading it needs (references, CIDRs):
    ``apply`` through the API validates it beside the API's objects."""
    if not isinstance(doc, dict):
        raise NeutronError("A desired-state document must be a mapping")
    # security groups are the API's (``apply`` through it); the local apply programs routers
    # only, without a firewall, so it reads past them
    unknown = set(doc) - {"networks", "subnets", "ports", "routers", "floatingips",
                          "security_groups"}
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
        try:
            version = int(d.get("ip_version") or ipaddress.ip_network(str(d.get("cidr"))).version)
        except ValueError:
            version = 4
        subnets[sid] = Subnet(id=sid, name=d.get("name", ""),
                              network_id=ref("network", _get(d, "network", "network_id")) or "",
                              cidr=str(d.get("cidr", "")), gateway_ip=d.get("gateway_ip"),
                              allocation_pools=pools, ip_version=version,
                              enable_dhcp=bool(d.get("enable_dhcp", False)),
                              dns_nameservers=tuple(d.get("dns_nameservers") or ()),
                              ipv6_ra_mode=d.get("ipv6_ra_mode"),
                              ipv6_address_mode=d.get("ipv6_address_mode"))
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
            # the IPv4 address first (FIPs and SNAT use it), other fixed IPs are routed
            gw_ips = []
            for fixed in (g.get("external_fixed_ips") or [{}]):
                ip = _get(g, "ip_address", default=fixed.get("ip_address")) if not gw_ips \
                    else fixed.get("ip_address")
                sub = _get(fixed, "subnet", "subnet_id")
                sid = ref("subnet", sub) if sub else _subnet_of(subnets, net_id, ip)
                gw_ips.append((sid or "", ip or ""))
            gw_ips.sort(key=lambda f: ":" in f[1])
            gw_port = g.get("port_id") or stable_id("gateway-port", rid)
            gw = Gateway(network_id=net_id, port_id=gw_port, subnet_id=gw_ips[0][0],
                         ip_address=gw_ips[0][1],
                         mac_address=g.get("mac_address") or stable_mac(gw_port),
                         enable_snat=bool(g.get("enable_snat", True)),
                         extra_ips=tuple(gw_ips[1:]))
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
        if port_id and fixed_ip is None and port_id in ports:
            fixed_ip = next((ip for _, ip in ports[port_id].fixed_ips if ":" not in ip), None)
        pfs = tuple(_forwarding(f"{fid}:{i}", x, ports, ref, errors)
                    for i, x in enumerate(d.get("port_forwardings") or []))
        fips[fid] = FloatingIP(id=fid, floating_ip_address=str(addr), floating_network_id=net_id,
                               port_id=port_id, fixed_ip_address=fixed_ip,
                               router_id=ref("router", d.get("router")),
                               port_forwardings=tuple(p for p in pfs if p is not None))
    if errors:
        raise InvalidState(errors)
    state = State(networks, subnets, ports, routers, fips)
    for fid, f in fips.items():  # forwardings: the router reaching their first port
        if f.port_forwardings and not f.port_id and f.router_id is None:
            port = ports[f.port_forwardings[0].internal_port_id]
            rid = state.router_for_fip(FloatingIP(
                f.id, f.floating_ip_address, f.floating_network_id, port.id,
                f.port_forwardings[0].internal_ip_address))
            state.floatingips[fid] = replace(f, router_id=rid and rid.id)
    return state


def _forwarding(pid: str, d: Any, ports: dict, ref, errors: list) -> PortForwarding | None:
    """A floating IP's port forwarding in a file: ``protocol``, ``internal_port_name`` (or
    ``internal_port_id``), ``internal_ip_address`` (default: the port's first IPv4 address),
    and the port numbers as the API has them: ``internal_port``/``external_port`` or
    ``internal_port_range``/``external_port_range`` "N:M"."""
    if not isinstance(d, dict):
        errors.append(NeutronError(f"A port forwarding must be a mapping, got {d!r}"))
        return None
    port_id = ref("port", _get(d, "internal_port_name", "internal_port_id"))
    port = ports.get(port_id or "")
    if port is None:
        errors.append(NeutronError(f"Port forwarding {d!r}: internal port not found",
                                   "PortNotFound", 404))
        return None
    ip = d.get("internal_ip_address") or next(
        (ip for _, ip in port.fixed_ips if ":" not in ip), "")

    def ports_of(side: str) -> tuple[int, int]:
        text = str(_get(d, f"{side}_port_range", f"{side}_port", default=""))
        lo, _, hi = text.partition(":")
        return int(lo), int(hi or lo)
    try:
        (elo, ehi), (ilo, ihi) = ports_of("external"), ports_of("internal")
    except ValueError:
        errors.append(NeutronError(f"Port forwarding {d!r}: bad ports", "BadRequest"))
        return None
    proto = str(d.get("protocol", "tcp")).lower()
    if proto not in ("tcp", "udp") or not (1 <= elo <= ehi <= 65535 and 1 <= ilo <= ihi <= 65535):
        errors.append(NeutronError(f"Port forwarding {d!r}: bad protocol or ports",
                                   "BadRequest"))
        return None
    return PortForwarding(id=d.get("id") or stable_id("port_forwarding", pid), protocol=proto,
                          external_port_start=elo, external_port_end=ehi,
                          internal_ip_address=ip, internal_port_start=ilo,
                          internal_port_end=ihi, internal_port_id=port.id)


def _contains(cidr: str, ip: str | None) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)
    except (ValueError, TypeError):
        return False


def _subnet_of(subnets: dict[str, Subnet], network_id: str, ip: str | None) -> str | None:
    return next((s.id for s in subnets.values()
                 if s.network_id == network_id and _contains(s.cidr, ip)), None)
