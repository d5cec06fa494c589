"""``floatip apply FILE`` as an API client, like ``kubectl apply``: each resource of the file
(the same document ``model.load`` reads) is found by name — floating IPs by address — and
created when missing or updated when it differs. The API stays the one source of truth;
the agent that follows it does the kernel work.

Router interfaces converge to the file's list. Nothing else is deleted: resources the file
does not mention are left alone, and so are a security group's rules the file does not list
(a new group keeps the egress rules Neutron gives it; ``floatip security-group rule delete``
removes one). Ports name their groups (``security_groups: [NAME, ...]``) and may set
``port_security_enabled`` and ``allowed_address_pairs``.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Callable

from ..client import Client
from ..core.document import _get
from ..core.errors import NeutronError
from ..service.security_groups import _rule_key
from .apply_check import place
from .apply_extra import apply_extra, converge_sharing, converge_tags, extra_bodies, tagged
from .apply_extra import same as _same
from .security_groups import port_range


def _version(subnet: dict) -> int:
    """A file may leave ip_version out: the CIDR says it (a bad CIDR is the API's to refuse)."""
    try:
        return ipaddress.ip_network(str(subnet.get("cidr")), strict=False).version
    except ValueError:
        return 4


@dataclass
class ApplyResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    ids: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> name -> id
    # what this run changed, in order: (what undoing it does, how); undone in reverse
    undo: list[tuple[str, Callable[[], object]]] = field(default_factory=list)

    def note(self, what: str, label: str) -> None:
        getattr(self, what).append(label)


def _by_name(c: Client, kind: str, name: str) -> dict | None:
    found = c.list(kind, name=name)
    if len(found) > 1:
        raise NeutronError(f"More than one {kind} is named {name!r}: names must be unique for "
                           "apply", "Conflict", 409)
    return found[0] if found else None


def _diff(have: dict, want: dict) -> dict:
    def same(k, v):  # a port's groups and a router's routes are sets
        if k in ("security_groups", "routes"):
            return sorted(map(str, have.get(k) or [])) == sorted(map(str, v or []))
        return _same(k, have.get(k), v)
    return {k: v for k, v in want.items() if not same(k, v)}


KEYS = {"networks", "subnets", "ports", "routers", "floatingips", "security_groups",
        "address_scopes", "subnet_pools", "qos_policies"}
RULE_KEYS = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max",
             "remote_ip_prefix", "remote_address_group_id", "description")


# -- the bodies apply sends, shared with its check (``ref(kind, name)``: the object's id) ------
def network_body(d: dict) -> tuple[dict, dict]:
    create = {"router:external": bool(_get(d, "router:external", "external", default=False))}
    for key, alias in (("provider:network_type", "network_type"),
                       ("provider:physical_network", "physical_network"),
                       ("provider:segmentation_id", "segmentation_id")):
        v = _get(d, key, alias)
        if v is not None:
            create[key] = v
    mutable = {k: d[k] for k in ("mtu", "admin_state_up", "description") if k in d}
    return tagged(d, {**create, **mutable}), mutable


def subnet_body(d: dict, ref) -> tuple[dict, dict]:
    create = {"network_id": ref("network", _get(d, "network", "network_id")),
              "ip_version": d.get("ip_version") or _version(d)}
    pool = _get(d, "subnetpool", "subnetpool_id")
    if pool is not None:  # the pool gives the CIDR (of ``prefixlen``, else its default)
        create["subnetpool_id"] = ref("subnetpool", pool)
    if pool is None or "cidr" in d:
        create["cidr"] = d.get("cidr")
    for k in ("gateway_ip", "allocation_pools", "enable_dhcp", "dns_nameservers",
              "ipv6_ra_mode", "ipv6_address_mode", "description", "prefixlen"):
        if k in d:
            create[k] = d[k]
    mutable = {k: d[k] for k in ("enable_dhcp", "dns_nameservers", "description", "gateway_ip",
                                 "allocation_pools") if k in d}
    return tagged(d, create), mutable


