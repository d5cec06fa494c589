"""One reconcile pass: desired state -> layouts -> observe -> plan -> apply -> report."""
from __future__ import annotations

import bisect
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import groupby
from operator import attrgetter, itemgetter

from ..core.layout import (AgentConfig, RouterLayout, forward_key, forward_of, forwards_of,
                           router_layouts, with_fips)
from ..core.model import State
from ..core.plan import Plan, plan, plan_fips, plan_forwards
from ..dataplane.kernel import Dataplane


@dataclass
class Report:
    plan: Plan
    writes: int = 0
    errors: dict[str, str] = field(default_factory=dict)   # router id -> error
    seconds: float = 0.0
    layouts: Mapping[str, RouterLayout] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def reconcile(dp: Dataplane, state: State, config: AgentConfig, *, remove: set[str] = frozenset(),
              prune: bool = False, dry_run: bool = False,
              hold: set[str] = frozenset()) -> Report:
    t0 = time.perf_counter()
    layouts = router_layouts(state, config)
    scope = None if prune else set(layouts) | set(remove)
    observed = dp.observe(scope)
    p = plan(layouts, observed, dp.nat, remove=set(remove), prune=prune, hold=set(hold))
    report = Report(p, layouts=layouts)
    report.errors.update(p.problems)
    if not dry_run and p.steps:
        res = dp.apply(p)
        report.writes = res.writes
        for target, err in res.errors.items():
            report.errors[target.removeprefix("qrouter-")] = err
    report.seconds = time.perf_counter() - t0
    return report


# ---------------------------------------------------------------------------------------
# Partial and full syncs (kube-proxy's model): a Reconciler remembers what it applied and
# plans a state change against that, observing nothing when only floating IPs changed,
# and only the routers that changed otherwise. A full sync observes everything: the first
# sync, every ``resync_interval`` seconds, on request, and for routers whose apply failed.

def _changed(old: dict, new: dict) -> set:
    """Keys whose values differ; unchanged objects are usually the same object, so the
    identity test settles almost all of them without a field-by-field comparison."""
    get = old.get
    out = {k for k, v in new.items() if get(k) is not v}
    out = {k for k in out if get(k) != new[k]}
    added = sum(1 for k in out if k not in old)
    if len(old) != len(new) - added:  # something was removed
        out |= old.keys() - new.keys()
    return out


def _same(old: dict, new: dict) -> bool:
    return old is new or old == new


class LazyLayouts(Mapping):
    """``router_layouts(state, config)``, computed on first use (the event path does not
    need them, and building them costs O(floating IPs))."""

    def __init__(self, state: State, config: AgentConfig):
        self._args = (state, config)
        self._d: dict[str, RouterLayout] | None = None

    def _get(self) -> dict[str, RouterLayout]:
        if self._d is None:
            self._d = router_layouts(*self._args)
        return self._d

    def __getitem__(self, k):
        return self._get()[k]

    def __iter__(self):
        return iter(self._get())

    def __len__(self):
        return len(self._get())


def _blocks(forwards: list[tuple]) -> list[list[tuple]]:
    """Forwards by floating address, each block in ``NatSpec.forwards``' order (within
    one address, the tuples' own order). Sorted and grouped in C: a floating IP with 1,000
    forwardings is regrouped at each change of one of them."""
    return [list(g) for _, g in groupby(sorted(forwards), key=itemgetter(0))]


def _picked(pfs: tuple, ids: set[str]) -> list:
    """The forwardings of ``pfs`` (in id order) named in ``ids``, found by bisection."""
    out = []
    for i in ids:
        at = bisect.bisect_left(pfs, i, key=attrgetter("id"))
        if at < len(pfs) and pfs[at].id == i:
            out.append(pfs[at])
        else:  # not in id order (a state not read from the database)
            out += [p for p in pfs if p.id == i]
    return out


