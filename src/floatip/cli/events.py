"""What a server's agent reports, as a client of its API: ``floatip status`` (what the agent
did, per router) and ``floatip events [ID]`` (the history of status changes and repairs,
newest first)."""
from __future__ import annotations

import datetime as dt
import json

import typer
from rich.table import Table

from ..client import DEFAULT_URL, Client
from ..core.errors import NeutronError
from .app import app, fail, out


@app.command()
def events(object_id: str = typer.Argument(None, metavar="[ID]",
                                           help="Only this object's events."),
           limit: int = typer.Option(100, "--limit", min=1, max=1000,
                                     help="At most this many, newest first."),
           url: str = typer.Option(DEFAULT_URL, "--url", envvar="FLOATIP_URL",
                                   help="floatip API endpoint."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Status changes and repairs, with their reasons and what caused them."""
    params = {"limit": limit, **({"object": object_id} if object_id else {})}
    try:
        with Client(url) as c:
            rows = c.request("GET", "/floatip/v1/events", params=params)["events"]
    except NeutronError as e:
        fail(e)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    t = Table("at", "object", "event", "reason", "cause")
    for e in rows:
        what = (f"{e['old_status'] or '-'} -> {e['status']}" if e["kind"] == "status"
                else "repaired")
        t.add_row(e["at"], f"{e['resource']} {e['resource_id']}", what, e["reason"] or "",
                  e["cause"] or "")
    out.print(t)


@app.command()
def status(url: str = typer.Option(DEFAULT_URL, "--url", envvar="FLOATIP_URL",
                                   help="floatip API endpoint."),
           as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Per router: in sync or not, the agent's last pass (time, duration), repairs, errors."""
    try:
        with Client(url) as c:
            doc = c.request("GET", "/floatip/v1/agent")
    except NeutronError as e:
        fail(e)
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    agent = doc.get("agent")
    if agent is None:
        out.print(f"instance {doc.get('instance')}: no agent in this server (--no-agent)")
        return
    # an agent that has not passed yet (or not reported) has no figures: say so, never crash
    at, secs = agent.get("last_pass_at"), agent.get("last_pass_seconds")
    when = dt.datetime.fromtimestamp(at).isoformat(timespec="seconds") if at else "never"
    took = f" ({secs * 1000:.1f} ms, {'full' if agent.get('last_pass_full') else 'incremental'})" \
        if at and secs is not None else ""
    out.print(f"instance {doc.get('instance')} on {agent.get('host', '?')}: "
              f"{'running' if agent.get('alive') else 'STOPPED'}, "
              f"generation {agent.get('generation', '-')}, last pass {when}{took}, "
              f"{agent.get('passes', 0)} passes ({agent.get('full_passes', 0)} full), "
              f"repairs: {agent.get('repairs') or 'none'}"
              + (f", last error: {agent['last_error']}" if agent.get("last_error") else ""),
              highlight=False)
    t = Table("router", "status", "in sync", "floating IPs", "error")
    for rid, r in sorted((agent.get("routers") or {}).items()):
        t.add_row(rid, r.get("status", "?"), "yes" if r.get("in_sync") else "NO",
                  str(r.get("floating_ips", "?")), r.get("reason") or "")
    out.print(t)
    for pid, why in sorted((agent.get("port_forwardings") or {}).items()):
        out.print(f"port forwarding {pid}: left out: {why}", highlight=False)
