"""``floatip subnet pool create|list|show|set|delete``: subnet pools (Neutron's
subnet_allocation) through the API, by id or name; ``floatip subnet create --subnet-pool``
takes a subnet from one."""
from __future__ import annotations

from typing import Optional

import typer

from ..client import Client
from .resources import COLUMNS, URL, _call, _print_one, _sub_app, subnet_app
from .output import COLUMN, FORMAT, Format

COLUMNS["subnetpool"] = ("id", "name", "prefixes", "default_prefixlen", "address_scope_id")
pool_app = _sub_app("subnetpool", "Subnet pool")


@pool_app.command("create")
def pool_create(name: str,
                prefixes: list[str] = typer.Option(..., "--pool-prefix",
                                                   help="A CIDR of the pool (repeatable)."),
                default_len: Optional[int] = typer.Option(
                    None, "--default-prefix-length", help="Of a subnet without a length "
                                                          "[--min-prefix-length]."),
                min_len: Optional[int] = typer.Option(None, "--min-prefix-length",
                                                      help="Shortest subnet prefix [8, 64]."),
                max_len: Optional[int] = typer.Option(None, "--max-prefix-length",
                                                      help="Longest subnet prefix [32, 128]."),
                shared: bool = typer.Option(False, "--share", help="For every project."),
                default: bool = typer.Option(False, "--default",
                                             help="Its family's default pool."),
                quota: Optional[int] = typer.Option(None, "--default-quota",
                                                    help="A project's share, in /32s or /64s."),
                scope: Optional[str] = typer.Option(None, "--address-scope",
                                                    help="Its address scope's id."),
                url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """Create a subnet pool: subnets taken from it never overlap."""
    body = {"name": name, "prefixes": prefixes, "shared": shared, "is_default": default}
    for k, v in (("default_prefixlen", default_len), ("min_prefixlen", min_len),
                 ("max_prefixlen", max_len), ("default_quota", quota),
                 ("address_scope_id", scope)):
        if v is not None:
            body[k] = v
    with Client(url) as c:
        _print_one(_call(lambda: c.create("subnetpool", **body)), fmt, columns)


@pool_app.command("set")
def pool_set(ref: str, prefixes: list[str] = typer.Option([], "--pool-prefix",
                                                          help="A CIDR to add (repeatable)."),
             name: Optional[str] = typer.Option(None, "--name", help="New name."),
             url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """Rename a pool or add prefixes to it."""
    with Client(url) as c:
        def go():
            pool = c.find("subnetpool", ref)
            body = {"name": name} if name is not None else {}
            if prefixes:
                body["prefixes"] = pool["prefixes"] + prefixes
            return c.update("subnetpool", pool["id"], **body)
        _print_one(_call(go), fmt, columns)


subnet_app.add_typer(pool_app, name="pool")
