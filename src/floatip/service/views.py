"""Database rows -> Neutron's response bodies."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import store as S
from . import dns
from .common import ts
from .sg_views import SG_FACTS, SG_SERIALIZERS


def _std(row, project: bool = True) -> dict:
    return {"id": row.id, "project_id": row.project_id, "tenant_id": row.project_id,
            "description": row.description, "revision_number": row.revision_number,
            "created_at": ts(row.created_at), "updated_at": ts(row.updated_at), "tags": []}


def network_dict(s: Session, n: S.Network) -> dict:
    subnets = S.subnets_of(s, n.id)
    return {**_std(n), "name": n.name, "admin_state_up": n.admin_state_up, "status": n.status,
            "shared": n.shared, "router:external": n.external, "mtu": n.mtu,
            "provider:network_type": n.network_type,
            "provider:physical_network": n.physical_network,
            "provider:segmentation_id": n.segmentation_id,
            "subnets": [sn.id for sn in subnets],
            "availability_zone_hints": [], "availability_zones": [],
            "port_security_enabled": n.port_security_enabled, "is_default": False,
            "l2_adjacency": True, **network_scopes(s, subnets),
            "dns_domain": n.dns_domain or ""}


def network_scopes(s: Session, subnets: list) -> dict[str, str | None]:
    """``ipv4_address_scope``/``ipv6_address_scope`` of a network with these subnets: the
    address scope of their subnet pools (one per family on a network, as Neutron keeps it)."""
    out: dict[str, str | None] = {"ipv4_address_scope": None, "ipv6_address_scope": None}
    pools = {sn.subnetpool_id: sn.ip_version for sn in subnets if sn.subnetpool_id}
    for p in S.load_many(s, S.SubnetPool, set(pools), plain=True) if pools else ():
        if p.address_scope_id:
            out[f"ipv{pools[p.id]}_address_scope"] = p.address_scope_id
    return out


def subnet_dict(s: Session, sn: S.Subnet) -> dict:
    return {**_std(sn), "name": sn.name, "network_id": sn.network_id, "cidr": sn.cidr,
            "ip_version": sn.ip_version, "gateway_ip": sn.gateway_ip,
            "allocation_pools": [dict(p) for p in sn.allocation_pools],
            "enable_dhcp": sn.enable_dhcp, "dns_nameservers": list(sn.dns_nameservers),
            "host_routes": list(sn.host_routes), "ipv6_ra_mode": sn.ipv6_ra_mode,
            "ipv6_address_mode": sn.ipv6_address_mode, "subnetpool_id": sn.subnetpool_id, "service_types": [],
            "segment_id": None, "dns_publish_fixed_ip": False,
            "router:external": S.get(s, S.Network, sn.network_id).external}


def port_dict(s: Session, p: S.Port) -> dict:
    return {**_std(p), "name": p.name, "network_id": p.network_id,
            "mac_address": p.mac_address, "admin_state_up": p.admin_state_up,
            "status": p.status, "device_id": p.device_id, "device_owner": p.device_owner,
            "fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                          for a in p.fixed_ips],
            "binding:host_id": p.host_id, "binding:vif_type": "ovs" if p.host_id else "unbound",
            "binding:vnic_type": "normal", "binding:profile": {},
            "binding:vif_details": {"port_filter": False} if p.host_id else {},
            "security_groups": [b.security_group_id for b in p.sg_bindings],
            "allowed_address_pairs": [dict(a) for a in p.allowed_address_pairs or []],
            "extra_dhcp_opts": [dict(o) for o in p.extra_dhcp_opts or []],
            "dns_name": p.dns_name or "", "dns_domain": p.dns_domain or "",
            "dns_assignment": dns.assignment(p.dns_name or "",
                                             [a.ip_address for a in p.fixed_ips]),
            "port_security_enabled": p.port_security_enabled,
            # floatip-metadata extension
            "floatip:user_data": p.user_data,
            "floatip:public_keys": {n: k for n, k in (p.public_keys or [])}}


def router_dict(s: Session, r: S.Router) -> dict:
    gw = None
    if r.gw_port_id:
        port = S.get(s, S.Port, r.gw_port_id)
        gw = {"network_id": port.network_id, "enable_snat": r.enable_snat,
              "qos_policy_id": r.qos_policy_id,
              "external_fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                                     for a in port.fixed_ips]}
    return {**_std(r), "name": r.name, "admin_state_up": r.admin_state_up, "status": r.status,
            "status_reason": r.status_reason, "external_gateway_info": gw, "routes": list(r.routes), "distributed": False,
            "ha": False, "availability_zone_hints": [], "availability_zones": []}


def fip_dict(s: Session, f: S.FloatingIP, ports: dict | None = None,
             pfs: dict | None = None) -> dict:
    """``ports``: the ports by id, ``pfs``: the forwardings by floating IP id, when a list
    loaded them already."""
    pfs = forwardings_of(s, [f.id]) if pfs is None else pfs
    details = None
    if f.fixed_port_id:
        p = S.get(s, S.Port, f.fixed_port_id) if ports is None else ports[f.fixed_port_id]
        details = {"name": p.name, "network_id": p.network_id, "mac_address": p.mac_address,
                   "admin_state_up": p.admin_state_up, "status": p.status,
                   "device_id": p.device_id, "device_owner": p.device_owner}
    return {"id": f.id, "project_id": f.project_id, "tenant_id": f.project_id,
            "description": f.description, "floating_ip_address": f.floating_ip_address,
            "floating_network_id": f.floating_network_id, "router_id": f.router_id,
            "port_id": f.fixed_port_id, "fixed_ip_address": f.fixed_ip_address,
            "status": f.status, "status_reason": f.status_reason, "port_details": details,
            "port_forwardings": [fip_view(pf) for pf in pfs.get(f.id, ())],
            "qos_policy_id": f.qos_policy_id, "dns_name": f.dns_name or "",
            "dns_domain": f.dns_domain or "",
            "revision_number": f.revision_number, "created_at": ts(f.created_at),
            "updated_at": ts(f.updated_at), "tags": []}


# The view attributes that are a column as it is (view name -> column): enough for the policy
# rules of a write (``access``) without building the whole view.
_STD = {"id": "id", "project_id": "project_id", "tenant_id": "project_id",
        "description": "description"}
FACTS = {
    "network": {**_STD, "name": "name", "admin_state_up": "admin_state_up", "status": "status",
                "shared": "shared", "router:external": "external", "mtu": "mtu"},
    "subnet": {**_STD, "name": "name", "network_id": "network_id", "cidr": "cidr",
               "ip_version": "ip_version", "gateway_ip": "gateway_ip",
               "enable_dhcp": "enable_dhcp", "ipv6_ra_mode": "ipv6_ra_mode",
               "ipv6_address_mode": "ipv6_address_mode"},
    "port": {**_STD, "name": "name", "network_id": "network_id", "mac_address": "mac_address",
             "admin_state_up": "admin_state_up", "status": "status", "device_id": "device_id",
             "device_owner": "device_owner", "binding:host_id": "host_id"},
    "router": {**_STD, "name": "name", "admin_state_up": "admin_state_up", "status": "status"},
    "floatingip": {**_STD, "floating_ip_address": "floating_ip_address",
                   "floating_network_id": "floating_network_id", "router_id": "router_id",
                   "port_id": "fixed_port_id", "fixed_ip_address": "fixed_ip_address",
                   "status": "status"},
    **SG_FACTS,
}


def facts(kind: str, row) -> dict:
    """The part of ``row``'s view that is columns as they are (``FACTS``)."""
    return {k: getattr(row, col) for k, col in FACTS[kind].items()}


