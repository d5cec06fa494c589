"""The iptables NAT driver's pure half: Neutron's chain layout rendered from a NatSpec,
``iptables-save`` parsed back, and the one ``iptables-restore -n`` input that turns one into
the other while touching only floatip's chains.

Chain layout (Neutron's IptablesManager, with floatip's own prefix in place of the
``neutron-``/``neutron-l3-agent-`` names, so rules of a real Neutron are never mistaken for ours):

  filter  FORWARD, OUTPUT -> floatip-filter-top -> floatip-l3-local
          INPUT/OUTPUT/FORWARD -> floatip-l3-INPUT/OUTPUT/FORWARD
  nat     PREROUTING/OUTPUT/POSTROUTING -> floatip-l3-PREROUTING/OUTPUT/POSTROUTING
          floatip-l3-PREROUTING -> floatip-l3-fip-pf -> floatip-l3-pf-<id>: one chain per
          port forwarding with its DNAT rule (Neutron's fip-pf and pf-<id> chains)
          POSTROUTING (last) -> floatip-postrouting-bottom -> floatip-l3-snat -> floatip-l3-float-snat
  mangle  PREROUTING -> floatip-l3-PREROUTING -> floatip-l3-mark
Rules are written exactly as ``iptables-save`` prints them, so observed and desired compare as text.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from ...core.layout import Forward, NatSpec
from ...core.plan import Step
from ..netns import nsexec

P = "floatip"
W = f"{P}-l3"  # Neutron's wrap prefix is the binary name, "neutron-l3-agent"
METADATA_IP = "169.254.169.254"
METADATA_PORT = 9697

# Jumps from built-in chains into ours: (table, builtin, target, at_top).
JUMPS: tuple[tuple[str, str, str, bool], ...] = (
    ("filter", "INPUT", f"{W}-INPUT", True),
    ("filter", "FORWARD", f"{P}-filter-top", True),
    ("filter", "FORWARD", f"{W}-FORWARD", True),
    ("filter", "OUTPUT", f"{P}-filter-top", True),
    ("filter", "OUTPUT", f"{W}-OUTPUT", True),
    ("nat", "PREROUTING", f"{W}-PREROUTING", True),
    ("nat", "OUTPUT", f"{W}-OUTPUT", True),
    ("nat", "POSTROUTING", f"{W}-POSTROUTING", True),
    ("nat", "POSTROUTING", f"{P}-postrouting-bottom", False),
    ("mangle", "PREROUTING", f"{W}-PREROUTING", True),
)
TABLES = ("mangle", "nat", "filter")
# Chains whose rules after an ordered head match disjoint packets (one per floating IP):
# their order does not matter, so rules are appended and deleted one by one rather than
# the chain rewritten. Value: how many leading rules keep their place.
ORDER_FREE = {("nat", f"{W}-PREROUTING"): 2, ("nat", f"{W}-OUTPUT"): 0,
              ("nat", f"{W}-float-snat"): 0, ("nat", f"{W}-fip-pf"): 0}
PF = f"{W}-fip-pf"


def pf_chain(pf_id: str) -> str:
    """A forwarding's chain: Neutron's pf-<id>, cut to iptables' 28 characters."""
    return f"{W}-pf-" + pf_id.replace("-", "")[:14]


def pf_rule(fwd: tuple) -> str:
    """Neutron's DNAT rule of one forwarding; a range to a range keeps the offset
    (``/first external port``: port i to port i)."""
    fip, proto, elo, ehi, fixed, ilo, ihi, pf_id = fwd
    if proto not in ("tcp", "udp"):
        raise ValueError(f"bad protocol {proto!r}")
    dport = f"{elo}" if elo == ehi else f"{elo}:{ehi}"
    to = f"{ilo}" if ilo == ihi else f"{ilo}-{ihi}" + ("" if elo == ehi else f"/{elo}")
    return (f"-A {pf_chain(pf_id)} -d {fip}/32 -p {proto} -m {proto} --dport {dport} "
            f"-j DNAT --to-destination {fixed}:{to}")


