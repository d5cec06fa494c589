"""Floating IPs: allocation on the external network, association with a port's fixed IP."""
from __future__ import annotations

import ipaddress
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import store as S
from ..store import events as E
from ..core.errors import NeutronError
from .common import (NETWORK_OWNERS, OWNER_FIP, OWNER_RI, _ipv4, _must, bad,
                     check_requested, err, new_id, not_found)
from .ipam import _new_port
from .port_forwardings import has_forwardings, in_use
from .views import fip_dict


def _association(s: Session, f: S.FloatingIP, pid: str, fixed_ip: str | None,
                 new: bool = False) -> tuple[str, str, str]:
    """(port id, fixed IP, router id) for floating IP ``f`` (new or stored) associated with
    port ``pid``: Neutron's checks and errors."""
    nid = f.floating_network_id
    port = _must(s, "port", pid)
    if port.device_owner in NETWORK_OWNERS:
        raise bad(f"Bad floatingip request: Port {pid} has owner {port.device_owner} and "
                  "therefore cannot be associated with a floating IP.")
    addrs = S.port_addresses(s, pid)  # with their subnets' gateways: one statement
    ips = [(sid, ip) for sid, ip, _ in addrs]
    v4 = [(sid, ip) for sid, ip in ips if ":" not in ip]
    if fixed_ip is not None:
        fixed_ip = str(ipaddress.ip_address(fixed_ip))
        if ":" in fixed_ip:
            raise bad(f"Bad floatingip request: Cannot process floating IP association with "
                      f"{fixed_ip}, since that is not an IPv4 address.")
        if fixed_ip not in {ip for _, ip in ips}:
            raise bad(f"Bad floatingip request: Port {pid} does not have fixed ip {fixed_ip}.")
    elif not v4:
        raise bad(f"Bad floatingip request: Cannot add floating IP to port {pid} that has no "
                  "fixed IPv4 addresses.")
    elif len(v4) > 1:
        raise bad(f"Bad floatingip request: Port {pid} has multiple fixed IPv4 addresses.  Must "
                  "provide a specific IPv4 address when assigning a floating IP.")
    else:
        fixed_ip = v4[0][1]
    sid, gateway_ip = next((sid, gw) for sid, ip, gw in addrs if ip == fixed_ip)
    router = S.router_for_subnet(s, port.network_id, sid, nid, OWNER_RI, gateway_ip)
    if router is None:
        raise err("ExternalGatewayForFloatingIPNotFound", 404,
                  f"External network {nid} is not reachable from subnet "
                  f"{sid}.  Therefore, cannot associate Port {pid} with a Floating IP.")
    # a new floating IP: the unique key answers the same when it is written (``_settle``)
    if not new and any(x.id != f.id for x in S.fips_where(
            s, floating_network_id=nid, fixed_port_id=pid, fixed_ip_address=fixed_ip)):
        raise _already(f, pid, fixed_ip)
    return pid, fixed_ip, router.id


def _settle(s: Session, f: S.FloatingIP, assoc: tuple[str, str, str] | None) -> None:
    """Write ``f`` (new, or its association changed): the unique key settles a race with a
    concurrent request that associated the same fixed IP. No savepoint: a refusal rolls
    the whole request back (made before the write: the failed flush expires ``f``)."""
    refusal = None if assoc is None else _already(f, assoc[0], assoc[1])
    try:
        if assoc is not None:
            f.fixed_port_id, f.fixed_ip_address, f.router_id = assoc
        s.add(f)
        s.flush()
    except IntegrityError:
        if refusal is None:
            raise
        raise refusal from None


def _already(f: S.FloatingIP, pid: str, fixed_ip: str) -> NeutronError:
    return err("FloatingIPPortAlreadyAssociated", 409,
               f"Cannot associate floating IP {f.floating_ip_address} ({f.id}) with port {pid} "
               f"using fixed IP {fixed_ip}, as that fixed IP already has a floating IP on "
               f"external network {f.floating_network_id}.")


def _fixed_needs_port(d: dict) -> None:
    if d.get("fixed_ip_address") and not d.get("port_id"):  # Neutron's l3_db rule
        raise bad("Bad floatingip request: fixed_ip_address cannot be specified without a "
                  "port_id.")


