"""Floating IP port forwardings (Neutron's floating-ip-port-forwarding, with its description
and port-range extensions): ``/v2.0/floatingips/{id}/port_forwardings``.

A forwarding sends (floating IP, protocol, external port or range) to a fixed IP of an
internal port and its port or range. Its floating IP stays without a port, and carries the
router that reaches the internal port (``router_id``, set by the first forwarding, cleared
with the last). Checks, errors and their order are Neutron's pf_plugin's.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import store as S
from ..core.errors import NeutronError
from .common import OWNER_RI, err, new_id, not_found
from .listing import listed, select_fields
from .policy import Context, Policy
from .views import pf_dict, range_text

# the attributes a filter may not name (Neutron's FIELDS_NOT_SUPPORT_FILTER)
NO_FILTER = ("internal_ip_address", "internal_port")
FILTERS = ("id", "protocol", "internal_port_id", "external_port", "external_port_range",
           "internal_port_range", "description")


def pf_bad(msg: str) -> NeutronError:
    """neutron-lib's BadRequest for the port_forwarding resource."""
    return err("BadRequest", 400, f"Bad port_forwarding request: {msg}.")


def pf_not_found(pid: str) -> NeutronError:
    return err("PortForwardingNotFound", 404, f"Port Forwarding {pid} could not be found.")


def _range(text: str) -> tuple[int, int]:
    lo, _, hi = str(text).partition(":")
    return int(lo), int(hi or lo)


def _where(s: Session, **eq) -> list[S.PortForwarding]:
    q = select(S.PortForwarding)
    for k, v in eq.items():
        q = q.where(getattr(S.PortForwarding, k) == v)
    return list(s.execute(q.order_by(S.PortForwarding.created_at, S.PortForwarding.id))
                .scalars())


def has_forwardings(s: Session, fid: str) -> bool:
    return bool(s.execute(select(S.PortForwarding.id)
                          .where(S.PortForwarding.floatingip_id == fid).limit(1)).first())


def in_use(fid: str) -> NeutronError:
    return err("FipInUseByPortForwarding", 409,
               f"Floating IP {fid} in use by Port Forwarding resources.")


def _ranges(d: dict, current: S.PortForwarding | None) -> tuple[tuple[int, int], tuple[int, int]]:
    """(external, internal) port ranges of the body (over ``current``'s): a single port is
    a range of one; a port and a range of the same side must agree."""
    out = []
    for side in ("external", "internal"):
        port, rng = d.get(f"{side}_port"), d.get(f"{side}_port_range")
        if port is not None and rng is not None and _range(rng) != (port, port):
            raise pf_bad(f"{side}_port {port} and {side}_port_range {rng} differ")
        if rng is not None:
            out.append(_range(rng))
        elif port is not None:
            out.append((port, port))
        elif current is not None:
            out.append((getattr(current, f"{side}_port_start"),
                        getattr(current, f"{side}_port_end")))
        else:
            raise pf_bad(f"{side}_port or {side}_port_range is required")
    ext, itn = out
    # Neutron's _validate_ranges: N ports to N ports, or N ports to one
    if itn[1] - itn[0] > 0 and itn[1] - itn[0] != ext[1] - ext[0]:
        raise pf_bad("Invalid ranges of internal and/or external ports. The relation "
                     "between internal and external ports must be N-N or 1-N")
    return ext, itn


def _check_collisions(s: Session, fid: str, pid: str | None, proto: str, port_id: str,
                      ip: str, ext: tuple[int, int], itn: tuple[int, int],
                      check_internal: bool = True) -> None:
    """Neutron's _check_port_collisions: the internal socket range against the other
    forwardings to the same port, address and protocol; the external range against the
    other forwardings of the floating IP with the protocol."""
    if check_internal:
        other = _overlapping(s, S.PortForwarding.internal_port_start,
                             S.PortForwarding.internal_port_end, itn, pid,
                             internal_port_id=port_id, protocol=proto, internal_ip_address=ip)
        if other is not None:
            have = (other.internal_port_start, other.internal_port_end)
            raise pf_bad(f"There is a port collision with the internal_port_range. The "
                         f"following ranges collide: {range_text(*have)} and "
                         f"{range_text(*itn)}")
    other = _overlapping(s, S.PortForwarding.external_port_start,
                         S.PortForwarding.external_port_end, ext, pid, floatingip_id=fid,
                         protocol=proto)
    if other is not None:
        have = (other.external_port_start, other.external_port_end)
        raise pf_bad(f"There is a port collision with the external_port_range. The "
                     f"following ranges collide: {range_text(*have)} and {range_text(*ext)}")


def _overlapping(s: Session, start, end, rng: tuple[int, int], pid: str | None, **eq):
    """One other forwarding (``eq``) whose range [start, end] meets ``rng``, in SQL: a
    floating IP with 1,000 forwardings is not read whole for each new one."""
    q = select(S.PortForwarding.internal_port_start, S.PortForwarding.internal_port_end,
               S.PortForwarding.external_port_start, S.PortForwarding.external_port_end) \
        .where(start <= rng[1], end >= rng[0])
    for k, v in eq.items():
        q = q.where(getattr(S.PortForwarding, k) == v)
    if pid is not None:
        q = q.where(S.PortForwarding.id != pid)
    return s.execute(q.limit(1)).first()