def fip_rules(fip: str, fixed: str) -> list[tuple[str, str]]:
    """The three rules of one floating IP, as (chain, rule)."""
    return [(f"{W}-PREROUTING", f"-A {W}-PREROUTING -d {fip}/32 -j DNAT --to-destination {fixed}"),
            (f"{W}-OUTPUT", f"-A {W}-OUTPUT -d {fip}/32 -j DNAT --to-destination {fixed}"),
            (f"{W}-float-snat", f"-A {W}-float-snat -s {fixed}/32 -j SNAT --to-source {fip}")]


def _rule_delta(key, want: list[str], have: list[str]):
    """(deletes, appends) turning ``have`` into ``want`` without a rewrite, or None when the
    chain must be rewritten."""
    head = ORDER_FREE.get(key)
    if head is None or want[:head] != have[:head]:
        return None
    w, h = set(want[head:]), set(have[head:])
    if len(w) != len(want) - head or len(h) != len(have) - head:
        return None  # duplicates: keep exact order
    return [r for r in have[head:] if r not in w], [r for r in want[head:] if r not in h]


def owned(chain: str) -> bool:
    return chain.startswith(P + "-")


@dataclass
class Ruleset:
    """floatip's part of the tables: our chains with their rules, and, per built-in chain,
    the targets of our jumps in the order they appear."""
    chains: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    jumps: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def fip_map(self) -> dict[str, str]:
        """floating ip -> fixed ip, read from the DNAT rules of nat PREROUTING."""
        out = {}
        for rule in self.chains.get(("nat", f"{W}-PREROUTING"), []):
            words = rule.split()
            if "DNAT" in words and "-d" in words:
                out[words[words.index("-d") + 1].removesuffix("/32")] = \
                    words[words.index("--to-destination") + 1]
        return out

    def forward_map(self) -> dict[Forward, tuple[str, int]]:
        """What the forwardings' DNAT rules map, in ``core.layout.forward_elements``' form."""
        out: dict[Forward, tuple[str, int]] = {}
        for (table, chain), rules in self.chains.items():
            if table != "nat" or not chain.startswith(f"{W}-pf-"):
                continue
            for rule in rules:
                w = rule.split()
                try:
                    fip = w[w.index("-d") + 1].removesuffix("/32")
                    proto = w[w.index("-p") + 1]
                    elo, _, ehi = w[w.index("--dport") + 1].partition(":")
                    fixed, _, ports = w[w.index("--to-destination") + 1].partition(":")
                except (ValueError, IndexError):
                    continue
                ports = ports.split("/")[0]
                ilo, _, ihi = ports.partition("-")
                elo, ehi, ilo, ihi = int(elo), int(ehi or elo), int(ilo), int(ihi or ilo)
                if ilo == ihi or elo == ehi:
                    out[(fip, proto, elo, ehi)] = (fixed, ilo)
                else:
                    for i, port in enumerate(range(elo, ehi + 1)):
                        out[(fip, proto, port, port)] = (fixed, ilo + i % (ihi - ilo + 1))
        return out


