"""API-side rules: defaults, IP allocation, association checks, status transitions, and the
conversion of database rows into ``model.State`` for the agent.

Every public function takes a session inside an open transaction (``Database.tx``) and
raises ``NeutronError`` with Neutron's type and code; the caller rolls back, so a rejected
request changes nothing.
"""
from __future__ import annotations

import ipaddress
import random
import uuid
from typing import Any, Iterable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import model as M
from . import store as S
from .model import NeutronError

OWNER_RI = "network:router_interface"
OWNER_GW = "network:router_gateway"
OWNER_FIP = "network:floatingip"
NETWORK_OWNERS = (OWNER_RI, OWNER_GW, OWNER_FIP)
DEFAULT_PHYSNET = "physnet1"
DEAD_VLAN = 4095

EXTENSIONS = {
    "router": ("Neutron L3 Router", "Router abstraction for layer 3 forwarding"),
    "external-net": ("Neutron external network", "Adds external network attribute"),
    "provider": ("Provider Network", "Expose mapping of virtual networks to physical networks"),
    "ext-gw-mode": ("Neutron L3 Configurable external gateway mode",
                    "Extension of the router abstraction for specifying whether SNAT should occur"),
    "binding": ("Port Binding", "Expose port bindings of a virtual port to external application"),
    "fip-port-details": ("Floating IP Port Details", "Add port_details attribute to Floating IP"),
    "standard-attr-description": ("standard-attr-description", "Extension to add descriptions"),
    "standard-attr-revisions": ("Resource revision numbers", "Adds revision_number"),
    "standard-attr-timestamp": ("Resource timestamps", "Adds created_at and updated_at fields"),
    "project-id": ("project_id field enabled", "Extension that indicates project_id is enabled"),
    "net-mtu": ("Network MTU", "Provides MTU attribute for a network resource"),
}


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


# ---------------------------------------------------------------------------------------
# Input checking

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


# ---------------------------------------------------------------------------------------
# Serializers

def _std(row, project: bool = True) -> dict:
    return {"id": row.id, "project_id": row.project_id, "tenant_id": row.project_id,
            "description": row.description, "revision_number": row.revision_number,
            "created_at": ts(row.created_at), "updated_at": ts(row.updated_at), "tags": []}


def network_dict(s: Session, n: S.Network) -> dict:
    return {**_std(n), "name": n.name, "admin_state_up": n.admin_state_up, "status": n.status,
            "shared": n.shared, "router:external": n.external, "mtu": n.mtu,
            "provider:network_type": n.network_type,
            "provider:physical_network": n.physical_network,
            "provider:segmentation_id": n.segmentation_id,
            "subnets": [sn.id for sn in S.subnets_of(s, n.id)],
            "availability_zone_hints": [], "availability_zones": [],
            "port_security_enabled": False, "is_default": False, "l2_adjacency": True,
            "ipv4_address_scope": None, "ipv6_address_scope": None}


def subnet_dict(s: Session, sn: S.Subnet) -> dict:
    return {**_std(sn), "name": sn.name, "network_id": sn.network_id, "cidr": sn.cidr,
            "ip_version": sn.ip_version, "gateway_ip": sn.gateway_ip,
            "allocation_pools": [dict(p) for p in sn.allocation_pools],
            "enable_dhcp": sn.enable_dhcp, "dns_nameservers": list(sn.dns_nameservers),
            "host_routes": list(sn.host_routes), "ipv6_ra_mode": None,
            "ipv6_address_mode": None, "subnetpool_id": None, "service_types": [],
            "segment_id": None, "dns_publish_fixed_ip": False}


def port_dict(s: Session, p: S.Port) -> dict:
    return {**_std(p), "name": p.name, "network_id": p.network_id,
            "mac_address": p.mac_address, "admin_state_up": p.admin_state_up,
            "status": p.status, "device_id": p.device_id, "device_owner": p.device_owner,
            "fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                          for a in p.fixed_ips],
            "binding:host_id": p.host_id, "binding:vif_type": "ovs" if p.host_id else "unbound",
            "binding:vnic_type": "normal", "binding:profile": {},
            "binding:vif_details": {"port_filter": False} if p.host_id else {},
            "security_groups": [], "allowed_address_pairs": [], "extra_dhcp_opts": [],
            "port_security_enabled": False}


