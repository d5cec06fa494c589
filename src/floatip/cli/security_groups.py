"""``floatip security-group create|list|show|set|delete`` and ``floatip security-group rule
create|list|show|delete`` over the API, with the openstack CLI's option names.

A port's groups, port security and allowed address pairs: ``floatip port create|set``
(resources.py).
"""
from __future__ import annotations

from typing import Optional

import typer

from ..client import Client
from ..core.errors import NeutronError
from .app import app
from .output import COLUMN, FORMAT, Format
from .resources import COLUMNS, LABELS, URL, _call, _print_list, _print_one, _sub_app, out
from .tagging import NO_TAG, TAG, updated, with_tags

COLUMNS.update({
    "security_group": ("id", "name", "description", "stateful", "project_id"),
    # "ports" and "remote" are made for the table by _rule_row
    "security_group_rule": ("id", "security_group_id", "direction", "ethertype", "protocol",
                            "ports", "remote"),
})
LABELS.update({"security_group_id": "security group", "project_id": "project"})

sg_app = _sub_app("security_group", "Security group")
rule_app = typer.Typer(help="Security group rules through the API.", no_args_is_help=True)
sg_app.add_typer(rule_app, name="rule")


@sg_app.command("create")
def sg_create(name: str, description: str = typer.Option("", "--description",
                                                        help="Free text kept with it."),
              stateful: bool = typer.Option(True, "--stateful/--stateless",
                                            help="Connection tracking (stateless: each "
                                                 "direction needs its own rules)."),
              tags: list[str] = TAG, url: str = URL, fmt: Format = FORMAT,
              columns: list[str] = COLUMN):
    """Create a group (Neutron gives it rules for any egress, IPv4 and IPv6)."""
    with Client(url) as c:
        _print_one(_call(lambda: c.create("security_group", **with_tags(
            {"name": name, "description": description, "stateful": stateful}, tags))),
            fmt, columns)


@sg_app.command("set")
def sg_set(ref: str, name: Optional[str] = typer.Option(None, "--name", help="New name."),
           description: Optional[str] = typer.Option(None, "--description",
                                                     help="New description."),
           stateful: Optional[bool] = typer.Option(None, "--stateful/--stateless",
                                                   help="Connection tracking on or off."),
           tags: list[str] = TAG, no_tag: bool = NO_TAG, url: str = URL, fmt: Format = FORMAT,
           columns: list[str] = COLUMN):
    """Change name, description or statefulness."""
    body = {k: v for k, v in (("name", name), ("description", description),
                              ("stateful", stateful)) if v is not None}
    with Client(url) as c:
        _print_one(_call(lambda: updated(c, "security_group",
                                         c.find("security_group", ref)["id"], body, tags,
                                         no_tag)), fmt, columns)


def port_range(spec: str | None) -> tuple[int | None, int | None]:
    """``--dst-port 22`` or ``8000:8080`` (the openstack CLI's syntax) -> (min, max)."""
    if spec is None:
        return None, None
    lo, _, hi = spec.partition(":")
    try:
        return int(lo), int(hi or lo)
    except ValueError:
        raise NeutronError(f"port range {spec!r}: PORT or MIN:MAX") from None


def rule_body(c: Client, group: str, *, direction: str = "ingress", ethertype: str = "IPv4",
              protocol: str | None = None, dst_port: str | None = None,
              icmp_type: int | None = None, icmp_code: int | None = None,
              remote_ip: str | None = None, remote_group: str | None = None,
              remote_address_group: str | None = None, description: str = "") -> dict:
    """A rule's body as the API takes it, groups named by id or name. ICMP type and code go
    in port_range_min/max, as in Neutron."""
    lo, hi = port_range(dst_port)
    if icmp_type is not None or icmp_code is not None:
        lo, hi = icmp_type, icmp_code
    body = {"security_group_id": c.find("security_group", group)["id"], "direction": direction,
            "ethertype": ethertype, "description": description}
    for k, v in (("protocol", protocol), ("port_range_min", lo), ("port_range_max", hi),
                 ("remote_ip_prefix", remote_ip)):
        if v is not None:
            body[k] = v
    if remote_group:
        body["remote_group_id"] = c.find("security_group", remote_group)["id"]
    if remote_address_group:
        body["remote_address_group_id"] = c.find("address_group", remote_address_group)["id"]
    return body