def _bound_fip(s: Session, port_id: str, fixed_ip: str) -> None:
    """Neutron's _check_port_has_binding_floating_ip: the internal port has no floating IP
    of its own."""
    fips = S.fips_where(s, fixed_port_id=port_id)
    if fips:
        f = fips[0]
        raise err("PortHasBindingFloatingIP", 409,
                  f"Cannot create port forwarding to floating IP {f.floating_ip_address} "
                  f"({f.id}) with port {port_id} using fixed IP {fixed_ip}, as that port "
                  f"already has a binding floating IP.")


def _internal(port: S.Port, ip: str | None) -> tuple[str, str]:
    """(internal IPv4 address, its subnet): the one asked for, or the port's first."""
    v4 = [(a.subnet_id, a.ip_address) for a in port.fixed_ips if ":" not in a.ip_address]
    if not v4:
        raise pf_bad(f"Requested internal port {port.id} must allocate an IPv4 address at "
                     "least")
    if ip is None:
        return v4[0][1], v4[0][0]
    sid = next((sid for sid, a in v4 if ipaddress.ip_address(a) == ipaddress.ip_address(ip)),
               None)
    if sid is None:
        shown = [{"subnet_id": sid, "ip_address": a} for sid, a in v4]
        raise pf_bad(f"Requested internal IP address {ip} is not suitable for internal "
                     f"neutron port {port.id}, as its fixed_ips are {shown}")
    return str(ipaddress.ip_address(ip)), sid


def _router(s: Session, f: S.FloatingIP, port: S.Port, sid: str) -> str:
    """The router that reaches the internal subnet from the floating IP's network
    (Neutron's get_router_for_floatingip), and Neutron's _check_router_match."""
    r = S.router_for_subnet(s, port.network_id, sid, f.floating_network_id, OWNER_RI,
                            S.get(s, S.Subnet, sid).gateway_ip)
    if r is None:
        raise pf_bad(f"External network {f.floating_network_id} is not reachable from "
                     f"subnet {sid}. Cannot set Port forwarding for port {port.id} with "
                     f"Floating IP {f.id}")
    if f.router_id and f.router_id != r.id:
        raise pf_bad(f"The Floating IP {f.id} had been set on router {f.router_id}, the "
                     f"internal Neutron port {port.id} can not reach it")
    return r.id


def _duplicate(s: Session, fid: str, d: dict) -> NeutronError:
    return pf_bad("A duplicate port forwarding entry with same attributes already exists, "
                  f"conflicting values are {d}")