def router_dict(s: Session, r: S.Router) -> dict:
    gw = None
    if r.gw_port_id:
        port = S.get(s, S.Port, r.gw_port_id)
        gw = {"network_id": port.network_id, "enable_snat": r.enable_snat,
              "external_fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address}
                                     for a in port.fixed_ips]}
    return {**_std(r), "name": r.name, "admin_state_up": r.admin_state_up, "status": r.status,
            "external_gateway_info": gw, "routes": list(r.routes), "distributed": False,
            "ha": False, "availability_zone_hints": [], "availability_zones": []}


def fip_dict(s: Session, f: S.FloatingIP) -> dict:
    details = None
    if f.fixed_port_id:
        p = S.get(s, S.Port, f.fixed_port_id)
        details = {"name": p.name, "network_id": p.network_id, "mac_address": p.mac_address,
                   "admin_state_up": p.admin_state_up, "status": p.status,
                   "device_id": p.device_id, "device_owner": p.device_owner}
    return {"id": f.id, "project_id": f.project_id, "tenant_id": f.project_id,
            "description": f.description, "floating_ip_address": f.floating_ip_address,
            "floating_network_id": f.floating_network_id, "router_id": f.router_id,
            "port_id": f.fixed_port_id, "fixed_ip_address": f.fixed_ip_address,
            "status": f.status, "port_details": details, "port_forwardings": [],
            "qos_policy_id": None, "dns_name": "", "dns_domain": "",
            "revision_number": f.revision_number, "created_at": ts(f.created_at),
            "updated_at": ts(f.updated_at), "tags": []}


SERIALIZERS = {"network": network_dict, "subnet": subnet_dict, "port": port_dict,
               "router": router_dict, "floatingip": fip_dict}

# Filters pushed down to SQL: query key -> column.
SQL_FILTERS = {
    "network": {"id": "id", "name": "name", "project_id": "project_id",
                "tenant_id": "project_id"},
    "subnet": {"id": "id", "name": "name", "network_id": "network_id", "cidr": "cidr",
               "project_id": "project_id", "tenant_id": "project_id"},
    "port": {"id": "id", "name": "name", "network_id": "network_id", "device_id": "device_id",
             "device_owner": "device_owner", "mac_address": "mac_address",
             "project_id": "project_id", "tenant_id": "project_id"},
    "router": {"id": "id", "name": "name", "project_id": "project_id", "tenant_id": "project_id"},
    "floatingip": {"id": "id", "floating_ip_address": "floating_ip_address",
                   "port_id": "fixed_port_id", "router_id": "router_id",
                   "floating_network_id": "floating_network_id",
                   "fixed_ip_address": "fixed_ip_address", "project_id": "project_id",
                   "tenant_id": "project_id"},
}
PAGING = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse", "verbose"}


def _matches(value: Any, wanted: list[str]) -> bool:
    if isinstance(value, bool):
        return any(w.lower() in (str(value).lower(), "1" if value else "0") for w in wanted)
    if value is None:
        return any(w in ("", "None", "null") for w in wanted)
    if isinstance(value, list):
        return any(str(w) in [str(v) for v in value] for w in wanted)
    return str(value) in wanted


def _fixed_ips_filter(port: dict, wanted: list[str]) -> bool:
    """``fixed_ips=ip_address=1.2.3.4`` / ``fixed_ips=subnet_id=X`` (OSC's form)."""
    for w in wanted:
        k, _, v = w.partition("=")
        if not any(str(f.get(k)) == v for f in port["fixed_ips"]):
            return False
    return True


def list_resources(s: Session, kind: str, query: list[tuple[str, str]]) -> list[dict]:
    params: dict[str, list[str]] = {}
    for k, v in query:
        params.setdefault(k, []).append(v)
    sql = {SQL_FILTERS[kind][k]: v for k, v in params.items() if k in SQL_FILTERS[kind]
           and not (kind == "floatingip" and k in ("port_id", "router_id", "fixed_ip_address")
                    and v in (["None"], [""]))}
    rows = S.list_all(s, S.MODELS[kind], sql)
    out = []
    for row in rows:
        d = SERIALIZERS[kind](s, row)
        ok = True
        for k, wanted in params.items():
            if k in PAGING or k in sql.keys() and SQL_FILTERS[kind].get(k) == k:
                continue
            if k == "fixed_ips" and kind == "port":
                ok = _fixed_ips_filter(d, wanted)
            elif k in d:
                ok = _matches(d[k], wanted)
            if not ok:
                break
        if ok:
            out.append(d)
    if "limit" in params:
        out = _paginate(out, params)
    return [select_fields(d, params.get("fields")) for d in out]


