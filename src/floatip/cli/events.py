"""``floatip events [ID]``: the history of status changes and repairs (newest first)."""
from __future__ import annotations

import json

import typer
from rich.table import Table

from ..client import DEFAULT_URL, Client
from ..core.errors import NeutronError
from .app import app, fail, out


@app.command()
def events(object_id: str = typer.Argument(None, metavar="[ID]",
                                           help="Only this object's events."),
           limit: int = typer.Option(100, "--limit", min=1, max=1000),
           url: str = typer.Option(DEFAULT_URL, "--url", envvar="FLOATIP_URL",
                                   help="floatip API endpoint."),
           as_json: bool = typer.Option(False, "--json")):
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
