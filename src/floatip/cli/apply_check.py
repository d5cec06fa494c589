"""``floatip apply FILE`` through the API checks the whole file before any change, as
``apply --local`` does, and lists every problem at once:

- keys: each object's keys are the ones apply reads (a misspelt key is named, with its place
  and the key it probably meant; keys only ``apply --local`` reads are refused too);
- names: every object has one, unique in the file;
- references: each name a file object uses is one of the file's objects or an existing API
  object (by id or unique name);
- each create body through the API's own request schemas (``api.schemas``: CIDRs, pools,
  addresses, modes, as the API would refuse them);
- the file and the API's objects together through the local path's validator
  (``core.validate``): duplicate addresses, addresses outside their subnet, overlapping router
  interfaces, unreachable floating IPs; plus Neutron's overlapping subnets of one network;
- differences apply cannot make (a subnet's CIDR, a network's provider attributes): kubectl's
  "field is immutable".
"""
from __future__ import annotations

import difflib
import ipaddress
import uuid
from dataclasses import dataclass, field

from pydantic import ValidationError

from ..api.errors import from_validation
from ..api.schemas import SCHEMAS
from ..api.schemas.qos import CreatePolicyRequest, CreateRuleRequest
from ..api.schemas.subnetpools import CreateAddressScopeRequest, CreateSubnetPoolRequest
from ..core.document import _get
from ..core.model import stable_id
from .apply_extra import rule_problems
from .apply_state import cross_check

KINDS = (("address_scopes", "address_scope"), ("subnet_pools", "subnetpool"),
         ("qos_policies", "qos_policy"), ("networks", "network"), ("subnets", "subnet"),
         ("security_groups", "security_group"),
         ("ports", "port"), ("routers", "router"), ("floatingips", "floatingip"))
_PROVIDER = ("provider:network_type", "provider:physical_network", "provider:segmentation_id")
KEYS = {
    "network": {"name", "description", "admin_state_up", "mtu", "router:external", "external",
                *_PROVIDER, "network_type", "physical_network", "segmentation_id", "tags",
                "shared_with", "external_for"},
    "subnet": {"name", "description", "network", "network_id", "cidr", "ip_version",
               "gateway_ip", "allocation_pools", "enable_dhcp", "dns_nameservers",
               "ipv6_ra_mode", "ipv6_address_mode", "tags", "subnetpool", "subnetpool_id",
               "prefixlen"},
    "port": {"name", "description", "network", "network_id", "fixed_ip", "fixed_ips",
             "mac_address", "device_id", "device_owner", "admin_state_up",
             "port_security_enabled", "allowed_address_pairs", "security_groups", "tags"},
    "router": {"name", "external_gateway_info", "external_gateway", "interfaces",
               "admin_state_up", "routes", "tags"},
    "floatingip": {"floating_ip_address", "address", "port", "port_id", "floating_network",
                   "floating_network_id", "fixed_ip_address", "port_forwardings", "tags",
                   "qos_policy", "qos_policy_id"},
    "security_group": {"name", "description", "stateful", "rules", "tags"},
    "address_scope": {"name", "ip_version", "shared", "shared_with"},
    "subnetpool": {"name", "description", "prefixes", "default_prefixlen", "min_prefixlen",
                   "max_prefixlen", "shared", "is_default", "default_quota", "address_scope",
                   "address_scope_id", "tags", "shared_with"},
    "qos_policy": {"name", "description", "shared", "is_default", "rules", "tags"},
    "qos_rule": {"type", "max_kbps", "max_burst_kbps", "direction"},
    "gateway": {"network", "network_id", "ip_address", "external_fixed_ips", "enable_snat",
                "qos_policy", "qos_policy_id"},
    "fixed_ip": {"subnet", "subnet_id", "ip_address"},
    "interface": {"subnet", "subnet_id"},
    "pool": {"start", "end"},
    "route": {"destination", "nexthop"},
    "pair": {"ip_address", "mac_address"},
    "rule": {"direction", "ethertype", "protocol", "port_range_min", "port_range_max",
             "remote_ip_prefix", "remote_address_group_id", "description", "dst_port",
             "remote_group", "remote_group_id"},
}
# read by ``apply --local`` (which makes its own ids and MACs), not by the API's apply
LOCAL_ONLY = {"network": {"id", "local_vlan"}, "subnet": {"id"}, "port": {"id"},
              "router": {"id"}, "floatingip": {"id", "router"},
              "gateway": {"port_id", "mac_address"},
              "interface": {"ip_address", "port_id", "mac_address"}}

@dataclass
class Problems:
    errors: list[str] = field(default_factory=list)

    def add(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}" if where else message)


def place(plural: str, i: int, d) -> str:
    name = d.get("name") or _get(d, "floating_ip_address", "address") \
        if isinstance(d, dict) else None
    return f"{plural}[{i}]" + (f" ({name})" if name else "")