def _paginate(items: list[dict], params: dict) -> list[dict]:
    marker = (params.get("marker") or [None])[0]
    if marker:
        ids = [d["id"] for d in items]
        items = items[ids.index(marker) + 1:] if marker in ids else []
    try:
        limit = int(params["limit"][0])
    except ValueError:
        raise bad(f"Invalid limit {params['limit'][0]!r}") from None
    return items[:limit] if limit > 0 else items


def select_fields(d: dict, fields: list[str] | None) -> dict:
    if not fields:
        return d
    names = {f for item in fields for f in item.split(",") if f}
    return {k: v for k, v in d.items() if k in names}


def show(s: Session, kind: str, rid: str, fields: list[str] | None = None) -> dict:
    row = S.get(s, S.MODELS[kind], rid)
    if row is None:
        raise not_found(kind, rid)
    return select_fields(SERIALIZERS[kind](s, row), fields)


def _must(s: Session, kind: str, rid: Any, lock: bool = False):
    row = S.get(s, S.MODELS[kind], str(rid), lock=lock) if isinstance(rid, str) else None
    if row is None:
        raise not_found(kind, str(rid))
    return row


# ---------------------------------------------------------------------------------------
# Networks

def create_network(s: Session, body: Any) -> dict:
    d = body_of(body, "network")
    _check_keys(d, _ALL_ATTRS["network"] - {"status", "subnets", "revision_number",
                                            "created_at", "updated_at"}, "network")
    external = _bool(d, "router:external", False)
    ntype = d.get("provider:network_type") or ("flat" if external else "local")
    if ntype not in ("flat", "vlan", "local"):
        raise err("InvalidInput", 400, f"Invalid input for operation: network_type value "
                                       f"'{ntype}' not supported (flat, vlan, local).")
    physnet = d.get("provider:physical_network")
    seg = d.get("provider:segmentation_id")
    if ntype == "local":
        if physnet or seg is not None:
            raise err("InvalidInput", 400, "Invalid input for operation: provider attributes "
                                           "are not allowed for local networks.")
        if external:
            raise err("InvalidInput", 400, "Invalid input for operation: an external network "
                                           "needs a physical network (flat or vlan).")
    else:
        physnet = _str({"p": physnet or DEFAULT_PHYSNET}, "p", maxlen=64)
    if ntype == "flat":
        if seg is not None:
            raise err("InvalidInput", 400, "Invalid input for operation: segmentation_id "
                                           "requires a vlan network.")
        if not external:
            raise err("InvalidInput", 400, "Invalid input for operation: flat networks are "
                                           "supported as external networks only; use local or "
                                           "vlan for tenant networks.")
    if ntype == "vlan":
        if seg is None:
            raise err("InvalidInput", 400, "Invalid input for operation: segmentation_id "
                                           "required for VLAN provider network.")
        seg = _int(seg, "provider:segmentation_id")
        if not 1 <= seg <= 4094:
            raise err("InvalidInput", 400, f"Invalid input for operation: segmentation_id "
                                           f"{seg} out of range (1 through 4094).")
    mtu = _int(d.get("mtu", 1500), "mtu")
    if not 68 <= mtu <= 9216:
        raise bad(f"Invalid input for mtu. Reason: {mtu} not in 68..9216.")
    net = S.Network(id=_uuid(d["id"], "id") if d.get("id") else new_id(),
                    project_id=_str(d, "project_id", _str(d, "tenant_id")),
                    name=_str(d, "name"), description=_str(d, "description"),
                    admin_state_up=_bool(d, "admin_state_up", True),
                    shared=_bool(d, "shared", False), external=external, mtu=mtu,
                    network_type=ntype, physical_network=physnet, segmentation_id=seg)
    if S.get(s, S.Network, net.id) is not None:
        raise err("Conflict", 409, f"Network {net.id} already exists.")
    S.add(s, net)
    if not external:  # the tag of this network on the integration bridge
        if ntype == "vlan":
            if not _try_vlan(s, net, seg):
                raise err("VlanIdInUse", 409, f"Unable to create the network. The VLAN {seg} "
                                              f"on physical network {physnet} is in use.")
        else:
            _allocate_local_vlan(s, net)
    return network_dict(s, net)


def _try_vlan(s: Session, net: S.Network, vlan: int) -> bool:
    try:
        with s.begin_nested():
            net.local_vlan = vlan
            s.flush()
        return True
    except IntegrityError:
        net.local_vlan = None
        return False


def _allocate_local_vlan(s: Session, net: S.Network) -> None:
    used = S.used_vlans(s)
    for vlan in range(1, 4095):
        if vlan not in used and _try_vlan(s, net, vlan):
            return
    raise err("NoNetworkAvailable", 503, "Unable to create the network. No local VLAN is "
                                         "available on the integration bridge.")


