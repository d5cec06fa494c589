"""The cross-object half of ``apply FILE``'s check: the file's objects as apply would create
them, beside the API's objects, read by the local path's loader and checked by its validator
(``core.validate``). Only the problems of the file's own objects are reported: the API's
objects were the API's to accept."""
from __future__ import annotations

import ipaddress

from ..core.document import parse
from ..core.errors import InvalidState
from ..core.model import stable_id
from ..core.validate import problems

# ports the API makes for routers and floating IPs: their addresses are the routers' here
ROUTER_OWNED = ("network:router_interface", "network:router_gateway", "network:floatingip",
                "network:router_interface_distributed", "network:ha_router_replicated_interface")


def _network(n: dict) -> dict:
    ext = bool(n.get("router:external"))
    return {"id": n["id"], "name": n.get("name") or "", "router:external": ext,
            "provider:network_type": n.get("provider:network_type") or
            ("flat" if ext else "local"),
            "provider:physical_network": n.get("provider:physical_network"),
            "provider:segmentation_id": n.get("provider:segmentation_id"),
            "mtu": n.get("mtu") or 1500}


def _subnet(s: dict, have: dict | None = None) -> dict:
    have = have or {}
    cidr = str(s.get("cidr"))
    out = {"id": s["id"], "name": s.get("name") or "", "network_id": s.get("network_id"),
           "cidr": cidr, "ip_version": s.get("ip_version"),
           "ipv6_ra_mode": s.get("ipv6_ra_mode"), "ipv6_address_mode": s.get("ipv6_address_mode")}
    if "gateway_ip" in s:
        out["gateway_ip"] = s["gateway_ip"]
    elif "gateway_ip" in have:
        out["gateway_ip"] = have["gateway_ip"]
    else:  # the API's default: the first address
        try:
            net = ipaddress.ip_network(cidr)
            out["gateway_ip"] = str(net.network_address + 1) if net.num_addresses > 1 else None
        except ValueError:
            out["gateway_ip"] = None
    pools = s.get("allocation_pools") or have.get("allocation_pools")
    if pools:
        out["allocation_pools"] = pools
    return out


def _fixed(ips) -> list[dict]:
    return [{k: v for k, v in f.items() if k in ("subnet_id", "ip_address") and v}
            for f in ips or [] if isinstance(f, dict) and f.get("ip_address")]


