"""``floatip apply FILE``'s resources beside the core ones: address scopes, subnet pools and
QoS policies (with their bandwidth limit rules), ``tags`` on every object that has them and
``shared_with`` on networks, subnet pools and address scopes (Neutron's ``access_as_shared``
RBAC policies, one per project), ``external_for`` on external networks (``access_as_external``).

Lists the file gives are set exactly as listed (tags, rules, projects); a key the file leaves
out leaves the API's value alone, as with every other attribute apply reads.
"""
from __future__ import annotations

import ipaddress

# the kinds with tags (service.tag_policy.TAGGED), as the client names them
TAGGED = frozenset({"network", "subnet", "port", "router", "floatingip", "security_group",
                    "subnetpool", "qos_policy"})
POL = "/v2.0/qos/policies"


def tagged(d: dict, body: dict) -> dict:
    """``body`` with the file's tags (a create takes them; an update sets them after)."""
    return {**body, "tags": d["tags"]} if "tags" in d else body


def scope_body(d: dict) -> tuple[dict, dict]:
    mutable = {k: d[k] for k in ("shared",) if k in d}
    return {"ip_version": d.get("ip_version", 4), **mutable}, mutable


POOL_MUTABLE = ("description", "prefixes", "default_prefixlen", "min_prefixlen",
                "max_prefixlen", "is_default", "default_quota")


def pool_body(d: dict, ref) -> tuple[dict, dict]:
    mutable = {k: d[k] for k in POOL_MUTABLE if k in d}
    if "address_scope" in d or "address_scope_id" in d:
        mutable["address_scope_id"] = ref("address_scope", d.get("address_scope")
                                          or d.get("address_scope_id"))
    create = {k: d[k] for k in ("shared",) if k in d}
    return tagged(d, {**create, **mutable}), mutable


def policy_body(d: dict) -> tuple[dict, dict]:
    mutable = {k: d[k] for k in ("description", "shared", "is_default") if k in d}
    return tagged(d, dict(mutable)), mutable


def same(k: str, have, want) -> bool:
    """A pool's prefixes as the API keeps them (merged), its lengths as numbers."""
    if k == "prefixes":
        def nets(v):
            try:
                return sorted(map(str, ipaddress.collapse_addresses(
                    ipaddress.ip_network(str(x), strict=False) for x in v or [])))
            except (ValueError, TypeError):
                return v
        return nets(have) == nets(want)
    if k.endswith("prefixlen"):
        return str(have) == str(want)
    return have == want


def converge_tags(c, res, kind: str, obj: dict, d: dict, label: str) -> None:
    if "tags" not in d or kind not in TAGGED:
        return
    want, have = sorted(set(map(str, d["tags"] or []))), sorted(obj.get("tags") or [])
    if want == have:
        return
    c.set_tags(kind, obj["id"], want)
    res.undo.append((f"restored {label} tags",
                     lambda: c.set_tags(kind, obj["id"], have)))
    res.note("updated", f"{label} tags")


def converge_rules(c, res, policy: dict, d: dict) -> None:
    """The policy's bandwidth limit rules as the file lists them, one per direction."""
    if "rules" not in d:
        return
    path = f"{POL}/{policy['id']}/bandwidth_limit_rules"
    have = {r["direction"]: r for r in policy.get("rules") or []
            if r.get("type", "bandwidth_limit") == "bandwidth_limit"}
    label = f"qos policy {policy['name']} bandwidth limit"
    want = set()
    for r in d["rules"] or []:
        body = {"max_kbps": r.get("max_kbps"), "direction": r.get("direction", "egress")}
        if "max_burst_kbps" in r:
            body["max_burst_kbps"] = r["max_burst_kbps"]
        want.add(body["direction"])
        old = have.get(body["direction"])
        what = f"{label} {body['direction']}"
        if old is None:
            made = c.request("POST", path, json={"bandwidth_limit_rule": body})
            rid = (made or {}).get("bandwidth_limit_rule", {}).get("id")
            res.undo.append((f"deleted {what}",
                             lambda rid=rid: c.request("DELETE", f"{path}/{rid}")))
            res.note("created", what)
        elif any(old.get(k) != v for k, v in body.items()):
            c.request("PUT", f"{path}/{old['id']}", json={"bandwidth_limit_rule": body})
            back = {k: old.get(k) for k in body}
            res.undo.append((f"restored {what}", lambda o=old, b=back: c.request(
                "PUT", f"{path}/{o['id']}", json={"bandwidth_limit_rule": b})))
            res.note("updated", what)
        else:
            res.note("unchanged", what)
    for direction, old in have.items():
        if direction not in want:
            c.request("DELETE", f"{path}/{old['id']}")
            back = {k: old[k] for k in ("max_kbps", "max_burst_kbps", "direction")}
            res.undo.append((f"re-created {label} {direction}", lambda b=back: c.request(
                "POST", path, json={"bandwidth_limit_rule": b})))
            res.note("updated", f"{label} {direction} removed")