def update_network(s: Session, nid: str, body: Any) -> dict:
    d = body_of(body, "network")
    net = _must(s, "network", nid, lock=True)
    _check_keys(d, {"name", "description", "admin_state_up", "mtu", "shared"}, "network")
    if "name" in d:
        net.name = _str(d, "name")
    if "description" in d:
        net.description = _str(d, "description")
    if "admin_state_up" in d:
        net.admin_state_up = _bool(d, "admin_state_up", True)
    if "shared" in d:
        net.shared = _bool(d, "shared", False)
    if "mtu" in d:
        mtu = _int(d["mtu"], "mtu")
        if not 68 <= mtu <= 9216:
            raise bad(f"Invalid input for mtu. Reason: {mtu} not in 68..9216.")
        net.mtu = mtu
    S.touch(net)
    s.flush()
    return network_dict(s, net)


def delete_network(s: Session, nid: str) -> None:
    net = _must(s, "network", nid, lock=True)
    ports = S.ports_on_network(s, nid)
    if any(p.device_owner not in ("network:dhcp",) for p in ports):
        raise err("NetworkInUse", 409, f"Unable to complete operation on network {nid}. "
                                       "There are one or more ports still in use on the network.")
    for sn in S.subnets_of(s, nid):
        S.delete(s, sn)
    S.delete(s, net)


# ---------------------------------------------------------------------------------------
# Subnets

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
    _check_keys(d, {"name", "description", "enable_dhcp", "dns_nameservers", "host_routes"},
                "subnet")
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


def delete_subnet(s: Session, sid: str) -> None:
    sn = _must(s, "subnet", sid, lock=True)
    if S.allocations_on_subnet(s, sid):
        raise err("SubnetInUse", 409, f"Unable to complete operation on subnet {sid}: One or "
                                      "more ports have an IP allocation from this subnet.")
    S.delete(s, sn)


# ---------------------------------------------------------------------------------------
# IP allocation

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


# ---------------------------------------------------------------------------------------
# Ports

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


# ---------------------------------------------------------------------------------------
# Routers

def _gateway(s: Session, r: S.Router, info: Any) -> None:
    """Set, change or clear the external gateway of ``r``."""
    if info is not None and not isinstance(info, dict):
        raise bad("Invalid input for external_gateway_info. Reason: an object or null.")
    if info is not None and not info.get("network_id"):
        if r.gw_port_id and "enable_snat" in info:
            r.enable_snat = _bool(info, "enable_snat", True)
            return
        raise bad("Invalid input for external_gateway_info. Reason: network_id is required.")
    current = S.get(s, S.Port, r.gw_port_id) if r.gw_port_id else None
    if info is not None:
        nid = _uuid(info["network_id"], "network_id")
        net = _must(s, "network", nid)
        if not net.external:
            raise bad(f"Bad router request: Network {nid} is not an external network.")
        r.enable_snat = _bool(info, "enable_snat", True)
        fixed = info.get("external_fixed_ips") or []
        if not isinstance(fixed, list):
            raise bad("Invalid input for external_fixed_ips. Reason: a list is required.")
        if current is not None and current.network_id == nid:
            want = {(f.get("subnet_id"), f.get("ip_address")) for f in fixed}
            have = {(a.subnet_id, a.ip_address) for a in current.fixed_ips}
            if not fixed or all(any(w[1] in (None, h[1]) and w[0] in (None, h[0]) for h in have)
                                for w in want):
                return  # same network and addresses: only enable_snat may change
    if current is not None:
        if S.fips_where(s, router_id=r.id):
            raise err("RouterExternalGatewayInUseByFloatingIp", 409,
                      f"Gateway cannot be updated for router {r.id}, since a gateway to external "
                      f"network {current.network_id} is required by one or more floating IPs.")
        r.gw_port_id = None
        s.flush()
        S.delete(s, current)
    if info is not None:
        port = _new_port(s, net, owner=OWNER_GW, device_id=r.id, requests=fixed,
                         in_use_error="IpAddressInUse", status="ACTIVE")
        S.add(s, S.RouterPort(router_id=r.id, port_id=port.id, port_type=OWNER_GW))
        r.gw_port_id = port.id