SERIALIZERS = {"network": network_dict, "subnet": subnet_dict, "port": port_dict,
               "router": router_dict, "floatingip": fip_dict, **SG_SERIALIZERS}


def range_text(lo: int, hi: int) -> str:
    return f"{lo}:{hi}"


def pf_dict(pf: S.PortForwarding) -> dict:
    """The API's view: single ports as ``*_port`` (None for a range), both as ranges."""
    single = pf.external_port_start == pf.external_port_end
    return {"id": pf.id, "protocol": pf.protocol,
            "internal_ip_address": pf.internal_ip_address,
            "internal_port_id": pf.internal_port_id,
            "internal_port": pf.internal_port_start
            if pf.internal_port_start == pf.internal_port_end else None,
            "external_port": pf.external_port_start if single else None,
            "internal_port_range": range_text(pf.internal_port_start, pf.internal_port_end),
            "external_port_range": range_text(pf.external_port_start, pf.external_port_end),
            "description": pf.description,
            # not Neutron's (its standard attributes are not shown): listed for the CLI
            "revision_number": pf.revision_number,
            "created_at": ts(pf.created_at), "updated_at": ts(pf.updated_at)}


def fip_view(pf: S.PortForwarding) -> dict:
    """A forwarding as its floating IP shows it (expose-port-forwarding-in-fip)."""
    d = pf_dict(pf)
    return {k: d[k] for k in ("id", "internal_ip_address", "protocol", "internal_port",
                              "external_port", "internal_port_id")}


def forwardings_of(s: Session, fip_ids) -> dict[str, list[S.PortForwarding]]:
    ids = sorted(set(fip_ids))
    out: dict[str, list[S.PortForwarding]] = {}
    for i in range(0, len(ids), 500):
        q = (select(S.PortForwarding).where(S.PortForwarding.floatingip_id.in_(ids[i:i + 500]))
             .order_by(S.PortForwarding.created_at, S.PortForwarding.id))
        for pf in s.execute(q).scalars():
            out.setdefault(pf.floatingip_id, []).append(pf)
    return out