SHARING = {"shared_with": ("access_as_shared", "shared with"),
           "external_for": ("access_as_external", "external for")}


def converge_sharing(c, res, kind: str, obj: dict, d: dict) -> None:
    """``shared_with: [PROJECT, ...]``: one access_as_shared policy per project (``*``:
    every project, an admin's) on a network, subnet pool or address scope; ``external_for``:
    access_as_external ones (an external network made gets ``*``: the file's list replaces
    it). New entries are made before old ones go, so access is never lost meanwhile."""
    for key, (action, words) in SHARING.items():
        if key in d:
            _converge_rbac(c, res, kind, obj, action, d[key], words)


def _converge_rbac(c, res, kind: str, obj: dict, action: str, projects, words: str) -> None:
    have = {p["target_tenant"]: p for p in c.list("rbac_policy", object_id=obj["id"])
            if p.get("object_type") == kind and p.get("action") == action
            and p.get("object_id") == obj["id"]}
    want = list(dict.fromkeys(map(str, projects or [])))
    label = f"{kind.replace('_', ' ')} {obj['name']} {words}"
    for project in want:
        if project in have:
            res.note("unchanged", f"{label} {project}")
            continue
        made = c.create("rbac_policy", object_type=kind, object_id=obj["id"],
                        action=action, target_tenant=project)
        res.undo.append((f"deleted {label} {project}",
                         lambda pid=made["id"]: c.delete("rbac_policy", pid)))
        res.note("created", f"{label} {project}")
    for project, p in have.items():
        if project not in want:
            c.delete("rbac_policy", p["id"])
            res.undo.append((f"re-made {label} {project}", lambda t=project: c.create(
                "rbac_policy", object_type=kind, object_id=obj["id"],
                action=action, target_tenant=t)))
            res.note("updated", f"{label} {project} removed")


def apply_extra(c, doc: dict, res, ref, ensure) -> None:
    """Address scopes, then the pools in them, then QoS policies: before the networks,
    subnets, floating IPs and gateways that use them."""
    for d in doc.get("address_scopes") or []:
        converge_sharing(c, res, "address_scope",
                         ensure("address_scope", d["name"], *scope_body(d)), d)
    for d in doc.get("subnet_pools") or []:
        converge_sharing(c, res, "subnetpool",
                         ensure("subnetpool", d["name"], *pool_body(d, ref), d), d)
    for d in doc.get("qos_policies") or []:
        converge_rules(c, res, ensure("qos_policy", d["name"], *policy_body(d), d), d)


def extra_bodies(doc: dict, ref, place):
    """(kind, place, name, create body, extra) of the file's scopes, pools and policies
    (``ref(kind, name, place)``)."""
    for plural, kind, make in (("address_scopes", "address_scope",
                                lambda d, r: scope_body(d)[0]),
                               ("subnet_pools", "subnetpool", lambda d, r: pool_body(d, r)[0]),
                               ("qos_policies", "qos_policy", lambda d, r: policy_body(d)[0])):
        for i, d in enumerate(doc.get(plural) or []):
            where = place(plural, i, d)
            body = make(d, lambda k, v, w=where: ref(k, v, w))
            yield kind, where, d["name"], {"name": d["name"], **body}, {}


def rule_problems(d: dict) -> list[str]:
    """A policy's rules: one per direction, a limit each (the API's other refusals: its own)."""
    out, seen = [], set()
    for j, r in enumerate(d.get("rules") or []):
        if not isinstance(r, dict):
            continue
        direction = r.get("direction", "egress")
        if r.get("type", "bandwidth_limit") != "bandwidth_limit":
            out.append(f"rules[{j}]: type {r['type']!r}: only bandwidth_limit rules")
        if "max_kbps" not in r:
            out.append(f"rules[{j}]: a bandwidth limit needs max_kbps")
        if direction in seen:
            out.append(f"rules[{j}]: a second {direction} bandwidth limit (one per direction)")
        seen.add(direction)
    return out

