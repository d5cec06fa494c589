"""Shared by the service modules: Neutron's device owners, errors, and the request-body checks."""
from __future__ import annotations

import ipaddress
import random
import uuid
from typing import Any, Iterable

from sqlalchemy.orm import Session

from .. import store as S
from ..core.errors import NeutronError


OWNER_RI = "network:router_interface"
OWNER_GW = "network:router_gateway"
OWNER_FIP = "network:floatingip"
NETWORK_OWNERS = (OWNER_RI, OWNER_GW, OWNER_FIP)
DEFAULT_PHYSNET = "physnet1"
DEAD_VLAN = 4095
def err(type_: str, code: int, message: str) -> NeutronError:
    return NeutronError(message, type_, code)


def not_found(kind: str, rid: str) -> NeutronError:
    label = {"floatingip": "Floating IP", "network": "Network", "subnet": "Subnet",
             "port": "Port", "router": "Router"}[kind]
    typ = {"floatingip": "FloatingIPNotFound"}.get(kind, kind.capitalize() + "NotFound")
    return err(typ, 404, f"{label} {rid} could not be found.")


def bad(message: str) -> NeutronError:
    return err("BadRequest", 400, message)


def ts(value) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def new_id() -> str:
    return str(uuid.uuid4())


def random_mac() -> str:
    return "fa:16:3e:%02x:%02x:%02x" % tuple(random.randint(0, 255) for _ in range(3))



def body_of(body: Any, key: str) -> dict:
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise bad(f"Resource body required: expected a JSON object {{\"{key}\": {{...}}}}")
    return body[key]


def _check_keys(d: dict, allowed: Iterable[str], kind: str) -> None:
    extra = sorted(set(d) - set(allowed))
    unknown = [k for k in extra if k not in _ALL_ATTRS[kind]]
    if unknown:
        raise bad(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    if extra:
        raise bad(f"Attribute(s) {', '.join(extra)} of a {kind} cannot be set in this request")


def _str(d: dict, key: str, default: str = "", maxlen: int = 255) -> str:
    v = d.get(key, default)
    if v is None:
        v = ""
    if not isinstance(v, str) or len(v) > maxlen:
        raise bad(f"Invalid input for {key}. Reason: '{v}' is not a valid string.")
    return v


def _bool(d: dict, key: str, default: bool) -> bool:
    v = d.get(key, default)
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false", "1", "0"):
        return v.lower() in ("true", "1")
    raise bad(f"Invalid input for {key}. Reason: '{v}' cannot be converted to boolean.")


def _int(v: Any, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise bad(f"Invalid input for {key}. Reason: '{v}' is not an integer.")
    try:
        return int(v)
    except ValueError:
        raise bad(f"Invalid input for {key}. Reason: '{v}' is not an integer.") from None


def _uuid(v: Any, key: str) -> str:
    try:
        return str(uuid.UUID(str(v)))
    except (ValueError, TypeError):
        raise bad(f"Invalid input for {key}. Reason: '{v}' is not a valid UUID.") from None


def _ipv4(v: Any, key: str) -> str:
    try:
        addr = ipaddress.ip_address(v)
    except (ValueError, TypeError):
        raise bad(f"Invalid input for {key}. Reason: '{v}' is not a valid IP address.") from None
    if addr.version != 4:
        raise bad(f"Invalid input for {key}. Reason: only IPv4 is supported.")
    return str(addr)


_ALL_ATTRS = {
    "network": {"id", "name", "description", "admin_state_up", "shared", "router:external", "mtu",
                "provider:network_type", "provider:physical_network", "provider:segmentation_id",
                "project_id", "tenant_id", "port_security_enabled", "availability_zone_hints",
                "tags", "is_default", "status", "subnets", "revision_number", "created_at",
                "updated_at"},
    "subnet": {"id", "name", "description", "network_id", "cidr", "ip_version", "gateway_ip",
               "allocation_pools", "enable_dhcp", "dns_nameservers", "host_routes", "project_id",
               "tenant_id", "tags", "ipv6_ra_mode", "ipv6_address_mode", "subnetpool_id",
               "use_default_subnetpool", "prefixlen", "service_types", "segment_id",
               "revision_number", "created_at", "updated_at"},
    "port": {"id", "name", "description", "network_id", "fixed_ips", "mac_address", "device_id",
             "device_owner", "admin_state_up", "binding:host_id", "binding:profile",
             "binding:vnic_type", "project_id", "tenant_id", "security_groups", "tags",
             "port_security_enabled", "allowed_address_pairs", "status", "revision_number",
             "created_at", "updated_at"},
    "router": {"id", "name", "description", "admin_state_up", "external_gateway_info", "routes",
               "project_id", "tenant_id", "distributed", "ha", "tags", "availability_zone_hints",
               "status", "revision_number", "created_at", "updated_at"},
    "floatingip": {"id", "floating_network_id", "floating_ip_address", "subnet_id", "port_id",
                   "fixed_ip_address", "description", "project_id", "tenant_id", "tags",
                   "dns_name", "dns_domain", "qos_policy_id", "router_id", "status",
                   "revision_number", "created_at", "updated_at"},
}


def _ignored_ok(d: dict, key: str, allowed_values: tuple) -> None:
    if key in d and d[key] not in allowed_values:
        raise bad(f"Invalid input for {key}: floatip supports only {allowed_values}")


def _must(s: Session, kind: str, rid: Any, lock: bool = False):
    row = S.get(s, S.MODELS[kind], str(rid), lock=lock) if isinstance(rid, str) else None
    if row is None:
        raise not_found(kind, str(rid))
    return row
