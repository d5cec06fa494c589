"""The agent's view: database rows -> ``core.model.State`` in one read, and statuses back."""
from __future__ import annotations

import ipaddress

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from .. import store as S
from ..store import events as E
from ..core import model as M
from ..core.protocols import number as protocol_number
from .common import OWNER_RI

KINDS = ("networks", "subnets", "ports", "routers", "floatingips", "security_groups",
         "address_groups")


def desired_state(s: Session) -> M.State:
    return agent_snapshot(s)["state"]


def agent_snapshot(s: Session) -> dict:
    """What an agent needs, read as plain rows in one transaction (no ORM objects): the
    desired state, each VM port's VLAN and binding, the routers it may prune (live and
    deleted ones), statuses as stored, and the generation it reflects."""
    rows = S.snapshot_rows(s)
    rows["fip_ports"] = {f.floating_port_id for f in rows["floatingips"]}
    rows.update(S.sg_snapshot_rows(s))
    out = _build(rows, {n.id: n for n in rows["networks"]})
    state = M.State(**{k: out[k] for k in KINDS})
    return {"generation": rows["generation"], "state": state, "vm_ports": out["vm_ports"],
            "known_routers": set(out["routers"]) | rows["deleted_routers"],
            **out["statuses"]}


def agent_position(s: Session) -> tuple[int, bool]:
    """Where the change feed stands (the generation a delta would answer) and whether
    committed changes are held back behind a writer still running."""
    now = S.feed_position(s)
    return now, S.changes_held(s, now)


def agent_delta(s: Session, since: int) -> dict:
    """What changed after generation ``since``, read in one transaction: ``{"generation",
    "full": False, "upserts": {kind: {id: model object}}, "deletes": {kind: [ids]},
    "vm_ports": {id: info}, "vm_ports_deleted": [ids], "known_routers": [ids], statuses}``;
    upserts and deletes also name ``"port_forwardings"`` changed on their own.
    When the change feed does not reach back that far, the whole snapshot with
    ``"full": True``."""
    found = S.changes_since(s, since)
    if found is None:
        return {**agent_snapshot(s), "full": True}
    now, keys = found
    ids: dict[str, set[str]] = {}
    for kind, oid in keys:
        ids.setdefault(kind, set()).add(oid)
    rows = S.rows_for(s, ids)
    rows.update(S.sg_rows_for(s, ids.get("security_group", ()), ids.get("address_group", ()),
                              {p.id for p in rows["ports"]}))
    nets = {n.id: n for n in rows["networks"]}
    need = {p.network_id for p in rows["ports"]} - set(nets)
    if need:
        nets.update({n.id: n for n in S.rows_for(s, {"network": need})["networks"]})
    out = _build(rows, nets)
    kinds = KINDS
    upserts = {k: out[k] for k in kinds}
    upserts["networks"] = {i: n for i, n in out["networks"].items() if i in ids.get("network", ())}
    deletes = {k: sorted(ids.get(k[:-1], set()) - set(out[k])) for k in kinds}
    # a port that now backs a router or floating IP is no VM port any more
    deletes["ports"] = sorted(set(deletes["ports"]) | (ids.get("port", set()) - set(out["ports"])))
    # forwardings changed on their own: each its element, not its floating IP's others (a
    # floating IP read in this delta brings all of its own)
    pf_ids = ids.get("port_forwarding", set())
    pfs = {x.id: _forwarding(x) for x in rows["forwardings"]}
    upserts["port_forwardings"] = {i: pf for i, pf in pfs.items()
                                   if pf.floatingip_id not in out["floatingips"]}
    deletes["port_forwardings"] = sorted(pf_ids - set(pfs))
    return {"generation": now, "full": False, "held": S.changes_held(s, now),
            "upserts": upserts, "deletes": deletes,
            "vm_ports": out["vm_ports"],
            "vm_ports_deleted": sorted(ids.get("port", set()) - set(out["vm_ports"])),
            "known_routers": sorted(set(out["routers"]) | rows["deleted_routers"]),
            **out["statuses"]}


