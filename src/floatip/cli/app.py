"""The ``floatip`` command: the typer app, its global options and how errors are printed.
Commands live beside it (local, resources, serve); ``main`` puts them together."""
from __future__ import annotations

import importlib
import logging
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text

from ..core.errors import InvalidState, NeutronError
from ..core.names import check_ifname, parse_mappings

# -h as --help, on every subcommand too (click's contexts inherit help_option_names)
app = typer.Typer(add_completion=True, no_args_is_help=True,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Neutron-style virtual routers and floating IPs for Linux hosts.")
# piped, wide enough that no table wraps: IP addresses and UUIDs stay whole for grep. No
# markup and no emoji codes: names, reasons and messages print as typed ("[b]x[/b]",
# ":smile:", "[DEFAULT]"); colour comes only from styled()
out = Console(width=None if sys.stdout.isatty() else 1 << 16, emoji=False, markup=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 1 << 16, emoji=False,
              markup=False)


def styled(word: str, style: str, rest: str = "") -> Text:
    """``word`` in ``style``, then ``rest`` as plain text (never read as markup)."""
    return Text.assemble((word, style), rest)


NAT_DRIVERS = ("nftables", "iptables")


class Ctx:
    # the host's settings from the global options, checked: local.py's AgentConfig (not built
    # here: core.layout, with the state model, costs an API call a fifth of its time)
    host: dict = {"integration_bridge": "br-int", "bridge_mappings": {"physnet1": "br-ex"},
                  "nat_driver": "nftables"}
    # the global options given (flag or environment), as config keys: they override the
    # config file's (cli/config.py)
    flags: dict = {}


def _version(show: bool):
    if show:
        # importlib.metadata costs every other call a tenth of its time: loaded only here
        metadata = importlib.import_module("importlib.metadata")
        try:
            v = metadata.version("floatip")
        except metadata.PackageNotFoundError:  # run from a source tree never installed
            v = "unknown"
        out.print(f"floatip {v}", highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(
    # None when not given, so that the config file's keys apply (serve, agent, port plug)
    integration_bridge: Optional[str] = typer.Option(
        None, envvar="FLOATIP_INTEGRATION_BRIDGE",
        help="OVS bridge that tenant ports plug into [br-int; config: \\[ovs] "
             "integration_bridge]."),
    bridge_mapping: Optional[list[str]] = typer.Option(
        None, envvar="FLOATIP_BRIDGE_MAPPINGS",
        help="PHYSNET:BRIDGE for external networks [physnet1:br-ex; config: \\[ovs] "
             "bridge_mappings]."),
    nat_driver: Optional[str] = typer.Option(
        None, envvar="FLOATIP_NAT_DRIVER",
        help="nftables or iptables [nftables; config: \\[agent] nat_driver]."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
    _show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print floatip's version and exit."),
):
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    Ctx.flags = {key: value for key, value in (
        (("ovs", "integration_bridge"), integration_bridge),
        (("ovs", "bridge_mappings"), ",".join(bridge_mapping) if bridge_mapping else None),
        (("agent", "nat_driver"), nat_driver)) if value is not None}
    integration_bridge = integration_bridge or "br-int"
    bridge_mapping = bridge_mapping or ["physnet1:br-ex"]
    nat_driver = nat_driver or "nftables"
    try:
        if nat_driver not in NAT_DRIVERS:  # the dataplane's names; checked before any command
            raise NeutronError(f"--nat-driver {nat_driver!r}: {' or '.join(NAT_DRIVERS)}")
        mappings = parse_mappings([m for item in bridge_mapping for m in item.split(",") if m])
        Ctx.host = {"integration_bridge": check_ifname(integration_bridge),
                    "bridge_mappings": mappings, "nat_driver": nat_driver}
    except NeutronError as e:
        fail(e)


def fail(e: Exception, code: int = 2):
    if isinstance(e, InvalidState):
        for x in e.errors:
            err.print(styled("error", "red", f" {x.type}: {x.message}"), highlight=False)
    else:
        # unwrapped for grep
        err.print(styled("error", "red", f" {getattr(e, 'type', type(e).__name__)}: {e}"),
                  highlight=False, soft_wrap=True)
    raise typer.Exit(code)
