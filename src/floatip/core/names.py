"""Checks of the names a host's settings give the kernel and OVS (bridges, bridge mappings).
Apart from layout.py, which imports them: the CLI checks its global options with these on
every call, and layout's state model would cost an API call a fifth of its time (issue 26)."""
from __future__ import annotations

from .errors import NeutronError


def check_ifname(name: str) -> str:
    """Interface and bridge names go to the kernel and OVS: keep them short and plain."""
    if not (1 <= len(name) <= 15) or not all(c.isalnum() or c in "-_." for c in name) \
            or name in (".", ".."):
        raise NeutronError(f"Invalid interface name {name!r}: 1-15 characters of [A-Za-z0-9-_.]")
    return name


def parse_mappings(items: list[str]) -> dict[str, str]:
    """``PHYSNET:BRIDGE`` items -> {physnet: bridge}."""
    out = {}
    for item in items:
        physnet, sep, bridge = item.partition(":")
        if not sep or not physnet or not bridge:
            raise NeutronError(f"Bridge mapping {item!r} is not PHYSNET:BRIDGE")
        # as Neutron's parse_mappings(unique_values=True): one bridge per physnet and back
        if physnet in out or bridge in out.values():
            dup = physnet if physnet in out else bridge
            raise NeutronError(f"Bridge mapping {item!r}: {dup} is already mapped")
        out[physnet] = check_ifname(bridge)
    return out
