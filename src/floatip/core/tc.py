"""Bandwidth limits of floating IPs and gateways as Linux traffic control on a router's
``qg-`` device (pure: the ``tc`` argv lists; dataplane/tc.py observes and runs them).

Egress (the address -> outside): an htb root qdisc on qg- (``default 0``: what no filter
claims leaves unshaped), a class per address and a u32 filter on the source (after SNAT:
the egress qdisc runs past POSTROUTING, where a floating IP's traffic carries it).
Ingress (outside -> the address): qg-'s ingress qdisc redirects IPv4 (mirred) to the
router's ifb device ``qi-`` (floatip's), whose htb has a class per address matched on the
destination (the ingress qdisc runs before PREROUTING's DNAT). An address has the same
class minor on both devices; the filter's handle ``800::<minor>`` names it for deletion.
No policing action is used (this kernel has none): htb queues, as Neutron's l3 tc does.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

MAX_MINOR = 0xfff  # a u32 node id (the filter handle's last part) is 12 bits
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_SIZES = {"b": 1, "Kb": 1024, "Mb": 1024 * 1024}


def ifb_name(qg: str) -> str:
    """The router's ifb device: qg-'s name with the qi- prefix (15 characters at most)."""
    return "qi-" + qg[3:]


def burst_bytes(kbps: int, burst_kbps: int) -> int:
    """Neutron's default burst is 80 % of the rate; htb needs at least a frame."""
    return max((burst_kbps or kbps * 8 // 10) * 1000 // 8, 1600)


@dataclass
class TcFacts:
    """What floatip's qdiscs on qg- and qi- hold: address -> (class minor, rate in bit/s,
    burst in bytes) per direction, and which qdiscs and devices are there."""
    egress: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    ingress: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    root: bool = False          # htb 1: on qg-
    redirect: bool = False      # ingress qdisc on qg- with the mirred filter
    ifb: bool = False           # qi- exists
    ifb_root: bool = False      # htb 1: on qi-
    used: set[int] = field(default_factory=set)  # class minors there, with a filter or not


def matches(want: tuple, have: TcFacts | None) -> bool:
    """Whether ``have`` carries ``want`` ((address, direction, kbps, burst kbps), ...)."""
    if have is None:
        return not want
    for direction in ("egress", "ingress"):
        w = {a: (k, b) for a, d, k, b in want if d == direction}
        h = getattr(have, direction)
        if set(w) != set(h):
            return False
        for a, (kbps, burst) in w.items():
            _, rate, hburst = h[a]
            if rate != kbps * 1000 or abs(hburst - burst_bytes(kbps, burst)) > \
                    burst_bytes(kbps, burst) // 20 + 64:
                return False
    ingress = any(d == "ingress" for _, d, _, _ in want)
    return have.redirect == ingress and have.ifb == ingress and have.root == any(
        d == "egress" for _, d, _, _ in want)


def changes(qg: str, want: tuple, have: TcFacts) -> list[list[str]]:
    """The argv lists (``tc``, ``ip``) turning ``have`` into ``want``, per address: a
    changed limit is a class change, a gone one its filter and class, none left in a
    direction its qdisc (and the ifb device)."""
    ifb = ifb_name(qg)
    out: list[list[str]] = []
    used = set(have.used) | {m for m, _, _ in (*have.egress.values(), *have.ingress.values())}
    minors = {a: m for a, (m, _, _) in (*have.egress.items(), *have.ingress.items())}

    def minor(addr: str) -> int:
        if addr not in minors:
            free = next((m for m in range(2, MAX_MINOR + 1) if m not in used), None)
            if free is None:
                raise ValueError(f"more than {MAX_MINOR - 1} rate-limited addresses on {qg}")
            used.add(free)
            minors[addr] = free
        return minors[addr]

    for direction, dev, at in (("egress", qg, "src"), ("ingress", ifb, "dst")):
        w = {a: (k, b) for a, d, k, b in want if d == direction}
        h = getattr(have, direction)
        root = have.root if direction == "egress" else have.ifb_root
        if not w:
            if direction == "egress" and root:
                out.append(["tc", "qdisc", "del", "dev", qg, "root"])
            elif direction == "ingress" and (have.redirect or have.ifb):
                if have.redirect:
                    out.append(["tc", "qdisc", "del", "dev", qg, "ingress"])
                if have.ifb:
                    out.append(["ip", "link", "del", ifb])
            continue
        if direction == "ingress" and not have.ifb:
            out += [["ip", "link", "add", ifb, "type", "ifb"], ["ip", "link", "set", ifb, "up"]]
        if not root:
            out.append(["tc", "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb",
                        "default", "0"])
        for addr in sorted(set(h) - set(w), key=ipaddress.ip_address):
            m = h[addr][0]
            out += [["tc", "filter", "del", "dev", dev, "parent", "1:", "protocol", "ip",
                     "prio", "1", "handle", f"800::{m:x}", "u32"],
                    ["tc", "class", "del", "dev", dev, "classid", f"1:{m:x}"]]
        for addr, (kbps, burst) in sorted(w.items(), key=lambda x: ipaddress.ip_address(x[0])):
            m = minor(addr)
            spec = ["htb", "rate", f"{kbps}kbit", "ceil", f"{kbps}kbit",
                    "burst", str(burst_bytes(kbps, burst)), "quantum", "1600"]
            if addr in h:
                if h[addr][1:] != (kbps * 1000, burst_bytes(kbps, burst)):
                    out.append(["tc", "class", "change", "dev", dev, "parent", "1:",
                                "classid", f"1:{m:x}", *spec])
                continue
            out += [["tc", "class", "add", "dev", dev, "parent", "1:", "classid", f"1:{m:x}",
                     *spec],
                    ["tc", "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip",
                     "prio", "1", "handle", f"800::{m:x}", "u32", "match", "ip", at,
                     f"{addr}/32", "flowid", f"1:{m:x}"]]
        if direction == "ingress" and not have.redirect:
            out += [["tc", "qdisc", "replace", "dev", qg, "ingress"],  # its filter gone
                    ["tc", "filter", "add", "dev", qg, "parent", "ffff:", "protocol", "ip",
                     "prio", "1", "u32", "match", "u32", "0", "0", "action", "mirred",
                     "egress", "redirect", "dev", ifb]]
    return out


# -- reading tc's output (pure: the text in, facts out) ------------------------------------

_CLASS = re.compile(r"^class htb 1:([0-9a-f]+) .*?\brate (\d+)([KMGT]?)bit\b.*?\bburst "
                    r"(\d+(?:\.\d+)?)(b|Kb|Mb)\b")


def parse_classes(text: str) -> dict[int, tuple[int, int]]:
    """``tc class show`` -> class minor -> (rate bit/s, burst bytes)."""
    out = {}
    for line in text.splitlines():
        m = _CLASS.match(line.strip())
        if m:
            out[int(m.group(1), 16)] = (int(m.group(2)) * _UNITS[m.group(3)],
                                        int(float(m.group(4)) * _SIZES[m.group(5)]))
    return out


def parse_filters(doc: list, offset: int) -> dict[str, int]:
    """``tc -j filter show ... parent 1:`` -> address -> class minor (the /32 matches at
    ``offset``: 12 the source, 16 the destination)."""
    out = {}
    for f in doc:
        o = f.get("options") or {}
        match, flow = o.get("match"), o.get("flowid", "")
        if not match or not flow.startswith("1:") or match.get("off") != offset \
                or match.get("mask") != "ffffffff":
            continue
        addr = str(ipaddress.IPv4Address(int(match["value"], 16)))
        out[addr] = int(flow[2:], 16)
    return out


def side(filters: dict[str, int], classes: dict[int, tuple[int, int]]) -> dict:
    """address -> (minor, rate, burst) where a filter and its class are both there."""
    return {a: (m, *classes[m]) for a, m in filters.items() if m in classes}


def commands_text(qg: str, want: tuple) -> list[str]:
    """The full set, as shell lines (for --dry-run)."""
    return [" ".join(argv) for argv in changes(qg, want, TcFacts())]