def cross_check(p, ref, made: list, snapshot: dict[str, list[dict]]) -> None:
    own: dict[str, set[str]] = {}
    names: dict[str, str] = {}
    mine = {k: {ref.planned.get(k, {}).get(name) for k2, _, name, _, _ in made if k2 == k}
            for k in ("network", "subnet", "port", "router")}
    doc = {"networks": [], "subnets": [], "ports": [], "routers": [], "floatingips": []}
    for n in snapshot.get("network", []):
        if n["id"] not in mine["network"]:
            doc["networks"].append(_network(n))
    api_subnets = {s["id"]: s for s in snapshot.get("subnet", [])}
    for s in api_subnets.values():
        if s["id"] not in mine["subnet"]:
            doc["subnets"].append(_subnet(s))
    for q in snapshot.get("port", []):
        if q["id"] not in mine["port"] and q.get("device_owner") not in ROUTER_OWNED:
            doc["ports"].append({"id": q["id"], "name": q.get("name") or "",
                                 "network_id": q["network_id"], "device_owner":
                                 q.get("device_owner") or "", "mac_address": q["mac_address"],
                                 "fixed_ips": _fixed(q.get("fixed_ips"))})
    itfs: dict[str, list[dict]] = {}
    for q in snapshot.get("port", []):
        if q.get("device_owner") == "network:router_interface":
            for f in _fixed(q.get("fixed_ips")):
                itfs.setdefault(q["device_id"], []).append({**f, "port_id": q["id"]})
    api_routers = {r["id"]: r for r in snapshot.get("router", [])}
    for r in api_routers.values():
        if r["id"] not in mine["router"]:
            doc["routers"].append(_router(r, itfs.get(r["id"], [])))
    file_fips = {body.get("floating_ip_address") for k, _, _, body, _ in made
                 if k == "floatingip"}
    for f in snapshot.get("floatingip", []):
        if f["floating_ip_address"] not in file_fips:
            doc["floatingips"].append({k: f.get(k) for k in (
                "id", "floating_ip_address", "floating_network_id", "port_id",
                "fixed_ip_address")})
    by_id = {o["id"]: o for objs in snapshot.values() for o in objs if "id" in o}
    gateways = []
    # new subnets a pool gives their CIDR, and their ports and floating IPs: not known before
    pooled: set[str] = set()
    pooled_nets: set[str] = set()
    for kind, where, name, body, extra in made:
        rid = ref.planned.get(kind, {}).get(name) if name else None
        if kind in ("subnet", "port") and body.get("network_id") is None:
            continue  # its network is not found: said already
        if kind == "network":
            doc["networks"].append(_network({**by_id.get(rid, {}), **body, "id": rid}))
        elif kind == "subnet":
            if body.get("cidr") is None and "subnetpool_id" in body:
                if rid not in api_subnets:
                    pooled.add(rid)
                    pooled_nets.add(body.get("network_id"))
                    continue
                body = {**body, "cidr": api_subnets[rid]["cidr"]}
            doc["subnets"].append(_subnet({**body, "id": rid}, api_subnets.get(rid)))
        elif kind == "port":
            fixed = _fixed(body.get("fixed_ips")) or _fixed(by_id.get(rid, {}).get("fixed_ips"))
            fixed = [f for f in fixed if f.get("subnet_id") not in pooled]
            if not fixed and body.get("network_id") in pooled_nets:
                pooled.add(rid)
                continue
            doc["ports"].append({"id": rid, "name": name, "network_id": body.get("network_id"),
                                 "device_owner": body.get("device_owner") or "",
                                 "fixed_ips": fixed})
        elif kind == "router":
            extra = {**extra, "interfaces": [i for i in extra.get("interfaces", [])
                                             if i not in pooled]}
            r = _router({**body, "id": rid}, [], api_routers.get(rid), itfs.get(rid, []),
                        extra, doc["subnets"])
            doc["routers"].append(r)
            if r.get("external_gateway_info") and \
                    not r["external_gateway_info"].get("external_fixed_ips"):
                gateways.append(r["external_gateway_info"])
        elif kind == "floatingip":
            if not body.get("floating_ip_address") or body.get("port_id") in pooled:
                continue  # the API picks it: nothing of it to check before
            rid = next((f["id"] for f in snapshot.get("floatingip", []) if
                        f["floating_ip_address"] == body["floating_ip_address"]), None) or \
                stable_id("floatingip", str(body["floating_ip_address"]))
            doc["floatingips"].append({"id": rid, **{k: body.get(k) for k in (
                "floating_ip_address", "floating_network_id", "port_id", "fixed_ip_address")}})
        own.setdefault(kind, set()).add(rid)
        names[rid] = f"{kind.replace('_', ' ')} {name}"
    _gateway_addresses(doc, gateways)
    _fip_networks(doc, own.get("floatingip", set()))
    _overlaps(p, doc, own.get("subnet", set()), names)
    for kind in ("network", "subnet", "port", "router"):
        for o in doc[kind + "s"]:
            if o.get("name"):
                names.setdefault(o["id"], f"{kind} {o['name']}")
    try:
        state = parse(doc)
    except InvalidState as e:
        for x in e.errors:
            p.add("", _named(x.message, names))
        return
    for (kind, oid), errs in problems(state).items():
        if kind == "network" or oid not in own.get(kind, ()):
            continue  # a network's own checks are the API's (its types, its VLANs)
        for x in errs:
            p.add(names.get(oid, kind), f"{x.type}: {_named(x.message, names)}")


def _fip_networks(doc: dict, own: set) -> None:
    """A floating IP of the file without its network is on the gateway network of the router
    that serves its port, as apply finds it (``_external_network_for``)."""
    ports = {q["id"]: q for q in doc["ports"]}
    subnets = {s["id"]: s for s in doc["subnets"]}
    for f in doc["floatingips"]:
        if f["id"] not in own or f.get("floating_network_id") or not f.get("port_id"):
            continue
        port = ports.get(f["port_id"], {})
        mine = {x.get("subnet_id") or next(
            (s["id"] for s in subnets.values() if s["network_id"] == port.get("network_id")
             and _holds(s["cidr"], x.get("ip_address"))), None)
            for x in port.get("fixed_ips", [])}
        for r in doc["routers"]:
            gw = r.get("external_gateway_info") or {}
            if gw.get("network_id") and mine & {i.get("subnet_id") for i in r["interfaces"]} \
                    and any(s["network_id"] == gw["network_id"] and
                            _holds(s["cidr"], f["floating_ip_address"])
                            for s in subnets.values()):
                f["floating_network_id"] = gw["network_id"]
                break


