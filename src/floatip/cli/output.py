"""How the API commands print what they show or list: ``-f table|value|json|csv|yaml`` and
``-c COLUMN`` as the openstack CLI. Tables fit a terminal; piped, nothing wraps or is cut (IP
addresses and UUIDs stay whole for grep). json and yaml keep the API's values and field names."""
from __future__ import annotations

import csv
import importlib
import json
import sys
from typing import Literal

import typer
from rich.table import Table
from rich.text import Text

from ..core.errors import NeutronError
from .app import out

FORMATS = ("table", "value", "json", "csv", "yaml")
Format = Literal["table", "value", "json", "csv", "yaml"]  # typer refuses others (exit 2)
FORMAT = typer.Option("table", "-f", "--format", metavar="FORMAT",
                      help="table, value (no headings), json, csv or yaml.")
COLUMN = typer.Option([], "-c", "--column", metavar="COLUMN",
                      help="Only this column, by field name or table heading (repeatable).")


def _fmt(v, sep: str) -> str:
    if isinstance(v, list):
        return sep.join(_fmt(x, ", ") for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x, ', ')}" for k, x in v.items())
    return "" if v is None else str(v)


def _pick(available: list[str], labels: dict, columns: list[str]) -> list[str]:
    """The fields ``-c`` names (a field name or its heading), in the order given."""
    if not columns:
        return available
    heading = {labels.get(f, f): f for f in available}
    picked = []
    for c in columns:
        f = c if c in available else heading.get(c)
        if f is None:
            raise NeutronError(f"-c {c!r}: no such column (columns: {', '.join(available)})",
                               "BadRequest", 400)
        picked.append(f)
    return picked


def _check(fmt: str) -> None:
    if fmt not in FORMATS:
        raise NeutronError(f"-f {fmt!r}: {', '.join(FORMATS)}", "BadRequest", 400)


def _dump(data, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(data, indent=2))
    else:  # yaml costs a call a tenth of its time: loaded only for -f yaml
        yaml = importlib.import_module("yaml")
        print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), end="")


def print_list(rows: list[dict], default: tuple, labels: dict, fmt: str,
               columns: list[str]) -> None:
    """Rows in ``default`` columns; ``-c`` may also name any other field the rows have."""
    _check(fmt)
    available = list(default) + sorted({k for r in rows for k in r} - set(default))
    fields = _pick(available, labels, columns) if columns else list(default)
    if fmt in ("json", "yaml"):
        _dump([{f: r.get(f) for f in fields} for r in rows], fmt)
    elif fmt == "value":
        for r in rows:
            print(" ".join(_fmt(r.get(f), ", ") for f in fields))
    elif fmt == "csv":
        w = csv.writer(sys.stdout, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        w.writerow(fields)
        w.writerows([_fmt(r.get(f), ", ") for f in fields] for r in rows)
    else:
        t = Table()
        for f in fields:
            t.add_column(labels.get(f, f), overflow="fold")
        for r in rows:  # Text: a value prints as it is, never as rich markup ("[b]")
            t.add_row(*(Text(_fmt(r.get(f), "\n")) for f in fields))
        out.print(t)


def print_one(obj: dict, fmt: str, columns: list[str]) -> None:
    """One resource, every field (or ``-c``'s), sorted by name as ``openstack ... show``."""
    _check(fmt)
    fields = _pick(sorted(obj), {}, columns)
    if fmt in ("json", "yaml"):
        _dump({f: obj[f] for f in fields}, fmt)
    elif fmt == "value":
        for f in fields:
            print(_fmt(obj[f], ", "))
    elif fmt == "csv":
        w = csv.writer(sys.stdout, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        w.writerow(fields)
        w.writerow([_fmt(obj[f], ", ") for f in fields])
    else:
        t = Table("Field", "Value")
        t.columns[1].overflow = "fold"
        for f in fields:
            t.add_row(f, Text(_fmt(obj[f], "\n")))
        out.print(t)


def label(kind: str, obj: dict) -> str:
    """``'net1' (UUID)`` for messages: the name the user typed beside the id (floating IPs:
    their address)."""
    name = obj.get("floating_ip_address") if kind == "floatingip" else obj.get("name")
    return f"{name!r} ({obj['id']})" if name else f"({obj['id']})"
