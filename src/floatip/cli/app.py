"""The ``floatip`` command: the typer app, its global options and how errors are printed.
Commands live beside it (local, resources, serve); ``main`` puts them together."""
from __future__ import annotations

import logging

import typer
from rich.console import Console

from ..core.errors import InvalidState, NeutronError
from ..core.layout import AgentConfig, check_ifname

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Neutron-style virtual routers and floating IPs for Linux hosts.")
out = Console()
err = Console(stderr=True)


class Ctx:
    config: AgentConfig = AgentConfig()


@app.callback()
def main_options(
    integration_bridge: str = typer.Option("br-int", envvar="FLOATIP_INTEGRATION_BRIDGE",
                                           help="OVS bridge that tenant ports plug into."),
    bridge_mapping: list[str] = typer.Option(["physnet1:br-ex"], envvar="FLOATIP_BRIDGE_MAPPINGS",
                                             help="PHYSNET:BRIDGE for external networks."),
    nat_driver: str = typer.Option("nftables", envvar="FLOATIP_NAT_DRIVER",
                                   help="nftables (default) or iptables."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
):
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        mappings = AgentConfig.parse_mappings(
            [m for item in bridge_mapping for m in item.split(",") if m])
        Ctx.config = AgentConfig(check_ifname(integration_bridge), mappings, nat_driver)
    except NeutronError as e:
        fail(e)


def fail(e: Exception, code: int = 2):
    if isinstance(e, InvalidState):
        for x in e.errors:
            err.print(f"[red]error[/red] {x.type}: {x.message}", highlight=False)
    else:
        err.print(f"[red]error[/red] {getattr(e, 'type', type(e).__name__)}: {e}", highlight=False)
    raise typer.Exit(code)
