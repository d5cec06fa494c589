"""``floatip subnet pool create|list|show|set|delete``: subnet pools (Neutron's
subnet_allocation) through the API, by id or name; ``floatip subnet create --subnet-pool``
takes a subnet from one. ``floatip address-scope create|list|show|set|delete``: the scopes
pools belong to (subnets of one scope route to each other without NAT)."""
from __future__ import annotations

from typing import Optional

import typer

from ..client import Client
from .app import app
from .resources import COLUMNS, URL, _call, _print_one, _sub_app, subnet_app
from .output import COLUMN, FORMAT, Format
from .tagging import NO_TAG, TAG, updated, with_tags

COLUMNS["subnetpool"] = ("id", "name", "prefixes", "default_prefixlen", "address_scope_id",
                         "tags")
COLUMNS["address_scope"] = ("id", "name", "ip_version", "shared", "project_id")
pool_app = _sub_app("subnetpool", "Subnet pool")
scope_app = _sub_app("address_scope", "Address scope")


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
                                                    help="Its address scope, by id or name."),
                tags: list[str] = TAG, url: str = URL, fmt: Format = FORMAT,
                columns: list[str] = COLUMN):
    """Create a subnet pool: subnets taken from it never overlap."""
    body = {"name": name, "prefixes": prefixes, "shared": shared, "is_default": default}
    for k, v in (("default_prefixlen", default_len), ("min_prefixlen", min_len),
                 ("max_prefixlen", max_len), ("default_quota", quota)):
        if v is not None:
            body[k] = v
    with Client(url) as c:
        def go():
            if scope is not None:
                body["address_scope_id"] = c.find("address_scope", scope)["id"]
            return c.create("subnetpool", **with_tags(body, tags))
        _print_one(_call(go), fmt, columns)


@pool_app.command("set")
def pool_set(ref: str, prefixes: list[str] = typer.Option([], "--pool-prefix",
                                                          help="A CIDR to add (repeatable)."),
             name: Optional[str] = typer.Option(None, "--name", help="New name."),
             tags: list[str] = TAG, no_tag: bool = NO_TAG,
             url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """Rename a pool, add prefixes to it, or tag it."""
    with Client(url) as c:
        def go():
            pool = c.find("subnetpool", ref)
            body = {"name": name} if name is not None else {}
            if prefixes:
                body["prefixes"] = pool["prefixes"] + prefixes
            return updated(c, "subnetpool", pool["id"], body, tags, no_tag)
        _print_one(_call(go), fmt, columns)


@scope_app.command("create")
def scope_create(name: str, ip_version: int = typer.Option(4, "--ip-version", help="4 or 6"),
                 shared: bool = typer.Option(False, "--share", help="For every project."),
                 url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """Create an address scope (its pools' prefixes never overlap)."""
    with Client(url) as c:
        _print_one(_call(lambda: c.create("address_scope", name=name, ip_version=ip_version,
                                          shared=shared)), fmt, columns)


@scope_app.command("set")
def scope_set(ref: str, name: Optional[str] = typer.Option(None, "--name", help="New name."),
              shared: Optional[bool] = typer.Option(None, "--share/--no-share",
                                                    help="For every project, or not."),
              url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """Rename a scope or share it."""
    body = {k: v for k, v in (("name", name), ("shared", shared)) if v is not None}
    with Client(url) as c:
        _print_one(_call(lambda: c.update("address_scope", c.find("address_scope", ref)["id"],
                                          **body)), fmt, columns)


subnet_app.add_typer(pool_app, name="pool")
app.add_typer(scope_app, name="address-scope")
