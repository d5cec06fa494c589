"""``floatip qos policy|rule ...`` and ``floatip qos attach``: QoS policies, their bandwidth
limit rules, and a policy on a floating IP or a router's gateway, through the API
(policies by id or unique name, floating IPs also by address, as the openstack CLI)."""
from __future__ import annotations

import uuid
from typing import Optional

import typer

from ..client import Client
from ..core.errors import NeutronError
from .app import app
from .output import COLUMN, FORMAT, Format, print_list
from .resources import URL, _call, _fail, _print_one, out
from .tagging import ANY_TAGS, NO_TAG, NOT_TAGS, TAG, TAGS, tag_filters, updated, with_tags

qos_app = typer.Typer(help="QoS policies and bandwidth limits through the API.",
                      no_args_is_help=True)
policy_app = typer.Typer(help="QoS policies.", no_args_is_help=True)
rule_app = typer.Typer(help="A policy's bandwidth limit rules.", no_args_is_help=True)
POLICY_COLUMNS = ("id", "name", "shared", "is_default", "rules", "description", "tags")
RULE_COLUMNS = ("id", "direction", "max_kbps", "max_burst_kbps")
POL = "/v2.0/qos/policies"


def find_policy(c: Client, ref: str) -> dict:
    try:
        uuid.UUID(ref)
        return c.request("GET", f"{POL}/{ref}")["policy"]
    except ValueError:
        pass
    found = c.request("GET", POL, params={"name": ref})["policies"]
    if len(found) != 1:
        raise NeutronError(f"QoS policy {ref} could not be found." if not found else
                           f"More than one QoS policy is named {ref}; use its id",
                           "QosPolicyNotFound" if not found else "Conflict",
                           404 if not found else 409)
    return found[0]


def _list(items: list[dict], cols, fmt: Format, columns: list[str]) -> None:
    try:
        print_list(items, cols, {}, fmt, columns)
    except NeutronError as e:  # a -c that names no column
        _fail(e, 2)


