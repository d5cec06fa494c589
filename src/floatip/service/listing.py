"""List and show: filters (pushed down to SQL where they map to a column), fields, paging."""
from __future__ import annotations

import functools
from typing import Any

from sqlalchemy.orm import Session

from .. import store as S
from . import tags
from .common import bad, err
from .views import SERIALIZERS, fip_dict, forwardings_of


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
    "security_group": {"id": "id", "name": "name", "project_id": "project_id",
                       "tenant_id": "project_id"},
    "security_group_rule": {"id": "id", "security_group_id": "security_group_id",
                            "direction": "direction", "ethertype": "ethertype",
                            "remote_group_id": "remote_group_id", "project_id": "project_id",
                            "tenant_id": "project_id"},
    "address_group": {"id": "id", "name": "name", "project_id": "project_id",
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


# Sort keys done in SQL: query key -> column (the others are sorted in Python).
SORT_KEYS = {"id": "id", "name": "name", "status": "status", "project_id": "project_id",
             "tenant_id": "project_id", "floating_ip_address": "floating_ip_address",
             "network_id": "network_id", "mac_address": "mac_address", "cidr": "cidr",
             "device_id": "device_id", "device_owner": "device_owner"}

# Neutron's is_sort_key and is_filter attributes (neutron-lib's definitions and neutron's
# extensions; project_id beside tenant_id as populate_project_info adds it). A kind not
# listed sorts by _OWNER and "name" and takes any filter.
_OWNER = {"id", "tenant_id", "project_id"}
SORTABLE = {
    "network": _OWNER | {"name", "admin_state_up", "availability_zone_hints", "mtu", "status"},
    "subnet": _OWNER | {"name", "cidr", "enable_dhcp", "gateway_ip", "ip_version",
                        "ipv6_address_mode", "ipv6_ra_mode", "network_id", "segment_id",
                        "subnetpool_id"},
    "port": _OWNER | {"name", "admin_state_up", "device_id", "device_owner", "ip_allocation",
                      "mac_address", "network_id", "status"},
    "router": _OWNER | {"name", "admin_state_up", "flavor_id", "status"},
    "floatingip": _OWNER | {"fixed_ip_address", "floating_ip_address", "floating_network_id",
                            "router_id", "status"},
    "security_group": _OWNER | {"name"},
    "security_group_rule": _OWNER | {"security_group_id", "remote_group_id", "direction",
                                     "protocol", "port_range_min", "port_range_max",
                                     "ethertype", "remote_ip_prefix", "normalized_cidr",
                                     "remote_address_group_id"},
    "address_group": _OWNER | {"name", "description"},
    "policy": _OWNER | {"name"},
    "subnetpool": _OWNER | {"name", "address_scope_id", "default_prefixlen", "default_quota",
                            "ip_version", "is_default", "max_prefixlen", "min_prefixlen",
                            "shared"},
    "address_scope": _OWNER | {"name", "ip_version", "shared"},
    "trunk": _OWNER | {"name", "admin_state_up", "port_id", "status"},
    "rbac_policy": set(),  # Neutron's RBAC attributes have no sort key
    "port_forwarding": {"id", "external_port", "protocol", "internal_port_id"},
}
_STD = _OWNER | {"description", "revision_number", "tags", "tags-any", "not-tags",
                 "not-tags-any"}
FILTERABLE = {
    "network": _STD | {"name", "admin_state_up", "is_default", "mtu", "provider:network_type",
                       "provider:physical_network", "provider:segmentation_id",
                       "router:external", "shared", "status", "vlan_transparent", "qinq",
                       "pvlan"},
    "subnet": _STD | {"name", "cidr", "enable_dhcp", "gateway_ip", "ip_version",
                      "ipv6_address_mode", "ipv6_ra_mode", "network_id", "router:external",
                      "segment_id", "shared", "subnetpool_id"},
    "port": _STD | {"name", "admin_state_up", "binding:host_id", "device_id", "device_owner",
                    "fixed_ips", "ip_allocation", "mac_address", "network_id", "status",
                    "security_groups"},
    "router": _STD | {"name", "admin_state_up", "enable_ndp_proxy", "enable_snat"},
    "floatingip": _STD | {"fixed_ip_address", "floating_ip_address", "floating_network_id",
                          "port_id", "router_id", "status"},
    "security_group": _STD | {"name", "shared", "stateful"},
    "security_group_rule": SORTABLE["security_group_rule"] | _STD | {"belongs_to_default_sg"},
    "address_group": _STD | {"name"},
}


def validate(kind: str, params: dict[str, list[str]]) -> None:
    """Neutron's checks of a list query, in its order: filters (filter-validation), sort
    keys and directions, limit."""
    allowed = FILTERABLE.get(kind)
    unknown = [k for k in params if allowed is not None and k not in PAGING
               and k not in allowed]
    if unknown:
        raise err("HTTPBadRequest", 400, f"{unknown} is invalid attribute for filtering")
    sorts(kind, params)
    limit_of(params)


def sorts(kind: str, params: dict[str, list[str]]) -> list[tuple[str, bool]]:
    """``sort_key``/``sort_dir`` paired as Neutron's get_sorts: [(key, ascending)]."""
    keys = [k for k in params.get("sort_key", []) if k]
    dirs = [d for d in params.get("sort_dir", []) if d]
    if len(keys) != len(dirs):
        raise err("HTTPBadRequest", 400, "The number of sort_keys and sort_dirs must be same")
    absent = [k for k in keys if k not in SORTABLE.get(kind, _OWNER | {"name"})]
    if absent:
        raise err("HTTPBadRequest", 400, f"{absent} is invalid attribute for sort_keys")
    invalid = [d for d in dirs if d not in ("asc", "desc")]
    if invalid:
        raise err("HTTPBadRequest", 400, f"{invalid} is invalid value for sort_dirs, valid "
                  "value is 'asc' and 'desc'")
    return [(k, d == "asc") for k, d in zip(keys, dirs)]


def limit_of(params: dict[str, list[str]]) -> int | None:
    """Neutron's limit: an integer >= 0; 0 (or none) is no limit."""
    raw = (params.get("limit") or ["0"])[0]
    try:
        limit = int(raw)
    except ValueError:
        limit = -1
    if limit < 0:
        raise bad(f"Bad limit request: Limit must be an integer 0 or greater and not "
                  f"'{raw}'.")
    # a limit beyond what a SQL integer holds is more rows than any table has: all
    return limit if 0 < limit < 2 ** 63 else None


def list_resources(s: Session, kind: str, query: list[tuple[str, str]]) -> list[dict]:
    params: dict[str, list[str]] = {}
    for k, v in query:
        params.setdefault(k, []).append(v)
    sql = {SQL_FILTERS[kind][k]: v for k, v in params.items() if k in SQL_FILTERS[kind]
           and not (kind == "floatingip" and k in ("port_id", "router_id", "fixed_ip_address")
                    and v in (["None"], [""]))}
    where, done = _conditions(kind, params)
    rest = [k for k in params if k not in PAGING and k not in done and not
            (k in SQL_FILTERS[kind] and SQL_FILTERS[kind][k] in sql)]
    model = S.MODELS[kind]
    order = sorts(kind, params)
    if not rest and all(k in SORT_KEYS and hasattr(model, SORT_KEYS[k]) for k, _ in order):
        # every filter and sort key is a column: sorting and paging happen in SQL too
        rows = S.page(s, model, sql, sort=[SORT_KEYS[k] for k, _ in order],
                      dirs=["asc" if a else "desc" for _, a in order], limit=limit_of(params),
                      marker=(params.get("marker") or [None])[0],
                      reverse=page_reverse(params), plain=kind == "floatingip", where=where)
        return [select_fields(d, params.get("fields")) for d in _views(s, kind, rows)]
    rows = S.list_all(s, model, sql, where)
    out = []
    for d in _views(s, kind, rows):
        ok = True
        for k in rest:
            wanted = params[k]
            if k == "fixed_ips" and kind == "port":
                ok = _fixed_ips_filter(d, wanted)
            elif k in d:
                ok = _matches(d[k], wanted)
            if not ok:
                break
        if ok:
            out.append(d)
    return [select_fields(d, params.get("fields")) for d in sort_page(s, kind, out, params)]


def _conditions(kind: str, params: dict) -> tuple[list, set[str]]:
    """The filters that are SQL but no column of the table: tags, a subnet's ``shared``
    (its network's); and their keys."""
    where = tags.conditions(kind, params)
    done = set(tags.FILTERS) if kind in tags.KINDS else set()
    if kind == "subnet" and "shared" in params:
        values = set()
        for v in params["shared"]:
            if v.lower() not in ("true", "false", "1", "0"):
                raise bad(f"Invalid input for shared. Reason: '{v}' cannot be converted to "
                          f"boolean.")
            values.add(v.lower() in ("true", "1"))
        where.append(S.subnets_on_shared(values))
        done.add("shared")
    return where, done


def page_reverse(params: dict[str, list[str]]) -> bool:
    return (params.get("page_reverse") or ["False"])[0].lower() == "true"


# Integer columns Neutron shows as strings (a subnet pool's): sorted by value, as in SQL.
NUMERIC_TEXT = {"default_prefixlen", "min_prefixlen", "max_prefixlen"}


def _cmp(order: list[tuple[str, bool]]):
    """Compare two bodies by the sort keys (None first in ascending order, as SQL's NULLs
    in SQLite and MySQL)."""
    def value(key: str, v: Any) -> tuple:
        if v is None:
            return (0, "")
        if key in NUMERIC_TEXT and isinstance(v, str) and v.isdigit():
            return (1, int(v))
        return (1, str(v) if isinstance(v, (list, dict)) else v)

    def cmp(a: dict, b: dict) -> int:
        for key, asc in order:
            x, y = value(key, a.get(key)), value(key, b.get(key))
            if x != y:
                return (-1 if x < y else 1) * (1 if asc else -1)
        return 0
    return cmp


def sort_page(s: Session | None, kind: str, items: list[dict],
              params: dict[str, list[str]]) -> list[dict]:
    """Neutron's sorting and paging over bodies already filtered in Python: sort keys then
    id; ``marker``: the items past it in that order (keyset: a marker filtered out of the
    list still places the page), ``page_reverse``: the page before it."""
    order = sorts(kind, params)
    if order and "id" not in dict(order):
        order.append(("id", True))
    if order:
        items = sorted(items, key=functools.cmp_to_key(_cmp(order)))
    limit = limit_of(params)
    if limit is None:
        return items
    reverse = page_reverse(params)
    if reverse:
        items, order = items[::-1], [(k, not a) for k, a in order]
    marker = (params.get("marker") or [None])[0]
    if marker:
        ids = [d["id"] for d in items]
        if marker in ids:
            items = items[ids.index(marker) + 1:]
        elif order and s is not None and (m := _marker_view(s, kind, marker)) is not None:
            cmp = _cmp(order)
            items = [d for d in items if cmp(d, m) > 0]
        else:  # Neutron's emulated paging: a marker not found pages nothing
            items = []
    page = items[:limit]
    return page[::-1] if reverse else page


def listed(kind: str, items: list[dict], params: dict[str, list[str]],
           filters) -> list[dict]:
    """A list served in Python (few rows, each one the caller may see): ``filters`` are the
    keys that filter (any other is refused, as Neutron's filter-validation), any of a key's
    values matches; then Neutron's sorting, paging and fields."""
    unknown = [k for k in params if k not in PAGING and k not in filters
               and k not in tags.FILTERS]
    if unknown:
        raise err("HTTPBadRequest", 400, f"{unknown} is invalid attribute for filtering")
    out = [d for d in items if all(_matches(d.get(k), vs) for k, vs in params.items()
                                   if k not in PAGING and k not in tags.FILTERS)
           and tags.matches(d.get("tags") or [], params)]
    out = sort_page(None, kind, out, params)
    fields = params.get("fields")
    if fields and limit_of(params):  # the id names the next page's marker
        fields = [*fields, "id"]
    return [select_fields(d, fields) for d in out]


def _marker_view(s: Session, kind: str, rid: str) -> dict | None:
    rows = S.page(s, S.MODELS[kind], {"id": [rid]}, plain=kind == "floatingip")
    return _views(s, kind, rows)[0] if rows else None


def _views(s: Session, kind: str, rows: list) -> list[dict]:
    """The rows' bodies, with the rows each view looks up (a FIP's port, a router's gateway
    port) loaded in a few queries first, so a list is a few queries, not one per item."""
    if kind == "floatingip":  # port_details needs no fixed IPs: plain rows
        ports = {p.id: p for p in S.load_many(s, S.Port, {r.fixed_port_id for r in rows
                                                          if r.fixed_port_id}, plain=True)}
        pfs = forwardings_of(s, [r.id for r in rows])
        return tags.fill(s, kind, [fip_dict(s, row, ports, pfs) for row in rows])
    held = []  # noqa: F841 - alive while the views look them up
    if kind == "router":
        held = S.load_many(s, S.Port, {r.gw_port_id for r in rows if r.gw_port_id})
    return tags.fill(s, kind, [SERIALIZERS[kind](s, row) for row in rows])


def select_fields(d: dict, fields: list[str] | None) -> dict:
    if not fields:
        return d
    names = {f for item in fields for f in item.split(",") if f}
    return {k: v for k, v in d.items() if k in names}