def _check_routes(s: Session, r: S.Router, routes: Any) -> list:
    if not isinstance(routes, list):
        raise bad("Invalid input for routes. Reason: a list is required.")
    out = []
    for rt in routes:
        if not isinstance(rt, dict) or "destination" not in rt or "nexthop" not in rt:
            raise bad("Invalid input for routes. Reason: each route needs destination and "
                      "nexthop.")
        try:
            dest = str(ipaddress.ip_network(rt["destination"], strict=False))
        except ValueError:
            raise bad(f"Invalid input for routes: bad destination {rt['destination']!r}") from None
        if ipaddress.ip_network(dest).prefixlen == 0:
            raise err("InvalidRoutes", 400, "Invalid format for routes: the default route "
                      "comes from the external gateway.")
        hop = _ipv4(rt["nexthop"], "nexthop")
        if not any(ipaddress.ip_address(hop) in ipaddress.ip_network(c)
                   for c in _connected_cidrs(s, r)):
            raise err("InvalidRoutes", 400, f"Invalid format for routes: {rt}, the nexthop "
                      f"is not connected with router {r.id}.")
        out.append({"destination": dest, "nexthop": hop})
    return out


def _connected_cidrs(s: Session, r: S.Router) -> list[str]:
    """The CIDRs of the subnets a router has a port on (interfaces and gateway)."""
    ports = [rp.port_id for rp in S.router_ports(s, r.id, OWNER_RI)]
    ports += [r.gw_port_id] if r.gw_port_id else []
    return [S.get(s, S.Subnet, a.subnet_id).cidr
            for pid in ports for a in S.get(s, S.Port, pid).fixed_ips]


def create_router(s: Session, body: Any) -> dict:
    d = body_of(body, "router")
    _check_keys(d, _ALL_ATTRS["router"] - {"status", "revision_number", "created_at",
                                           "updated_at"}, "router")
    _ignored_ok(d, "distributed", (False,))
    _ignored_ok(d, "ha", (False,))
    r = S.Router(id=new_id(), project_id=_str(d, "project_id", _str(d, "tenant_id")),
                 name=_str(d, "name"), description=_str(d, "description"),
                 admin_state_up=_bool(d, "admin_state_up", True), status="ACTIVE")
    S.add(s, r)
    if d.get("external_gateway_info") is not None:
        _gateway(s, r, d["external_gateway_info"])
    if d.get("routes"):
        s.flush()
        r.routes = _check_routes(s, r, d["routes"])
    s.flush()
    return router_dict(s, r)


def update_router(s: Session, rid: str, body: Any) -> dict:
    d = body_of(body, "router")
    r = _must(s, "router", rid, lock=True)
    _check_keys(d, {"name", "description", "admin_state_up", "external_gateway_info", "routes",
                    "distributed", "ha"}, "router")
    _ignored_ok(d, "distributed", (False,))
    _ignored_ok(d, "ha", (False,))
    for key in ("name", "description"):
        if key in d:
            setattr(r, key, _str(d, key))
    if "admin_state_up" in d:
        r.admin_state_up = _bool(d, "admin_state_up", True)
    if "external_gateway_info" in d:
        info = d["external_gateway_info"]
        _gateway(s, r, info if info else None)
    if "routes" in d:
        s.flush()
        r.routes = _check_routes(s, r, d["routes"] or [])
    S.touch(r)
    s.flush()
    return router_dict(s, r)


def delete_router(s: Session, rid: str) -> None:
    r = _must(s, "router", rid, lock=True)
    if S.router_ports(s, rid, OWNER_RI):
        raise err("RouterInUse", 409, f"Router {rid} still has ports")
    if S.fips_where(s, router_id=rid):
        raise err("RouterInUse", 409, f"Router {rid} still has floating IPs")
    gw = r.gw_port_id
    r.gw_port_id = None
    s.flush()
    if gw:
        S.delete(s, S.get(s, S.Port, gw))
    S.delete(s, r)
    S.record_router_deleted(s, rid)


def _router_subnets(s: Session, rid: str) -> dict[str, str]:
    """subnet id -> router interface port id."""
    out = {}
    for rp in S.router_ports(s, rid, OWNER_RI):
        for a in S.get(s, S.Port, rp.port_id).fixed_ips:
            out[a.subnet_id] = rp.port_id
    return out


def _interface_info(r: S.Router, port: S.Port) -> dict:
    sids = [a.subnet_id for a in port.fixed_ips]
    return {"id": r.id, "subnet_id": sids[0] if sids else None, "subnet_ids": sids,
            "port_id": port.id, "network_id": port.network_id, "project_id": r.project_id,
            "tenant_id": r.project_id, "tags": []}


