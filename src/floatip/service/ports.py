"""Ports: create, update (fixed IPs, MAC, binding), delete."""
from __future__ import annotations

from sqlalchemy.orm import Session

from .. import store as S
from . import port_forwardings as pf
from .dns import merge_opts
from .trunks import trunk_refusal
from .common import NETWORK_OWNERS, OWNER_RI, _must, bad, check_requested, err, is_auto_address
from .dhcp import set_metadata_attrs
from .ipam import _allocate, _new_port, renumber_auto
from .port_security import on_create as psec_on_create, on_update as psec_on_update
from .views import port_dict


def create_port(s: Session, d: dict) -> dict:
    """``d``: the attributes the request set, validated (``api.schemas.ports``)."""
    net = _must(s, "network", d["network_id"])
    fixed = d.get("fixed_ips") or []
    owner = d.get("device_owner", "")
    check_requested(s, net, fixed, owner)
    port = _new_port(s, net, owner=owner, device_id=d.get("device_id", ""),
                     project_id=d.get("project_id") or d.get("tenant_id") or net.project_id,
                     name=d.get("name", ""), mac=d.get("mac_address"), requests=fixed)
    port.description = d.get("description", "")
    port.admin_state_up = d.get("admin_state_up", True)
    port.host_id = d.get("binding:host_id", "")
    port.extra_dhcp_opts = merge_opts([], d.get("extra_dhcp_opts") or [])
    port.dns_name = d.get("dns_name", "")
    port.dns_domain = d.get("dns_domain", "")
    set_metadata_attrs(port, d)
    s.flush()
    psec_on_create(s, port, net, d)
    s.flush()
    return port_dict(s, port)


def _same_addresses(port: S.Port, fixed_ips: list[dict]) -> bool:
    """Does the request name exactly the addresses the port has (an entry with only a
    subnet_id names the port's address on that subnet)?"""
    have = [(a.subnet_id, a.ip_address) for a in port.fixed_ips]
    if len(fixed_ips) != len(have):
        return False
    left = list(have)
    for f in fixed_ips:
        match = next((h for h in left if f.get("subnet_id") in (None, h[0])
                      and f.get("ip_address") in (None, h[1])), None)
        if match is None:
            return False
        left.remove(match)
    return True


def update_port(s: Session, pid: str, d: dict) -> dict:
    port = _must(s, "port", pid, lock=True)
    _check_owner_change(s, port, d)
    set_metadata_attrs(port, d)
    for key in ("name", "description", "device_id", "device_owner", "admin_state_up",
                "dns_name", "dns_domain"):
        if key in d:
            setattr(port, key, d[key])
    if d.get("extra_dhcp_opts"):  # [] or null: unchanged, as Neutron's
        port.extra_dhcp_opts = merge_opts(port.extra_dhcp_opts or [], d["extra_dhcp_opts"])
    if d.get("device_owner") and "fixed_ips" not in d:  # a new owner may not hold a gateway
        check_requested(s, _must(s, "network", port.network_id),
                        [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                         for a in port.fixed_ips], port.device_owner)
    if "binding:host_id" in d:
        port.host_id = d["binding:host_id"]
    mac_changed = bool(d.get("mac_address")) and d["mac_address"] != port.mac_address
    if mac_changed:
        if port.status == "ACTIVE":
            raise err("PortBound", 409, f"Unable to complete operation on port {pid}: the MAC "
                                        "of a bound port cannot change.")
        if S.list_all(s, S.Port, {"network_id": [port.network_id],
                                  "mac_address": [d["mac_address"]]}):
            raise err("MacAddressInUse", 409, f"Unable to complete operation for network "
                                              f"{port.network_id}. The mac address "
                                              f"{d['mac_address']} is in use.")
        port.mac_address = d["mac_address"]
    if "fixed_ips" in d and port.device_owner in NETWORK_OWNERS and \
            _same_addresses(port, d["fixed_ips"]):
        pass  # Neutron: a subnet-only entry keeps the port's address on that subnet
    elif "fixed_ips" in d:
        if port.device_owner in NETWORK_OWNERS:
            raise bad(f"Port {pid} has owner {port.device_owner}: its fixed_ips are managed by "
                      "the router or floating IP.")
        net = _must(s, "network", port.network_id)
        check_requested(s, net, d["fixed_ips"], port.device_owner)
        _change_fixed_ips(s, port, net, d["fixed_ips"])
        s.flush()
        pf.on_port_change(s, port.id, [a.ip_address for a in port.fixed_ips])
    if mac_changed:
        renumber_auto(s, port)
    psec_on_update(s, port, d)
    S.touch(port)
    s.flush()
    return port_dict(s, port)


