"""The agent's view: database rows -> ``core.model.State`` in one read, and statuses back."""
from __future__ import annotations

from sqlalchemy.orm import Session

from .. import store as S
from ..core import model as M
from .common import NETWORK_OWNERS, OWNER_RI


def desired_state(s: Session) -> M.State:
    return agent_snapshot(s)["state"]


def agent_snapshot(s: Session) -> dict:
    """What an agent needs, read as plain rows in one transaction (no ORM objects: this runs
    after every change): the desired state, each VM port's VLAN and binding, the routers it
    may prune (live and deleted ones), statuses as stored, and the generation it reflects."""
    rows = S.snapshot_rows(s)
    networks = {n.id: M.Network(id=n.id, name=n.name, external=n.external,
                                network_type=n.network_type, physical_network=n.physical_network,
                                segmentation_id=n.segmentation_id, local_vlan=n.local_vlan,
                                mtu=n.mtu)
                for n in rows["networks"]}
    subnets = {x.id: M.Subnet(id=x.id, network_id=x.network_id, cidr=x.cidr,
                              gateway_ip=x.gateway_ip, name=x.name,
                              allocation_pools=tuple((p["start"], p["end"])
                                                     for p in x.allocation_pools),
                              enable_dhcp=x.enable_dhcp,
                              dns_nameservers=tuple(x.dns_nameservers or ()),
                              host_routes=tuple((r["destination"], r["nexthop"])
                                                for r in x.host_routes or ()))
               for x in rows["subnets"]}
    fixed: dict[str, list[tuple[str, str]]] = {}
    for a in rows["ipallocations"]:
        fixed.setdefault(a.port_id, []).append((a.subnet_id, a.ip_address))
    for v in fixed.values():
        v.sort(key=lambda x: x[1])
    all_ports = {p.id: p for p in rows["ports"]}
    ports, vm_ports = {}, {}
    for p in rows["ports"]:
        if p.device_owner in NETWORK_OWNERS:
            continue
        ports[p.id] = M.Port(id=p.id, network_id=p.network_id, name=p.name,
                             fixed_ips=tuple(fixed.get(p.id, ())), mac_address=p.mac_address,
                             device_owner=p.device_owner, device_id=p.device_id,
                             project_id=p.project_id, user_data=p.user_data,
                             public_keys=tuple((n, k) for n, k in p.public_keys or ()))
        net = networks.get(p.network_id)
        if net is not None and not net.external:
            vm_ports[p.id] = {"tag": net.local_vlan, "admin_state_up": p.admin_state_up,
                              "host": p.host_id, "status": p.status}
    itfs: dict[str, list[M.Interface]] = {}
    for rp in rows["routerports"]:
        if rp.port_type != OWNER_RI:
            continue
        p = all_ports[rp.port_id]
        for sid, ip in fixed.get(p.id, ()):
            itfs.setdefault(rp.router_id, []).append(
                M.Interface(port_id=p.id, subnet_id=sid, ip_address=ip,
                            mac_address=p.mac_address))
    routers = {}
    for r in rows["routers"]:
        gw = None
        if r.gw_port_id:
            p = all_ports[r.gw_port_id]
            sid, ip = fixed[p.id][0]
            gw = M.Gateway(network_id=p.network_id, port_id=p.id, subnet_id=sid,
                           ip_address=ip, mac_address=p.mac_address, enable_snat=r.enable_snat)
        routers[r.id] = M.Router(id=r.id, name=r.name, gateway=gw,
                                 interfaces=tuple(sorted(itfs.get(r.id, []),
                                                         key=lambda i: i.port_id)),
                                 admin_state_up=r.admin_state_up,
                                 routes=tuple((rt["destination"], rt["nexthop"])
                                              for rt in r.routes or []))
    fips = {f.id: M.FloatingIP(id=f.id, floating_ip_address=f.floating_ip_address,
                               floating_network_id=f.floating_network_id,
                               port_id=f.fixed_port_id, fixed_ip_address=f.fixed_ip_address)
            for f in rows["floatingips"]}
    state = M.State(networks, subnets, ports, routers, fips)
    return {"generation": rows["generation"], "state": state, "vm_ports": vm_ports,
            "known_routers": set(routers) | rows["deleted_routers"],
            "fip_revisions": {f.id: f.revision_number for f in rows["floatingips"]},
            "fip_status": {f.id: f.status for f in rows["floatingips"]},
            "router_status": {r.id: r.status for r in rows["routers"]}}


def report_status(s: Session, floatingips: dict[str, str] | None = None,
                  routers: dict[str, str] | None = None,
                  ports: dict[str, dict] | None = None) -> int:
    """Statuses from the agent; returns how many rows changed. Does not bump revisions of
    rows whose status is unchanged."""
    changed = 0
    for fid, status in (floatingips or {}).items():
        f = S.get(s, S.FloatingIP, fid)
        if isinstance(status, (list, tuple)):
            # [status, revision]: a report about an older revision of the floating IP (it
            # moved while the agent worked) must not mark the new association ACTIVE
            status, revision = status
            if f is not None and f.revision_number != revision:
                continue
        if f is not None and f.status != status:
            f.status = status
            S.touch(f)
            changed += 1
    for rid, status in (routers or {}).items():
        r = S.get(s, S.Router, rid)
        if r is not None and r.status != status:
            r.status = status
            S.touch(r)
            changed += 1
    for pid, info in (ports or {}).items():
        p = S.get(s, S.Port, pid)
        if p is None:
            continue
        status, host = info.get("status"), info.get("host")
        if (status and p.status != status) or (host is not None and p.host_id != host):
            p.status = status or p.status
            if host is not None:
                p.host_id = host
            S.touch(p)
            changed += 1
    return changed
