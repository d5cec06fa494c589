"""List and show: filters (pushed down to SQL where they map to a column), fields, paging."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from .. import store as S
from . import tags
from .common import bad
from .port_forwardings import forwardings_of
from .views import SERIALIZERS, fip_dict


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


SORT_KEYS = {"id": "id", "name": "name", "created_at": "created_at",
             "updated_at": "updated_at", "status": "status", "project_id": "project_id",
             "tenant_id": "project_id", "floating_ip_address": "floating_ip_address",
             "network_id": "network_id", "mac_address": "mac_address", "cidr": "cidr",
             "device_id": "device_id", "device_owner": "device_owner"}


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
    if not rest:  # every filter is a column: sorting and paging happen in SQL too
        rows = S.page(s, model, sql, **_paging(model, params), plain=kind == "floatingip",
                      where=where)
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
    if "limit" in params:
        out = _paginate(out, params)
    return [select_fields(d, params.get("fields")) for d in out]


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


def _paginate(items: list[dict], params: dict) -> list[dict]:
    """limit and marker over items already filtered in Python (filters that are no column)."""
    marker = (params.get("marker") or [None])[0]
    if marker:
        ids = [d["id"] for d in items]
        items = items[ids.index(marker) + 1:] if marker in ids else []
    try:
        limit = int(params["limit"][0])
    except ValueError:
        raise bad(f"Invalid limit {params['limit'][0]!r}") from None
    return items[:limit] if limit > 0 else items


def _paging(model, params: dict) -> dict:
    """limit, marker, sort keys and directions from the query (Neutron's names)."""
    keys = params.get("sort_key") or []
    for k in keys:
        if k not in SORT_KEYS or not hasattr(model, SORT_KEYS[k]):
            raise bad(f"{k} is an invalid attribute for sort_key")
    dirs = params.get("sort_dir") or []
    if any(d not in ("asc", "desc") for d in dirs):
        raise bad("sort_dir must be asc or desc")
    limit = None
    if params.get("limit"):
        try:
            limit = int(params["limit"][0])
        except ValueError:
            raise bad(f"Invalid limit {params['limit'][0]!r}") from None
        # a limit beyond what a SQL integer holds is more rows than any table has: all
        limit = limit if 0 < limit < 2 ** 63 else None
    reverse = (params.get("page_reverse") or ["false"])[0].lower() == "true"
    return {"sort": [SORT_KEYS[k] for k in keys], "dirs": dirs, "limit": limit,
            "marker": (params.get("marker") or [None])[0], "reverse": reverse}


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

