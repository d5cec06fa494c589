"""Commands that work on this host's kernel directly (``apply --local``, ``diff``,
``teardown``, ``show``), ``apply FILE`` through the API, and the demo."""
from __future__ import annotations

import json
import os
from pathlib import Path

import typer
import yaml
from rich.table import Table

from ..agent.reconciler import reconcile
from ..core.document import load
from ..core.errors import NeutronError
from ..core.layout import AgentConfig
from ..core.model import State
from ..core.plan import commands, summary
from ..dataplane.dhcp import DhcpDataplane
from ..dataplane.kernel import LOCAL_OWNER, Dataplane
from ..server import server_state
from . import demo_api, demo_ovn
from .demo import EX_BR, INT_BR
from .app import Ctx, app, err, fail, out, styled
from .apply_cmds import URL, run_apply


def page_hint() -> str:
    """How to see a kept demo on the topology page (its API stopped with the demo)."""
    db = os.path.join(demo_api.KEEP_DIR, "demo.db")
    return (f"topology page: http://127.0.0.1:9696/ui/ once its API runs again: floatip "
            f"--integration-bridge {INT_BR} --bridge-mapping physnet1:{EX_BR} "
            f"serve --db sqlite:///{db} --listen 127.0.0.1:9696")


def read_state(path: Path) -> State:
    try:
        text = path.read_text()
    except OSError as e:
        fail(e)
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        return load(doc or {})
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        fail(NeutronError(f"{path}: not valid YAML/JSON: {e}"))
    except NeutronError as e:
        fail(e)


def host_config() -> AgentConfig:
    """This host's bridges and NAT driver as the global options gave them."""
    return AgentConfig(**Ctx.host)


def dataplane():
    """The kernel as ``apply --local`` owns it: what it makes carries its own owner mark
    (``LOCAL_OWNER``); servers' routers are theirs (``other_instances``), never touched."""
    if os.geteuid() != 0:
        fail(NeutronError("floatip changes namespaces, links and OVS: run it as root"))
    try:
        return Dataplane(Ctx.host["nat_driver"], instance=LOCAL_OWNER)
    except Exception as e:  # noqa: BLE001
        fail(NeutronError(f"cannot reach the dataplane: {e}"))


def print_report(report, as_json: bool, dry_run: bool, datapath: str) -> None:
    if as_json:
        print(json.dumps({
            "dry_run": dry_run, "writes": report.writes, "seconds": round(report.seconds, 4),
            "errors": report.errors,
            "steps": [{"action": s.action, "target": s.target, "why": s.why,
                       "commands": commands(s, datapath)} for s in report.plan.steps]}, indent=2))
        return
    if dry_run:
        for s in report.plan.steps:
            out.print(f"# {s.action} {s.target}: {s.why}", style="dim", highlight=False,
                      soft_wrap=True)
            for c in commands(s, datapath):
                print(c)
        if not report.plan.steps:
            out.print("# nothing to change", style="dim")
    else:
        for s in report.plan.steps:
            out.print(styled("✓", "green", f" {summary(s)}"), highlight=False, soft_wrap=True)
        out.print(f"{len(report.plan.steps)} step(s), {report.writes} write(s) in "
                  f"{report.seconds * 1000:.1f} ms" if report.plan.steps else
                  f"nothing to change ({report.seconds * 1000:.1f} ms)")
    for rid, e in report.errors.items():
        err.print(styled(f"router {rid}", "red", f": {e}"), highlight=False)


