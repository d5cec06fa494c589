"""``floatip network rbac create|list|show|set|delete``: share a network (or a subnet pool, an
address scope: ``--type``) with chosen projects (Neutron's rbac-policies) through the API (the
object by id or name)."""
from __future__ import annotations

import typer

from ..client import Client
from ..core.errors import NeutronError
from .output import COLUMN, FORMAT, Format, print_list
from .resources import URL, _call, _fail, _print_one, network_app, out

rbac_app = typer.Typer(help="Networks shared with chosen projects (RBAC policies).",
                       no_args_is_help=True)
COLUMNS = ("id", "object_type", "object_id", "action", "target_tenant")
TYPES = ("network", "subnetpool", "address_scope")
RBAC = "/v2.0/rbac-policies"


@rbac_app.command("create")
def rbac_create(obj: str,
                target: str = typer.Option(..., "--target-project",
                                           help="The project's id, or * (admins)."),
                action: str = typer.Option("access_as_shared", "--action",
                                           help="access_as_shared or access_as_external"),
                otype: str = typer.Option("network", "--type",
                                          help="network, subnetpool or address_scope"),
                url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """Let the target project use OBJ: a network (its ports, or its router gateways if
    external), a subnet pool or an address scope."""
    if otype not in TYPES:
        _fail(NeutronError(f"--type {otype!r}: {', '.join(TYPES)}", "BadRequest", 400), 2)
    with Client(url) as c:
        _print_one(_call(lambda: c.create("rbac_policy", **{
            "object_type": otype, "object_id": c.find(otype, obj)["id"],
            "action": action, "target_tenant": target})), fmt, columns)


@rbac_app.command("list")
def rbac_list(url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """The caller's RBAC policies (an admin's: all)."""
    with Client(url) as c:
        items = _call(lambda: c.request("GET", RBAC)["rbac_policies"])
    try:
        print_list(items, COLUMNS, {}, fmt, columns)
    except NeutronError as e:  # a -c that names no column
        _fail(e, 2)


@rbac_app.command("show")
def rbac_show(pid: str, url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """One RBAC policy."""
    with Client(url) as c:
        _print_one(_call(lambda: c.request("GET", f"{RBAC}/{pid}")["rbac_policy"]), fmt,
                   columns)


@rbac_app.command("set")
def rbac_set(pid: str, target: str = typer.Option(..., "--target-project",
                                                  help="The project's id, or * (admins)."),
             url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """Give the policy's access to another project instead."""
    with Client(url) as c:
        _print_one(_call(lambda: c.update("rbac_policy", pid, target_tenant=target)), fmt,
                   columns)


@rbac_app.command("delete")
def rbac_delete(pids: list[str], url: str = URL):
    """Delete RBAC policies (refused while the project losing access uses the network)."""
    with Client(url) as c:
        for pid in pids:
            _call(lambda: c.request("DELETE", f"{RBAC}/{pid}"))
            out.print(f"deleted rbac policy {pid}", highlight=False)


network_app.add_typer(rbac_app, name="rbac")