def _build(rows: dict, nets: dict) -> dict:
    """Model objects from rows (all of them, or those of a delta)."""
    networks = {n.id: M.Network(id=n.id, name=n.name, external=n.external,
                                network_type=n.network_type, physical_network=n.physical_network,
                                segmentation_id=n.segmentation_id, local_vlan=n.local_vlan,
                                mtu=n.mtu)
                for n in nets.values()}
    subnets = {x.id: M.Subnet(id=x.id, network_id=x.network_id, cidr=x.cidr,
                              gateway_ip=x.gateway_ip, name=x.name,
                              allocation_pools=tuple((p["start"], p["end"])
                                                     for p in x.allocation_pools),
                              enable_dhcp=x.enable_dhcp,
                              dns_nameservers=tuple(x.dns_nameservers or ()),
                              host_routes=tuple((r["destination"], r["nexthop"])
                                                for r in x.host_routes or ()),
                              ip_version=x.ip_version, ipv6_ra_mode=x.ipv6_ra_mode,
                              ipv6_address_mode=x.ipv6_address_mode)
               for x in rows["subnets"]}
    fixed: dict[str, list[tuple[str, str]]] = {}
    for a in rows["ipallocations"]:
        fixed.setdefault(a.port_id, []).append((a.subnet_id, a.ip_address))
    for v in fixed.values():
        v.sort(key=lambda x: x[1])
    all_ports = {p.id: p for p in rows["ports"]}
    # ports that back a router or a floating IP, whatever their device_owner says (a label
    # is not what makes them the router's): never VM ports
    backing = {rp.port_id for rp in rows["routerports"]}
    backing |= {r.gw_port_id for r in rows["routers"] if r.gw_port_id}
    backing |= rows["fip_ports"]
    groups_of: dict[str, list[str]] = {}
    for b in rows.get("sg_bindings", ()):
        groups_of.setdefault(b.port_id, []).append(b.security_group_id)
    ports, vm_ports = {}, {}
    for p in rows["ports"]:
        if p.id in backing:
            continue
        # trusted ports (network:*) are never filtered, whatever a row says
        psec = bool(p.port_security_enabled) and not p.device_owner.startswith("network:")
        ports[p.id] = M.Port(id=p.id, network_id=p.network_id, name=p.name,
                             fixed_ips=tuple(fixed.get(p.id, ())), mac_address=p.mac_address,
                             device_owner=p.device_owner, device_id=p.device_id,
                             project_id=p.project_id, admin_state_up=p.admin_state_up,
                             user_data=p.user_data,
                             public_keys=tuple((n, k) for n, k in p.public_keys or ()),
                             security_groups=tuple(sorted(groups_of.get(p.id, ()))) if psec
                             else (),
                             port_security_enabled=psec,
                             allowed_address_pairs=tuple(
                                 (a["ip_address"], a.get("mac_address") or p.mac_address)
                                 for a in p.allowed_address_pairs or ()) if psec else (),
                             extra_dhcp_opts=tuple((o["opt_name"], o["opt_value"],
                                                    o["ip_version"])
                                                   for o in p.extra_dhcp_opts or ()),
                             dns_name=p.dns_name or "")
        net = nets.get(p.network_id)
        if net is not None and not net.external:
            vm_ports[p.id] = {"tag": net.local_vlan, "admin_state_up": p.admin_state_up,
                              "host": p.host_id, "status": p.status}
    itfs: dict[str, list[M.Interface]] = {}
    for rp in rows["routerports"]:
        if rp.port_type != OWNER_RI or rp.port_id not in all_ports:
            continue
        p = all_ports[rp.port_id]
        for sid, ip in fixed.get(p.id, ()):
            itfs.setdefault(rp.router_id, []).append(
                M.Interface(port_id=p.id, subnet_id=sid, ip_address=ip,
                            mac_address=p.mac_address))
    limits: dict[str, list[tuple[str, int, int]]] = {}
    for q in rows.get("qos_rules", ()):
        limits.setdefault(q.qos_policy_id, []).append((q.direction, q.max_kbps,
                                                       q.max_burst_kbps))
    routers = {}
    for r in rows["routers"]:
        gw = None
        if r.gw_port_id and fixed.get(r.gw_port_id):
            p = all_ports[r.gw_port_id]
            # the IPv4 address first (FIPs and SNAT use it); IPv6 ones are routed extras
            ips = sorted(fixed[p.id], key=lambda x: ":" in x[1])
            sid, ip = ips[0]
            gw = M.Gateway(network_id=p.network_id, port_id=p.id, subnet_id=sid,
                           ip_address=ip, mac_address=p.mac_address, enable_snat=r.enable_snat,
                           extra_ips=tuple(ips[1:]))
        routers[r.id] = M.Router(id=r.id, name=r.name, gateway=gw,
                                 interfaces=tuple(sorted(itfs.get(r.id, []),
                                                         key=lambda i: i.port_id)),
                                 admin_state_up=r.admin_state_up,
                                 routes=tuple((rt["destination"], rt["nexthop"])
                                              for rt in r.routes or []),
                                 gateway_qos=tuple(sorted(limits.get(r.qos_policy_id, ())))
                                 if gw is not None else ())
    pfs: dict[str, list[M.PortForwarding]] = {}
    for x in rows.get("portforwardings", ()):
        pfs.setdefault(x.floatingip_id, []).append(_forwarding(x))
    fips = {f.id: M.FloatingIP(id=f.id, floating_ip_address=f.floating_ip_address,
                               floating_network_id=f.floating_network_id,
                               port_id=f.fixed_port_id, fixed_ip_address=f.fixed_ip_address,
                               router_id=f.router_id if f.fixed_port_id or f.id in pfs
                               else None,
                               port_forwardings=tuple(sorted(pfs.get(f.id, ()),
                                                             key=lambda p: p.id)),
                               qos=tuple(sorted(limits.get(f.qos_policy_id, ()))))
            for f in rows["floatingips"]}
    security_groups, address_groups = _groups(rows)
    statuses = {"fip_revisions": {f.id: f.revision_number for f in rows["floatingips"]},
                "fip_status": {f.id: f.status for f in rows["floatingips"]},
                "router_status": {r.id: r.status for r in rows["routers"]},
                "fip_reason": {f.id: f.status_reason for f in rows["floatingips"]},
                "router_reason": {r.id: r.status_reason for r in rows["routers"]}}
    return {"networks": networks, "subnets": subnets, "ports": ports, "routers": routers,
            "floatingips": fips, "security_groups": security_groups,
            "address_groups": address_groups, "vm_ports": vm_ports, "statuses": statuses}


