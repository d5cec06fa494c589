"""IP allocation: requested or any free address, the database's unique key settles races."""
from __future__ import annotations

import ipaddress

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import store as S
from .common import _ipv4, _uuid, bad, err, new_id, not_found, random_mac


def _pool_addresses(sn: S.Subnet):
    for p in sn.allocation_pools:
        a, b = int(ipaddress.ip_address(p["start"])), int(ipaddress.ip_address(p["end"]))
        for i in range(a, b + 1):
            yield str(ipaddress.ip_address(i))


def _allocate(s: Session, port: S.Port, net: S.Network, requests: list[dict],
              in_use_error: str = "IpAddressAlreadyAllocated") -> None:
    """Give ``port`` its addresses. ``requests`` holds {subnet_id?, ip_address?} each; an
    empty list means one address from the network's first subnet."""
    subnets = S.subnets_of(s, net.id)
    if not requests:
        if not subnets:
            return
        requests = [{"subnet_id": subnets[0].id}]
    by_id = {sn.id: sn for sn in subnets}
    for req in requests:
        if not isinstance(req, dict):
            raise bad("Invalid input for fixed_ips. Reason: each entry must be an object.")
        ip = _ipv4(req["ip_address"], "ip_address") if req.get("ip_address") else None
        if req.get("subnet_id"):
            sid = _uuid(req["subnet_id"], "subnet_id")
            sn = by_id.get(sid)
            if sn is None:
                if S.get(s, S.Subnet, sid) is None:
                    raise not_found("subnet", sid)
                raise bad(f"Invalid input for operation: Failed to create port on network "
                          f"{net.id}, because fixed_ips included invalid subnet {sid}.")
        elif ip:
            sn = next((x for x in subnets if ipaddress.ip_address(ip) in
                       ipaddress.ip_network(x.cidr)), None)
            if sn is None:
                raise err("InvalidIpForNetwork", 400, f"IP address {ip} is not a valid IP for "
                                                      f"any of the subnets on the specified "
                                                      f"network.")
        else:
            raise bad("Invalid input for fixed_ips: subnet_id or ip_address required.")
        if ip:
            cidr = ipaddress.ip_network(sn.cidr)
            addr = ipaddress.ip_address(ip)
            if addr not in cidr or addr in (cidr.network_address, cidr.broadcast_address):
                raise err("InvalidIpForSubnet", 400, f"IP address {ip} is not a valid IP for "
                                                     f"the specified subnet.")
            if not S.try_allocate(s, port, sn, ip):
                if in_use_error == "IpAddressInUse":
                    raise err("IpAddressInUse", 409, f"Unable to complete operation for network "
                                                     f"{net.id}. The IP address {ip} is in use.")
                raise err("IpAddressAlreadyAllocated", 409, f"IP address {ip} already allocated "
                                                            f"in subnet {sn.id}")
        else:
            _allocate_any(s, port, net, sn)
    s.expire(port, ["fixed_ips"])


def _allocate_any(s: Session, port: S.Port, net: S.Network, sn: S.Subnet) -> str:
    taken = S.allocated_ips(s, sn.id)
    if sn.gateway_ip:
        taken.add(sn.gateway_ip)
    for ip in _pool_addresses(sn):
        if ip in taken:
            continue
        if S.try_allocate(s, port, sn, ip):  # the unique key settles races
            return ip
        taken.add(ip)
    if net.external:
        raise err("ExternalIpAddressExhausted", 400, f"Unable to find any IP address on "
                                                     f"external network {net.id}.")
    raise err("IpAddressGenerationFailure", 409, f"No more IP addresses available for subnet "
                                                 f"{sn.id}.")


def _new_port(s: Session, net: S.Network, *, owner: str, device_id: str, project_id: str = "",
              name: str = "", mac: str | None = None, requests: list[dict] | None = None,
              in_use_error: str = "IpAddressAlreadyAllocated", status: str = "DOWN") -> S.Port:
    port = S.Port(id=new_id(), network_id=net.id, project_id=project_id, name=name,
                  device_owner=owner, device_id=device_id, status=status,
                  mac_address=mac or random_mac())
    for attempt in range(8):
        try:
            with s.begin_nested():
                s.add(port)
                s.flush()
            break
        except IntegrityError:
            if mac:
                raise err("MacAddressInUse", 409, f"Unable to complete operation for network "
                                                  f"{net.id}. The mac address {mac} is in use.") \
                    from None
            port = S.Port(id=port.id, network_id=net.id, project_id=project_id, name=name,
                          device_owner=owner, device_id=device_id, status=status,
                          mac_address=random_mac())
    _allocate(s, port, net, requests or [], in_use_error)
    return port
