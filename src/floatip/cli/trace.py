"""``floatip trace``: why a packet goes where it goes, hop by hop, from what the host has
programmed (``dataplane.trace`` reads, ``core.trace`` walks), compared with the API's record
of the floating IP, and with ``--probe`` confirmed by a real packet. Exit 0 when the packet is
delivered, 1 when not (like ping), 2 on bad input."""
from __future__ import annotations

import ipaddress
import json
import os

import typer

from ..client import DEFAULT_URL, Client
from ..core.errors import NeutronError
from ..core.trace import PROTOS, ApiFip, Query, build, render
from ..core.trace_out import build_out
from ..core.trace_ovn import build_ovn
from ..dataplane.probe import probe as run_probe, probe_out
from ..dataplane.trace import gather, gather_out, ovs_ports
from ..dataplane.trace_ovn import gather_ovn, probe_ovn
from .app import app, fail, out


def api_fip(url: str, address: str) -> tuple[ApiFip | None, str | None]:
    """The API's record of the floating IP ``address`` (None and why, when there is none)."""
    try:
        with Client(url, timeout=5) as c:
            found = c.list("floatingip", floating_ip_address=address)
    except NeutronError as e:
        return None, f"API not compared ({e.message})"
    if not found:
        return None, f"the API has no floating IP {address}"
    f = found[0]
    return ApiFip(f["id"], f.get("status", ""), f.get("fixed_ip_address"), f.get("router_id"),
                  f.get("port_id")), None


def _ipv4(option: str, text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise NeutronError(f"{option} {text!r} is not an IPv4 address") from None


def api_port(url: str, ref: str) -> str | None:
    """The id of the port named (or with the id) ``ref``, by the API; None when unknown."""
    try:
        with Client(url, timeout=5) as c:
            return c.find("port", ref)["id"]
    except NeutronError:
        return None


@app.command()
def trace(source: str = typer.Option("upstream", "--from",
                                     help="upstream, or a VM's port (OVS port name, "
                                          "Neutron port id or name)."),
          dest: str = typer.Option(..., "--to", help="A floating IP or another address."),
          proto: str = typer.Option("tcp", "--proto", help="tcp, udp or icmp."),
          port: int = typer.Option(None, "--port", help="Destination port (tcp, udp)."),
          src: str = typer.Option(None, "--src", help="The packet's source address (default: "
                                                      "the router's upstream gateway)."),
          router: str = typer.Option(None, "--router", help="The router's id, where several "
                                                            "hold the address."),
          url: str = typer.Option(DEFAULT_URL, "--url", envvar="FLOATIP_URL",
                                  help="floatip API, to compare the host with the database."),
          no_api: bool = typer.Option(False, "--no-api", help="Do not ask the API."),
          ovn_nb: str = typer.Option(None, "--ovn-nb", help="OVN backend: the Northbound "
                                                            "database (with --ovn-sb)."),
          ovn_sb: str = typer.Option(None, "--ovn-sb", help="OVN backend: the Southbound "
                                                            "database, for ovn-trace."),
          chassis_db: str = typer.Option(None, "--chassis-db", help="OVN: the gateway "
                                         "chassis' OVS database (default: this host's)."),
          chassis_ctl: str = typer.Option(None, "--chassis-ctl", help="OVN: its "
                                          "ovs-vswitchd control socket (default: this host's)."),
          chassis_netns: str = typer.Option(None, "--chassis-netns", help="OVN, --probe: "
                                            "the namespace of its uplink (default: this one)."),
          probe: bool = typer.Option(False, "--probe", help="Confirm with a real packet."),
          as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
    """The path of one packet hop by hop, from what this host has programmed."""
    try:
        dest, src = _ipv4("--to", dest), _ipv4("--src", src) if src else None
        if proto not in PROTOS:
            raise NeutronError(f"--proto must be one of {', '.join(PROTOS)}")
        if port is not None and not (proto != "icmp" and 0 < port < 65536):
            raise NeutronError("--port is 1-65535, for tcp and udp")
        if router is not None and not all(c in "0123456789abcdef-" for c in router):
            raise NeutronError(f"--router {router!r} is not a router id")
        if source != "upstream" and not all(c.isalnum() or c in "-_." for c in source):
            raise NeutronError(f"--from {source!r} is not a port name or id")
    except NeutronError as e:
        fail(e)
    q = Query(source, dest, proto, port if proto != "icmp" else None)
    if ovn_sb or ovn_nb:
        if not (ovn_sb and ovn_nb) or source != "upstream":
            fail(NeutronError("on OVN: --ovn-nb and --ovn-sb, from upstream"))
        if chassis_netns is not None and not os.path.exists(f"/run/netns/{chassis_netns}"):
            fail(NeutronError(f"--chassis-netns {chassis_netns!r}: no such namespace"))
        api, note = (None, "API not asked (--no-api)") if no_api else api_fip(url, dest)
        facts = gather_ovn(q, ovn_nb, ovn_sb, src, api, chassis_db, chassis_ctl)
        t = build_ovn(facts)
        if probe:
            t.probe = probe_ovn(facts, chassis_netns, chassis_ctl)
        return _print(t, note, as_json)
    if os.geteuid() != 0:
        fail(NeutronError("trace reads router namespaces and OVS: run it as root"))
    if source == "upstream":
        api, note = (None, "API not asked (--no-api)") if no_api else api_fip(url, dest)
        facts = gather(q, src, api, note, router)
        t = build(facts)
    else:  # a VM's packet out (a Neutron port name becomes its id, through the API)
        note = None
        if not no_api and not any(p.name == source for p in ovs_ports().values()):
            source = api_port(url, source) or source
            q = Query(source, dest, proto, q.port)
        facts = gather_out(q, src, router)
        t = build_out(facts)
    if probe:
        t.probe = run_probe(facts) if source == "upstream" else probe_out(facts)
    _print(t, note, as_json)


def _print(t, note: str | None, as_json: bool) -> None:
    if as_json:
        doc = t.to_dict()
        doc["api_note"] = note
        print(json.dumps(doc, indent=2))
    else:
        out.print(render(t), highlight=False, soft_wrap=True)
        if note:
            out.print(f"({note})", style="dim", highlight=False)
    ok = t.delivered if t.probe is None else t.delivered and t.probe.get("delivered", False)
    raise typer.Exit(0 if ok else 1)
