"""Routers: external gateway, interfaces, extra routes."""
from __future__ import annotations

import ipaddress
from sqlalchemy.orm import Session

from .. import store as S
from .common import (OWNER_GW, OWNER_RI, _ignored_ok, _must, bad, check_requested, err,
                     is_auto_address, new_id, not_found)
from .ipam import _allocate, _new_port
from .ports import check_device_id
from .views import router_dict


def _gateway(s: Session, r: S.Router, info: dict | None) -> None:
    """Set, change or clear the external gateway of ``r``."""
    # qos-gateway-ip: the gateway's policy (seen by the caller: Access), gone with it
    r.qos_policy_id = info.get("qos_policy_id", r.qos_policy_id) if info else None
    if info is not None and not info.get("network_id"):
        if r.gw_port_id and ("enable_snat" in info or "qos_policy_id" in info):
            r.enable_snat = info.get("enable_snat", r.enable_snat)
            return
        raise bad("Invalid input for external_gateway_info. Reason: network_id is required.")
    current = S.get(s, S.Port, r.gw_port_id) if r.gw_port_id else None
    if info is not None:
        nid = info["network_id"]
        net = _must(s, "network", nid)
        if not net.external:
            raise bad(f"Bad router request: Network {nid} is not an external network.")
        r.enable_snat = info.get("enable_snat", True)
        fixed = info.get("external_fixed_ips") or []
        check_requested(s, net, fixed, OWNER_GW)
        if current is not None and current.network_id == nid:
            want = {(f.get("subnet_id"), f.get("ip_address")) for f in fixed}
            have = {(a.subnet_id, a.ip_address) for a in current.fixed_ips}
            if not fixed or all(any(w[1] in (None, h[1]) and w[0] in (None, h[0]) for h in have)
                                for w in want):
                return  # same network and addresses: only enable_snat may change
    if info is not None:
        _check_no_overlap(s, r, S.subnets_of(s, nid), gateway=True)
    if current is not None:
        if S.fips_where(s, router_id=r.id):
            raise err("RouterExternalGatewayInUseByFloatingIp", 409,
                      f"Gateway cannot be updated for router {r.id}, since a gateway to external "
                      f"network {current.network_id} is required by one or more floating IPs.")
        r.gw_port_id = None
        s.flush()
        S.delete(s, current)
    if info is not None:
        port = _new_port(s, net, owner=OWNER_GW, device_id=r.id, requests=fixed,
                         in_use_error="IpAddressInUse", status="ACTIVE")
        S.add(s, S.RouterPort(router_id=r.id, port_id=port.id, port_type=OWNER_GW))
        r.gw_port_id = port.id


def _check_routes(s: Session, r: S.Router, routes: list[dict]) -> list:
    """Routes arrive well-formed (``api.schemas``); here: the next hop of the destination's
    IP version, not the default route, on a subnet the router is connected to and not one of
    the router's own addresses (Neutron's _validate_routes_nexthop)."""
    out = []
    cidrs, own = _connected(s, r)
    for rt in routes:
        dest, hop = rt["destination"], rt["nexthop"]
        net, addr = ipaddress.ip_network(dest), ipaddress.ip_address(hop)
        if net.version != addr.version:
            raise err("InvalidRoutes", 400, f"Invalid format for routes: {rt}, the nexthop is "
                      f"not an IPv{net.version} address.")
        if net.prefixlen == 0:
            raise err("InvalidRoutes", 400, "Invalid format for routes: the default route "
                      "comes from the external gateway.")
        if not any(addr in c for c in cidrs):
            raise err("InvalidRoutes", 400, f"Invalid format for routes: {rt}, the nexthop "
                      f"is not connected with router {r.id}.")
        if hop in own:
            raise err("InvalidRoutes", 400, f"Invalid format for routes: {rt}, the nexthop "
                      "is used by router.")
        # a destination that is a connected subnet is accepted, as Neutron does (Tempest's
        # test_update_delete_extra_route sets such routes): the agent's layout leaves it
        # out, so the kernel's connected route is never replaced
        out.append({"destination": dest, "nexthop": hop})
    return out