def check_keys(p: Problems, kind: str, d, where: str) -> bool:
    """False when ``d`` is not a mapping (nothing more to check in it)."""
    if not isinstance(d, dict):
        p.add(where, f"must be a mapping, got {d!r}")
        return False
    for k in d:
        if k in KEYS[kind]:
            continue
        if k in LOCAL_ONLY.get(kind, ()):
            p.add(where, f"key {k!r} is read by `apply --local` only; remove it to apply "
                         "through the API")
            continue
        close = difflib.get_close_matches(str(k), sorted(KEYS[kind]), n=1)
        p.add(where, f"unknown key {k!r}" + (f"; did you mean {close[0]!r}?" if close else
                                               f" (known: {', '.join(sorted(KEYS[kind]))})"))
    return True


def _items(p: Problems, d: dict, key: str, where: str) -> list:
    v = d.get(key)
    if v is None:
        return []
    if not isinstance(v, list):
        p.add(where, f"{key} must be a list, got {v!r}")
        return []
    return v


def check_structure(doc, p: Problems) -> None:
    """Keys, nested keys and names of every object."""
    if not isinstance(doc, dict):
        p.add("", "A desired-state document must be a mapping")
        return
    known = {plural for plural, _ in KINDS}
    for k in doc:
        if k not in known:
            close = difflib.get_close_matches(str(k), sorted(known), n=1)
            p.add("top level", f"unknown key {k!r}" + (f"; did you mean {close[0]!r}?"
                                                        if close else ""))
    for plural, kind in KINDS:
        v = doc.get(plural)
        if v is not None and not isinstance(v, list):
            p.add(plural, f"must be a list, got {v!r}")
            continue
        names: dict[str, int] = {}
        for i, d in enumerate(v or []):
            where = place(plural, i, d)
            if not check_keys(p, kind, d, where):
                continue
            if kind != "floatingip":
                if not d.get("name") or not isinstance(d["name"], str):
                    p.add(where, f"apply through the API needs a name for each {kind}")
                elif d["name"] in names:
                    p.add(where, f"name {d['name']!r} is also {plural}[{names[d['name']]}]'s: "
                                 "names must be unique for apply")
                else:
                    names[d["name"]] = i
            _nested(p, kind, d, where)


def _nested(p: Problems, kind: str, d: dict, where: str) -> None:
    if kind == "subnet":
        for j, x in enumerate(_items(p, d, "allocation_pools", where)):
            check_keys(p, "pool", x, f"{where}.allocation_pools[{j}]")
    elif kind == "port":
        for j, x in enumerate(_items(p, d, "fixed_ips", where)):
            check_keys(p, "fixed_ip", x, f"{where}.fixed_ips[{j}]")
        for j, x in enumerate(_items(p, d, "allowed_address_pairs", where)):
            check_keys(p, "pair", x, f"{where}.allowed_address_pairs[{j}]")
        _items(p, d, "security_groups", where)
    elif kind == "router":
        g = _get(d, "external_gateway_info", "external_gateway")
        if g is not None and check_keys(p, "gateway", g, f"{where}.external_gateway_info"):
            for j, x in enumerate(_items(p, g, "external_fixed_ips", where)):
                check_keys(p, "fixed_ip", x, f"{where}.external_gateway_info."
                                             f"external_fixed_ips[{j}]")
        for j, x in enumerate(_items(p, d, "interfaces", where)):
            if not isinstance(x, str):
                check_keys(p, "interface", x, f"{where}.interfaces[{j}]")
        for j, x in enumerate(_items(p, d, "routes", where)):
            check_keys(p, "route", x, f"{where}.routes[{j}]")
    elif kind == "security_group":
        for j, x in enumerate(_items(p, d, "rules", where)):
            check_keys(p, "rule", x, f"{where}.rules[{j}]")
    elif kind == "qos_policy":
        for j, x in enumerate(_items(p, d, "rules", where)):
            check_keys(p, "qos_rule", x, f"{where}.rules[{j}]")
        for e in rule_problems(d):
            p.add(where, e)
    if kind in ("network", "subnetpool", "address_scope"):
        for key in ("shared_with", "external_for"):
            for j, x in enumerate(_items(p, d, key, where)):
                if not _project(x):
                    p.add(f"{where}.{key}[{j}]", f"must be a project id or '*', got {x!r}")
    if kind == "network" and "external_for" in d and \
            not _get(d, "router:external", "external", default=False):
        p.add(where, "external_for needs external: true (its entries make it external)")


def _project(x) -> bool:
    """A project id (a UUID, dashes or not) or ``*``, as the API takes a target."""
    if x == "*":
        return True
    try:
        return isinstance(x, str) and bool(uuid.UUID(x))
    except ValueError:
        return False