@policy_app.command("create")
def policy_create(name: str, description: str = typer.Option("", "--description",
                                                             help="Free text kept with it."),
                  shared: bool = typer.Option(False, "--share", help="Visible to every "
                                                                      "project."),
                  default: bool = typer.Option(False, "--default", help="The project's "
                                                                        "default policy."),
                  tags: list[str] = TAG,
                  url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """Create a QoS policy."""
    with Client(url) as c:
        _print_one(_call(lambda: c.create("qos_policy", **with_tags({
            "name": name, "description": description, "shared": shared,
            "is_default": default}, tags))), fmt, columns)


@policy_app.command("set")
def policy_set(ref: str, name: Optional[str] = typer.Option(None, "--name", help="New name."),
               description: Optional[str] = typer.Option(None, "--description",
                                                         help="New description."),
               shared: Optional[bool] = typer.Option(None, "--share/--no-share",
                                                     help="Visible to every project, or "
                                                          "not."),
               default: Optional[bool] = typer.Option(None, "--default/--no-default",
                                                      help="The project's default policy."),
               tags: list[str] = TAG, no_tag: bool = NO_TAG,
               url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """Change a policy's name, description, sharing, default flag or tags."""
    body = {k: v for k, v in (("name", name), ("description", description),
                              ("shared", shared), ("is_default", default)) if v is not None}
    with Client(url) as c:
        _print_one(_call(lambda: updated(c, "qos_policy", find_policy(c, ref)["id"], body,
                                         tags, no_tag)), fmt, columns)


@policy_app.command("list")
def policy_list(tags: Optional[str] = TAGS, any_tags: Optional[str] = ANY_TAGS,
                not_tags: Optional[str] = NOT_TAGS,
                url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """The QoS policies the caller sees."""
    with Client(url) as c:
        _list(_call(lambda: c.list("qos_policy", **tag_filters(tags, any_tags, not_tags))),
              POLICY_COLUMNS, fmt, columns)


@policy_app.command("show")
def policy_show(ref: str, url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """One QoS policy, with its rules."""
    with Client(url) as c:
        _print_one(_call(lambda: find_policy(c, ref)), fmt, columns)


@policy_app.command("delete")
def policy_delete(refs: list[str], url: str = URL):
    """Delete QoS policies (refused while a floating IP or a gateway uses one)."""
    with Client(url) as c:
        for ref in refs:
            p = _call(lambda: find_policy(c, ref))
            _call(lambda: c.request("DELETE", f"{POL}/{p['id']}"))
            out.print(f"deleted QoS policy {p['name'] or p['id']}", highlight=False)


@rule_app.command("create")
def rule_create(policy: str, max_kbps: int = typer.Option(..., "--max-kbps",
                                                          help="The limit, kbit/s."),
                max_burst_kbps: int = typer.Option(0, "--max-burst-kbps",
                                                   help="0: 80 % of the rate."),
                direction: str = typer.Option("egress", "--direction",
                                              help="egress (from the address) or ingress"),
                url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """Add a bandwidth limit rule to POLICY (one per direction)."""
    with Client(url) as c:
        def go():
            p = find_policy(c, policy)
            return c.request("POST", f"{POL}/{p['id']}/bandwidth_limit_rules", json={
                "bandwidth_limit_rule": {"max_kbps": max_kbps,
                                         "max_burst_kbps": max_burst_kbps,
                                         "direction": direction}})["bandwidth_limit_rule"]
        _print_one(_call(go), fmt, columns)


@rule_app.command("list")
def rule_list(policy: str, url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """POLICY's bandwidth limit rules."""
    with Client(url) as c:
        _list(_call(lambda: c.request("GET", f"{POL}/{find_policy(c, policy)['id']}/"
                                             "bandwidth_limit_rules")["bandwidth_limit_rules"]),
              RULE_COLUMNS, fmt, columns)


@rule_app.command("delete")
def rule_delete(policy: str, rule_ids: list[str], url: str = URL):
    """Delete rules of POLICY."""
    with Client(url) as c:
        p = _call(lambda: find_policy(c, policy))
        for rid in rule_ids:
            _call(lambda: c.request("DELETE", f"{POL}/{p['id']}/bandwidth_limit_rules/{rid}"))
            out.print(f"deleted rule {rid} of QoS policy {p['name'] or p['id']}",
                      highlight=False)


@qos_app.command("attach")
def attach(policy: Optional[str] = typer.Argument(None, help="The policy; none with "
                                                              "--detach."),
           floating_ip: Optional[str] = typer.Option(None, "--floating-ip",
                                                     help="A floating IP (id or address)."),
           router: Optional[str] = typer.Option(None, "--router",
                                                help="A router: its gateway's address."),
           detach: bool = typer.Option(False, "--detach", help="Remove the policy."),
           url: str = URL):
    """Put POLICY on a floating IP or a router's gateway (or take it off: --detach)."""
    if (floating_ip is None) == (router is None) or (policy is None) != detach:
        _fail(NeutronError("one of --floating-ip, --router; and POLICY or --detach",
                           "BadRequest", 400), 2)
    with Client(url) as c:
        def go():
            pid = None if detach else find_policy(c, policy)["id"]
            if floating_ip is not None:
                f = c.find("floatingip", floating_ip)
                c.update("floatingip", f["id"], qos_policy_id=pid)
                return f"floating ip {f['floating_ip_address']}"
            r = c.find("router", router)
            gw = r.get("external_gateway_info")
            if not gw:
                raise NeutronError(f"Router {r['id']} has no gateway", "BadRequest", 400)
            c.update("router", r["id"], external_gateway_info={
                "network_id": gw["network_id"], "qos_policy_id": pid})
            return f"router {r['name'] or r['id']}'s gateway"
        what = _call(go)
    out.print(f"{what}: " + ("no QoS policy" if detach else f"QoS policy {policy}"),
              highlight=False)


qos_app.add_typer(policy_app, name="policy")
qos_app.add_typer(rule_app, name="rule")
app.add_typer(qos_app, name="qos")