@app.command()
def apply(file: Path, dry_run: bool = typer.Option(False, "--dry-run",
                                                   help="Print what would change, change "
                                                        "nothing (with --local: the commands)."),
          local: bool = typer.Option(False, "--local",
                                     help="Program the kernel directly, without the API."),
          url: str = URL,
          as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Create or update FILE's resources through the API, like kubectl apply (--local: kernel)."""
    if not local:
        run_apply(file, url, as_json, dry_run)
        return
    state = read_state(file)
    dp = dataplane()
    try:
        report = reconcile(dp, state, host_config(), dry_run=dry_run)
        print_report(report, as_json, dry_run, dp.datapath_type)
    except NeutronError as e:
        fail(e)
    finally:
        dp.close()
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def diff(file: Path, local: bool = typer.Option(False, "--local",
                                                help="Against this host's kernel: the "
                                                     "commands `apply --local` would run."),
         url: str = URL, as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """What `apply FILE` would change through the API (--local: in the kernel); exit 1 when
    something differs."""
    if not local:
        raise typer.Exit(1 if run_apply(file, url, as_json, True) else 0)
    state = read_state(file)
    dp = dataplane()
    try:
        report = reconcile(dp, state, host_config(), dry_run=True)
        print_report(report, as_json, True, dp.datapath_type)
    finally:
        dp.close()
    raise typer.Exit(1 if report.plan.steps else 0)


@app.command()
def teardown(file: Path, as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """Remove the routers (namespaces, OVS ports, rules) that FILE describes from this host's
    kernel (`apply --local`'s undo; `delete -f FILE` deletes through the API)."""
    state = read_state(file)
    dp = dataplane()
    try:
        report = reconcile(dp, State(), host_config(), remove=set(state.routers))
        print_report(report, as_json, False, dp.datapath_type)
    finally:
        dp.close()


@app.command()
def show(as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """What floatip owns in the kernel now, per router."""
    dp = dataplane()
    dhcp = DhcpDataplane()
    try:
        obs = dp.observe()
        networks = dhcp.describe()
    finally:
        dp.close()
        dhcp.close()
    routers = []
    for ns, f in sorted(obs.namespaces.items()):
        ports = {n: p for n, p in obs.ports.items() if p.router_id == f.router_id}
        routers.append({
            "router_id": f.router_id, "namespace": ns,
            "owner": "apply --local" if f.instance == LOCAL_OWNER else "unmarked",
            "devices": [{"name": l.name, "mac": l.mac, "mtu": l.mtu, "up": l.up,
                         "addresses": sorted(l.addresses),
                         "ovs": {"bridge": ports[n].bridge, "tag": ports[n].tag}
                         if n in ports else None} for n, l in sorted(f.links.items())],
            "default_route": {"via": f.default_route[0], "dev": f.default_route[1]}
            if f.default_route else None,
            "default_route6": {"via": f.default_route6[0], "dev": f.default_route6[1]}
            if f.default_route6 else None,
            "extra_routes": [{"destination": d, "nexthop": v} for d, v in sorted(f.extra_routes)],
            "radvd": f.radvd,
            "floating_ips": [{"floating_ip": k, "fixed_ip": v} for k, v in sorted(f.fip_map.items())],
            "rules": _rules_text(f.nat),
            "sysctls": f.sysctls})
    if as_json:
        print(json.dumps({"routers": routers, "dhcp": networks,
                          "foreign_namespaces": sorted(obs.foreign_namespaces),
                          "other_instances": [{"router_id": r, "instance": i,
                                               "server": server_state(i)} for r, i in
                                              sorted(obs.other_instances.items())]},
                         indent=2))
        return
    if not routers:
        out.print("floatip owns no router on this host")
    for rid, inst in sorted(obs.other_instances.items()):
        out.print(f"router {rid}: server instance {inst} ({server_state(inst)})",
                  highlight=False)
    for r in routers:
        out.rule(f"router {r['router_id']}  ({r['namespace']}, {r['owner']})")
        t = Table("device", "ovs", "mac", "addresses")
        for d in r["devices"]:
            ovs = f"{d['ovs']['bridge']} tag={d['ovs']['tag']}" if d["ovs"] else "-"
            t.add_row(d["name"], ovs, d["mac"], "\n".join(d["addresses"]))
        out.print(t)
        for key in ("default_route", "default_route6"):
            if r[key]:
                out.print(f"default via {r[key]['via']} dev {r[key]['dev']}", highlight=False)
        for x in r["extra_routes"]:
            out.print(f"{x['destination']} via {x['nexthop']}", highlight=False)
        if r["radvd"]:
            out.print("radvd:\n" + r["radvd"], highlight=False, style="dim")
        if r["floating_ips"]:
            t = Table("floating ip", "fixed ip")
            for f in r["floating_ips"]:
                t.add_row(f["floating_ip"], f["fixed_ip"])
            out.print(t)
        out.print("\n".join(r["rules"]), highlight=False, style="dim")
    if networks:
        t = Table("network (DHCP)", "namespace", "dnsmasq", "addresses")
        for n in networks:
            t.add_row(n["network_id"], n["namespace"], f"{n['dnsmasq_pid']} " + (
                "alive" if n["dnsmasq_alive"] else "dead"), "\n".join(n["addresses"]))
        out.print(t)


def _rules_text(nat) -> list[str]:
    if hasattr(nat, "chains"):
        return [f"-t {t} {rule}" for (t, _), rules in sorted(nat.chains.items()) for rule in rules]
    return nat.text().splitlines() if hasattr(nat, "text") else []


@app.command()
def demo(keep: bool = typer.Option(False, "--keep", help="Leave the topology up."),
         as_json: bool = typer.Option(False, "--json", help="With --keep: print the names."),
         teardown_: bool = typer.Option(False, "--teardown", help="Remove a kept demo."),
         backend: str = typer.Option("kernel", "--backend",
                                     help="kernel, or ovn: two OVN chassis on this machine "
                                          "(checks (a)-(g) as well).")):
    """Build the seed through a throw-away API server and check it: (a)-(g)."""
    if os.geteuid() != 0:
        fail(NeutronError("floatip changes namespaces, links and OVS: run it as root"))
    if backend not in ("kernel", "ovn"):
        fail(NeutronError(f"--backend {backend}: kernel or ovn"))
    if teardown_:
        left = demo_ovn.teardown() if backend == "ovn" else \
            demo_api.teardown(Ctx.host["nat_driver"])
        if left:
            fail(NeutronError(f"could not remove: {', '.join(left)}"), 1)
        out.print("demo removed")
        return
    log = (lambda m: None) if as_json else \
        (lambda m: out.print(m, style="dim", highlight=False))
    if backend == "ovn":
        res, names = demo_ovn.run(keep, log=log)
    else:
        res = demo_api.run(Ctx.host["nat_driver"], keep, log=log)
        names = demo_api.names(res.router_id)
    checks = res.checks
    elapsed = res.timings.get("total", 0.0)
    ok = bool(checks) and all(c.ok for c in checks)
    if as_json:
        print(json.dumps({**names, "checks": [c.__dict__ for c in checks],
                          "ok": ok, "seconds": round(elapsed, 2),
                          "timings": {k: round(v, 3) for k, v in res.timings.items()}}, indent=2))
    else:
        for c in checks:
            line = styled("PASS", "green") if c.ok else styled("FAIL", "red")
            line.append(f" ({c.key}) {c.text}")
            if c.detail:
                line.append(f"  {c.detail}", style="dim")
            out.print(line, highlight=False)
        out.print(f"demo {'passed' if ok else 'FAILED'} in {elapsed:.2f} s"
                  + (f"; left up (floatip demo{' --backend ovn' if backend == 'ovn' else ''}"
                     " --teardown removes it)" if keep else ""))
        if keep and backend != "ovn":
            out.print(page_hint(), highlight=False, soft_wrap=True)
    raise typer.Exit(0 if ok else 1)
