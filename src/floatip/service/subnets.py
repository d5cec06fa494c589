"""Subnets: CIDR, gateway and allocation pools."""
from __future__ import annotations

import ipaddress

from sqlalchemy.orm import Session

from .. import store as S
from .common import (OWNER_RI, _must, err, family_mismatch, host_range, is_auto_address,
                     new_id)
from .dhcp import release_subnet, sync_dhcp_port
from .ipam import add_auto_addresses, address
from .networks import check_ipv6_mtu
from .routers import add_to_gateways
from .views import subnet_dict


def _ranges_without(cidr, gateway: str | None) -> list[dict]:
    """Neutron's generate_pools: the subnet's host range around the gateway."""
    first, last = host_range(cidr)
    gw = int(ipaddress.ip_address(gateway)) if gateway else None
    out = []
    start = first
    if gw is not None and first <= gw <= last:
        if gw > start:
            out.append((start, gw - 1))
        start = gw + 1
    if start <= last:
        out.append((start, last))
    return [{"start": address(cidr.version, a), "end": address(cidr.version, b)}
            for a, b in out]


def create_subnet(s: Session, d: dict) -> dict:
    """``d``: the attributes the request set, validated (``api.schemas.subnets``: the CIDR,
    gateway and pools are sound on their own); here what needs the state."""
    net = _must(s, "network", d["network_id"], lock=True)
    cidr = ipaddress.ip_network(d["cidr"])
    if cidr.version == 6:
        check_ipv6_mtu(net.mtu)
    for other in S.subnets_of(s, net.id):
        if ipaddress.ip_network(other.cidr).overlaps(cidr):
            raise err("InvalidInput", 400, f"Invalid input for operation: Requested subnet "
                                           f"with cidr: {cidr} for network: {net.id} overlaps "
                                           f"with another subnet.")
    if "gateway_ip" in d:
        gateway = d["gateway_ip"]  # None: no gateway
    else:
        gateway = str(cidr.network_address + 1) if cidr.num_addresses > 1 else None
    pools = d.get("allocation_pools") or _ranges_without(cidr, gateway)
    sid = d.get("id") or new_id()
    if S.get(s, S.Subnet, sid) is not None:
        raise err("Conflict", 409, f"Subnet {sid} already exists.")
    sn = S.Subnet(id=sid, project_id=d.get("project_id") or d.get("tenant_id") or net.project_id,
                  name=d.get("name", ""), description=d.get("description", ""),
                  network_id=net.id, cidr=str(cidr), ip_version=cidr.version, gateway_ip=gateway,
                  enable_dhcp=d.get("enable_dhcp", True), allocation_pools=pools,
                  dns_nameservers=d.get("dns_nameservers", []),
                  host_routes=d.get("host_routes", []),
                  ipv6_ra_mode=d.get("ipv6_ra_mode"), ipv6_address_mode=d.get("ipv6_address_mode"),
                  subnetpool_id=d.get("subnetpool_id"))
    S.add(s, sn)
    S.touch(net)
    if is_auto_address(sn):
        add_auto_addresses(s, sn)
    if net.external and sn.ip_version == 6:
        add_to_gateways(s, sn)
    sync_dhcp_port(s, net.id)
    return subnet_dict(s, sn)


def update_subnet(s: Session, sid: str, d: dict) -> dict:
    sn = _must(s, "subnet", sid, lock=True)
    wrong = family_mismatch(sn.ip_version, d.get("dns_nameservers") or [],
                            [(r["destination"], r["nexthop"]) for r in d.get("host_routes") or []])
    if wrong:
        raise err("InvalidInput", 400, f"Invalid input for operation: {wrong}")
    if d.get("enable_dhcp") is False and (sn.ipv6_ra_mode or sn.ipv6_address_mode):
        raise err("InvalidInput", 400, "Invalid input for operation: Cannot disable enable_dhcp "
                                       "with ipv6 attributes set")
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
        first, last = host_range(cidr)
        if ip.version != cidr.version:
            raise err("InvalidInput", 400, f"Invalid input for operation: gateway_ip '{new}' "
                                           f"does not match the ip_version '{cidr.version}'")
        if not first <= int(ip) <= last:
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
    if is_auto_address(sn):  # Neutron: automatic addresses go with the subnet, but a
        for a in S.allocations_on_subnet(s, sid):  # router interface keeps it
            p = a.port
            if p.device_owner != OWNER_RI:
                p.fixed_ips.remove(a)
                S.touch(p)
        s.flush()
    if S.allocations_on_subnet(s, sid):
        raise err("SubnetInUse", 409, f"Unable to complete operation on subnet {sid}: One or "
                                      "more ports have an IP allocation from this subnet.")
    S.delete(s, sn)
    S.touch(S.get(s, S.Network, sn.network_id))  # its subnets changed (Neutron's revision)
    sync_dhcp_port(s, sn.network_id)  # the DHCP port goes with its last subnet