def _change_fixed_ips(s: Session, port: S.Port, net: S.Network, wanted: list[dict]) -> None:
    """Neutron's _get_changed_ips_for_port: an entry with an address keeps it or adds it; a
    subnet-only entry keeps the port's address on that subnet or adds one; addresses not
    named go, except automatic (EUI-64) ones, which stay while their subnet does."""
    have = list(port.fixed_ips)
    keep, add = [], []
    for f in wanted:
        match = next((a for a in have if a not in keep and f.get("ip_address") == a.ip_address
                      and f.get("subnet_id") in (None, a.subnet_id)), None) \
            if f.get("ip_address") else None
        if match is None and not f.get("ip_address"):
            match = next((a for a in have if a not in keep and a.subnet_id == f.get("subnet_id")),
                         None)
        if match is None:
            add.append(f)
        else:
            keep.append(match)
    for a in have:
        if a in keep or is_auto_address(S.get(s, S.Subnet, a.subnet_id)):
            continue
        if S.fips_where(s, fixed_port_id=port.id, fixed_ip_address=a.ip_address):
            raise err("IpAddressInUse", 409, f"Fixed IP {a.ip_address} of port {port.id} has a "
                                             "floating IP; disassociate it first.")
        port.fixed_ips.remove(a)
    s.flush()
    if add:
        _allocate(s, port, net, add)


def _check_owner_change(s: Session, port: S.Port, d: dict) -> None:
    """device_owner and device_id of router and floating IP ports are floatip's, and no
    port becomes one by a label: either change would break another object."""
    for key in ("device_owner", "device_id"):
        if key not in d or (d[key] or "") == getattr(port, key):
            continue
        backs = S.port_backs(s, port.id)
        if backs is not None or port.device_owner in NETWORK_OWNERS:
            raise err("PortInUse", 409, f"Port {port.id} backs {backs or port.device_owner}: "
                                        f"its {key} cannot be changed.")
        if key == "device_owner" and (d[key] or "") in NETWORK_OWNERS:
            raise bad(f"Port {port.id}: device_owner {d[key]} is set by floatip only "
                      "(add a router interface or a floating IP instead).")


# Neutron's ROUTER_INTERFACE_OWNERS: the labels _enforce_device_owner_not_router_intf_or_device_id
# guards (floatip makes only the first, but a port may carry any of them as a label)
ROUTER_INTERFACE_OWNERS = (OWNER_RI, "network:ha_router_replicated_interface",
                           "network:router_interface_distributed")


def check_device_id(s: Session, owner: str | None, device_id: str | None,
                    project_id: str) -> None:
    """Neutron's _enforce_device_owner_not_router_intf_or_device_id, for non-admin callers:
    a port labelled a router interface names no router of another project."""
    if owner not in ROUTER_INTERFACE_OWNERS or not device_id or not isinstance(device_id, str):
        return
    router = S.get(s, S.Router, device_id, related=False)
    if router is not None and router.project_id != project_id:
        raise err("DeviceIDNotOwnedByTenant", 409, f"The following device_id {device_id} is "
                                                   "not owned by your project or matches "
                                                   "another project router.")


def delete_port(s: Session, pid: str, internal: bool = False) -> None:
    port = _must(s, "port", pid, lock=True)
    if internal:  # a router's or a network's own port: their rows may still point to it
        S.release_fips_of(s, pid)
        pf.on_port_change(s, pid)
        S.delete(s, port)
        return
    uses: dict[str, str] = {}
    for use, rid in S.port_uses(s, pid):  # one statement for every check below
        uses.setdefault(use, rid)
    in_trunk = trunk_refusal(pid, uses)
    if in_trunk is not None:
        raise in_trunk
    backs = next((f"{use} {uses[use]}" for use in uses if use in ("router", "floating IP")),
                 None)
    if backs is not None:
        raise err("L3PortInUse", 409, f"Port {pid} backs {backs} and therefore "
                                      "cannot be deleted directly via the port API.")
    if port.device_owner in NETWORK_OWNERS:
        raise err("L3PortInUse", 409, f"Port {pid} has owner {port.device_owner} and therefore "
                                      "cannot be deleted directly via the port API.")
    if "fixed" in uses:
        S.release_fips_of(s, pid)  # Neutron disassociates, as on VM deletion
    if "forwarding" in uses:
        pf.on_port_change(s, pid)  # and deletes its port forwardings
    # nothing backs it (checked above) and its floating IPs let go of it
    S.delete_unreferenced(s, S.Port, port.id)
