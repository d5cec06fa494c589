"""Subnets: CIDR, gateway and allocation pools."""
from __future__ import annotations

import ipaddress

from sqlalchemy.orm import Session

from .. import store as S
from .common import _must, err, new_id
from .dhcp import release_subnet, sync_dhcp_port
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


def create_subnet(s: Session, d: dict) -> dict:
    """``d``: the attributes the request set, validated (``api.schemas.subnets``: the CIDR,
    gateway and pools are sound on their own); here what needs the state."""
    net = _must(s, "network", d["network_id"], lock=True)
    cidr = ipaddress.ip_network(d["cidr"])
    for other in S.subnets_of(s, net.id):
        if ipaddress.ip_network(other.cidr).overlaps(cidr):
            raise err("InvalidInput", 400, f"Invalid input for operation: Requested subnet "
                                           f"with cidr: {cidr} for network: {net.id} overlaps "
                                           f"with another subnet.")
    if "gateway_ip" in d:
        gateway = d["gateway_ip"]  # None: no gateway
    else:
        gateway = str(cidr.network_address + 1)
    pools = d.get("allocation_pools") or _ranges_without(cidr, gateway)
    sid = d.get("id") or new_id()
    if S.get(s, S.Subnet, sid) is not None:
        raise err("Conflict", 409, f"Subnet {sid} already exists.")
    sn = S.Subnet(id=sid, project_id=d.get("project_id") or d.get("tenant_id") or net.project_id,
                  name=d.get("name", ""), description=d.get("description", ""),
                  network_id=net.id, cidr=str(cidr), ip_version=4, gateway_ip=gateway,
                  enable_dhcp=d.get("enable_dhcp", True), allocation_pools=pools,
                  dns_nameservers=d.get("dns_nameservers", []),
                  host_routes=d.get("host_routes", []))
    S.add(s, sn)
    S.touch(net)
    sync_dhcp_port(s, net.id)
    return subnet_dict(s, sn)


def update_subnet(s: Session, sid: str, d: dict) -> dict:
    sn = _must(s, "subnet", sid, lock=True)
    if "gateway_ip" in d:
        _update_gateway(s, sn, d["gateway_ip"])
    for key in ("name", "description", "enable_dhcp", "dns_nameservers", "host_routes"):
        if key in d:
            setattr(sn, key, d[key])
    S.touch(sn)
    s.flush()
    if "enable_dhcp" in d:
        sync_dhcp_port(s, sn.network_id)
    return subnet_dict(s, sn)


def _update_gateway(s: Session, sn: S.Subnet, value: str | None) -> None:
    """Neutron's rules: a host address of the subnet, outside the allocation pools, not an
    address a port holds; the old gateway may not be in use by a router interface."""
    new = None if value in (None, "") else str(ipaddress.ip_address(value))
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
    release_subnet(s, sid)  # the DHCP port gives its address back, as in Neutron
    if S.allocations_on_subnet(s, sid):
        raise err("SubnetInUse", 409, f"Unable to complete operation on subnet {sid}: One or "
                                      "more ports have an IP allocation from this subnet.")
    S.delete(s, sn)
    sync_dhcp_port(s, sn.network_id)  # the DHCP port goes with its last subnet