def _check_interface_subnet(s: Session, r: S.Router, sn: S.Subnet) -> None:
    net = S.get(s, S.Network, sn.network_id)
    if net.external:
        raise bad(f"Bad router request: Subnet {sn.id} is on external network {net.id}; use it "
                  "as the router's gateway.")
    existing = _router_subnets(s, r.id)
    if sn.id in existing:
        raise bad(f"Bad router request: Router already has a port on subnet {sn.id}.")
    cidr = ipaddress.ip_network(sn.cidr)
    for other_id in existing:
        other = S.get(s, S.Subnet, other_id)
        if ipaddress.ip_network(other.cidr).overlaps(cidr):
            raise bad(f"Bad router request: Cidr {cidr} of subnet {sn.id} overlaps with cidr "
                      f"{other.cidr} of subnet {other.id}.")


def add_router_interface(s: Session, rid: str, body: Any) -> dict:
    r = _must(s, "router", rid, lock=True)
    if not isinstance(body, dict) or not (body.get("subnet_id") or body.get("port_id")):
        raise bad("Bad router request: Either subnet_id or port_id must be specified.")
    if body.get("subnet_id") and body.get("port_id"):
        raise bad("Bad router request: Cannot specify both subnet-id and port-id.")
    if body.get("port_id"):
        port = _must(s, "port", _uuid(body["port_id"], "port_id"), lock=True)
        if port.device_id or port.device_owner:
            raise err("PortInUse", 409, f"Unable to complete operation on port {port.id} for "
                                        f"network {port.network_id}. Port already has an "
                                        f"attached device {port.device_id or port.device_owner}.")
        if len(port.fixed_ips) != 1:
            raise bad(f"Bad router request: Router port {port.id} must have exactly one fixed "
                      "IPv4 address.")
        _check_interface_subnet(s, r, S.get(s, S.Subnet, port.fixed_ips[0].subnet_id))
        port.device_owner, port.device_id = OWNER_RI, r.id
        port.status = "ACTIVE"
        S.touch(port)
    else:
        sn = _must(s, "subnet", _uuid(body["subnet_id"], "subnet_id"))
        if not sn.gateway_ip:
            raise bad(f"Bad router request: Subnet {sn.id} does not have a gateway IP.")
        _check_interface_subnet(s, r, sn)
        port = _new_port(s, _must(s, "network", sn.network_id), owner=OWNER_RI, device_id=r.id,
                         project_id=r.project_id,
                         requests=[{"subnet_id": sn.id, "ip_address": sn.gateway_ip}],
                         status="ACTIVE")
    S.add(s, S.RouterPort(router_id=r.id, port_id=port.id, port_type=OWNER_RI))
    S.touch(r)
    s.flush()
    return _interface_info(r, port)


def remove_router_interface(s: Session, rid: str, body: Any) -> dict:
    r = _must(s, "router", rid, lock=True)
    if not isinstance(body, dict) or not (body.get("subnet_id") or body.get("port_id")):
        raise bad("Bad router request: Either subnet_id or port_id must be specified.")
    subnets = _router_subnets(s, rid)
    if body.get("port_id"):
        pid = str(body["port_id"])
        rp = S.router_port_of(s, pid)
        if rp is None or rp.router_id != rid or rp.port_type != OWNER_RI:
            raise err("RouterInterfaceNotFound", 404, f"Router {rid} does not have an "
                                                      f"interface with id {pid}")
        port = S.get(s, S.Port, pid)
        if body.get("subnet_id") and body["subnet_id"] not in [a.subnet_id for a in port.fixed_ips]:
            raise err("SubnetMismatchForPort", 400, f"Subnet {body['subnet_id']} does not match "
                                                    f"with port {pid}")
    else:
        sid = str(body["subnet_id"])
        if S.get(s, S.Subnet, sid) is None:
            raise not_found("subnet", sid)
        if sid not in subnets:
            raise err("RouterInterfaceNotFoundForSubnet", 404, f"Router {rid} has no interface "
                                                               f"on subnet {sid}")
        port = S.get(s, S.Port, subnets[sid])
    gone = {a.subnet_id for a in port.fixed_ips}
    for f in S.fips_where(s, router_id=rid):
        fixed = S.get(s, S.Port, f.fixed_port_id) if f.fixed_port_id else None
        if fixed and any(a.subnet_id in gone and a.ip_address == f.fixed_ip_address
                         for a in fixed.fixed_ips):
            raise err("RouterInterfaceInUseByFloatingIP", 409,
                      f"Router interface for subnet {next(iter(gone))} on router {rid} cannot "
                      f"be deleted, as it is required by one or more floating IPs.")
    gone_cidrs = [ipaddress.ip_network(S.get(s, S.Subnet, sid).cidr) for sid in gone]
    for rt in r.routes or []:
        if any(ipaddress.ip_address(rt["nexthop"]) in c for c in gone_cidrs):
            raise err("RouterInterfaceInUseByRoute", 409,
                      f"Router interface for subnet {next(iter(gone))} on router {rid} cannot "
                      f"be deleted, as it is required by one or more routes.")
    info = _interface_info(r, port)
    S.delete(s, port)
    S.touch(r)
    return info