class Resolver:
    """Names to ids: the file's objects (the API's id when one of that name exists, else an id
    made for the check), else the API's objects by id or unique name."""

    def __init__(self, doc: dict, snapshot: dict[str, list[dict]], p: Problems):
        self.snapshot, self.p = snapshot, p
        self.by_id = {k: {o["id"]: o for o in objs} for k, objs in snapshot.items()}
        self.by_name: dict[str, dict[str, list[dict]]] = {}
        for k, objs in snapshot.items():
            for o in objs:
                if o.get("name"):
                    self.by_name.setdefault(k, {}).setdefault(o["name"], []).append(o)
        self.planned: dict[str, dict[str, str]] = {}   # kind -> file name -> id
        self.existing: dict[str, dict[str, dict]] = {}  # kind -> file name -> API object
        for plural, kind in KINDS:
            if kind == "floatingip":
                continue
            for d in doc.get(plural) or []:
                if isinstance(d, dict) and isinstance(d.get("name"), str):
                    have = self.by_name.get(kind, {}).get(d["name"], [])
                    if len(have) > 1:
                        p.add(f"{kind} {d['name']}", f"more than one {kind} in the API is "
                                                     "named so: names must be unique for apply")
                    if have:
                        self.existing.setdefault(kind, {})[d["name"]] = have[0]
                    self.planned.setdefault(kind, {})[d["name"]] = \
                        have[0]["id"] if have else stable_id(f"apply-{kind}", d["name"])

    def __call__(self, kind: str, value, where: str) -> str | None:
        if value is None:
            return None
        value = str(value)
        if value in self.planned.get(kind, {}):
            return self.planned[kind][value]
        if value in self.by_id.get(kind, {}):
            return value
        found = self.by_name.get(kind, {}).get(value, [])
        if len(found) == 1:
            return found[0]["id"]
        label = kind.replace("_", " ")
        if found:
            self.p.add(where, f"more than one {label} is named {value!r}; use its id")
            return None
        names = set(self.planned.get(kind, {})) | set(self.by_name.get(kind, {}))
        close = difflib.get_close_matches(value, sorted(names), n=1)
        self.p.add(where, f"{label} {value!r} is neither in the file nor in the API"
                          + (f"; did you mean {close[0]!r}?" if close else ""))
        return None


_UNKNOWN = "00000000-0000-4000-8000-000000000000"


def _stand_in(v):
    """An id apply finds later (a floating IP's network) or could not resolve (reported
    already) as a well-formed one, so the schema checks the rest."""
    if isinstance(v, dict):
        return {k: _UNKNOWN if x is None and k.endswith("_id") else _stand_in(x)
                for k, x in v.items()}
    return [_stand_in(x) for x in v] if isinstance(v, list) else v


EXTRA_SCHEMAS = {"address_scope": ("address_scope", CreateAddressScopeRequest),
                 "subnetpool": ("subnetpool", CreateSubnetPoolRequest),
                 "qos_policy": ("policy", CreatePolicyRequest)}


def schema_check(p: Problems, kind: str, body: dict, where: str) -> None:
    """The API's own request schema for a create body (its first refusal, as it words it)."""
    key, schema = EXTRA_SCHEMAS.get(kind) or (kind, SCHEMAS[kind].create)
    try:
        schema.model_validate({key: _stand_in(body)})
    except ValidationError as e:
        typ, msg, _ = from_validation(list(e.errors()), True)
        p.add(where, f"{typ}: {msg}")


def check(doc, snapshot: dict[str, list[dict]], bodies) -> list[str]:
    """Every problem of ``doc`` against the API's objects (``snapshot``: kind -> objects);
    ``bodies(doc, ref)`` yields (kind, where, name, create body, extra) as apply would send
    them (extra: a router's interfaces and routes, a port's fixed IPs)."""
    p = Problems()
    check_structure(doc, p)
    if p.errors:  # references and bodies of a malformed file would only repeat its errors
        return p.errors
    ref = Resolver(doc, snapshot, p)
    made = list(bodies(doc, ref))
    for kind, where, _name, body, _extra in made:
        schema_check(p, kind, body, where)
    for i, d in enumerate(doc.get("qos_policies") or []):
        for j, r in enumerate(d.get("rules") or []):
            try:
                CreateRuleRequest.model_validate({"bandwidth_limit_rule": {
                    k: v for k, v in r.items() if k != "type"}})
            except ValidationError as e:
                typ, msg, _ = from_validation(list(e.errors()), True)
                p.add(f"{place('qos_policies', i, d)}.rules[{j}]", f"{typ}: {msg}")
    _immutable(p, ref, made)
    cross_check(p, ref, made, snapshot)
    return p.errors


def _immutable(p: Problems, ref: Resolver, made: list) -> None:
    fields = {"network": _PROVIDER + ("router:external",),
              "subnet": ("network_id", "cidr", "ip_version", "ipv6_ra_mode", "ipv6_address_mode"),
              "port": ("network_id", "mac_address")}
    for kind, where, name, body, _extra in made:
        have = ref.existing.get(kind, {}).get(name)
        if have is None or kind not in fields:
            continue
        for k in fields[kind]:
            if k not in body or body[k] is None:
                continue
            want, got = body[k], have.get(k)
            if k == "cidr":
                try:
                    same = ipaddress.ip_network(want, strict=False) == ipaddress.ip_network(got)
                except ValueError:
                    same = False
            else:
                same = str(want).lower() == str(got).lower() if isinstance(want, str) \
                    else want == got
            if not same:
                p.add(where, f"{k} is {got!r} in the API and {want!r} in the file: apply cannot "
                             f"change it; delete the {kind} to re-create it")

