"""``apply FILE``, ``apply --dry-run FILE``, ``diff FILE`` and ``delete -f FILE`` through the
API, as ``kubectl`` does them: the whole file is checked first (``apply_check``: every problem
listed, nothing changed, exit 2); a failure mid-way undoes what the run did, newest first,
and says so (exit 1); a dry run and ``diff`` print the plan and change nothing."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import typer
import yaml

from ..client import Client
from ..core.errors import NeutronError
from .app import app, err, fail, out, styled
from .apply_api import ApplyResult, apply_document, rollback
from .apply_api import bodies as _bodies
from .apply_check import Problems, check, check_structure

SNAPSHOT_KINDS = ("network", "subnet", "port", "router", "floatingip", "security_group",
                  "address_scope", "subnetpool", "qos_policy")
URL = typer.Option("http://127.0.0.1:9696", "--url", envvar="FLOATIP_URL",
                   help="floatip API endpoint.")


def read_doc(file: Path):
    try:
        text = file.read_text()
        return (json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)) or {}
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as e:
        fail(NeutronError(f"{file}: cannot read: {e}"))


def _connection(e: NeutronError) -> NeutronError:
    if e.type == "ConnectionFailed":
        e.message += " (start `floatip serve`, or use `apply --local`)"
        e.args = (e.message,)
    return e


def checked(c: Client, file: Path, doc, full: bool = True) -> None:
    """Exit 2 listing every problem of ``doc`` unless it is sound against the API (not
    ``full``: its form only, keys and names)."""
    if full:
        errors = check(doc, {k: c.list(k) for k in SNAPSHOT_KINDS}, _bodies)
    else:
        p = Problems()
        check_structure(doc, p)
        errors = p.errors
    if errors:
        for e in errors:
            err.print(styled("error", "red", f" {file}: {e}"), highlight=False, soft_wrap=True)
        err.print(f"{len(errors)} error(s); nothing was changed", highlight=False)
        raise typer.Exit(2)


class DryClient:
    """Reads from the API; writes only remembered: what ``apply`` would do."""

    def __init__(self, c: Client):
        self.c, self.made = c, {}

    def list(self, kind: str, **filters) -> list[dict]:
        return self.c.list(kind, **filters)

    def show(self, kind: str, rid: str) -> dict:
        return self.made[rid] if rid in self.made else self.c.show(kind, rid)

    def find(self, kind: str, ref: str) -> dict:
        return self.c.find(kind, ref)

    def create(self, kind: str, **attrs) -> dict:
        obj = {"fixed_ips": [], "external_gateway_info": None, "routes": [],
               "floating_ip_address": attrs.get("floating_ip_address", "(from the pool)"),
               **attrs, "id": str(uuid.uuid4())}
        self.made[obj["id"]] = obj
        return obj

    def update(self, kind: str, rid: str, **attrs) -> dict:
        return {**self.show(kind, rid), **attrs}

    def delete(self, kind: str, rid: str) -> None:
        pass

    def set_tags(self, kind: str, rid: str, tags: list[str]) -> list[str]:
        return tags

    def request(self, method: str, path: str, **kw):
        """Reads of what the run made: empty (its forwardings, its rules); writes: none."""
        if method != "GET":
            return {}
        if any(rid in path for rid in self.made):
            return {path.rstrip("/").rsplit("/", 1)[-1]: []}
        return self.c.request(method, path, **kw)

    def add_interface(self, router_id: str, **body) -> dict:
        return {}

    def remove_interface(self, router_id: str, **body) -> dict:
        return {}


def print_result(res: ApplyResult, as_json: bool, dry_run: bool) -> None:
    if as_json:
        print(json.dumps({"dry_run": dry_run, "created": res.created, "updated": res.updated,
                          "unchanged": res.unchanged,
                          **({} if dry_run else {"ids": res.ids})}, indent=2))
        return
    for what in ("created", "updated", "unchanged"):
        for label in getattr(res, what):
            out.print(f"{label} {what}" + (" (dry run)" if dry_run and what != "unchanged"
                                           else ""), highlight=False, soft_wrap=True)


def run_apply(file: Path, url: str, as_json: bool, dry_run: bool) -> bool:
    """True when something differs (what ``diff`` exits 1 for)."""
    doc = read_doc(file)
    res = ApplyResult()
    try:
        with Client(url) as c:
            checked(c, file, doc)
            try:
                apply_document(DryClient(c) if dry_run else c, doc, res)
            except NeutronError as e:
                if dry_run or not res.undo:
                    raise
                done, left = rollback(res)
                err.print(styled("error", "red", f" {e.type}: {e.message}"), highlight=False,
                          soft_wrap=True)
                for label in done:
                    err.print(f"rolled back: {label}", highlight=False, soft_wrap=True)
                for label in left:
                    err.print(styled("left behind", "red", f": {label}"), highlight=False,
                              soft_wrap=True)
                err.print("apply failed; " + ("everything it created was undone" if not left
                                              else f"{len(left)} change(s) could not be undone"),
                          highlight=False)
                raise typer.Exit(1) from None
    except NeutronError as e:
        fail(_connection(e), 1)
    print_result(res, as_json, dry_run)
    return bool(res.created or res.updated)


@app.command("delete")
def delete(file: Path = typer.Option(..., "-f", "--filename",
                                     help="The file `apply FILE` applied."),
           url: str = URL, as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Delete FILE's resources through the API, dependents first (floating IPs, router
    interfaces, routers, ports, subnets, networks with their sharing, security groups, QoS
    policies, subnet pools, address scopes); others stay."""
    doc = read_doc(file)
    try:
        with Client(url) as c:
            checked(c, file, doc, full=False)
            deleted, missing, failed = delete_document(c, doc)
    except NeutronError as e:
        fail(_connection(e), 1)
    if as_json:
        print(json.dumps({"deleted": deleted, "not_found": missing, "failed": failed},
                         indent=2))
    else:
        for label in deleted:
            out.print(f"{label} deleted", highlight=False, soft_wrap=True)
        for label in missing:
            out.print(f"{label} not found", highlight=False, soft_wrap=True)
        for label in failed:
            err.print(styled("error", "red", f" {label}"), highlight=False, soft_wrap=True)
    raise typer.Exit(1 if failed else 0)


