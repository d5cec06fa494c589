"""Entry point: the typer app with every command registered."""
from __future__ import annotations

import sys

# each module registers its commands on ``app``
from . import (events, local, ops, ovn_metadata, resources, security_groups,  # noqa: F401
               serve, trace)
from .app import app


def main():
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