class Reconciler:
    def __init__(self, dp: Dataplane, config: AgentConfig, resync_interval: float | None = None):
        self.dp, self.config = dp, config
        self.resync_interval = resync_interval
        self.state: State | None = None          # the state last applied
        # floating IP id -> (router, floating IP, fixed IP) as last applied: the previous
        # state's ports and floating IPs may have been changed in place since (``Desired``)
        self.bound: dict[str, tuple[str, str, str]] = {}
        self.layouts: dict[str, RouterLayout] = {}
        self.fips: dict[str, dict[str, str]] = {}  # router -> {floating: fixed} programmed
        self.stale: set[str] = set()   # routers whose self.layouts lag self.fips
        self.dirty: set[str] = set()   # routers to observe before trusting what we know
        self.port_fips: dict[str, set[str]] = {}  # port id -> floating IP ids using it
        # floating IP with forwardings -> (its router, its address), as laid out
        self.pf_fips: dict[str, tuple[str, str]] = {}
        self.qos_fips: set[str] = set()  # floating IPs with bandwidth limits
        self.last_full = 0.0
        self.full_syncs = self.partial_syncs = 0
        self.hold: set[str] = set()    # invalid routers: left as they are, neither applied nor removed
        self.repairs: dict[str, int] = {}  # kind -> count (namespaces replaced, ...)

    # -- helpers ----------------------------------------------------------------------
    def _binding(self, state: State, fid: str):
        fip = state.floatingips.get(fid)
        if fip is None or not fip.fixed_ip_address:
            return None
        router = state.router_for_fip(fip)
        if router is None or not router.admin_state_up or router.gateway is None:
            return None
        return router.id, fip.floating_ip_address, fip.fixed_ip_address

    def _remember(self, state: State, layouts, ok: set[str], gone: set[str]) -> None:
        for rid in gone:
            for d in (self.layouts, self.fips):
                d.pop(rid, None)
            self.stale.discard(rid)
            self.dirty.discard(rid)
        for rid in ok:
            lay = layouts[rid]
            self.layouts[rid] = lay
            self.fips[rid] = dict(lay.nat.fips)
            self.stale.discard(rid)
            if self.dp.nat.known(lay.namespace) is None and lay.nat.gateway_device:
                self.dirty.add(rid)  # the NAT driver cannot vouch for its rules
            else:
                self.dirty.discard(rid)
        self.state = state

    def _index(self, state: State) -> None:
        """The port index and the bindings, after observing every router that changed."""
        self.port_fips, self.bound = {}, {}
        self.pf_fips = {fid: (r.id, f.floating_ip_address)
                        for fid, f in state.floatingips.items()
                        if f.port_forwardings and (r := state.router_for_fip(f)) is not None}
        self.qos_fips = {fid for fid, f in state.floatingips.items() if f.qos}
        for fid, f in state.floatingips.items():
            if f.port_id:
                self.port_fips.setdefault(f.port_id, set()).add(fid)
            b = self._binding(state, fid)
            if b is not None:
                self.bound[fid] = b

    def _applied(self, rid: str) -> RouterLayout:
        """Router ``rid``'s layout as applied: the one remembered, with the floating IPs
        the passes since then added and removed (``self.fips``)."""
        return with_fips(self.layouts[rid], self.fips[rid])

    # -- syncs ------------------------------------------------------------------------
    def _check_namespaces(self, full: bool) -> set[str]:
        """Routers whose namespace was deleted or replaced by hand (its identity, not its
        name, changed), or whose radvd died: observed again and repaired at this pass (a
        dead radvd is started again by the next pass, as a dead dnsmasq is)."""
        check = getattr(self.dp, "changed_namespaces", None)
        if check is None or not self.layouts:
            return set()
        found = {ns.removeprefix("qrouter-")
                 for ns in check((lay.namespace for lay in self.layouts.values()), full)}
        if found:
            self.repairs["namespace"] = self.repairs.get("namespace", 0) + len(found)
        radvd = getattr(self.dp, "radvd", None)
        dead = {rid for rid, lay in self.layouts.items() if lay.radvd and rid not in found
                and radvd is not None and not radvd.serving(rid, lay.namespace)}
        if dead:
            self.repairs["radvd"] = self.repairs.get("radvd", 0) + len(dead)
        found |= dead
        self.dirty |= found
        return found

    def sync(self, state: State, *, remove: set[str] = frozenset(), prune: bool = False,
             dry_run: bool = False, full: bool = False, changed=None,
             hold: set[str] = frozenset(), forwarded=None) -> Report:
        """Make the kernel match ``state``. ``changed``, when the caller knows it (an API
        event), names the floating IPs and ports that changed since the last sync, which
        spares comparing every one of them; without it they are compared (mostly by
        identity, so a state built from the previous one by replacing objects is cheap).
        ``hold``: routers left as they are (invalid: not in ``state``, not removed).
        ``forwarded``: floating IP -> ids of its port forwardings that changed on their
        own (``Desired.forwarded``): only their elements are planned."""
        self.hold = set(hold)
        due = self.resync_interval is not None and \
            time.monotonic() - self.last_full >= self.resync_interval
        replaced = self._check_namespaces(full or due or self.state is None)
        if full or due or self.state is None:
            return self.full_sync(state, remove=remove, prune=prune, dry_run=dry_run)
        t0 = time.perf_counter()
        if replaced:
            return self._partial_routers(state, remove, dry_run, t0)
        old = self.state
        if not (_same(old.routers, state.routers) and _same(old.networks, state.networks)
                and _same(old.subnets, state.subnets)) or remove:
            return self._partial_routers(state, remove, dry_run, t0)
        if changed is None:
            fids = _changed(old.floatingips, state.floatingips)
            pids = _changed(old.ports, state.ports)
        else:
            fids = {x for x in changed if x in state.floatingips or x in self.bound
                    or x in self.pf_fips or x in self.qos_fips}
            pids = set(changed) - fids
        for pid in pids:
            fids |= self.port_fips.get(pid, set())
        # bandwidth limits change the router's tc: planned against what is observed
        if fids & self.qos_fips or any(state.floatingips[x].qos for x in fids
                                       if x in state.floatingips):
            return self._partial_routers(state, remove, dry_run, t0)
        # port forwardings change the router's NAT spec: planned against what was applied
        if fids & self.pf_fips.keys() or any(state.floatingips[x].port_forwardings
                                             for x in fids if x in state.floatingips):
            return self._forwards(state, fids, remove, dry_run, t0, forwarded or {})
        add: dict[str, dict[str, str]] = {}
        rem: dict[str, set[str]] = {}
        moved: dict[str, tuple[str, str, str] | None] = {}
        for fid in fids:
            ob, nb = self.bound.get(fid), self._binding(state, fid)
            if ob == nb:
                continue
            moved[fid] = nb
            if ob is not None:
                rem.setdefault(ob[0], set()).add(ob[1])
            if nb is not None:
                add.setdefault(nb[0], {})[nb[1]] = nb[2]
        routers = set(add) | set(rem)
        if routers & self.dirty or not routers <= set(self.fips):
            return self._partial_routers(state, remove, dry_run, t0)
        p = Plan()
        for rid in sorted(routers):
            lay = self.layouts[rid]
            facts = self.dp.nat.known(lay.namespace)
            if facts is None and lay.nat.gateway_device:
                return self._partial_routers(state, remove, dry_run, t0)
            p.steps += plan_fips(lay, self.dp.nat, facts, self.fips[rid],
                                 add.get(rid, {}), rem.get(rid, set()))
        p.steps.sort(key=lambda s: s.order)
        report = Report(p, layouts=LazyLayouts(state, self.config))
        self.partial_syncs += 1
        if dry_run:
            report.seconds = time.perf_counter() - t0
            return report
        if p.steps:
            res = self.dp.apply(p)
            report.writes = res.writes
            for target, err in res.errors.items():
                report.errors[target.removeprefix("qrouter-")] = err
        for fid in fids:  # keep the port index current (a port it left keeps it: harmless)
            f = state.floatingips.get(fid)
            if f is not None and f.port_id:
                self.port_fips.setdefault(f.port_id, set()).add(fid)
        for fid, nb in moved.items():
            if nb is None:
                self.bound.pop(fid, None)
            else:
                self.bound[fid] = nb
        for rid in routers:
            if rid in report.errors:
                self.dirty.add(rid)
                continue
            have = self.fips[rid]
            for f in rem.get(rid, ()):
                have.pop(f, None)
            have.update(add.get(rid, {}))
            self.stale.add(rid)
        self.state = state
        report.seconds = time.perf_counter() - t0
        return report

    def _forwards(self, state: State, fids: set[str], remove, dry_run: bool,
                  t0: float, forwarded: dict[str, set[str]]) -> Report:
        """Only floating IPs with port forwardings changed: their routers' layouts as
        applied with those floating IPs' forwardings replaced, planned against what was
        applied (nothing observed, nothing else laid out again). Anything else in the
        change, or a router not known converged: ``_partial_routers``."""
        if any(self._binding(state, f) != self.bound.get(f) for f in fids):
            return self._partial_routers(state, remove, dry_run, t0)
        owner: dict[str, str] = {}
        for f in fids:
            x = state.floatingips.get(f)
            r = state.router_for_fip(x) if x is not None and x.port_forwardings else None
            if r is not None and r.admin_state_up:
                owner[f] = r.id
        routers = set(owner.values()) | {self.pf_fips[f][0] for f in fids if f in self.pf_fips}
        if routers & self.dirty or not routers <= set(self.layouts):
            return self._partial_routers(state, remove, dry_run, t0)
        # a floating IP whose forwardings alone changed, on the router and at the address
        # laid out: those forwardings' entries replaced, not its block of all of them
        alone = {f for f in fids if f in forwarded and f in owner and self.pf_fips.get(f)
                 == (owner[f], state.floatingips[f].floating_ip_address)}
        drop = {i for f in alone for i in forwarded[f]}
        gone = {self.pf_fips[f][1] for f in fids - alone if f in self.pf_fips} | \
            {state.floatingips[f].floating_ip_address for f in owner if f not in alone}
        p = Plan()
        new: dict[str, RouterLayout] = {}
        for rid in sorted(routers):
            old = self._applied(rid)
            facts = self.dp.nat.known(old.namespace)
            if facts is None or old.nat.gateway_device is None:
                return self._partial_routers(state, remove, dry_run, t0)
            add = [t for f in fids if owner.get(f) == rid and f not in alone
                   for t in forwards_of(state.floatingips[f])]
            # the others' stay in order; each floating IP's block goes in at its address
            kept = [t for t in old.nat.forwards if t[0] not in gone and t[7] not in drop]
            for block in _blocks(add):
                at = bisect.bisect(kept, forward_key(block[0]), key=forward_key)
                kept[at:at] = block
            for f in alone:
                if owner[f] == rid:
                    x = state.floatingips[f]
                    for pf in _picked(x.port_forwardings, forwarded[f]):
                        t = forward_of(x.floating_ip_address, pf)
                        kept.insert(bisect.bisect(kept, forward_key(t), key=forward_key), t)
            forwards = tuple(kept)
            lay = replace(old, nat=replace(old.nat, forwards=forwards),
                          fip_addresses=(old.fip_addresses - gone) | {t[0] for t in add})
            new[rid] = lay
            p.steps += plan_forwards(old, lay, self.dp.nat, facts)
        p.steps.sort(key=lambda s: s.order)
        report = Report(p, layouts=LazyLayouts(state, self.config))
        self.partial_syncs += 1
        if not dry_run:
            if p.steps:
                res = self.dp.apply(p)
                report.writes = res.writes
                for target, err in res.errors.items():
                    report.errors[target.removeprefix("qrouter-")] = err
            for rid, lay in new.items():
                if rid in report.errors:
                    self.dirty.add(rid)
                    continue
                self.layouts[rid], self.fips[rid] = lay, dict(lay.nat.fips)
                self.stale.discard(rid)
            for f in fids:
                self.pf_fips.pop(f, None)
                if f in owner:
                    self.pf_fips[f] = (owner[f], state.floatingips[f].floating_ip_address)
            self.state = state
        report.seconds = time.perf_counter() - t0
        return report

    def _partial_routers(self, state: State, remove, dry_run: bool, t0: float) -> Report:
        """Routers, networks or subnets changed: observe and plan only the routers whose
        layout differs from what was applied (or that failed before)."""
        layouts = router_layouts(state, self.config)
        before = dict(self.layouts)
        before.update({rid: self._applied(rid) for rid in self.stale if rid in self.layouts})
        changed = {rid for rid, lay in layouts.items()
                   if rid in self.dirty or before.get(rid) != lay}
        gone = ((set(before) - set(layouts)) | set(remove)) - self.hold
        observed = self.dp.observe(changed | gone)
        p = plan({rid: layouts[rid] for rid in changed}, observed, self.dp.nat, remove=gone)
        report = Report(p, layouts=layouts)
        report.errors.update(p.problems)
        self.partial_syncs += 1
        if not dry_run:
            if p.steps:
                res = self.dp.apply(p)
                report.writes = res.writes
                for target, err in res.errors.items():
                    report.errors[target.removeprefix("qrouter-")] = err
            failed = set(report.errors)
            self.dirty |= failed & set(layouts)
            self._remember(state, layouts, changed - failed, gone)
            self._index(state)
        report.seconds = time.perf_counter() - t0
        return report

    def full_sync(self, state: State, *, remove: set[str] = frozenset(), prune: bool = False,
                  dry_run: bool = False) -> Report:
        report = reconcile(self.dp, state, self.config, remove=remove, prune=prune,
                           dry_run=dry_run, hold=self.hold)
        self.full_syncs += 1
        if not dry_run:
            failed = set(report.errors)
            self.layouts, self.fips, self.stale, self.dirty = {}, {}, set(), set()
            self.dirty = failed & set(report.layouts)
            self._remember(state, report.layouts, set(report.layouts) - failed, set())
            self._index(state)
            self.last_full = time.monotonic()
        return report
