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

from ..client import Client
from ..core.document import _get
from ..core.errors import NeutronError
from ..service.security_groups import _rule_key
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

    def note(self, what: str, label: str) -> None:
        getattr(self, what).append(label)


def _by_name(c: Client, kind: str, name: str) -> dict | None:
    found = c.list(kind, name=name)
    if len(found) > 1:
        raise NeutronError(f"More than one {kind} is named {name!r}: names must be unique for "
                           "apply", "Conflict", 409)
    return found[0] if found else None


def _diff(have: dict, want: dict) -> dict:
    def same(k, v):  # a port's groups are a set
        return sorted(have.get(k) or []) == sorted(v) if k == "security_groups" else \
            have.get(k) == v
    return {k: v for k, v in want.items() if not same(k, v)}


KEYS = {"networks", "subnets", "ports", "routers", "floatingips", "security_groups"}
RULE_KEYS = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max",
             "remote_ip_prefix", "remote_address_group_id", "description")


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
        have.add(_rule_key(rule, sg_id))
        res.note("created", label)


def apply_document(c: Client, doc: dict) -> ApplyResult:
    if not isinstance(doc, dict):
        raise NeutronError("A desired-state document must be a mapping")
    unknown = set(doc) - KEYS
    if unknown:
        raise NeutronError(f"Unknown top-level keys: {', '.join(sorted(unknown))}")
    res = ApplyResult(ids={k: {} for k in ("network", "subnet", "port", "router",
                                           "security_group")})

    def ref(kind: str, value: str | None) -> str | None:
        if value is None:
            return None
        if value in res.ids[kind]:
            return res.ids[kind][value]
        return c.find(kind, value)["id"]

    def ensure(kind: str, name: str, create: dict, mutable: dict) -> dict:
        have = _by_name(c, kind, name)
        if have is None:
            obj = c.create(kind, name=name, **create)
            res.note("created", f"{kind} {name}")
        else:
            changes = _diff(have, mutable)
            if changes:
                obj = c.update(kind, have["id"], **changes)
                res.note("updated", f"{kind} {name}")
            else:
                obj = have
                res.note("unchanged", f"{kind} {name}")
        if kind in res.ids:
            res.ids[kind][name] = obj["id"]
        return obj

    def name_of(kind: str, d: dict) -> str:
        if not isinstance(d, dict) or not d.get("name"):
            raise NeutronError(f"apply through the API needs a name for each {kind}: {d!r}")
        return d["name"]

    for d in doc.get("networks") or []:
        ext = bool(_get(d, "router:external", "external", default=False))
        create = {"router:external": ext}
        for key, alias in (("provider:network_type", "network_type"),
                           ("provider:physical_network", "physical_network"),
                           ("provider:segmentation_id", "segmentation_id")):
            v = _get(d, key, alias)
            if v is not None:
                create[key] = v
        mutable = {k: d[k] for k in ("mtu", "admin_state_up", "description") if k in d}
        ensure("network", name_of("network", d), {**create, **mutable}, mutable)
    for d in doc.get("subnets") or []:
        create = {"network_id": ref("network", _get(d, "network", "network_id")),
                  "cidr": d.get("cidr"), "ip_version": d.get("ip_version") or _version(d)}
        for k in ("gateway_ip", "allocation_pools", "enable_dhcp", "dns_nameservers",
                  "ipv6_ra_mode", "ipv6_address_mode"):
            if k in d:
                create[k] = d[k]
        mutable = {k: d[k] for k in ("enable_dhcp", "dns_nameservers", "description") if k in d}
        ensure("subnet", name_of("subnet", d), create, mutable)
    groups = doc.get("security_groups") or []
    for d in groups:
        mutable = {k: d[k] for k in ("description", "stateful") if k in d}
        ensure("security_group", name_of("security group", d), mutable, mutable)
    for d in groups:  # after every group exists: a rule may name any as its remote group
        _apply_rules(c, res, d, ref)
    for d in doc.get("ports") or []:
        net = ref("network", _get(d, "network", "network_id"))
        fixed = []
        for f in d.get("fixed_ips") or ([{"ip_address": d["fixed_ip"]}] if "fixed_ip" in d else []):
            item = {}
            if _get(f, "subnet", "subnet_id"):
                item["subnet_id"] = ref("subnet", _get(f, "subnet", "subnet_id"))
            if f.get("ip_address"):
                item["ip_address"] = f["ip_address"]
            fixed.append(item)
        create = {"network_id": net, "device_owner": d.get("device_owner", "compute:floatip")}
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
        port = ensure("port", name_of("port", d), {**create, **mutable}, mutable)
        want_ips = {f["ip_address"] for f in fixed if f.get("ip_address")}
        # addresses the API adds by itself (EUI-64 on SLAAC subnets) are not the file's to name
        auto = {s["id"] for s in c.list("subnet", network_id=net)
                if s.get("ipv6_address_mode") in ("slaac", "dhcpv6-stateless")}
        have_ips = {f["ip_address"] for f in port["fixed_ips"] if f["subnet_id"] not in auto}
        if want_ips and want_ips != have_ips:
            c.update("port", port["id"], fixed_ips=[f for f in fixed])
            res.note("updated", f"port {port['name']} fixed_ips")
    for d in doc.get("routers") or []:
        name = name_of("router", d)
        g = _get(d, "external_gateway_info", "external_gateway")
        gw = None
        if g:
            gw = {"network_id": ref("network", _get(g, "network", "network_id")),
                  "enable_snat": bool(g.get("enable_snat", True))}
            ips = g.get("external_fixed_ips") or ([{"ip_address": g["ip_address"]}]
                                                  if g.get("ip_address") else [])
            if ips:
                gw["external_fixed_ips"] = [
                    {k: (ref("subnet", v) if k == "subnet_id" else v) for k, v in x.items()}
                    for x in ips]
        router = _by_name(c, "router", name)
        body = {"admin_state_up": bool(d.get("admin_state_up", True))}
        if router is None:
            router = c.create("router", name=name, external_gateway_info=gw, **body)
            res.note("created", f"router {name}")
        else:
            changes = _diff(router, body)
            have = router.get("external_gateway_info")
            if _gateway_differs(have, gw):
                changes["external_gateway_info"] = gw
            if changes:
                router = c.update("router", router["id"], **changes)
                res.note("updated", f"router {name}")
            else:
                res.note("unchanged", f"router {name}")
        res.ids["router"][name] = router["id"]
        want = []
        for i in d.get("interfaces") or []:
            i = {"subnet": i} if isinstance(i, str) else i
            want.append(ref("subnet", _get(i, "subnet", "subnet_id")))
        have = {}
        for p in c.list("port", device_id=router["id"], device_owner="network:router_interface"):
            for f in p["fixed_ips"]:
                have[f["subnet_id"]] = p["id"]
        for sid in want:
            if sid not in have:
                c.add_interface(router["id"], subnet_id=sid)
                res.note("updated", f"router {name} interface {sid}")
        for sid, pid in have.items():
            if sid not in want:
                c.remove_interface(router["id"], port_id=pid)
                res.note("updated", f"router {name} interface {sid} removed")
    for d in doc.get("floatingips") or []:
        addr = _get(d, "floating_ip_address", "address")
        port_id = ref("port", _get(d, "port", "port_id"))
        net = _get(d, "floating_network", "floating_network_id")
        fixed = d.get("fixed_ip_address")
        existing = c.list("floatingip", floating_ip_address=addr) if addr else []
        if existing:
            f = existing[0]
            changes = {}
            if f["port_id"] != port_id or (fixed and f["fixed_ip_address"] != fixed):
                changes["port_id"] = port_id
                if fixed:
                    changes["fixed_ip_address"] = fixed
            if changes:
                c.update("floatingip", f["id"], **changes)
                res.note("updated", f"floating IP {addr}")
            else:
                res.note("unchanged", f"floating IP {addr}")
            _apply_forwardings(c, res, f, d.get("port_forwardings"), ref)
            continue
        if net is not None:
            net_id = ref("network", net)
        else:
            net_id = _external_network_for(c, addr, port_id)
        body = {"floating_network_id": net_id}
        if addr:
            body["floating_ip_address"] = addr
        if port_id:
            body["port_id"] = port_id
        if fixed:
            body["fixed_ip_address"] = fixed
        f = c.create("floatingip", **body)
        res.note("created", f"floating IP {f['floating_ip_address']}")
        _apply_forwardings(c, res, f, d.get("port_forwardings"), ref)
    return res


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
        c.request("POST", path, json={"port_forwarding": body})
        keep.add(key)
        res.note("created", label)
    for key, x in have.items():
        if key not in keep:
            c.request("DELETE", f"{path}/{x['id']}")
            res.note("updated", f"port forwarding {f['floating_ip_address']} removed "
                     f"{key[0]}/{key[1]}")


def _gateway_differs(have: dict | None, want: dict | None) -> bool:
    if (have is None) != (want is None):
        return True
    if have is None:
        return False
    if have["network_id"] != want["network_id"] or have["enable_snat"] != want["enable_snat"]:
        return True
    want_ips = {x.get("ip_address") for x in want.get("external_fixed_ips", [])} - {None}
    return bool(want_ips) and want_ips != {x["ip_address"] for x in have["external_fixed_ips"]}


def _external_network_for(c: Client, addr: str | None, port_id: str | None = None) -> str:
    """The external network a floating IP belongs on: the gateway network of the router that
    serves the port, else the external network whose subnet holds the address."""
    candidates = c.list("network", **{"router:external": "True"})
    if port_id:
        for f in c.show("port", port_id)["fixed_ips"]:
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