def _connected(s: Session, r: S.Router) -> tuple[list, set[str]]:
    """The CIDRs of the subnets a router has a port on (interfaces and gateway) and its own
    addresses there."""
    ports = [rp.port_id for rp in S.router_ports(s, r.id, OWNER_RI)]
    ports += [r.gw_port_id] if r.gw_port_id else []
    allocs = [a for pid in ports for a in S.get(s, S.Port, pid).fixed_ips]
    return ([ipaddress.ip_network(S.get(s, S.Subnet, a.subnet_id).cidr) for a in allocs],
            {a.ip_address for a in allocs})


def create_router(s: Session, d: dict) -> dict:
    """``d``: the attributes the request set, validated (``api.schemas.routers``)."""
    _ignored_ok(d, "distributed", (False,))
    _ignored_ok(d, "ha", (False,))
    r = S.Router(id=new_id(), project_id=d.get("project_id") or d.get("tenant_id", ""),
                 name=d.get("name", ""), description=d.get("description", ""),
                 admin_state_up=d.get("admin_state_up", True), status="ACTIVE")
    S.add(s, r)
    if d.get("external_gateway_info"):  # {} is "no gateway", as in Neutron
        _gateway(s, r, d["external_gateway_info"])
    if d.get("routes"):
        s.flush()
        r.routes = _check_routes(s, r, d["routes"])
    s.flush()
    return router_dict(s, r)


def update_router(s: Session, rid: str, d: dict) -> dict:
    r = _must(s, "router", rid, lock=True)
    _ignored_ok(d, "distributed", (False,))
    _ignored_ok(d, "ha", (False,))
    for key in ("name", "description", "admin_state_up"):
        if key in d:
            setattr(r, key, d[key])
    if "external_gateway_info" in d:
        info = d["external_gateway_info"]
        _gateway(s, r, info if info else None)
    if "routes" in d:
        s.flush()
        r.routes = _check_routes(s, r, d["routes"] or [])
    S.touch(r)
    s.flush()
    return router_dict(s, r)


def delete_router(s: Session, rid: str) -> None:
    r = _must(s, "router", rid, lock=True)
    if S.router_ports(s, rid, OWNER_RI):
        raise err("RouterInUse", 409, f"Router {rid} still has ports")
    if S.fips_where(s, router_id=rid):
        raise err("RouterInUse", 409, f"Router {rid} still has floating IPs")
    gw = r.gw_port_id
    r.gw_port_id = None
    s.flush()
    if gw:
        S.delete(s, S.get(s, S.Port, gw))
    S.delete(s, r)
    S.record_router_deleted(s, rid)


def _router_subnets(s: Session, rid: str) -> dict[str, str]:
    """subnet id -> router interface port id."""
    out = {}
    for rp in S.router_ports(s, rid, OWNER_RI):
        for a in S.get(s, S.Port, rp.port_id).fixed_ips:
            out[a.subnet_id] = rp.port_id
    return out


def _interface_info(r: S.Router, port: S.Port, sids: list[str], subnet_id: str) -> dict:
    return {"id": r.id, "subnet_id": subnet_id, "subnet_ids": sids,
            "port_id": port.id, "network_id": port.network_id, "project_id": r.project_id,
            "tenant_id": r.project_id, "tags": []}


def _check_interface_subnet(s: Session, r: S.Router, sn: S.Subnet) -> None:
    net = S.get(s, S.Network, sn.network_id)
    if net.external:
        raise bad(f"Bad router request: Subnet {sn.id} is on external network {net.id}; use it "
                  "as the router's gateway.")
    if sn.ip_version == 6 and sn.ipv6_ra_mode is None and sn.ipv6_address_mode is not None:
        raise bad(f"Bad router request: IPv6 subnet {sn.id} configured to receive RAs from an "
                  "external router cannot be added to Neutron Router.")
    if sn.id in _router_subnets(s, r.id):
        raise bad(f"Bad router request: Router already has a port on subnet {sn.id}.")
    _check_no_overlap(s, r, [sn], gateway=False)