def render(spec: NatSpec, random_fully: bool = True) -> Ruleset:
    rs = Ruleset()
    c = rs.chains
    for table, builtin, target, _ in JUMPS:
        rs.jumps.setdefault((table, builtin), []).append(target)
    rf = " --random-fully" if random_fully else ""
    qg = spec.gateway_device
    meta = f"-d {METADATA_IP}/32 -i qr-+ -p tcp -m tcp --dport 80"
    # filter
    for name in ("INPUT", "OUTPUT", "FORWARD", "local"):
        c[("filter", f"{W}-{name}")] = []
    c[("filter", f"{P}-filter-top")] = [f"-A {P}-filter-top -j {W}-local"]
    c[("filter", f"{W}-INPUT")] = [
        f"-A {W}-INPUT -m mark --mark 0x1/0xffff -j ACCEPT",   # metadata, marked in mangle
        f"-A {W}-INPUT -p tcp -m tcp --dport {METADATA_PORT} -j DROP",
    ]
    # mangle: mark what came in from outside (0x2) and metadata requests (0x1)
    c[("mangle", f"{W}-PREROUTING")] = [
        f"-A {W}-PREROUTING -j {W}-mark",
        f"-A {W}-PREROUTING {meta} -j MARK --set-xmark 0x1/0xffff",
    ]
    c[("mangle", f"{W}-mark")] = [f"-A {W}-mark -i {qg} -j MARK --set-xmark 0x2/0xffff"] if qg else []
    # nat
    pre = [f"-A {W}-PREROUTING {meta} -j REDIRECT --to-ports {METADATA_PORT}",
           f"-A {W}-PREROUTING -j {PF}"]
    c[("nat", PF)] = [f"-A {PF} -j {pf_chain(f[7])}" for f in spec.forwards]
    for f in spec.forwards:
        c[("nat", pf_chain(f[7]))] = [pf_rule(f)]
    out: list[str] = []
    post: list[str] = []
    snat = [f"-A {W}-snat -j {W}-float-snat"]
    float_snat: list[str] = []
    if qg:
        # No NAT for traffic that does not leave by the gateway unless it was DNATed: east-west
        # traffic keeps its addresses. The seed's form `! -i qg ! -o qg` was dropped by Neutron
        # (LP#1834825) because the `-i` match in POSTROUTING misbehaves on the nftables backend.
        post.append(f"-A {W}-POSTROUTING ! -o {qg} -m conntrack ! --ctstate DNAT -j ACCEPT")
        for cidr in spec.snat_cidrs:
            snat.append(f"-A {W}-snat -s {cidr} -o {qg} -j SNAT --to-source {spec.gateway_ip}{rf}")
        if spec.snat_cidrs:
            # Hairpin: DNATed traffic that did not come in from outside (a VM reaching another
            # VM's floating IP) is SNATed too, so the reply comes back through the router.
            snat.append(f"-A {W}-snat -m mark ! --mark 0x2/0xffff -m conntrack --ctstate DNAT "
                        f"-j SNAT --to-source {spec.gateway_ip}{rf}")
    for fip, fixed in spec.fips:
        pre.append(f"-A {W}-PREROUTING -d {fip}/32 -j DNAT --to-destination {fixed}")
        out.append(f"-A {W}-OUTPUT -d {fip}/32 -j DNAT --to-destination {fixed}")
        float_snat.append(f"-A {W}-float-snat -s {fixed}/32 -j SNAT --to-source {fip}")
    c[("nat", f"{W}-PREROUTING")] = pre
    c[("nat", f"{W}-OUTPUT")] = out
    c[("nat", f"{W}-POSTROUTING")] = post
    c[("nat", f"{P}-postrouting-bottom")] = [f"-A {P}-postrouting-bottom -j {W}-snat"]
    c[("nat", f"{W}-snat")] = snat
    c[("nat", f"{W}-float-snat")] = float_snat
    return rs


def parse_save(text: str) -> Ruleset:
    """floatip's chains and jumps from ``iptables-save`` output; everything else is ignored."""
    rs = Ruleset()
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            chain = line[1:].split()[0]
            if owned(chain):
                rs.chains.setdefault((table, chain), [])
        elif line.startswith("-A "):
            chain = line.split()[1]
            if owned(chain):
                rs.chains.setdefault((table, chain), []).append(line)
            else:
                words = line.split()
                if len(words) == 4 and words[2] == "-j" and owned(words[3]):
                    rs.jumps.setdefault((table, chain), []).append(words[3])
    return rs


def restore_input(desired: Ruleset, observed: Ruleset) -> str | None:
    """The ``iptables-restore -n`` input turning ``observed`` into ``desired``, or None when
    they are equal. Only changed chains are rewritten; chains of others are never named."""
    blocks = []
    for table in TABLES:
        lines: list[str] = []
        want = {ch: r for (t, ch), r in desired.chains.items() if t == table}
        have = {ch: r for (t, ch), r in observed.chains.items() if t == table}
        changed = [ch for ch in want if have.get(ch) != want[ch]]
        deltas = {}
        for ch in list(changed):
            if ch in have:
                d = _rule_delta((table, ch), want[ch], have[ch])
                if d is not None:
                    deltas[ch] = d
                    changed.remove(ch)
        deltas = {ch: d for ch, d in deltas.items() if d[0] or d[1]}
        stale = [ch for ch in have if ch not in want]
        builtins = sorted({b for (t, b) in list(desired.jumps) + list(observed.jumps) if t == table})
        jump_fix = [b for b in builtins
                    if desired.jumps.get((table, b), []) != observed.jumps.get((table, b), [])]
        if not (changed or stale or jump_fix or deltas):
            continue
        lines += [f":{ch} - [0:0]" for ch in changed + stale]  # declares, or flushes ours
        for b in jump_fix:
            lines += [f"-D {b} -j {t}" for t in observed.jumps.get((table, b), [])]
            top = [t for (tb, bb, t, at_top) in JUMPS if (tb, bb) == (table, b) and at_top]
            bottom = [t for (tb, bb, t, at_top) in JUMPS if (tb, bb) == (table, b) and not at_top]
            lines += [f"-I {b} {i} -j {t}" for i, t in enumerate(top, 1)]
            lines += [f"-A {b} -j {t}" for t in bottom]
        for ch in changed:
            lines += want[ch]
        for ch, (dels, adds) in deltas.items():
            lines += ["-D" + r[2:] for r in dels]
            lines += adds
        lines += [f"-X {ch}" for ch in stale]
        blocks.append("\n".join([f"*{table}", *lines, "COMMIT"]))
    return "\n".join(blocks) + "\n" if blocks else None


