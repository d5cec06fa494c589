"""Installs the firewall's flows (``core.firewall``) on an OVS bridge.

Each apply is one batch of flow mods; when it both removes and adds flows it is an
OpenFlow 1.4 bundle (committed atomically): a port's old flows go and its new ones come in
the same transaction, so a port is never half-filtered. Flows are addressed by cookie only
(floatip's prefix + a hash of the flow), so nothing without floatip's cookie prefix is ever
deleted or changed.

Two carriers, by batch size (benchmarks/firewall_bench.py, this machine):
- a batch of up to SMALL flow mods (a member add, a rule of a few ports) goes over the
  agent's own OpenFlow connection to the bridge (``dataplane.openflow``): ~0.5 ms for a
  flow mod and its barrier, against ~25 ms for an ``ovs-ofctl`` run, 20 ms of which is
  starting the process;
- a larger one (a first or full pass, a rule of a big group) goes through one
  ``ovs-ofctl add-flows``: encoding here costs ~20-50 us per flow in Python, so above a few
  hundred flows the process start no longer matters, and a 100,000-flow bundle is better
  left to ovs-ofctl's own flow control and error handling.
Observing (drift repair) is ``ovs-ofctl dump-flows``: its text is what an operator reads too.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..core.firewall import COOKIE_MASK, COOKIE_PREFIX, Flow
from .openflow import Connection, OpenFlowError, flow_add, flow_delete

OFCTL = "ovs-ofctl"
SMALL = 500     # flow mods up to which a batch goes over the connection (see above)


class FirewallApplyError(RuntimeError):
    pass


@dataclass
class ApplyResult:
    added: int = 0
    removed: int = 0
    bundles: int = 0
    errors: dict[str, str] = field(default_factory=dict)   # owner -> reason


def _ofctl(args: list[str], stdin: str | None = None) -> str:
    r = subprocess.run([OFCTL, *args], input=stdin, capture_output=True, text=True)
    if r.returncode:
        raise FirewallApplyError(r.stderr.strip() or f"{OFCTL} {args[0]} failed")
    return r.stdout


class OpenFlowFirewall:
    """The flows floatip has on one bridge, by owner (``base``, ``port:<id>``,
    ``member:…``, ``conj:…``)."""

    def __init__(self, bridge: str, always_bundle: bool = False):
        self.bridge = bridge
        self.always_bundle = always_bundle
        self.installed: dict[str, dict[int, Flow]] = {}
        self.conn = Connection(bridge)

    def close(self) -> None:
        self.conn.close()

    def observe(self) -> set[int]:
        """Cookies of floatip's flows now on the bridge."""
        out = _ofctl(["dump-flows", "--no-stats", self.bridge,
                      f"cookie={COOKIE_PREFIX:#x}/{COOKIE_MASK:#x}"])
        cookies = set()
        for line in out.splitlines():
            for part in line.replace(" ", ",").split(","):
                if part.startswith("cookie="):
                    cookies.add(int(part[7:], 16))
        return cookies

    def _bundle(self, removes: Iterable[int], adds: Iterable[Flow], atomic=False) -> None:
        removes, adds = list(removes), list(adds)   # removals first: a changed flow
        n = len(removes) + len(adds)                  # keeps its match
        if not n:
            return
        # Only a change that both removes and adds needs the bundle: a pure addition (or
        # removal) half-done allows something between the old and the new set, never more
        # than both; the bundle's commit costs ~3x a plain flow mod on a big table
        # (benchmarks/firewall_bench.py).
        bundle = (removes and adds) or atomic or self.always_bundle
        if n > SMALL:
            lines = [f"delete cookie={c:#x}/-1" for c in removes] + [f.add_line() for f in adds]
            _ofctl((["--bundle"] if bundle else []) + ["add-flows", self.bridge, "-"],
                   "\n".join(lines) + "\n")
            return
        try:
            self.conn.transact([flow_delete(c) for c in removes] +
                               [flow_add(f.cookie, f.table, f.priority, f.match, f.actions)
                                for f in adds], bool(bundle))
        except OpenFlowError as e:
            raise FirewallApplyError(str(e)) from e

    def apply(self, wanted: Mapping[str, Iterable[Flow]]) -> ApplyResult:
        """Set the flows of the owners in ``wanted`` (an empty list removes an owner) in one
        bundle; when the bundle fails, each owner is tried alone (atomically) so one bad owner
        fails with its reason, keeps its old flows, and the others still land."""
        changes = {}
        for owner, flows in wanted.items():
            new = {f.cookie: f for f in flows}
            old = self.installed.get(owner, {})
            rm = [c for c in old if c not in new]
            add = [f for c, f in new.items() if c not in old]
            if rm or add:
                changes[owner] = (new, rm, add)
        res = ApplyResult()
        if not changes:
            return res
        try:
            self._bundle([c for _, rm, _ in changes.values() for c in rm],
                         [f for _, _, add in changes.values() for f in add])
            groups = [changes]
        except FirewallApplyError:
            groups = []
            for owner, ch in changes.items():
                try:
                    self._bundle(ch[1], ch[2], atomic=True)   # a failed owner: nothing
                    groups.append({owner: ch})
                except FirewallApplyError as e:
                    res.errors[owner] = str(e)
        for g in groups:
            res.bundles += 1
            for owner, (new, rm, add) in g.items():
                res.added += len(add)
                res.removed += len(rm)
                if new:
                    self.installed[owner] = new
                else:
                    self.installed.pop(owner, None)
        return res

    def sync(self, wanted: Mapping[str, Iterable[Flow]]) -> ApplyResult:
        """The full pass: ``wanted`` is every owner; flows deleted or added by hand (drift)
        are repaired, owners no longer wanted removed, all in one bundle."""
        wanted = {o: {f.cookie: f for f in fl} for o, fl in wanted.items()}
        every = {c: f for flows in wanted.values() for c, f in flows.items()}
        have = self.observe()
        res = ApplyResult()
        rm = [c for c in have if c not in every]
        add = [f for c, f in every.items() if c not in have]
        if rm or add:
            self._bundle(rm, add)
            res.bundles, res.added, res.removed = 1, len(add), len(rm)
        self.installed = {o: f for o, f in wanted.items() if f}
        return res

    def remove_all(self) -> int:
        """Delete every flow with floatip's cookie prefix from the bridge."""
        n = len(self.observe())
        _ofctl(["del-flows", self.bridge, f"cookie={COOKIE_PREFIX:#x}/{COOKIE_MASK:#x}"])
        self.installed = {}
        return n
