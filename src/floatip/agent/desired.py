"""The agent's copy of the desired state, kept in memory and moved forward by deltas.

A full read (``load``) replaces everything; a delta (``apply``) replaces the changed
objects only (in place, for ports and floating IPs: ``IN_PLACE``), so a floating IP change
costs the same at 10 floating IPs and at 10,000.
Validity is kept per object: after a delta that touches only ports and floating IPs, only
those (and the floating IPs on those ports) are checked again; any other change checks
the whole state again (networks, subnets and routers change rarely)."""
from __future__ import annotations

from dataclasses import replace

from ..core.model import State
from ..core.validate import bad_forwardings, problems
from .isolation import isolate

KINDS = ("networks", "subnets", "ports", "routers", "floatingips", "security_groups",
         "address_groups")
# Changed in place by a delta: a copy of each cost a pass ~1 ms at 10,000 (every entry's
# reference counts touched). A State of an earlier pass shares them, so it does not tell
# what they held then (the reconciler keeps its own record of what it applied), and a
# reader in another thread iterates over a list() of them. The rest are small: copied, so
# that a change to a router, network or subnet is a new dict.
IN_PLACE = ("ports", "floatingips")


class Desired:
    def __init__(self):
        self.state: State | None = None
        self.generation = -1
        self.vm_ports: dict[str, dict] = {}
        self.known_routers: set[str] = set()
        # what the database holds as status, as last read or reported
        self.db: dict[str, dict] = {k: {} for k in ("fip_status", "fip_reason",
                                                     "router_status", "router_reason")}
        self.invalid_routers: dict[str, str] = {}
        self.invalid_fips: dict[str, str] = {}
        # floating IP -> {its port forwarding the kernel cannot hold: why}: left out alone
        self.invalid_pfs: dict[str, dict[str, str]] = {}
        self.port_fips: dict[str, set[str]] = {}   # port id -> floating IPs on it
        self.pf_fip: dict[str, str] = {}   # port forwarding id -> its floating IP
        # of the last delta: floating IP -> its forwardings changed on their own (the
        # floating IP itself unchanged), for a pass that changes only their elements
        self.forwarded: dict[str, set[str]] = {}

    # -- reading ------------------------------------------------------------------------
    def load(self, snap: dict) -> None:
        """A full read: everything replaced, everything checked."""
        self.state = snap["state"]
        self.generation = snap["generation"]
        self.vm_ports = dict(snap["vm_ports"])
        self.known_routers = set(snap["known_routers"])
        for k in self.db:
            self.db[k] = dict(snap.get(k, {}))
        self.port_fips = {}
        self.pf_fip, self.forwarded = {}, {}
        for fid, f in self.state.floatingips.items():
            if f.port_id:
                self.port_fips.setdefault(f.port_id, set()).add(fid)
            for pf in f.port_forwardings:
                self.pf_fip[pf.id] = fid
        self.check_all()

    def apply(self, delta: dict) -> dict[str, set[str]]:
        """A delta from ``agent_view.agent_delta``; returns the changed ids per kind."""
        st = self.state
        new = {}
        changed: dict[str, set[str]] = {}
        old_fips: dict = {}
        for kind in KINDS:
            ups, dels = delta["upserts"].get(kind, {}), delta["deletes"].get(kind, ())
            if not ups and not dels:
                new[kind] = getattr(st, kind)
                continue
            d = getattr(st, kind)
            if kind == "floatingips":
                old_fips = {i: d.get(i) for i in (*ups, *dels)}
            if kind not in IN_PLACE:
                d = dict(d)
            for i in dels:
                d.pop(i, None)
            d.update(ups)
            new[kind] = d
            changed[kind] = set(ups) | set(dels)
        for fid in changed.get("floatingips", ()):
            for f in (old_fips.get(fid), new["floatingips"].get(fid)):
                if f is not None and f.port_id:
                    self.port_fips.setdefault(f.port_id, set()).add(fid)
            for pf in getattr(old_fips.get(fid), "port_forwardings", ()):
                self.pf_fip.pop(pf.id, None)
            for pf in getattr(new["floatingips"].get(fid), "port_forwardings", ()):
                self.pf_fip[pf.id] = fid
        self.forwarded = self._forwardings(delta, new, changed)
        self.state = State(**new)
        for pid in delta.get("vm_ports_deleted", ()):
            self.vm_ports.pop(pid, None)
        self.vm_ports.update(delta.get("vm_ports", {}))
        self.known_routers |= set(delta.get("known_routers", ()))
        for k in self.db:
            self.db[k].update(delta.get(k, {}))
        self.generation = delta["generation"]
        # groups take no part in routers' and floating IPs' validity
        if set(changed) - {"ports", "floatingips", "security_groups", "address_groups",
                           "port_forwardings"}:
            self.check_all()
        else:
            self._check(changed.get("ports", set()), changed.get("floatingips", set()))
        return changed

    def _forwardings(self, delta: dict, new: dict, changed: dict) -> dict[str, set[str]]:
        """Forwardings changed on their own: each put into (or taken out of) its floating
        IP's tuple, in id order, the floating IP replaced in place. A floating IP read whole
        in this delta already holds its own. Returns floating IP -> forwarding ids."""
        ups = delta["upserts"].get("port_forwardings", {})
        dels = delta["deletes"].get("port_forwardings", ())
        if not ups and not dels:
            return {}
        whole = changed.get("floatingips", set())
        by_fip: dict[str, tuple[dict, set]] = {}
        for i in dels:
            fid = self.pf_fip.pop(i, None)
            if fid is not None and fid not in whole:
                by_fip.setdefault(fid, ({}, set()))[1].add(i)
        for i, pf in ups.items():
            was = self.pf_fip.get(i)
            if was is not None and was != pf.floatingip_id and was not in whole:
                by_fip.setdefault(was, ({}, set()))[1].add(i)
            self.pf_fip[i] = pf.floatingip_id
            if pf.floatingip_id not in whole:
                by_fip.setdefault(pf.floatingip_id, ({}, set()))[0][i] = pf
        fips = new["floatingips"]  # changed in place (``IN_PLACE``)
        out: dict[str, set[str]] = {}
        for fid, (up, rm) in by_fip.items():
            f = fips.get(fid)
            if f is None:  # not known here yet: its own change brings it whole
                continue
            kept = [p for p in f.port_forwardings if p.id not in up and p.id not in rm]
            fips[fid] = replace(f, port_forwardings=tuple(sorted(
                kept + list(up.values()), key=lambda p: p.id)))
            out[fid] = set(up) | rm
        if out:
            changed.setdefault("floatingips", set()).update(out)
            changed["port_forwardings"] = set(ups) | set(dels)
        return out

    # -- validity -----------------------------------------------------------------------
    def check_all(self) -> None:
        _, self.invalid_routers, self.invalid_fips = isolate(self.state)
        self.invalid_pfs = {}
        for fid, f in self.state.floatingips.items():
            if f.port_forwardings:
                self._check_forwardings(fid, None)

    def _check_forwardings(self, fid: str, only: set[str] | None) -> None:
        """A floating IP's forwardings checked again (``only``: those ids, and the ones
        found bad before); a forwarding whose verdict changed is one ``forwarded`` names,
        so that the pass puts it in or takes it out."""
        f = self.state.floatingips.get(fid)
        had = self.invalid_pfs.pop(fid, {})
        if f is None:
            return
        if only is None:
            bad = bad_forwardings(self.state, f)
        else:
            bad = {i: why for i, why in had.items() if i not in only}
            again = only | had.keys()
            for i in again:
                bad.pop(i, None)
            bad.update(bad_forwardings(self.state, f, again))
        if bad:
            self.invalid_pfs[fid] = bad
        moved = {i for i in had.keys() ^ bad.keys()}
        if moved and fid in self.forwarded:
            self.forwarded[fid] |= moved

    def _check(self, ports: set[str], fips: set[str]) -> None:
        """Check again only the changed ports and floating IPs (and those on the ports)."""
        st = self.state
        for pid in ports:
            fips |= self.port_fips.get(pid, set())
        fips = {f for f in fips if f in st.floatingips}
        for f in fips:
            self.invalid_fips.pop(f, None)
            if st.floatingips[f].port_forwardings or f in self.invalid_pfs:
                self._check_forwardings(f, self.forwarded.get(f))
        if not fips:
            return
        ports = {p for f in fips if (p := st.floatingips[f].port_id) in st.ports}
        routers = {r.id: r for f in fips if (r := st.router_for_fip(st.floatingips[f]))}
        # with the subnets and networks they use only: checking every subnet of the
        # cloud for one floating IP cost a pass 1 ms per 100 routers
        fip_nets = {st.floatingips[f].floating_network_id for f in fips}
        subs = {sid for p in ports for sid, _ in st.ports[p].fixed_ips}
        for r in routers.values():
            subs |= {i.subnet_id for i in r.interfaces}
            if r.gateway is not None:
                subs |= {r.gateway.subnet_id} | {sid for sid, _ in r.gateway.extra_ips}
        subs = {sid for sid, sn in st.subnets.items()
                if sid in subs or sn.network_id in fip_nets}  # a FIP is in one of its net's
        nets = {st.subnets[sid].network_id for sid in subs} | fip_nets | \
            {st.ports[p].network_id for p in ports}
        sub = replace(st, ports={p: st.ports[p] for p in ports}, routers=routers,
                      floatingips={f: st.floatingips[f] for f in fips},
                      subnets={sid: st.subnets[sid] for sid in subs},
                      networks={n: st.networks[n] for n in nets if n in st.networks})
        for (kind, oid), errors in problems(sub).items():
            text = "; ".join(e.message for e in errors)
            if kind == "floatingip":
                self.invalid_fips[oid] = text
            elif kind == "port":
                for f in self.port_fips.get(oid, ()):
                    if f in fips:
                        self.invalid_fips[f] = f"port {oid}: {text}"
        for f in fips:  # a floating IP on an invalid router
            if f not in self.invalid_fips:
                router = st.router_for_fip(st.floatingips[f])
                if router is not None and router.id in self.invalid_routers:
                    self.invalid_fips[f] = (f"router {router.id}: "
                                            f"{self.invalid_routers[router.id]}")

    def clean(self) -> State:
        """The state to apply: invalid routers and floating IPs left out."""
        st = self.state
        if not self.invalid_routers and not self.invalid_fips and not self.invalid_pfs:
            return st
        fips = {k: v for k, v in st.floatingips.items() if k not in self.invalid_fips}
        for fid, bad in self.invalid_pfs.items():  # a bad forwarding left out alone
            if fid in fips:
                fips[fid] = replace(fips[fid], port_forwardings=tuple(
                    p for p in fips[fid].port_forwardings if p.id not in bad))
        return replace(st, routers={k: v for k, v in st.routers.items()
                                    if k not in self.invalid_routers}, floatingips=fips)
