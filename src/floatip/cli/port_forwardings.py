"""``floatip floating-ip port-forwarding create|list|show|delete``: a floating IP's port
forwardings through the API (the floating IP by id or address, the internal port by id or
name)."""
from __future__ import annotations

from typing import Optional

import typer

from ..client import Client
from ..core.errors import NeutronError
from .output import COLUMN, FORMAT, Format, label, print_list
from .resources import URL, _call, _fail, _print_one, fip_app, out

pf_app = typer.Typer(help="A floating IP's port forwardings through the API.",
                     no_args_is_help=True)
COLUMNS = ("id", "protocol", "external_port_range", "internal_ip_address",
           "internal_port_range", "internal_port_id", "description")


def _path(c: Client, fip: str) -> str:
    return f"/v2.0/floatingips/{c.find('floatingip', fip)['id']}/port_forwardings"


def _ports(value: str, what: str) -> dict:
    """"N" -> the single port, "N:M" -> the range."""
    if ":" in value:
        return {f"{what}_port_range": value}
    try:
        return {f"{what}_port": int(value)}
    except ValueError:
        raise typer.BadParameter(f"--{what}-protocol-port: {value!r} is not N or N:M") \
            from None


@pf_app.command("create")
def pf_create(fip: str,
              internal_port: str = typer.Option(..., "--port",
                                                help="The internal port (id or name)."),
              internal_ip: Optional[str] = typer.Option(None, "--internal-ip-address",
                                                        help="Which of the port's fixed IPs "
                                                             "[its first IPv4]."),
              internal_pp: str = typer.Option(..., "--internal-protocol-port",
                                              help="N or N:M"),
              external_pp: str = typer.Option(..., "--external-protocol-port",
                                              help="N or N:M"),
              protocol: str = typer.Option("tcp", "--protocol", help="tcp or udp"),
              description: str = typer.Option("", "--description",
                                              help="Free text kept with it."),
              url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """Forward FIP's external port(s) to an internal port's fixed IP and port(s)."""
    with Client(url) as c:
        def go():
            body = {"protocol": protocol, "internal_port_id": c.find("port", internal_port)["id"],
                    "description": description, **_ports(internal_pp, "internal"),
                    **_ports(external_pp, "external")}
            if internal_ip:
                body["internal_ip_address"] = internal_ip
            return c.request("POST", _path(c, fip),
                             json={"port_forwarding": body})["port_forwarding"]
        _print_one(_call(go), fmt, columns)


@pf_app.command("list")
def pf_list(fip: str, url: str = URL, fmt: Format = FORMAT, columns: list[str] = COLUMN):
    """The forwardings of FIP."""
    with Client(url) as c:
        items = _call(lambda: c.request("GET", _path(c, fip))["port_forwardings"])
    try:
        print_list(items, COLUMNS, {}, fmt, columns)
    except NeutronError as e:  # a -c that names no column
        _fail(e, 2)


@pf_app.command("show")
def pf_show(fip: str, pf_id: str, url: str = URL, fmt: Format = FORMAT,
            columns: list[str] = COLUMN):
    """One forwarding of FIP."""
    with Client(url) as c:
        _print_one(_call(lambda: c.request("GET", f"{_path(c, fip)}/{pf_id}")[
            "port_forwarding"]), fmt, columns)


@pf_app.command("delete")
def pf_delete(fip: str, pf_ids: list[str], url: str = URL):
    """Delete forwardings of FIP."""
    with Client(url) as c:
        f = _call(lambda: c.find("floatingip", fip))
        for pid in pf_ids:
            _call(lambda: c.request("DELETE", f"{_path(c, f['id'])}/{pid}"))
            out.print(f"deleted port forwarding ({pid}) of floating ip {label('floatingip', f)}",
                      highlight=False)


fip_app.add_typer(pf_app, name="port-forwarding")