def _check_no_overlap(s: Session, r: S.Router, new: list, gateway: bool) -> None:
    """Neutron's _check_for_dup_router_subnets: no subnet a router connects overlaps another
    it connects, the whole external network's subnets counting for the gateway (an interface
    on the gateway's CIDR takes its connected route: floating IPs and SNAT stop)."""
    others = [S.get(s, S.Subnet, sid) for sid in _router_subnets(s, r.id)]
    if r.gw_port_id and not gateway:
        others += S.subnets_of(s, S.get(s, S.Port, r.gw_port_id).network_id)
    for sn in new:
        cidr = ipaddress.ip_network(sn.cidr)
        for other in others:
            if ipaddress.ip_network(other.cidr).overlaps(cidr):
                raise bad(f"Bad router request: Cidr {sn.cidr} of subnet {sn.id} overlaps "
                          f"with cidr {other.cidr} of subnet {other.id}.")


def _has_v6(port: S.Port) -> bool:
    return any(":" in a.ip_address for a in port.fixed_ips)


def _v6_port_on(s: Session, r: S.Router, network_id: str, but: str = "") -> S.Port | None:
    """The router's interface on ``network_id`` that carries IPv6 subnets: Neutron puts
    every IPv6 subnet of a network on one router port."""
    for rp in S.router_ports(s, r.id, OWNER_RI):
        p = S.get(s, S.Port, rp.port_id)
        if p.id != but and p.network_id == network_id and _has_v6(p):
            return p
    return None


def _check_router_port(s: Session, r: S.Router, port: S.Port, project: str | None) -> list[str]:
    """A port given to add_router_interface: Neutron's _check_router_port, the update_port
    that makes it the router's (``project``: the caller's, None for an admin) and
    _validate_router_port_info."""
    if port.device_id or port.device_owner:
        raise err("PortInUse", 409, f"Unable to complete operation on port {port.id} for "
                                    f"network {port.network_id}. Port already has an "
                                    f"attached device {port.device_id or port.device_owner}.")
    if not port.fixed_ips:
        raise bad("Bad router request: Router port must have at least one fixed IP.")
    if project is not None:
        check_device_id(s, OWNER_RI, r.id, port.project_id)
    other = _v6_port_on(s, r, port.network_id, but=port.id) if _has_v6(port) else None
    if other is not None:
        raise bad(f"Bad router request: Router already contains IPv6 port {other.id} "
                  f"belonging to network id {port.network_id}. Only one IPv6 port from the "
                  "same network subnet can be connected to a router.")
    subnets = [S.get(s, S.Subnet, a.subnet_id) for a in port.fixed_ips]
    for sn in subnets:
        _check_interface_subnet(s, r, sn)
    if sum(sn.ip_version == 4 for sn in subnets) > 1:
        raise bad("Bad router request: Cannot have multiple IPv4 subnets on router port.")
    return [sn.id for sn in subnets]


def add_router_interface(s: Session, rid: str, body: dict, project: str | None = None) -> dict:
    """``body``: {subnet_id} or {port_id}, validated (``api.schemas.routers``). ``project``:
    the caller's project, None for an admin: a subnet (its gateway address) is taken only by
    its own project (Neutron's _add_interface_by_subnet: on a shared network others attach
    a port of theirs instead, LP #1757482)."""
    r = _must(s, "router", rid, lock=True)
    if not (body.get("subnet_id") or body.get("port_id")):
        raise bad("Bad router request: Either subnet_id or port_id must be specified.")
    if body.get("subnet_id") and body.get("port_id"):
        raise bad("Bad router request: Cannot specify both subnet-id and port-id.")
    if body.get("port_id"):
        port = _must(s, "port", body["port_id"], lock=True)
        sids = _check_router_port(s, r, port, project)
        port.device_owner, port.device_id = OWNER_RI, r.id
        port.status = "ACTIVE"
        S.touch(port)
    else:
        sn = _must(s, "subnet", body["subnet_id"])
        if not sn.gateway_ip:
            raise bad("Bad router request: Subnet for router interface must have a gateway IP.")
        if project is not None and sn.project_id != project:
            raise bad(f"Bad router request: Cannot add interface to router because subnet "
                      f"{sn.id} is not owned by project making the request.")
        _check_interface_subnet(s, r, sn)
        sids = [sn.id]
        net = _must(s, "network", sn.network_id)
        want = [{"subnet_id": sn.id, "ip_address": sn.gateway_ip}]
        port = _v6_port_on(s, r, sn.network_id) if sn.ip_version == 6 else None
        if port is not None:  # one more prefix on the network's IPv6 router port
            check_requested(s, net, want, OWNER_RI)
            _allocate(s, port, net, want)
            S.touch(port)
            S.touch(r)
            s.flush()
            return _interface_info(r, port, sids, sn.id)
        port = _new_port(s, net, owner=OWNER_RI, device_id=r.id, project_id=r.project_id,
                         requests=want, status="ACTIVE")
    S.add(s, S.RouterPort(router_id=r.id, port_id=port.id, port_type=OWNER_RI))
    S.touch(r)
    s.flush()
    return _interface_info(r, port, sids, sids[-1])