def _rule_row(r: dict) -> dict:
    lo, hi = r.get("port_range_min"), r.get("port_range_max")
    ports = "" if lo is None and hi is None else \
        (f"type={lo} code={hi}" if str(r.get("protocol")).startswith(("icmp", "ipv6-icmp", "1",
                                                                       "58"))
         else f"{lo}" if lo == hi else f"{lo}:{hi}")
    remote = r.get("remote_ip_prefix") or (
        f"group {r['remote_group_id']}" if r.get("remote_group_id") else
        f"address group {r['remote_address_group_id']}" if r.get("remote_address_group_id")
        else "any")
    return {**r, "ports": ports, "remote": remote, "protocol": r.get("protocol") or "any"}


@rule_app.command("create")
def rule_create(group: str,
                ingress: bool = typer.Option(True, "--ingress/--egress",
                                             help="Traffic to the ports, or from them."),
                ethertype: str = typer.Option("IPv4", "--ethertype", help="IPv4 or IPv6"),
                protocol: Optional[str] = typer.Option(None, "--protocol",
                                                       help="tcp, udp, icmp, ipv6-icmp, a "
                                                            "name or a number; any if unset"),
                dst_port: Optional[str] = typer.Option(None, "--dst-port",
                                                       help="PORT or MIN:MAX (tcp, udp, ...)"),
                icmp_type: Optional[int] = typer.Option(None, "--icmp-type",
                                                        help="ICMP type (icmp, ipv6-icmp)."),
                icmp_code: Optional[int] = typer.Option(None, "--icmp-code",
                                                        help="ICMP code (with --icmp-type)."),
                remote_ip: Optional[str] = typer.Option(None, "--remote-ip", help="CIDR"),
                remote_group: Optional[str] = typer.Option(None, "--remote-group",
                                                           help="Members of this group."),
                remote_address_group: Optional[str] = typer.Option(
                    None, "--remote-address-group", help="Addresses of this address group."),
                description: str = typer.Option("", "--description",
                                                help="Free text kept with it."),
                url: str = URL, fmt: Format = FORMAT,
                columns: list[str] = COLUMN):
    """Add a rule to GROUP (by id or name): what it lets in (--ingress) or out (--egress)."""
    with Client(url) as c:
        def go():
            return c.create("security_group_rule", **rule_body(
                c, group, direction="ingress" if ingress else "egress", ethertype=ethertype,
                protocol=protocol, dst_port=dst_port, icmp_type=icmp_type,
                icmp_code=icmp_code, remote_ip=remote_ip, remote_group=remote_group,
                remote_address_group=remote_address_group, description=description))
        _print_one(_call(go), fmt, columns)


@rule_app.command("list")
def rule_list(group: Optional[str] = typer.Argument(None, help="Only this group's rules."),
              url: str = URL, fmt: Format = FORMAT,
              columns: list[str] = COLUMN):
    """List rules (every group's you can see, or GROUP's)."""
    with Client(url) as c:
        def go():
            params = {"security_group_id": c.find("security_group", group)["id"]} if group \
                else {}
            return c.list("security_group_rule", **params)
        rules = _call(go)
        _print_list("security_group_rule", [_rule_row(r) for r in rules], fmt, columns)


@rule_app.command("show")
def rule_show(rule_id: str, url: str = URL, fmt: Format = FORMAT,
              columns: list[str] = COLUMN):
    """Show one rule, by id."""
    with Client(url) as c:
        _print_one(_call(lambda: c.show("security_group_rule", rule_id)), fmt, columns)


@rule_app.command("delete")
def rule_delete(rule_ids: list[str], url: str = URL):
    """Delete rules, by id (connections they allowed are cut)."""
    with Client(url) as c:
        for rid in rule_ids:
            _call(lambda: c.delete("security_group_rule", rid))
            out.print(f"deleted security group rule ({rid})", highlight=False)



app.add_typer(sg_app, name="security-group")