class PortForwardings:
    """The API's operations as a caller may do them: the floating IP must be visible to
    the caller (else 404, as it does not exist), then Neutron's rules
    ``<action>_floatingip_port_forwarding`` with the floating IP as the parent."""

    def __init__(self, policy: Policy, access):
        self.policy, self.access = policy, access

    def _fip(self, s: Session, ctx: Context, fid: str, lock: bool = False) -> S.FloatingIP:
        f = S.get(s, S.FloatingIP, fid, lock=lock)
        if f is None or not self.policy.check(ctx, "get_floatingip", {
                "project_id": f.project_id, "tenant_id": f.project_id, "id": f.id}):
            raise not_found("floatingip", fid)
        return f

    def _require(self, ctx: Context, action: str, f: S.FloatingIP,
                 pf: S.PortForwarding | None = None) -> None:
        project = pf.project_id if pf is not None else ctx.project_id or f.project_id
        self.policy.require(ctx, f"{action}_floatingip_port_forwarding", {
            "project_id": project, "tenant_id": project,
            "ext_parent:project_id": f.project_id, "ext_parent:tenant_id": f.project_id})

    def _pf(self, s: Session, f: S.FloatingIP, pid: str) -> S.PortForwarding:
        pf = S.get(s, S.PortForwarding, pid)
        if pf is None or pf.floatingip_id != f.id:
            raise pf_not_found(pid)
        return pf

    def _port(self, s: Session, ctx: Context, pid: str) -> S.Port:
        self.access._must_see(s, ctx, "port", pid, ())  # one the caller cannot see: 404
        return S.get(s, S.Port, pid)

    # -- read -----------------------------------------------------------------------------
    def list(self, s: Session, ctx: Context, fid: str, query: list[tuple[str, str]]) -> list:
        f = self._fip(s, ctx, fid)
        self._require(ctx, "get", f)
        params: dict[str, list[str]] = {}
        for k, v in query:
            params.setdefault(k, []).append(v)
        for k in params:
            if k in NO_FILTER:
                raise err("PortForwardingNotSupportFilterField", 400,
                          f"Port Forwarding filter {k} is not supported.")
        return listed("port_forwarding", [pf_dict(pf) for pf in _where(s, floatingip_id=f.id)],
                      params, FILTERS)

    def show(self, s: Session, ctx: Context, fid: str, pid: str,
             fields: list[str] | None = None) -> dict:
        f = self._fip(s, ctx, fid)
        pf = self._pf(s, f, pid)
        self._require(ctx, "get", f, pf)
        return select_fields(pf_dict(pf), fields)

    # -- write ----------------------------------------------------------------------------
    def create(self, s: Session, ctx: Context, fid: str, d: dict) -> dict:
        f = self._fip(s, ctx, fid, lock=True)
        self._require(ctx, "create", f)
        ext, itn = _ranges(d, None)
        port = self._port(s, ctx, d["internal_port_id"])
        ip, sid = _internal(port, d.get("internal_ip_address"))
        _check_collisions(s, f.id, None, d["protocol"], port.id, ip, ext, itn)
        _bound_fip(s, port.id, ip)
        if f.fixed_port_id:
            raise err("FloatingIPPortAlreadyAssociated", 409,
                      f"Cannot associate floating IP {f.floating_ip_address} ({f.id}) with "
                      f"port {port.id} using fixed IP {ip}, as that fixed IP already has a "
                      f"floating IP on external network {f.floating_network_id}.")
        rid = _router(s, f, port, sid)
        if f.router_id != rid:
            f.router_id = rid
            S.touch(f)
        pf = S.PortForwarding(id=new_id(), project_id=ctx.project_id or f.project_id,
                              description=d.get("description", ""), floatingip_id=f.id,
                              internal_port_id=port.id, protocol=d["protocol"],
                              internal_ip_address=ip, internal_port_start=itn[0],
                              internal_port_end=itn[1], external_port_start=ext[0],
                              external_port_end=ext[1])
        _save(s, pf, {"floatingip_id": f.id, "external_port": ext[0],
                      "protocol": d["protocol"]})
        return pf_dict(pf)

    def update(self, s: Session, ctx: Context, fid: str, pid: str, d: dict) -> dict:
        f = self._fip(s, ctx, fid, lock=True)
        pf = self._pf(s, f, pid)
        self._require(ctx, "update", f, pf)
        port_id = d.get("internal_port_id") or pf.internal_port_id
        port = self._port(s, ctx, port_id)
        if d.get("internal_port_id"):
            _bound_fip(s, port.id, d.get("internal_ip_address") or pf.internal_ip_address)
        ip = d.get("internal_ip_address") or (pf.internal_ip_address
                                              if port.id == pf.internal_port_id else None)
        try:
            ip, sid = _internal(port, ip)
        except NeutronError:
            raise pf_bad("The internal IP does not correspond to an address on the internal "
                         "port, which has fixed_ips " + str([{"subnet_id": a.subnet_id,
                                                              "ip_address": a.ip_address}
                                                             for a in port.fixed_ips])) \
                from None
        if port.id != pf.internal_port_id:
            _router(s, f, port, sid)
        ext, itn = _ranges(d, pf)
        proto = d.get("protocol", pf.protocol)
        if any(k in d for k in ("internal_port", "internal_port_range", "external_port",
                                "external_port_range", "protocol", "internal_port_id",
                                "internal_ip_address")):
            _check_collisions(s, f.id, pf.id, proto, port.id, ip, ext, itn)
        pf.internal_port_id, pf.internal_ip_address, pf.protocol = port.id, ip, proto
        pf.external_port_start, pf.external_port_end = ext
        pf.internal_port_start, pf.internal_port_end = itn
        if "description" in d:
            pf.description = d["description"]
        S.touch(pf)
        _save(s, pf, {"floatingip_id": f.id, "external_port": ext[0], "protocol": proto})
        return pf_dict(pf)

    def delete(self, s: Session, ctx: Context, fid: str, pid: str) -> None:
        f = self._fip(s, ctx, fid, lock=True)
        pf = self._pf(s, f, pid)
        self._require(ctx, "delete", f, pf)
        remove(s, [pf])


def _save(s: Session, pf: S.PortForwarding, conflict: dict) -> None:
    try:
        with s.begin_nested():
            s.add(pf)
            s.flush()
    except IntegrityError:
        raise _duplicate(s, pf.floatingip_id, conflict) from None


def remove(s: Session, pfs: list[S.PortForwarding]) -> None:
    """Forwardings deleted; a floating IP left without any lets go of its router (as
    Neutron's delete and port handlers do)."""
    fids = {pf.floatingip_id for pf in pfs}
    for pf in pfs:
        S.delete(s, pf)
    for fid in fids:
        if not has_forwardings(s, fid):
            f = S.get(s, S.FloatingIP, fid)
            if f is not None and f.router_id and not f.fixed_port_id:
                f.router_id = None
                S.touch(f)
    s.flush()


def on_port_change(s: Session, port_id: str, ips: Any = None) -> None:
    """The port is deleted (``ips`` None) or keeps only ``ips``: its forwardings to
    addresses it no longer has go (Neutron's _process_port_request)."""
    pfs = _where(s, internal_port_id=port_id)
    gone = [pf for pf in pfs if ips is None or pf.internal_ip_address not in set(ips)]
    if gone:
        remove(s, gone)