class IptablesDriver:
    name = "iptables"

    def __init__(self):
        self.random_fully = self._supports_random_fully()
        self._known: dict[str, Ruleset] = {}  # ns -> rules as last read or applied

    @staticmethod
    def _supports_random_fully() -> bool:
        try:
            out = subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout
            ver = tuple(int(x) for x in out.split()[1].lstrip("v").split("."))
            return ver >= (1, 6, 2)
        except (OSError, ValueError, IndexError):
            return False

    def observe(self, ns: str) -> Ruleset:
        rs = parse_save(nsexec(ns, ["iptables-save"]).stdout)
        self._known[ns] = rs
        return rs

    def known(self, ns: str) -> Ruleset | None:
        return self._known.get(ns)

    def forget(self, ns: str) -> None:
        self._known.pop(ns, None)

    def plan(self, ns: str, spec: NatSpec, facts: Ruleset | None) -> Step | None:
        want = render(spec, self.random_fully)
        text = restore_input(want, facts or Ruleset())
        if text is None:
            return None
        return Step("nat", "iptables_restore", ns, (text, ("ruleset", want)), "rules differ")

    def plan_fips(self, ns: str, facts: Ruleset, add: dict[str, str], remove,
                  have: dict[str, str]) -> Step | None:
        """Floating IPs added/moved and removed as rule deletes and appends: one restore."""
        dels = [r for f in sorted(set(remove) | {f for f in add if f in have})
                for r in fip_rules(f, have[f])]
        adds = [r for f, x in add.items() for r in fip_rules(f, x)]
        if not dels and not adds:
            return None
        lines = ["*nat"] + ["-D" + r[2:] for _, r in dels] + [r for _, r in adds] + ["COMMIT"]
        return Step("nat", "iptables_restore", ns, ("\n".join(lines) + "\n", ("rules", (dels, adds))),
                    "floating IPs changed")

    def plan_forwards(self, ns: str, spec: NatSpec, facts: Ruleset, add: dict,
                      remove: set) -> Step | None:
        """Port forwardings changed: their chains, through the rules' diff (one restore)."""
        return self.plan(ns, spec, facts)

    @staticmethod
    def fip_map(facts: Ruleset) -> dict[str, str]:
        return facts.fip_map()

    @staticmethod
    def forward_map(facts: Ruleset) -> dict[Forward, tuple[str, int]]:
        return facts.forward_map()

    def execute(self, step: Step) -> None:
        ns = step.target
        try:
            nsexec(ns, ["iptables-restore", "-n", "-w", "5"], input=step.args[0])
        except Exception:
            self._known.pop(ns, None)
            raise
        extra = step.args[1] if len(step.args) > 1 else None
        rs = self._known.get(ns)
        if extra is None:
            self._known.pop(ns, None)
        elif extra[0] == "ruleset":
            want = extra[1]
            self._known[ns] = Ruleset({k: list(v) for k, v in want.chains.items()},
                                               {k: list(v) for k, v in want.jumps.items()})
            if rs is not None:  # callers holding the old object see the new rules too
                rs.chains, rs.jumps = self._known[ns].chains, self._known[ns].jumps
                self._known[ns] = rs
        elif rs is not None:
            dels, adds = extra[1]
            for ch, r in dels:
                lst = rs.chains.get(("nat", ch), [])
                if r in lst:
                    lst.remove(r)
            for ch, r in adds:
                rs.chains.setdefault(("nat", ch), []).append(r)
