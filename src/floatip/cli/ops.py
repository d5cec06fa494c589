"""Operations on this host: ``floatip cleanup --orphans`` (routers left on this host by floatip
servers that no longer run). ``floatip status``: events.py, a client of the API."""
from __future__ import annotations

import typer

from ..core.errors import NeutronError
from ..core.plan import NsFacts, Observed, OvsPort, Plan, _plan_removal
from ..dataplane.ovs import idl_rows
from ..server import instance_gone
from .app import app, fail, out
from .local import dataplane


@app.command()
def cleanup(orphans: bool = typer.Option(False, "--orphans",
                                         help="Remove the routers of floatip server "
                                              "instances that no longer run on this host."),
            dry_run: bool = typer.Option(False, "--dry-run",
                                         help="Say what would be removed, remove nothing.")):
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
