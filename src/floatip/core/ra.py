"""Router advertisements: radvd's configuration for a router's IPv6 interfaces, the way
Neutron's L3 agent writes it (neutron/agent/linux/ra.py). Pure.

Per ``qr-`` device with subnets that have an ``ipv6_ra_mode``: the prefixes with the flags
of their mode (slaac: autonomous; dhcpv6-stateless: autonomous and the other-config flag;
dhcpv6-stateful: the managed flag, prefix not autonomous), DNS servers of the SLAAC subnets
as RDNSS (3 at most, radvd's limit) and the network MTU (AdvLinkMTU, from 1280 up).
"""
from __future__ import annotations

import ipaddress

SLAAC, STATEFUL, STATELESS = "slaac", "dhcpv6-stateful", "dhcpv6-stateless"
MODES = (SLAAC, STATEFUL, STATELESS)
IPV6_MIN_MTU = 1280
MAX_RDNSS = 3
# Neutron's defaults (min_rtr_adv_interval, max_rtr_adv_interval); a host that boots sends
# a router solicitation and is answered at once
MIN_RTR_ADV_INTERVAL, MAX_RTR_ADV_INTERVAL = 30, 100


def radvd_config(ports) -> str:
    """``ports``: [(device name, network MTU, [Subnet with ipv6_ra_mode])], in order."""
    out = []
    for dev, mtu, subnets in ports:
        modes = {s.ipv6_ra_mode for s in subnets}
        lines = [f"interface {dev}", "{", "   AdvSendAdvert on;",
                 f"   MinRtrAdvInterval {MIN_RTR_ADV_INTERVAL};",
                 f"   MaxRtrAdvInterval {MAX_RTR_ADV_INTERVAL};"]
        if mtu >= IPV6_MIN_MTU:
            lines.append(f"   AdvLinkMTU {mtu};")
        if STATELESS in modes:
            lines.append("   AdvOtherConfigFlag on;")
        if STATEFUL in modes:
            lines.append("   AdvManagedFlag on;")
        dns = [str(ipaddress.ip_address(a)) for s in subnets if s.ipv6_ra_mode == SLAAC
               for a in s.dns_nameservers if _v6(a)][:MAX_RDNSS]
        if dns:
            lines.append(f"   RDNSS {' '.join(dns)} {{}};")
        for s in subnets:
            auto = "on" if s.ipv6_ra_mode in (SLAAC, STATELESS) else "off"
            lines += [f"   prefix {ipaddress.ip_network(s.cidr)}", "   {",
                      "      AdvOnLink on;", f"      AdvAutonomous {auto};", "   };"]
        lines.append("};")
        out.append("\n".join(lines) + "\n")
    return "".join(out)


def _v6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False
