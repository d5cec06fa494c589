"""Neutron's IP protocol names for security group rules (neutron-lib's constants)."""
from __future__ import annotations

IP_PROTOCOL_MAP = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "igmp": 2,
    "ip": 0, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58,
    "icmpv6": 58,  # the legacy name, kept by Neutron's API
    "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113,
    "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112}
PROTO_ANY = (None, "any")
SUPPORTED = ("any", *IP_PROTOCOL_MAP)  # Neutron's order in its message
PORT_PROTOCOLS = (33, 132, 6, 17, 136)  # dccp, sctp, tcp, udp, udplite: port ranges
ICMP = (1, 58)
# IPv6-only protocols: refused on IPv4 rules (Neutron's _validate_ethertype_and_protocol)
IPV6_ONLY = ("ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts",
             "ipv6-route", "41", "44", "58", "59", "60", "43")
IPV6_ICMP_LEGACY = ("icmp", "icmpv6")


def number(protocol: str | None, ethertype: str = "IPv4") -> int | None:
    """The protocol number a firewall matches: None for any; on IPv6 "icmp"/"icmpv6"/"1"
    are ICMPv6 (58), as Neutron's drivers read them."""
    if protocol in PROTO_ANY:
        return None
    p = str(protocol).lower()
    if ethertype == "IPv6" and (p in IPV6_ICMP_LEGACY or p == "1"):
        return 58
    return IP_PROTOCOL_MAP[p] if p in IP_PROTOCOL_MAP else int(p)
