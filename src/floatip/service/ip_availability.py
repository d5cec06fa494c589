"""Neutron's network-ip-availability (``IpAvailabilityMixin``): per network and subnet the
addresses allocated (every port's: VMs, DHCP, routers, floating IPs) and the total (the
allocation pools' size, the CIDR's without pools). Admins and services only (Neutron's
``get_network_ip_availability``): others list nothing and find no network's."""
from __future__ import annotations

import ipaddress

from sqlalchemy.orm import Session

from .. import store as S
from .common import err, not_found
from .policy import Context, Policy

ACTION = "get_network_ip_availability"
FILTERS = {"network_id": "network_id", "network_name": "network_name",
           "project_id": "project_id", "tenant_id": "project_id", "ip_version": "ip_version"}


def _total(sn: S.Subnet) -> int:
    if not sn.allocation_pools:
        return ipaddress.ip_network(sn.cidr, strict=False).num_addresses
    return sum(int(ipaddress.ip_address(p["end"])) - int(ipaddress.ip_address(p["start"])) + 1
               for p in sn.allocation_pools)


def _availabilities(s: Session, filters: dict[str, list]) -> list[dict]:
    rows = S.networks_with_subnets(s, filters)
    used = S.used_per_subnet(s, [sn.id for _, sn in rows if sn is not None])
    out: dict[str, dict] = {}
    for net, sn in rows:
        d = out.setdefault(net.id, {
            "network_id": net.id, "network_name": net.name, "project_id": net.project_id,
            "tenant_id": net.project_id, "subnet_ip_availability": [], "used_ips": 0,
            "total_ips": 0})
        if sn is None:
            continue
        one = {"subnet_id": sn.id, "ip_version": sn.ip_version, "cidr": sn.cidr,
               "subnet_name": sn.name, "used_ips": used.get(sn.id, 0), "total_ips": _total(sn)}
        d["subnet_ip_availability"].append(one)
        d["used_ips"] += one["used_ips"]
        d["total_ips"] += one["total_ips"]
    return list(out.values())


def _fields(d: dict, fields: list[str] | None) -> dict:
    return {k: v for k, v in d.items() if k in fields} if fields else d


def list_availabilities(s: Session, policy: Policy, ctx: Context,
                        query: list[tuple[str, str]]) -> list[dict]:
    filters: dict[str, list] = {}
    for k, v in query:
        if k == "ip_version":
            if v not in ("4", "6"):
                raise err("HTTPBadRequest", 400, f"Invalid input for ip_version. Reason: "
                                                 f"'{v}' is not an integer.")
            v = int(v)
        if k in FILTERS:
            filters.setdefault(FILTERS[k], []).append(v)
    out = [d for d in _availabilities(s, filters) if policy.check(ctx, ACTION, d)]
    fields = [v for k, v in query if k == "fields"]
    return [_fields(d, fields) for d in out]


def show_availability(s: Session, policy: Policy, ctx: Context, network_id: str,
                      fields: list[str] | None) -> dict:
    found = _availabilities(s, {"network_id": [network_id]})
    if not found:
        raise not_found("network", network_id)
    if not policy.check(ctx, ACTION, found[0]):
        raise err("HTTPNotFound", 404, "The resource could not be found.")
    return _fields(found[0], fields)