def port_body(d: dict, ref) -> tuple[dict, dict, list[dict]]:
    fixed = []
    for f in d.get("fixed_ips") or ([{"ip_address": d["fixed_ip"]}] if "fixed_ip" in d else []):
        item = {}
        if _get(f, "subnet", "subnet_id"):
            item["subnet_id"] = ref("subnet", _get(f, "subnet", "subnet_id"))
        if f.get("ip_address"):
            item["ip_address"] = f["ip_address"]
        fixed.append(item)
    create = {"network_id": ref("network", _get(d, "network", "network_id")),
              "device_owner": d.get("device_owner", "compute:floatip")}
    if fixed:
        create["fixed_ips"] = fixed
    for k in ("mac_address", "device_id", "admin_state_up", "description"):
        if k in d:
            create[k] = d[k]
    mutable = {k: d[k] for k in ("admin_state_up", "description", "device_id",
                                 "port_security_enabled", "allowed_address_pairs") if k in d}
    if "security_groups" in d:
        mutable["security_groups"] = [ref("security_group", g)
                                      for g in d["security_groups"] or []]
    return tagged(d, {**create, **mutable}), mutable, fixed


def gateway_body(d: dict, ref) -> dict | None:
    g = _get(d, "external_gateway_info", "external_gateway")
    if not g:
        return None
    gw = {"network_id": ref("network", _get(g, "network", "network_id")),
          "enable_snat": bool(g.get("enable_snat", True))}
    if "qos_policy" in g or "qos_policy_id" in g:
        gw["qos_policy_id"] = ref("qos_policy", _get(g, "qos_policy", "qos_policy_id"))
    ips = g.get("external_fixed_ips") or ([{"ip_address": g["ip_address"]}]
                                          if g.get("ip_address") else [])
    if ips:
        gw["external_fixed_ips"] = [
            {("subnet_id" if k in ("subnet", "subnet_id") else k):
             (ref("subnet", v) if k in ("subnet", "subnet_id") else v) for k, v in x.items()}
            for x in ips]
    return gw


def interfaces(d: dict, ref) -> list[str]:
    out = []
    for i in d.get("interfaces") or []:
        i = {"subnet": i} if isinstance(i, str) else i
        out.append(ref("subnet", _get(i, "subnet", "subnet_id")))
    return out


def routes(d: dict) -> list[dict] | None:
    if "routes" not in d:
        return None
    return [{"destination": r.get("destination"), "nexthop": r.get("nexthop")}
            for r in d.get("routes") or []]


def fip_body(d: dict, ref) -> dict:
    body = {"floating_network_id": ref("network", _get(d, "floating_network",
                                                      "floating_network_id"))}
    addr = _get(d, "floating_ip_address", "address")
    if addr:
        body["floating_ip_address"] = addr
    port = ref("port", _get(d, "port", "port_id"))
    if port:
        body["port_id"] = port
    if d.get("fixed_ip_address"):
        body["fixed_ip_address"] = d["fixed_ip_address"]
    if "qos_policy" in d or "qos_policy_id" in d:  # null: none
        body["qos_policy_id"] = ref("qos_policy", _get(d, "qos_policy", "qos_policy_id"))
    return tagged(d, body)


def bodies(doc: dict, ref):
    """(kind, place, name, create body, extra) of every object of ``doc``, for the check
    (``ref(kind, name, place)``)."""
    yield from extra_bodies(doc, ref, place)
    for plural, kind, make in (("networks", "network", lambda d, r: network_body(d)[0]),
                               ("subnets", "subnet", lambda d, r: subnet_body(d, r)[0]),
                               ("security_groups", "security_group",
                                lambda d, r: tagged(d, {k: d[k] for k in ("description",
                                                                          "stateful")
                                                        if k in d})),
                               ("ports", "port", lambda d, r: port_body(d, r)[0])):
        for i, d in enumerate(doc.get(plural) or []):
            where = place(plural, i, d)
            r = (lambda w: lambda k, v: ref(k, v, w))(where)
            body = make(d, r)
            if kind == "security_group":
                for rule in d.get("rules") or []:
                    r("security_group", _get(rule, "remote_group", "remote_group_id"))
            if kind == "port" and "security_groups" in body:
                body["security_groups"] = [g for g in body["security_groups"] if g]
            yield kind, where, d["name"], {"name": d["name"], **body}, {}
    for i, d in enumerate(doc.get("routers") or []):
        where = place("routers", i, d)
        r = (lambda w: lambda k, v: ref(k, v, w))(where)
        body = tagged(d, {"name": d["name"],
                          "admin_state_up": bool(d.get("admin_state_up", True)),
                          "external_gateway_info": gateway_body(d, r)})
        yield "router", where, d["name"], body, {"interfaces": interfaces(d, r),
                                                 "routes": routes(d) or []}
    for i, d in enumerate(doc.get("floatingips") or []):
        where = place("floatingips", i, d)
        body = fip_body(d, (lambda w: lambda k, v: ref(k, v, w))(where))
        yield "floatingip", where, body.get("floating_ip_address") or "", body, {}


