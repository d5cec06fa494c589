"""Ports: create, update (fixed IPs, MAC, binding), delete."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from .. import store as S
from .common import (NETWORK_OWNERS, _ALL_ATTRS, _bool, _check_keys, _must, _str, _uuid, bad,
                     body_of, err)
from .ipam import _allocate, _new_port
from .views import port_dict


def create_port(s: Session, body: Any) -> dict:
    d = body_of(body, "port")
    _check_keys(d, _ALL_ATTRS["port"] - {"status", "revision_number", "created_at",
                                         "updated_at"}, "port")
    if "network_id" not in d:
        raise bad("Invalid input for network_id. Reason: network_id is required.")
    net = _must(s, "network", _uuid(d["network_id"], "network_id"))
    fixed = d.get("fixed_ips")
    if fixed is not None and not isinstance(fixed, list):
        raise bad("Invalid input for fixed_ips. Reason: a list is required.")
    mac = d.get("mac_address")
    if mac is not None:
        mac = str(mac).lower()
        if len(mac.split(":")) != 6 or not all(len(x) == 2 and all(c in "0123456789abcdef"
                                                                     for c in x)
                                                for x in mac.split(":")):
            raise bad(f"Invalid input for mac_address. Reason: '{mac}' is not a valid MAC "
                      "address.")
    if d.get("id"):
        raise bad("Invalid input: id cannot be set on a port.")
    port = _new_port(s, net, owner=_str(d, "device_owner"), device_id=_str(d, "device_id"),
                     project_id=_str(d, "project_id", _str(d, "tenant_id")) or net.project_id,
                     name=_str(d, "name"), mac=mac, requests=fixed or [])
    port.description = _str(d, "description")
    port.admin_state_up = _bool(d, "admin_state_up", True)
    port.host_id = _str(d, "binding:host_id")
    s.flush()
    return port_dict(s, port)


def update_port(s: Session, pid: str, body: Any) -> dict:
    d = body_of(body, "port")
    port = _must(s, "port", pid, lock=True)
    _check_keys(d, {"name", "description", "admin_state_up", "device_id", "device_owner",
                    "binding:host_id", "fixed_ips", "mac_address", "binding:profile",
                    "binding:vnic_type", "security_groups", "port_security_enabled",
                    "allowed_address_pairs"}, "port")
    for key in ("name", "description", "device_id", "device_owner"):
        if key in d:
            setattr(port, key, _str(d, key))
    if "admin_state_up" in d:
        port.admin_state_up = _bool(d, "admin_state_up", True)
    if "binding:host_id" in d:
        port.host_id = _str(d, "binding:host_id")
    if "mac_address" in d and d["mac_address"] != port.mac_address:
        if port.status == "ACTIVE":
            raise err("PortBound", 409, f"Unable to complete operation on port {pid}: the MAC "
                                        "of a bound port cannot change.")
        port.mac_address = str(d["mac_address"]).lower()
    if "fixed_ips" in d:
        if port.device_owner in NETWORK_OWNERS:
            raise bad(f"Port {pid} has owner {port.device_owner}: its fixed_ips are managed by "
                      "the router or floating IP.")
        if not isinstance(d["fixed_ips"], list):
            raise bad("Invalid input for fixed_ips. Reason: a list is required.")
        keep = {(f.get("subnet_id"), f.get("ip_address")) for f in d["fixed_ips"]
                if isinstance(f, dict) and f.get("ip_address")}
        new = []
        for a in list(port.fixed_ips):
            if (a.subnet_id, a.ip_address) in keep or (None, a.ip_address) in keep:
                keep.discard((a.subnet_id, a.ip_address))
                keep.discard((None, a.ip_address))
                continue
            if S.fips_where(s, fixed_port_id=port.id, fixed_ip_address=a.ip_address):
                raise err("IpAddressInUse", 409, f"Fixed IP {a.ip_address} of port {pid} has a "
                                                 "floating IP; disassociate it first.")
            port.fixed_ips.remove(a)
        s.flush()
        have = {a.ip_address for a in port.fixed_ips}
        for f in d["fixed_ips"]:
            if isinstance(f, dict) and f.get("ip_address") in have:
                continue
            new.append(f)
        if new:
            _allocate(s, port, _must(s, "network", port.network_id), new)
    S.touch(port)
    s.flush()
    return port_dict(s, port)


def delete_port(s: Session, pid: str, internal: bool = False) -> None:
    port = _must(s, "port", pid, lock=True)
    if not internal and port.device_owner in NETWORK_OWNERS:
        raise err("L3PortInUse", 409, f"Port {pid} has owner {port.device_owner} and therefore "
                                      "cannot be deleted directly via the port API.")
    for f in S.fips_where(s, fixed_port_id=pid):  # Neutron disassociates, as on VM deletion
        f.fixed_port_id = f.fixed_ip_address = f.router_id = None
        f.status = "DOWN"
        S.touch(f)
    s.flush()
    S.delete(s, port)