def _forwarding(x) -> M.PortForwarding:
    return M.PortForwarding(
        id=x.id, protocol=x.protocol, external_port_start=x.external_port_start,
        external_port_end=x.external_port_end, internal_ip_address=x.internal_ip_address,
        internal_port_start=x.internal_port_start, internal_port_end=x.internal_port_end,
        internal_port_id=x.internal_port_id, floatingip_id=x.floatingip_id)


def _cidr(prefix: str | None) -> str | None:
    return str(ipaddress.ip_network(prefix, strict=False)) if prefix else None


def _groups(rows: dict) -> tuple[dict, dict]:
    """Security groups with their rules normalised for a firewall, and address groups."""
    rules: dict[str, list[M.SecurityGroupRule]] = {}
    for r in rows.get("sg_rules", ()):
        rules.setdefault(r.security_group_id, []).append(M.SecurityGroupRule(
            id=r.id, direction=r.direction, ethertype=r.ethertype,
            protocol=protocol_number(r.protocol, r.ethertype),
            port_range_min=r.port_range_min, port_range_max=r.port_range_max,
            remote_ip_prefix=_cidr(r.remote_ip_prefix), remote_group_id=r.remote_group_id,
            remote_address_group_id=r.remote_address_group_id))
    sgs = {g.id: M.SecurityGroup(id=g.id, project_id=g.project_id, stateful=g.stateful,
                                 rules=tuple(sorted(rules.get(g.id, ()), key=lambda x: x.id)))
           for g in rows.get("security_groups", ())}
    ags = {a.id: M.AddressGroup(id=a.id, project_id=a.project_id,
                                addresses=tuple(sorted(a.addresses or ())))
           for a in rows.get("address_groups", ())}
    return sgs, ags