def _apply_rules(c: Client, res: ApplyResult, d: dict, ref) -> None:
    """Creates the group's rules the API does not have yet (compared as Neutron compares
    rules: a rule that is already there is a duplicate)."""
    sg_id = res.ids["security_group"][d["name"]]
    have = {_rule_key(r, sg_id) for r in c.list("security_group_rule", security_group_id=sg_id)}
    for r in d.get("rules") or []:
        if not isinstance(r, dict):
            raise NeutronError(f"A security group rule must be a mapping, got {r!r}")
        body = {"security_group_id": sg_id, "direction": "ingress", "ethertype": "IPv4",
                "protocol": None, "port_range_min": None, "port_range_max": None,
                "remote_ip_prefix": None, "remote_group_id": None,
                "remote_address_group_id": None}
        body.update({k: r[k] for k in RULE_KEYS if k in r})
        if "dst_port" in r:  # the CLI's PORT or MIN:MAX
            body["port_range_min"], body["port_range_max"] = port_range(str(r["dst_port"]))
        remote = _get(r, "remote_group", "remote_group_id")
        if remote:
            body["remote_group_id"] = ref("security_group", remote)
        label = f"security group {d['name']} rule {body['direction']} " \
                f"{body['protocol'] or 'any'}" + (f" {body['port_range_min']}"
                                                  if body["port_range_min"] is not None else "")
        if _rule_key(body, sg_id) in have:
            res.note("unchanged", label)
            continue
        rule = c.create("security_group_rule", **{k: v for k, v in body.items()
                                                   if v is not None})
        res.undo.append((f"deleted {label}",
                         lambda rid=rule["id"]: c.delete("security_group_rule", rid)))
        have.add(_rule_key(rule, sg_id))
        res.note("created", label)


def apply_document(c: Client, doc: dict, res: ApplyResult | None = None) -> ApplyResult:
    """Converge the API to ``doc`` (checked already: ``apply_check``). ``res`` collects what
    was done as it is done, so that a failure mid-way can be undone (``rollback``)."""
    if not isinstance(doc, dict):
        raise NeutronError("A desired-state document must be a mapping")
    unknown = set(doc) - KEYS
    if unknown:
        raise NeutronError(f"Unknown top-level keys: {', '.join(sorted(unknown))}")
    res = res if res is not None else ApplyResult()
    res.ids = {k: {} for k in ("network", "subnet", "port", "router", "security_group",
                               "address_scope", "subnetpool", "qos_policy")}

    def ref(kind: str, value: str | None) -> str | None:
        if value is None:
            return None
        if value in res.ids[kind]:
            return res.ids[kind][value]
        return c.find(kind, value)["id"]

    def update(kind: str, rid: str, label: str, have: dict, changes: dict) -> dict:
        obj = c.update(kind, rid, **changes)
        old = {k: have.get(k) for k in changes}
        res.undo.append((f"restored {label}", lambda: c.update(kind, rid, **old)))
        res.note("updated", label)
        return obj

    def ensure(kind: str, name: str, create: dict, mutable: dict, d: dict | None = None
               ) -> dict:
        """Found by name, else made; ``d``: the file's object (its tags)."""
        have = _by_name(c, kind, name)
        label = f"{kind} {name}"
        if have is None:
            obj = c.create(kind, name=name, **create)
            res.undo.append((f"deleted {label}", lambda: c.delete(kind, obj["id"])))
            res.note("created", label)
        else:
            changes = _diff(have, mutable)
            obj = update(kind, have["id"], label, have, changes) if changes else have
            if not changes:
                res.note("unchanged", label)
            converge_tags(c, res, kind, obj, d or {}, label)
        if kind in res.ids:
            res.ids[kind][name] = obj["id"]
        return obj

    apply_extra(c, doc, res, ref, ensure)
    for d in doc.get("networks") or []:
        converge_sharing(c, res, "network", ensure("network", d["name"], *network_body(d), d),
                         d)
    for d in doc.get("subnets") or []:
        ensure("subnet", d["name"], *subnet_body(d, ref), d)
    groups = doc.get("security_groups") or []
    for d in groups:
        mutable = {k: d[k] for k in ("description", "stateful") if k in d}
        ensure("security_group", d["name"], tagged(d, mutable), mutable, d)
    for d in groups:  # after every group exists: a rule may name any as its remote group
        _apply_rules(c, res, d, ref)
    for d in doc.get("ports") or []:
        create, mutable, fixed = port_body(d, ref)
        port = ensure("port", d["name"], create, mutable, d)
        want_ips = {f["ip_address"] for f in fixed if f.get("ip_address")}
        # addresses the API adds by itself (EUI-64 on SLAAC subnets) are not the file's to name
        auto = {s["id"] for s in c.list("subnet", network_id=create["network_id"])
                if s.get("ipv6_address_mode") in ("slaac", "dhcpv6-stateless")}
        have_ips = {f["ip_address"] for f in port["fixed_ips"] if f.get("subnet_id") not in auto}
        if want_ips and want_ips != have_ips:
            update("port", port["id"], f"port {port['name']} fixed_ips", port,
                   {"fixed_ips": list(fixed)})
    for d in doc.get("routers") or []:
        _router(c, res, d, ref, update)
    for d in doc.get("floatingips") or []:
        _floatingip(c, res, d, ref, update)
    return res