def _holds(cidr: str, ip) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)
    except (ValueError, TypeError):
        return False


def _overlaps(p, doc: dict, own: set, names: dict[str, str]) -> None:
    """The API's refusal of a subnet overlapping another of its network (service.subnets)."""
    seen = []
    for s in doc["subnets"]:
        try:
            cidr = ipaddress.ip_network(s["cidr"])
        except ValueError:
            continue  # the schema check named it
        if s["id"] in own:
            for other_id, net_id, other in seen:
                if net_id == s["network_id"] and other.overlaps(cidr):
                    p.add(names.get(s["id"], "subnet"), _named(
                        f"InvalidInput: Invalid input for operation: Requested subnet with "
                        f"cidr: {cidr} for network: {net_id} overlaps with another subnet "
                        f"({other_id} {other}).", names))
                    break
        seen.append((s["id"], s["network_id"], cidr))


def _named(message: str, names: dict[str, str]) -> str:
    """Ids in a message as the names the user wrote."""
    for oid, label in names.items():
        if oid and oid in message:
            message = message.replace(oid, label.split(" ", 2 if label.startswith(
                "security group") else 1)[-1])
    return message


def _router(r: dict, itfs_api: list[dict], have: dict | None = None,
            have_itfs: list[dict] | None = None, extra: dict | None = None,
            subnets: list[dict] | None = None) -> dict:
    """A router in the loader's form. The file's (``extra``: its interfaces' subnet ids and
    routes): each interface at the address the router has on that subnet, else at the
    subnet's gateway address (what add_router_interface takes)."""
    out = {"id": r["id"], "name": r.get("name") or "",
           "admin_state_up": r.get("admin_state_up", True)}
    g = r.get("external_gateway_info")
    if g and g.get("network_id"):
        gw = {"network_id": g["network_id"], "enable_snat": g.get("enable_snat", True)}
        ips = _fixed(g.get("external_fixed_ips"))
        old = (have or {}).get("external_gateway_info") or {}
        if not ips and old.get("network_id") == g["network_id"]:
            ips = _fixed(old.get("external_fixed_ips"))
        if ips:
            gw["external_fixed_ips"] = ips
        out["external_gateway_info"] = gw
    if extra is None:
        out["interfaces"] = itfs_api
        out["routes"] = r.get("routes") or []
        return out
    gateway_of = {s["id"]: s.get("gateway_ip") for s in subnets or []}
    at = {i["subnet_id"]: i for i in have_itfs or []}
    out["interfaces"] = [at.get(sid) or {"subnet_id": sid, "ip_address": gateway_of.get(sid)}
                         for sid in extra.get("interfaces", []) if sid]
    out["routes"] = extra.get("routes") or []
    return out


def _gateway_addresses(doc: dict, gateways: list[dict]) -> None:
    """A new gateway without a named address gets the first free one of its network's pools,
    as the API would give it, so that what the file names after it is checked against it."""
    used = {f.get("ip_address") for q in doc["ports"] for f in q.get("fixed_ips") or []}
    for r in doc["routers"]:
        g = r.get("external_gateway_info") or {}
        used |= {f.get("ip_address") for f in g.get("external_fixed_ips") or []}
        used |= {i.get("ip_address") for i in r.get("interfaces") or []}
    used |= {f.get("floating_ip_address") for f in doc["floatingips"]}
    for gw in gateways:
        for s in doc["subnets"]:
            if s["network_id"] != gw["network_id"] or ":" in s["cidr"]:
                continue
            free = _first_free(s, used)
            if free:
                used.add(free)
                gw["external_fixed_ips"] = [{"subnet_id": s["id"], "ip_address": free}]
                break


def _first_free(s: dict, used: set) -> str | None:
    try:
        net = ipaddress.ip_network(s["cidr"])
    except ValueError:
        return None
    pools = s.get("allocation_pools") or [{"start": str(net.network_address + 2),
                                           "end": str(net.broadcast_address - 1)}]
    for pool in pools:
        try:
            a, b = ipaddress.ip_address(pool["start"]), ipaddress.ip_address(pool["end"])
        except (ValueError, KeyError, TypeError):
            continue
        n = 0
        while a <= b and n < 4096:
            if str(a) not in used and str(a) != s.get("gateway_ip"):
                return str(a)
            a, n = a + 1, n + 1
    return None