# ---------------------------------------------------------------------------------------
# Floating IPs

def _associate(s: Session, f: S.FloatingIP, port_id: Any, fixed_ip: Any) -> None:
    pid = _uuid(port_id, "port_id")
    port = _must(s, "port", pid)
    if port.device_owner in NETWORK_OWNERS:
        raise bad(f"Bad floatingip request: Port {pid} has owner {port.device_owner} and "
                  "therefore cannot be associated with a floating IP.")
    ips = [(a.subnet_id, a.ip_address) for a in port.fixed_ips]
    if fixed_ip is not None:
        fixed_ip = _ipv4(fixed_ip, "fixed_ip_address")
        if fixed_ip not in {ip for _, ip in ips}:
            raise bad(f"Bad floatingip request: Port {pid} does not have fixed ip {fixed_ip}.")
    elif not ips:
        raise bad(f"Bad floatingip request: Port {pid} does not have any IPv4 address.")
    elif len(ips) > 1:
        raise bad(f"Bad floatingip request: Port {pid} has multiple fixed IPv4 addresses. Must "
                  "provide a specific IPv4 address when assigning a floating IP.")
    else:
        fixed_ip = ips[0][1]
    sid = next(sid for sid, ip in ips if ip == fixed_ip)
    router = None
    for rp in S.router_ports(s, port_type=OWNER_RI):
        rport = S.get(s, S.Port, rp.port_id)
        if any(a.subnet_id == sid for a in rport.fixed_ips):
            cand = S.get(s, S.Router, rp.router_id)
            gw = S.get(s, S.Port, cand.gw_port_id) if cand.gw_port_id else None
            if gw is not None and gw.network_id == f.floating_network_id:
                router = cand
                break
    if router is None:
        raise err("ExternalGatewayForFloatingIPNotFound", 404,
                  f"External network {f.floating_network_id} is not reachable from subnet "
                  f"{sid}.  Therefore, cannot associate Port {pid} with a Floating IP.")
    other = [x for x in S.fips_where(s, floating_network_id=f.floating_network_id,
                                     fixed_port_id=pid, fixed_ip_address=fixed_ip) if x.id != f.id]
    if other:
        raise _already(f, pid, fixed_ip)
    s.flush()
    try:
        with s.begin_nested():  # the unique key settles a race with a concurrent request
            f.fixed_port_id, f.fixed_ip_address, f.router_id = pid, fixed_ip, router.id
            s.flush()
    except IntegrityError:  # a concurrent request associated the same fixed IP
        raise _already(f, pid, fixed_ip) from None


def _already(f: S.FloatingIP, pid: str, fixed_ip: str) -> NeutronError:
    return err("FloatingIPPortAlreadyAssociated", 409,
               f"Cannot associate floating IP {f.floating_ip_address} ({f.id}) with port {pid} "
               f"using fixed IP {fixed_ip}, as that fixed IP already has a floating IP on "
               f"external network {f.floating_network_id}.")