def _router(c: Client, res: ApplyResult, d: dict, ref, update) -> None:
    name = d["name"]
    gw = gateway_body(d, ref)
    router = _by_name(c, "router", name)
    body = {"admin_state_up": bool(d.get("admin_state_up", True))}
    label = f"router {name}"
    if router is None:
        router = c.create("router", name=name, external_gateway_info=gw, **tagged(d, body))
        res.undo.append((f"deleted {label}", lambda rid=router["id"]: c.delete("router", rid)))
        res.note("created", label)
    else:
        changes = _diff(router, body)
        if _gateway_differs(router.get("external_gateway_info"), gw):
            changes["external_gateway_info"] = gw
        if changes:
            router = update("router", router["id"], label, router, changes)
        else:
            res.note("unchanged", label)
        converge_tags(c, res, "router", router, d, label)
    rid = res.ids["router"][name] = router["id"]
    want = interfaces(d, ref)
    have = {}
    for p in c.list("port", device_id=rid, device_owner="network:router_interface"):
        for f in p["fixed_ips"]:
            have[f["subnet_id"]] = p["id"]
    names = {v: k for k, v in res.ids["subnet"].items()}
    for sid in want:
        if sid not in have:
            c.add_interface(rid, subnet_id=sid)
            itf = f"{label} interface on subnet {names.get(sid, sid)}"
            res.undo.append((f"removed {itf}",
                             lambda s=sid: c.remove_interface(rid, subnet_id=s)))
            res.note("updated", itf)
    for sid, pid in have.items():
        if sid not in want:
            c.remove_interface(rid, port_id=pid)
            itf = f"{label} interface on subnet {names.get(sid, sid)}"
            res.undo.append((f"re-added {itf}", lambda s=sid: c.add_interface(rid, subnet_id=s)))
            res.note("updated", f"{itf} removed")
    want_routes = routes(d)
    if want_routes is not None and _diff(router, {"routes": want_routes}):
        update("router", rid, f"{label} routes", router, {"routes": want_routes})


def _floatingip(c: Client, res: ApplyResult, d: dict, ref, update) -> None:
    body = fip_body(d, lambda k, v: ref(k, v) if k != "network" else v)
    addr, port_id = body.get("floating_ip_address"), body.get("port_id")
    fixed = body.get("fixed_ip_address")
    if addr:
        existing = c.list("floatingip", floating_ip_address=addr)
    else:  # the API picked its address: the one on the file's port is it
        existing = [f for f in (c.list("floatingip", port_id=port_id) if port_id else [])
                    if fixed in (None, f["fixed_ip_address"])]
    if existing:
        f = existing[0]
        label = f"floating IP {f['floating_ip_address']}"
        changes = {}
        if f["port_id"] != port_id or (fixed and f["fixed_ip_address"] != fixed):
            changes["port_id"] = port_id
            if fixed:
                changes["fixed_ip_address"] = fixed
        if "qos_policy_id" in body and f.get("qos_policy_id") != body["qos_policy_id"]:
            changes["qos_policy_id"] = body["qos_policy_id"]
        if changes:
            update("floatingip", f["id"], label, f, changes)
        else:
            res.note("unchanged", label)
        converge_tags(c, res, "floatingip", f, d, label)
        _apply_forwardings(c, res, f, d.get("port_forwardings"), ref)
        return
    net = body.get("floating_network_id")
    body["floating_network_id"] = ref("network", net) if net is not None else \
        _external_network_for(c, addr, port_id)
    f = c.create("floatingip", **body)
    label = f"floating IP {f['floating_ip_address']}"
    res.undo.append((f"deleted {label}", lambda: c.delete("floatingip", f["id"])))
    res.note("created", label)
    _apply_forwardings(c, res, f, d.get("port_forwardings"), ref)


