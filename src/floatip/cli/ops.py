"""Operations on this host: ``floatip cleanup --orphans`` (what floatip servers that are dead
left on this host). ``floatip status``: events.py, a client of the API."""
from __future__ import annotations

import contextlib
import os
from typing import Optional

import typer

from ..core.errors import NeutronError
from ..core.plan import NsFacts, Observed, OvsPort, Plan, _plan_removal
from ..dataplane.dhcp import DhcpDataplane
from ..dataplane.kernel import LOCAL_OWNER
from ..dataplane.ovs import idl_rows
from ..dataplane.process import running
from ..metadata.agent import daemons, stop_daemon
from ..server import INSTANCES_DIR, instance_alive, instance_gone
from .app import app, fail, out
from .local import dataplane


@app.command()
def cleanup(orphans: bool = typer.Option(False, "--orphans",
                                         help="Remove what floatip server instances that "
                                              "are dead (killed, not stopped) left on this "
                                              "host."),
            dry_run: bool = typer.Option(False, "--dry-run",
                                         help="Say what would be removed, remove nothing."),
            run_dir: str = typer.Option("/run/floatip", "--run-dir",
                                        help="The servers' run directory (DHCP files)."),
            only: Optional[list[str]] = typer.Option(None, "--instance",
                                                     help="Only this dead instance (again "
                                                          "for more); default: every one.")):
    """Remove what floatip servers that are dead left on this host: their routers (with
    their radvd), DHCP namespaces (dnsmasq, taps), metadata processes and sockets, pid
    files. A server stopped on purpose is not dead: its things stay and keep serving."""
    if not orphans:
        fail(NeutronError("nothing to do: say what to clean up (--orphans)"))

    def dead(inst: str | None, stopped: bool = False) -> bool:
        """Dead (``stopped``: or stopped), and among those asked for."""
        return bool(inst) and inst != LOCAL_OWNER and (not only or inst in only) and (
            not instance_alive(inst) if stopped else instance_gone(inst))
    dp = dataplane()
    dhcp = DhcpDataplane(os.path.join(run_dir, "dhcp"))
    done = "would be removed" if dry_run else "removed"
    try:
        obs = dp.observe()
        owners = {inst for inst in obs.other_instances.values() if inst}
        gone = {rid: inst for rid, inst in obs.other_instances.items() if dead(inst)}
        p = Plan()
        for rid in sorted(gone):
            p.steps += _plan_removal(rid, _theirs(dp, obs, rid))
        for rid, inst in sorted(gone.items()):
            out.print(f"router {rid} of instance {inst} (dead): {done}", highlight=False)
        if not dry_run and p.steps:
            res = dp.apply(p)
            if res.errors:
                fail(NeutronError(f"cleanup failed: {res.errors}"))
        nets = dhcp.observe()
        owners |= {f.instance for f in nets.values() if f.instance}
        for nid, facts in sorted(nets.items()):
            if dead(facts.instance):
                out.print(f"DHCP for network {nid} of instance {facts.instance} (dead; "
                          f"{facts.namespace}, dnsmasq {facts.pid or '-'}, taps "
                          f"{', '.join(sorted(facts.ports)) or '-'}): {done}", highlight=False)
                if not dry_run:
                    dhcp.remove(facts)
        n = len(gone) + _metadata_orphans(dry_run, done, owners, dead, not only)
        n += sum(1 for f in nets.values() if dead(f.instance))
        _records(dry_run, owners, dead)
        if not n:
            out.print("nothing of a dead floatip instance on this host")
    finally:
        dhcp.close()
        dp.close()


def _metadata_orphans(dry_run: bool, done: str, owners: set[str], dead,
                      everything: bool) -> int:
    """The metadata processes of dead instances (and of agents that died without stopping
    theirs), with their directories and sockets."""
    n = 0
    for pid, d, owner in daemons():
        # an agent that did not keep its process names it by its pid: "p<pid>-<n>"
        agent_pid = owner[1:].split("-")[0] if owner.startswith("p") else ""
        dead_agent = everything and agent_pid.isdigit() and not running(int(agent_pid))
        if owner != "agent" and not dead_agent:
            owners.add(owner)
        if not dead_agent and (owner == "agent" or not dead(owner)):
            continue
        n += 1
        out.print(f"metadata process {pid} of {'a dead agent' if dead_agent else owner} "
                  f"({d}): {done}", highlight=False)
        if not dry_run:
            stop_daemon(d)
            with contextlib.suppress(OSError):
                os.unlink(d[:-len(".d")])  # its socket
    return n


def _records(dry_run: bool, owners: set[str], dead) -> None:
    """Pid files of dead instances; the marker of a stopped instance once nothing of it is
    left on this host (it says "keep its things": there are none)."""
    try:
        names = os.listdir(INSTANCES_DIR)
    except OSError:
        return
    for name in sorted(names):
        inst, _, kind = name.rpartition(".")
        if (kind in ("pid", "started") and dead(inst)) or (kind == "stopped" and inst not in owners
                                                and dead(inst, stopped=True)):
            out.print(f"{kind} file of instance {inst}: "
                      f"{'would be removed' if dry_run else 'removed'}", highlight=False)
            if not dry_run:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(INSTANCES_DIR, name))


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