def delete_document(c: Client, doc: dict) -> tuple[list[str], list[str], list[str]]:
    deleted: list[str] = []
    missing: list[str] = []
    failed: list[str] = []

    def find(kind: str, name: str) -> dict | None:
        found = c.list(kind, name=name)
        if not found:
            missing.append(f"{kind.replace('_', ' ')} {name}")
        return found[0] if found else None

    def attempt(label: str, fn) -> None:
        try:
            fn()
            deleted.append(label)
        except NeutronError as e:
            failed.append(f"{label}: {e.type}: {e.message}")

    ports = {d["name"]: find("port", d["name"]) for d in doc.get("ports") or []}
    for d in doc.get("floatingips") or []:
        addr = d.get("floating_ip_address") or d.get("address")
        port = ports.get(d.get("port") or "") or {}
        fips = c.list("floatingip", floating_ip_address=addr) if addr else \
            (c.list("floatingip", port_id=port["id"]) if port.get("id") else [])
        if not fips:
            missing.append(f"floating IP {addr or 'of port ' + str(d.get('port'))}")
        for f in fips:
            attempt(f"floating IP {f['floating_ip_address']}",
                    lambda f=f: c.delete("floatingip", f["id"]))
    routers = [(d["name"], find("router", d["name"])) for d in doc.get("routers") or []]
    for name, r in routers:
        for p in c.list("port", device_id=r["id"], device_owner="network:router_interface") \
                if r else []:
            attempt(f"router {name} interface {p['fixed_ips'][0]['ip_address']}",
                    lambda p=p, r=r: c.remove_interface(r["id"], port_id=p["id"]))
    for name, r in routers:
        if r:
            attempt(f"router {name}", lambda r=r: c.delete("router", r["id"]))
    for name, p in ports.items():
        if p:
            attempt(f"port {name}", lambda p=p: c.delete("port", p["id"]))
    for plural, kind in (("subnets", "subnet"), ("networks", "network"),
                         ("security_groups", "security_group"), ("qos_policies", "qos_policy"),
                         ("subnet_pools", "subnetpool"), ("address_scopes", "address_scope")):
        for d in doc.get(plural) or []:
            o = find(kind, d["name"])
            if o:
                attempt(f"{kind.replace('_', ' ')} {d['name']}",
                        lambda o=o, kind=kind: c.delete(kind, o["id"]))
    return deleted, missing, failed
