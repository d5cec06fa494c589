"""Open vSwitch: the OVSDB address, reading IDL rows safely, the datapath type."""
from __future__ import annotations

import os
import subprocess

OVSDB = os.environ.get("FLOATIP_OVSDB", "unix:/var/run/openvswitch/db.sock")


def idl_rows(table) -> list:
    """The rows of an OVSDB IDL table; the IDL thread may change the dict while we copy it."""
    for _ in range(50):
        try:
            return list(table.rows.values())
        except RuntimeError:  # "dictionary changed size during iteration": copy again
            continue
    return list(table.rows.values())


def datapath_type() -> str:
    """``system`` where the kernel has the openvswitch module, ``netdev`` (userspace) where not."""
    if os.path.exists("/sys/module/openvswitch"):
        return "system"
    if subprocess.run(["modprobe", "-q", "openvswitch"], capture_output=True).returncode == 0 \
            and os.path.exists("/sys/module/openvswitch"):
        return "system"
    return "netdev"
