"""Subnets: CIDR, gateway and allocation pools."""
from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy.orm import Session

from .. import store as S
from .common import (_ALL_ATTRS, _bool, _check_keys, _int, _ipv4, _must, _str, _uuid, bad, body_of,
                     err, new_id)
from .views import subnet_dict


def _ranges_without(net: ipaddress.IPv4Network, gateway: str | None) -> list[dict]:
    hosts_first = int(net.network_address) + 1
    hosts_last = int(net.broadcast_address) - 1
    gw = int(ipaddress.ip_address(gateway)) if gateway else None
    out = []
    start = hosts_first
    if gw is not None and hosts_first <= gw <= hosts_last:
        if gw > start:
            out.append((start, gw - 1))
        start = gw + 1
    if start <= hosts_last:
        out.append((start, hosts_last))
    return [{"start": str(ipaddress.ip_address(a)), "end": str(ipaddress.ip_address(b))}
            for a, b in out]


def create_subnet(s: Session, body: Any) -> dict:
    d = body_of(body, "subnet")
    _check_keys(d, _ALL_ATTRS["subnet"] - {"revision_number", "created_at", "updated_at"},
                "subnet")
    if "network_id" not in d:
        raise bad("Invalid input for network_id. Reason: network_id is required.")
    net = _must(s, "network", _uuid(d["network_id"], "network_id"), lock=True)
    if _int(d.get("ip_version", 4), "ip_version") != 4:
        raise bad("Invalid input for ip_version. Reason: floatip supports IPv4 subnets only.")
    if not d.get("cidr"):
        raise bad("Bad subnet request: a cidr must be specified in the absence of a subnet pool")
    try:
        cidr = ipaddress.ip_network(str(d["cidr"]), strict=False)
    except ValueError:
        raise bad(f"Invalid input for cidr. Reason: '{d['cidr']}' is not a valid IP subnet.") \
            from None
    if cidr.version != 4 or cidr.prefixlen > 30:
        raise bad(f"Invalid input for cidr. Reason: {cidr} must be IPv4 with prefix /30 or "
                  "shorter.")
    for other in S.subnets_of(s, net.id):
        if ipaddress.ip_network(other.cidr).overlaps(cidr):
            raise err("InvalidInput", 400, f"Invalid input for operation: Requested subnet "
                                           f"with cidr: {cidr} for network: {net.id} overlaps "
                                           f"with another subnet.")
    hosts = (cidr.network_address + 1, cidr.broadcast_address - 1)
    if "gateway_ip" in d and d["gateway_ip"] is None:
        gateway = None
    elif d.get("gateway_ip"):
        gateway = _ipv4(d["gateway_ip"], "gateway_ip")
        if not hosts[0] <= ipaddress.ip_address(gateway) <= hosts[1]:
            raise err("InvalidInput", 400, f"Invalid input for operation: Gateway IP {gateway} "
                                           f"is not a host address of {cidr}.")
    else:
        gateway = str(hosts[0])
    if d.get("allocation_pools"):
        pools = []
        if not isinstance(d["allocation_pools"], list):
            raise bad("Invalid input for allocation_pools. Reason: a list is required.")
        for p in d["allocation_pools"]:
            if not isinstance(p, dict) or "start" not in p or "end" not in p:
                raise bad("Invalid input for allocation_pools. Reason: each pool needs start "
                          "and end.")
            a, b = ipaddress.ip_address(_ipv4(p["start"], "start")), \
                ipaddress.ip_address(_ipv4(p["end"], "end"))
            if not (hosts[0] <= a <= b <= hosts[1]):
                raise err("InvalidAllocationPool", 400,
                          f"The allocation pool {a}-{b} spans beyond the subnet cidr {cidr}.")
            if gateway and a <= ipaddress.ip_address(gateway) <= b:
                raise err("GatewayConflictWithAllocationPools", 409,
                          f"Gateway ip {gateway} conflicts with allocation pool {a}-{b}")
            for q in pools:
                if not (b < ipaddress.ip_address(q["start"]) or a > ipaddress.ip_address(q["end"])):
                    raise err("OverlappingAllocationPools", 409,
                              f"Found overlapping allocation pools: {a}-{b} and "
                              f"{q['start']}-{q['end']} for subnet {cidr}.")
            pools.append({"start": str(a), "end": str(b)})
    else:
        pools = _ranges_without(cidr, gateway)
    sn = S.Subnet(id=_uuid(d["id"], "id") if d.get("id") else new_id(),
                  project_id=_str(d, "project_id", _str(d, "tenant_id")) or net.project_id,
                  name=_str(d, "name"), description=_str(d, "description"),
                  network_id=net.id, cidr=str(cidr), ip_version=4, gateway_ip=gateway,
                  enable_dhcp=_bool(d, "enable_dhcp", True), allocation_pools=pools,
                  dns_nameservers=list(d.get("dns_nameservers") or []),
                  host_routes=list(d.get("host_routes") or []))
    S.add(s, sn)
    S.touch(net)
    return subnet_dict(s, sn)