def create_floatingip(s: Session, d: dict) -> dict:
    """``d``: the attributes the request set, validated (``api.schemas.floatingips``)."""
    _fixed_needs_port(d)
    nid = d["floating_network_id"]
    net = _must(s, "network", nid)
    if not net.external:
        raise bad(f"Bad floatingip request: Network {nid} is not a valid external network.")
    subnets = S.subnets_of(s, nid)
    if subnets and not any(x.ip_version == 4 for x in subnets):
        raise bad(f"Bad floatingip request: Network {nid} does not contain any IPv4 subnet.")
    req: dict = {}
    if d.get("subnet_id"):
        sid = d["subnet_id"]
        if sid not in {x.id for x in subnets}:
            if S.get(s, S.Subnet, sid) is None:
                raise not_found("subnet", sid)
            raise bad(f"Bad floatingip request: Subnet {sid} is not on network {nid}.")
        if S.get(s, S.Subnet, sid).ip_version != 4:  # Neutron: no IPv4 address on the port
            raise err("ExternalIpAddressExhausted", 400, f"Unable to find any IP address on "
                                                         f"external network {nid}.")
        req["subnet_id"] = sid
    if d.get("floating_ip_address"):
        ip = _ipv4(d["floating_ip_address"], "floating_ip_address")
        sn = next((x for x in subnets if ipaddress.ip_address(ip) in
                   ipaddress.ip_network(x.cidr)), None)
        if sn is None or req.get("subnet_id") not in (None, sn.id):
            raise err("InvalidIpForNetwork", 400, f"IP address {ip} is not a valid IP for any "
                                                  f"of the subnets on the specified network.")
        req.update(subnet_id=sn.id, ip_address=ip)
        check_requested(s, net, [req], OWNER_FIP)
    if not subnets:
        raise err("ExternalIpAddressExhausted", 400, f"Unable to find any IP address on "
                                                     f"external network {nid}.")
    fid = new_id()
    port = _new_port(s, net, owner=OWNER_FIP, device_id=fid, requests=[req] if req else [],
                     in_use_error="IpAddressInUse", status="N/A", subnets=subnets)
    alloc = port.fixed_ips[0]
    f = S.FloatingIP(id=fid, project_id=d.get("project_id") or d.get("tenant_id", ""),
                     description=d.get("description", ""), floating_ip_address=alloc.ip_address,
                     floating_network_id=nid, floating_subnet_id=alloc.subnet_id,
                     floating_port_id=port.id, status="DOWN",
                     qos_policy_id=d.get("qos_policy_id"), dns_name=d.get("dns_name", ""),
                     dns_domain=d.get("dns_domain", ""))
    # associated before its one INSERT (not inserted, then updated)
    assoc = _association(s, f, d["port_id"], d.get("fixed_ip_address"), new=True) \
        if d.get("port_id") else None
    _settle(s, f, assoc)
    return fip_dict(s, f, pfs={})  # a new floating IP has no port forwardings


def update_floatingip(s: Session, fid: str, d: dict) -> dict:
    f = _must(s, "floatingip", fid, lock=True)
    if not d:  # Neutron: an update that sets nothing disassociates
        d = {"port_id": None}
    _fixed_needs_port(d)
    for key in ("description", "qos_policy_id"):  # a policy the caller may get (Access)
        if key in d:
            setattr(f, key, d[key])
    if d.get("port_id") and has_forwardings(s, f.id):  # Neutron: a "free" FIP only
        raise in_use(f.id)
    if "port_id" in d:
        before = (f.fixed_port_id, f.fixed_ip_address)
        pid = d["port_id"]
        if pid is None:
            f.fixed_port_id = f.fixed_ip_address = f.router_id = None
        else:
            _settle(s, f, _association(s, f, pid, d.get("fixed_ip_address")))
        if (f.fixed_port_id, f.fixed_ip_address) != before:
            if f.status != "DOWN":  # in the history, with the change that caused it
                E.record(s, [{"resource": "floatingip", "resource_id": f.id,
                              "project_id": f.project_id or "", "kind": "status",
                              "old_status": f.status, "status": "DOWN", "reason": None,
                              "cause": f"the API: port {before[0]} ({before[1]}) -> "
                                       f"{f.fixed_port_id} ({f.fixed_ip_address}), "
                                       f"revision {f.revision_number}"}])
            f.status = "DOWN"  # until the agent has programmed the change
    S.touch(f)
    s.flush()
    return fip_dict(s, f)


def delete_floatingip(s: Session, fid: str) -> None:
    f = _must(s, "floatingip", fid, lock=True)
    # and its port, which nothing else refers to (deleted by id: not read first)
    if not S.delete_fip_unless_forwarded(s, f.id, f.floating_port_id):
        raise in_use(f.id)  # locked: it exists, so a forwarding holds it