def _status(value) -> tuple[str | None, int | None, str | None, bool]:
    """A reported status: "ACTIVE", [status, revision] or {"status", "revision", "reason"}
    -> (status, revision or None, reason, whether a reason was given)."""
    if isinstance(value, dict):
        return value.get("status"), value.get("revision"), value.get("reason"), True
    if isinstance(value, (list, tuple)):
        return value[0], value[1] if len(value) > 1 else None, None, False
    return value, None, None, False


def report_status(s: Session, floatingips: dict | None = None, routers: dict | None = None,
                  ports: dict[str, dict] | None = None) -> int:
    """Statuses from the agent; returns how many rows changed. Plain UPDATEs guarded by
    their WHERE: a row deleted meanwhile is simply not updated (no stale-data error), a
    report about an older revision of a floating IP (it moved while the agent worked) does
    not mark the new association ACTIVE, and rows whose status is unchanged keep their
    revision."""
    changed = 0
    events: list[dict] = []
    for table, reports in ((S.FloatingIP, floatingips), (S.Router, routers)):
        kind = "floatingip" if table is S.FloatingIP else "router"
        now = E.current(s, kind, reports or ())
        for oid, value in (reports or {}).items():
            status, revision, reason, with_reason = _status(value)
            if not isinstance(status, str):
                continue
            before = now.get(oid)
            if before is not None and isinstance(value, dict) and value.get("repaired"):
                events.append(_event(kind, oid, before, "repair", before[0], before[0],
                                     str(value["repaired"])[:1000], "the agent's full pass "
                                     "found the host different from the desired state"))
            cond = [table.id == oid]
            if revision is not None and table is S.FloatingIP:
                cond.append(table.revision_number == revision)
            if isinstance(value, dict) and "port_id" in value and table is S.FloatingIP:
                # about the association the agent programmed, not a newer one
                cond += [table.fixed_port_id.is_not_distinct_from(value["port_id"]),
                         table.fixed_ip_address.is_not_distinct_from(value.get("fixed_ip"))]
            differs = table.status != status
            values = {"status": status}
            if with_reason:
                reason = str(reason)[:1000] if reason else None
                values["status_reason"] = reason
                differs = or_(differs, table.status_reason.is_distinct_from(reason))
            n = s.execute(
                update(table).where(*cond, differs)
                .values(**values, revision_number=table.revision_number + 1,
                        updated_at=S.utcnow())
                .execution_options(synchronize_session=False)).rowcount
            changed += n
            if n and before is not None:
                events.append(_event(kind, oid, before, "status", before[0], status,
                                     values.get("status_reason", before[1]), None))
    E.record(s, events)
    for pid, info in (ports or {}).items():
        status, host = info.get("status"), info.get("host")
        values, differs = {}, []
        if status:
            values["status"] = status
            differs.append(S.Port.status != status)
        if host is not None:
            values["host_id"] = host
            differs.append(S.Port.host_id != host)
        if values:
            changed += s.execute(
                update(S.Port).where(S.Port.id == pid, or_(*differs))
                .values(**values, revision_number=S.Port.revision_number + 1,
                        updated_at=S.utcnow())
                .execution_options(synchronize_session=False)).rowcount
    return changed


def _event(kind: str, oid: str, before: tuple, what: str, old: str | None, new: str | None,
           reason: str | None, cause: str | None) -> dict:
    """An event row; the cause, unless given, is the object's change the agent acted on."""
    _, _, project, revision, updated = before
    return {"at": S.utcnow(), "resource": kind, "resource_id": oid, "project_id": project or "",
            "kind": what, "old_status": old, "status": new, "reason": reason,
            "cause": cause or (f"the agent's pass after {kind} revision {revision}"
                               + (f" (updated {updated:%Y-%m-%dT%H:%M:%S}Z)" if updated else ""))}
