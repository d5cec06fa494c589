"""Operations: ``floatip status`` (what the agent of a server did, per router) and
``floatip cleanup --orphans`` (routers left on this host by floatip servers that no longer
run)."""
from __future__ import annotations

import datetime as dt
import json

import typer
from rich.table import Table

from ..client import DEFAULT_URL, Client
from ..core.errors import NeutronError
from ..core.plan import NsFacts, Observed, OvsPort, Plan, _plan_removal
from ..dataplane.ovs import idl_rows
from ..server import instance_gone
from .app import app, fail, out
from .local import dataplane


@app.command()
def status(url: str = typer.Option(DEFAULT_URL, "--url", envvar="FLOATIP_URL",
                                   help="floatip API endpoint."),
           as_json: bool = typer.Option(False, "--json")):
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


@app.command()
def cleanup(orphans: bool = typer.Option(False, "--orphans",
                                         help="Remove the routers of floatip server "
                                              "instances that no longer run on this host."),
            dry_run: bool = typer.Option(False, "--dry-run")):
    """Remove what floatip servers that are gone left on this host."""
    if not orphans:
        fail(NeutronError("nothing to do: say what to clean up (--orphans)"))
    dp = dataplane()
    try:
        obs = dp.observe()
        gone = {rid: inst for rid, inst in obs.other_instances.items()
                if inst and instance_gone(inst)}
        p = Plan()
        for rid in sorted(gone):
            p.steps += _plan_removal(rid, _theirs(dp, obs, rid))
        for rid, inst in sorted(gone.items()):
            out.print(f"router {rid} of instance {inst} (not running): "
                      f"{'would be removed' if dry_run else 'removed'}")
        if not dry_run and p.steps:
            res = dp.apply(p)
            if res.errors:
                fail(NeutronError(f"cleanup failed: {res.errors}"))
        if not gone:
            out.print("no router of a stopped floatip instance on this host")
    finally:
        dp.close()


def _theirs(dp, obs, rid: str):
    """What an orphan router left (its namespace, its OVS ports), as removal needs it."""
    o = Observed()
    ns = f"qrouter-{rid}"
    if dp.identity(ns) is not None:
        # its radvd, if any, is ended by pid and its files go (with this host's run dir)
        o.namespaces[ns] = NsFacts(ns, rid, radvd_stale=True)
    for br in idl_rows(dp.ovs.tables["Bridge"]):
        for port in br.ports:
            for itf in port.interfaces:
                if itf.external_ids.get("floatip-router") == rid:
                    o.ports[port.name] = OvsPort(port.name, br.name, None, itf.type, rid)
    return o
