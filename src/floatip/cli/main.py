"""Entry point: the typer app with its commands. A command's module is imported only when that
command runs: a client call (``floatip network list``) must not import the server, FastAPI,
SQLAlchemy or pyroute2 (2.7 s -> ~0.2 s, issue 26). Help, completion and a name not in
MODULES import every module, so a command missing here is slow, never lost."""
from __future__ import annotations

import importlib
import os
import sys

from . import app as _app

# command -> the module that registers it on ``app`` ("port plug": a subcommand with a module
# of its own; its group's module is imported by it)
MODULES = {"network": "resources", "subnet": "resources", "port": "resources",
           "port plug": "plug", "port unplug": "plug", "router": "resources",
           "floating-ip": "resources", "floating-ip port-forwarding": "port_forwardings",
           "security-group": "security_groups", "qos": "qos", "network rbac": "rbac",
           "subnet pool": "subnetpools", "address-scope": "subnetpools",
           "events": "events", "status": "events", "cleanup": "ops", "serve": "serve",
           "agent": "serve", "trace": "trace", "apply": "local", "diff": "local",
           "teardown": "local", "show": "local", "demo": "local", "delete": "apply_cmds",
           "ovn-metadata": "ovn_metadata"}
# the global options (app.main_options) that take a value: their value is not a command
VALUED = ("--integration-bridge", "--bridge-mapping", "--nat-driver")


def command_path(argv: list[str]) -> list[str]:
    """The first two words of ``floatip [GLOBAL OPTIONS] COMMAND [SUBCOMMAND] ...``."""
    words, args = [], iter(argv)
    for a in args:
        if a in VALUED and not words:
            next(args, None)
        elif not a.startswith("-"):
            words.append(a)
            if len(words) == 2:
                break
    return words


def modules_for(argv: list[str]) -> set[str]:
    """The modules that register what ``argv`` runs: a command's own; a group without its
    subcommand (its help) every module of the group; help, completion and a name not in
    MODULES all of them."""
    words = command_path(argv)
    if not words or words[0] not in MODULES or "_FLOATIP_COMPLETE" in os.environ:
        return set(MODULES.values())
    if len(words) == 1:
        return {m for c, m in MODULES.items() if c.split()[0] == words[0]}
    return {MODULES.get(" ".join(words), MODULES[words[0]])}


def load(argv: list[str]) -> None:
    """Register the commands ``argv`` can run."""
    for module in sorted(modules_for(argv)):
        importlib.import_module(f"{__package__}.{module}")


def __getattr__(name: str):
    """``from floatip.cli.main import app``: the app with every command (tests drive it)."""
    if name == "app":
        load([])
        return _app.app
    raise AttributeError(name)


def main():
    load(sys.argv[1:])
    try:
        _app.app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