def remove_router_interface(s: Session, rid: str, body: dict) -> dict:
    r = _must(s, "router", rid, lock=True)
    if not (body.get("subnet_id") or body.get("port_id")):
        raise bad("Bad router request: Either subnet_id or port_id must be specified.")
    subnets = _router_subnets(s, rid)
    if body.get("port_id"):
        pid = str(body["port_id"])
        rp = S.router_port_of(s, pid)
        if rp is None or rp.router_id != rid or rp.port_type != OWNER_RI:
            raise err("RouterInterfaceNotFound", 404, f"Router {rid} does not have an "
                                                      f"interface with id {pid}")
        port = S.get(s, S.Port, pid)
        if body.get("subnet_id") and body["subnet_id"] not in [a.subnet_id for a in port.fixed_ips]:
            raise err("SubnetMismatchForPort", 400, f"Subnet {body['subnet_id']} does not match "
                                                    f"with port {pid}")
        gone = [a.subnet_id for a in port.fixed_ips]
    else:
        sid = str(body["subnet_id"])
        if S.get(s, S.Subnet, sid) is None:
            raise not_found("subnet", sid)
        if sid not in subnets:
            raise err("RouterInterfaceNotFoundForSubnet", 404, f"Router {rid} has no interface "
                                                               f"on subnet {sid}")
        port = S.get(s, S.Port, subnets[sid])
        gone = [sid]
    _check_not_in_use(s, r, port, gone)
    info = _interface_info(r, port, gone, gone[0] if gone else None)
    if len(gone) < len(port.fixed_ips):  # one prefix of a multi-prefix port goes
        for a in [a for a in port.fixed_ips if a.subnet_id in gone]:
            port.fixed_ips.remove(a)
        S.touch(port)
        s.flush()
    else:
        S.delete(s, port)
    S.touch(r)
    return info


def _check_not_in_use(s: Session, r: S.Router, port: S.Port, gone: list[str]) -> None:
    """Neither a floating IP nor an extra route needs the subnets about to leave."""
    for f in S.fips_where(s, router_id=r.id):
        fixed = S.get(s, S.Port, f.fixed_port_id) if f.fixed_port_id else None
        if fixed and any(a.subnet_id in gone and a.ip_address == f.fixed_ip_address
                         for a in fixed.fixed_ips):
            raise err("RouterInterfaceInUseByFloatingIP", 409,
                      f"Router interface for subnet {gone[0]} on router {r.id} cannot "
                      f"be deleted, as it is required by one or more floating IPs.")
    gone_cidrs = [ipaddress.ip_network(S.get(s, S.Subnet, sid).cidr) for sid in gone]
    for rt in r.routes or []:
        if any(ipaddress.ip_address(rt["nexthop"]) in c for c in gone_cidrs):
            raise err("RouterInterfaceInUseByRoute", 409,
                      f"Router interface for subnet {gone[0]} on router {r.id} cannot "
                      f"be deleted, as it is required by one or more routes.")


def add_to_gateways(s: Session, sn: S.Subnet) -> None:
    """A new IPv6 subnet on an external network: each router gateway there without a
    stateful IPv6 address gets one from it (Neutron's update_router_gw_ports; auto-address
    subnets already gave every gateway its EUI-64 address)."""
    if is_auto_address(sn):
        return
    net = S.get(s, S.Network, sn.network_id)
    for port in S.ports_on_network(s, sn.network_id):
        if port.device_owner != OWNER_GW or not S.routers_with_gateway(s, port.id):
            continue
        stateful = [a for a in port.fixed_ips if ":" in a.ip_address
                    and not is_auto_address(S.get(s, S.Subnet, a.subnet_id))]
        if not stateful:
            _allocate(s, port, net, [{"subnet_id": sn.id}])
            S.touch(port)