def create_floatingip(s: Session, body: Any) -> dict:
    d = body_of(body, "floatingip")
    _check_keys(d, _ALL_ATTRS["floatingip"] - {"router_id", "status", "revision_number",
                                               "created_at", "updated_at", "id"}, "floatingip")
    if not d.get("floating_network_id"):
        raise bad("Invalid input for floating_network_id. Reason: floating_network_id is "
                  "required.")
    nid = _uuid(d["floating_network_id"], "floating_network_id")
    net = _must(s, "network", nid)
    if not net.external:
        raise bad(f"Bad floatingip request: Network {nid} is not a valid external network.")
    subnets = S.subnets_of(s, nid)
    req: dict = {}
    if d.get("subnet_id"):
        sid = _uuid(d["subnet_id"], "subnet_id")
        if sid not in {x.id for x in subnets}:
            if S.get(s, S.Subnet, sid) is None:
                raise not_found("subnet", sid)
            raise bad(f"Bad floatingip request: Subnet {sid} is not on network {nid}.")
        req["subnet_id"] = sid
    if d.get("floating_ip_address"):
        ip = _ipv4(d["floating_ip_address"], "floating_ip_address")
        sn = next((x for x in subnets if ipaddress.ip_address(ip) in
                   ipaddress.ip_network(x.cidr)), None)
        if sn is None or req.get("subnet_id") not in (None, sn.id):
            raise err("InvalidIpForNetwork", 400, f"IP address {ip} is not a valid IP for any "
                                                  f"of the subnets on the specified network.")
        req.update(subnet_id=sn.id, ip_address=ip)
    if not subnets:
        raise err("ExternalIpAddressExhausted", 400, f"Unable to find any IP address on "
                                                     f"external network {nid}.")
    fid = new_id()
    port = _new_port(s, net, owner=OWNER_FIP, device_id=fid, requests=[req] if req else [],
                     in_use_error="IpAddressInUse", status="N/A")
    alloc = port.fixed_ips[0]
    f = S.FloatingIP(id=fid, project_id=_str(d, "project_id", _str(d, "tenant_id")),
                     description=_str(d, "description"), floating_ip_address=alloc.ip_address,
                     floating_network_id=nid, floating_subnet_id=alloc.subnet_id,
                     floating_port_id=port.id, status="DOWN")
    S.add(s, f)
    if d.get("port_id"):
        _associate(s, f, d["port_id"], d.get("fixed_ip_address"))
    s.flush()
    return fip_dict(s, f)


def update_floatingip(s: Session, fid: str, body: Any) -> dict:
    d = body_of(body, "floatingip")
    f = _must(s, "floatingip", fid, lock=True)
    _check_keys(d, {"port_id", "fixed_ip_address", "description", "qos_policy_id"},
                "floatingip")
    _ignored_ok(d, "qos_policy_id", (None,))
    if "description" in d:
        f.description = _str(d, "description")
    if "port_id" in d or "fixed_ip_address" in d:
        before = (f.fixed_port_id, f.fixed_ip_address)
        pid = d.get("port_id", f.fixed_port_id) if "port_id" in d else f.fixed_port_id
        if pid is None:
            if d.get("fixed_ip_address"):
                raise bad("Bad floatingip request: fixed_ip_address needs a port_id.")
            f.fixed_port_id = f.fixed_ip_address = f.router_id = None
        else:
            _associate(s, f, pid, d.get("fixed_ip_address"))
        if (f.fixed_port_id, f.fixed_ip_address) != before:
            f.status = "DOWN"  # until the agent has programmed the change
    S.touch(f)
    s.flush()
    return fip_dict(s, f)


def delete_floatingip(s: Session, fid: str) -> None:
    f = _must(s, "floatingip", fid, lock=True)
    port = S.get(s, S.Port, f.floating_port_id)
    S.delete(s, f)
    if port is not None:
        S.delete(s, port)


CREATE = {"network": create_network, "subnet": create_subnet, "port": create_port,
          "router": create_router, "floatingip": create_floatingip}
UPDATE = {"network": update_network, "subnet": update_subnet, "port": update_port,
          "router": update_router, "floatingip": update_floatingip}
DELETE = {"network": delete_network, "subnet": delete_subnet, "port": delete_port,
          "router": delete_router, "floatingip": delete_floatingip}


# ---------------------------------------------------------------------------------------
# The agent's view: rows -> model.State, and statuses back

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
                                                     for p in x.allocation_pools))
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
                             device_owner=p.device_owner, device_id=p.device_id)
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


# ---------------------------------------------------------------------------------------
# JSON for a remote agent

def state_to_json(state: M.State) -> dict:
    from dataclasses import asdict
    return {k: {i: asdict(v) for i, v in getattr(state, k).items()}
            for k in ("networks", "subnets", "ports", "routers", "floatingips")}


def state_from_json(doc: dict) -> M.State:
    def tup(x):
        return tuple(tuple(i) if isinstance(i, list) else i for i in x)
    nets = {i: M.Network(**v) for i, v in doc["networks"].items()}
    subs = {i: M.Subnet(**{**v, "allocation_pools": tup(v["allocation_pools"])})
            for i, v in doc["subnets"].items()}
    ports = {i: M.Port(**{**v, "fixed_ips": tup(v["fixed_ips"])}) for i, v in doc["ports"].items()}
    routers = {i: M.Router(**{**v, "gateway": M.Gateway(**v["gateway"]) if v["gateway"] else None,
                              "interfaces": tuple(M.Interface(**x) for x in v["interfaces"]),
                              "routes": tup(v.get("routes", ()))})
               for i, v in doc["routers"].items()}
    fips = {i: M.FloatingIP(**v) for i, v in doc["floatingips"].items()}
    return M.State(nets, subs, ports, routers, fips)