def _apply_forwardings(c: Client, res: ApplyResult, f: dict, want: list | None, ref) -> None:
    """A floating IP's ``port_forwardings`` as the file lists them (None: left alone):
    matched by protocol and external ports; one that differs is deleted and made again."""
    if want is None:
        return
    path = f"/v2.0/floatingips/{f['id']}/port_forwardings"
    have = {(x["protocol"], x["external_port_range"]): x
            for x in c.request("GET", path)["port_forwardings"]}
    keep = set()
    for w in want:
        body = {"protocol": str(w.get("protocol", "tcp")).lower(),
                "internal_port_id": ref("port", w.get("internal_port_name")
                                        or w.get("internal_port_id"))}
        for side in ("internal", "external"):
            rng = str(w.get(f"{side}_port_range") or w.get(f"{side}_port"))
            body[f"{side}_port_range"] = rng if ":" in rng else f"{rng}:{rng}"
        if w.get("internal_ip_address"):
            body["internal_ip_address"] = w["internal_ip_address"]
        if w.get("description"):
            body["description"] = w["description"]
        key = (body["protocol"], body["external_port_range"])
        x = have.get(key)
        label = f"port forwarding {f['floating_ip_address']} {key[0]}/{key[1]}"
        if x is not None and all(x.get(k) == v for k, v in body.items()):
            keep.add(key)
            res.note("unchanged", label)
            continue
        if x is not None:
            c.request("DELETE", f"{path}/{x['id']}")
        made = c.request("POST", path, json={"port_forwarding": body})["port_forwarding"]
        res.undo.append((f"deleted {label}",
                         lambda pid=made["id"]: c.request("DELETE", f"{path}/{pid}")))
        keep.add(key)
        res.note("created", label)
    for key, x in have.items():
        if key not in keep:
            c.request("DELETE", f"{path}/{x['id']}")
            res.note("updated", f"port forwarding {f['floating_ip_address']} removed "
                     f"{key[0]}/{key[1]}")


def rollback(res: ApplyResult) -> tuple[list[str], list[str]]:
    """Undo what ``res`` did, newest first: (what was undone, what could not be)."""
    done, left = [], []
    for label, undo in reversed(res.undo):
        try:
            undo()
            done.append(label)
        except NeutronError as e:
            left.append(f"{label.split(' ', 1)[1]} ({e.type}: {e.message})")
    res.undo.clear()
    return done, left


def _gateway_differs(have: dict | None, want: dict | None) -> bool:
    if (have is None) != (want is None):
        return True
    if have is None:
        return False
    if have["network_id"] != want["network_id"] or have["enable_snat"] != want["enable_snat"]:
        return True
    if "qos_policy_id" in want and have.get("qos_policy_id") != want["qos_policy_id"]:
        return True
    want_ips = {x.get("ip_address") for x in want.get("external_fixed_ips", [])} - {None}
    return bool(want_ips) and want_ips != {x["ip_address"] for x in have["external_fixed_ips"]}


def _external_network_for(c: Client, addr: str | None, port_id: str | None = None) -> str:
    """The external network a floating IP belongs on: the gateway network of the router that
    serves the port, else the external network whose subnet holds the address."""
    candidates = c.list("network", **{"router:external": "True"})
    if port_id:
        for f in c.show("port", port_id)["fixed_ips"]:
            if not f.get("subnet_id"):
                continue
            for itf in c.list("port", device_owner="network:router_interface",
                              fixed_ips=f"subnet_id={f['subnet_id']}"):
                gw = c.show("router", itf["device_id"]).get("external_gateway_info")
                if gw:
                    candidates.sort(key=lambda n: n["id"] != gw["network_id"])
                    break
    for net in candidates:
        if addr is None:
            return net["id"]
        for sn in c.list("subnet", network_id=net["id"]):
            if ipaddress.ip_address(addr) in ipaddress.ip_network(sn["cidr"]):
                return net["id"]
    raise NeutronError(f"No external network holds floating IP {addr}",
                       "ExternalGatewayForFloatingIPNotFound", 404)
