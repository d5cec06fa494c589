"""NAT drivers: ``nftables`` (one table per router, floating IPs as map elements) and
``iptables`` (Neutron's chain layout)."""
from __future__ import annotations

from ..netns import DataplaneError
from .iptables import IptablesDriver
from .nftables import NftablesDriver


def nat_driver(name: str):
    if name == "iptables":
        return IptablesDriver()
    if name == "nftables":
        return NftablesDriver()
    raise DataplaneError(f"unknown NAT driver {name!r} (iptables, nftables)")