def update_subnet(s: Session, sid: str, body: Any) -> dict:
    d = body_of(body, "subnet")
    sn = _must(s, "subnet", sid, lock=True)
    _check_keys(d, {"name", "description", "enable_dhcp", "dns_nameservers", "host_routes",
                    "gateway_ip", "allocation_pools"}, "subnet")
    if "gateway_ip" in d:
        _update_gateway(s, sn, d["gateway_ip"])
    if "allocation_pools" in d and d["allocation_pools"] != sn.allocation_pools:
        raise bad("Updating allocation_pools is not supported by floatip; delete and "
                  "recreate the subnet.")
    if "name" in d:
        sn.name = _str(d, "name")
    if "description" in d:
        sn.description = _str(d, "description")
    if "enable_dhcp" in d:
        sn.enable_dhcp = _bool(d, "enable_dhcp", True)
    if "dns_nameservers" in d:
        sn.dns_nameservers = [_ipv4(x, "dns_nameservers") for x in d["dns_nameservers"] or []]
    if "host_routes" in d:
        sn.host_routes = list(d["host_routes"] or [])
    S.touch(sn)
    s.flush()
    return subnet_dict(s, sn)


def _update_gateway(s: Session, sn: S.Subnet, value: Any) -> None:
    """Neutron's rules: a host address of the subnet, outside the allocation pools, not an
    address a port holds; the old gateway may not be in use by a router interface."""
    new = None if value in (None, "") else _ipv4(value, "gateway_ip")
    if new == sn.gateway_ip:
        return
    cidr = ipaddress.ip_network(sn.cidr)
    if new is not None:
        ip = ipaddress.ip_address(new)
        if not cidr.network_address < ip < cidr.broadcast_address:
            raise err("InvalidInput", 400, f"Invalid input for operation: Gateway IP {new} is "
                                           f"not a host address of {cidr}.")
        if any(ipaddress.ip_address(p["start"]) <= ip <= ipaddress.ip_address(p["end"])
               for p in sn.allocation_pools):
            raise err("GatewayConflictWithAllocationPools", 409,
                      f"Gateway ip {new} conflicts with allocation pool "
                      f"{sn.allocation_pools}.")
    for a in S.allocations_on_subnet(s, sn.id):
        if a.ip_address in (sn.gateway_ip, new):
            raise err("GatewayIpInUse", 409, f"Gateway ip {a.ip_address} is in use by port "
                                             f"{a.port_id}. Unable to update.")
    sn.gateway_ip = new


def delete_subnet(s: Session, sid: str) -> None:
    sn = _must(s, "subnet", sid, lock=True)
    if S.allocations_on_subnet(s, sid):
        raise err("SubnetInUse", 409, f"Unable to complete operation on subnet {sid}: One or "
                                      "more ports have an IP allocation from this subnet.")
    S.delete(s, sn)
