"""List and show: filters (pushed down to SQL where they map to a column), fields, paging."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from .. import store as S
from .common import bad, not_found
from .views import SERIALIZERS


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
