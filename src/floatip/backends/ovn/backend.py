"""``OvnBackend``: floatip's desired state realised by OVN (issue 11).

One thread. It wakes when the source says the desired state changed, when an owned NB row
changed under it (hand-made drift), when the SB changed (a chassis came or went, a port was
bound) or when the chassis caught up with an nb_cfg; and every ``interval`` seconds for a
full pass.

It follows the change feed as the kernel agent does (``agent.desired.Desired``: the desired
state in memory, moved forward by the changes since its generation, checked object by
object). An incremental pass works out which floatip objects a change touches (a floating
IP: its NAT row; a port: its LSP and the NAT rows of the floating IPs on it, and the port
groups it joins or leaves; a router: its rows and the floating IPs that move to or from it;
a network or subnet: what uses it; a security group: its port group and ACLs, so a rule
change writes its ACL only; an address group: its address sets),
translates only those (``translate``), compares only their rows with the owned rows in the
IDL cache (``diff``) and writes the difference in one transaction (``nb.Northbound.apply``).
The full pass (at start, every ``interval``, on request, after a failure) reads the whole
snapshot, translates and compares everything, repairs drift nobody told us about and removes
owned rows nothing wants. A chassis coming or going translates everything again from memory
(gateway scheduling). Statuses go back to the source, only for the objects a pass looked at:
a port is ACTIVE once a chassis claimed it, a router or floating IP once every chassis
caught up with the nb_cfg of the transaction that last changed it.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field

from ...agent.desired import Desired as DesiredState
from ...core.model import State, fip_routers
from .acl import DROP_OBJ, members, membership
from .diff import diff
from .chassis import alive, gateway_chassis, realised
from .dhcp import DHCP_OWNER
from .nb import Northbound, Southbound
from .translate import ChassisInfo, Desired, Options, translate

log = logging.getLogger("floatip.ovn")


@dataclass
class OvnConfig:
    nb: str                                  # e.g. tcp:10.0.0.5:6641 or unix:/run/ovn/ovnnb_db.sock
    sb: str
    owner: str = ""                          # external_ids floatip:owner; default floatip@HOST
    distributed_fip: bool = False
    provider_tenant_networks: bool = False   # tenant VLAN networks on their physnet (Neutron)
    interval: float = 30.0                   # full compare every so often
    timeout: float = 10.0                    # OVSDB operations
    # a chassis not heard from for so long is down (Neutron's agent_down_time); nb_cfg is
    # raised every half of it when nothing else raises it, so live chassis report in time
    agent_down_time: float = 75.0
    firewall: bool = False                   # security groups and port security (acl.py)

    @classmethod
    def of(cls, config) -> "OvnConfig":
        if isinstance(config, cls):
            c = config
        elif isinstance(config, dict):
            c = cls(**{k.replace("-", "_").removeprefix("ovn_"): v for k, v in config.items()})
        else:  # anything with attributes of these names (an argparse/typer namespace)
            c = cls(**{k: getattr(config, k) for k in
                       ("nb", "sb", "owner", "distributed_fip", "provider_tenant_networks",
                        "interval", "timeout", "agent_down_time", "firewall")
                       if hasattr(config, k)})
        if not c.owner:
            c.owner = f"floatip@{socket.gethostname()}"
        return c


@dataclass
class OvnStats:
    passes: int = 0
    full_passes: int = 0
    incremental_passes: int = 0
    rebuilds: int = 0                   # everything translated again from memory (chassis)
    writes: int = 0
    last_kind: str = ""                 # full | incremental | rebuild
    last_plan: str = ""
    last_scope: int = 0                 # objects the last pass compared (-1: all)
    last_seconds: float = 0.0
    last_error: str | None = None
    last_generation: int = -1
    nb_cfg: int = 0                     # the nb_cfg of our last write
    last_write_at: float = 0.0          # time.perf_counter() when it committed
    errors: dict[str, str] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)   # last pass, ms per step
    write_timing: dict[str, float] = field(default_factory=dict)  # last pass that wrote
    seconds: dict[str, float] = field(default_factory=dict)  # kind -> last pass of that kind


class OvnBackend:
    name = "ovn"

    def __init__(self, source, config):
        self.source = source
        self.config = OvnConfig.of(config)
        self.opts = Options(self.config.owner, self.config.distributed_fip,
                            self.config.provider_tenant_networks, self.config.firewall)
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.done = threading.Condition()
        self.stats = OvnStats()
        self.on_pass = None                     # called after each pass (metrics)
        self._lock = threading.Lock()
        self._reasons: set[str] = set()
        self._want_full = True
        self.desired = DesiredState()          # the desired state, moved forward by deltas
        self.rows: Desired | None = None       # its NB rows, moved forward likewise
        self._fip_router: dict[str, str] = {}  # floating IP id -> the router carrying it
        # security group -> its member ports, the ports in the drop group, and per port
        # (its groups, in the drop group): a member change is found without a scan
        self._group_ports: dict[str, set[str]] = {}
        self._secured: set[str] = set()
        self._member: dict[str, tuple[frozenset[str], bool]] = {}
        self._conflicts: dict[str, str] = {}   # object -> a name another owner holds
        self._pending: dict[str, int] = {}     # object -> nb_cfg every chassis must reach
        self._recheck: set[str] = set()         # objects whose status report failed
        self._raised = time.monotonic()         # when nb_cfg was last raised
        self.nb: Northbound | None = None
        self.sb: Southbound | None = None
        self.thread: threading.Thread | None = None

    # -- the Backend protocol -------------------------------------------------------------
    def start(self) -> "OvnBackend":
        self.sb = Southbound(self.config.sb, self._note, self.config.timeout)
        try:
            self.nb = Northbound(self.config.nb, self.config.owner, self._note,
                                 self.config.timeout)
        except Exception:
            self.sb.close()
            self.sb = None
            raise
        self.source.watch(_Wake(self._note, "source"), self.stop_event)
        self.request_full()
        self.thread = threading.Thread(target=self._run, name="floatip-ovn", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
            self.thread = None
        for db in (self.nb, self.sb):
            if db is not None:
                db.close()
        self.nb = self.sb = None

    def request_full(self) -> None:
        self._want_full = True
        self.wake.set()

    def wait_synced(self, generation: int | None = None, timeout: float = 30.0) -> bool:
        """True once a pass reflected ``generation`` (default: what the source has now) and
        every chassis caught up with what was written (``ovn-nbctl --wait=hv``)."""
        want = self.source.snapshot()["generation"] if generation is None else generation
        deadline = time.monotonic() + timeout
        with self.done:
            while True:
                caught_up = self.nb is not None and self._realised(self.stats.nb_cfg, None)
                if self.stats.last_generation >= want and not self.wake.is_set() and \
                        not self._reasons and caught_up and not self._pending and \
                        not self._recheck:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.done.wait(min(left, 0.2))

    def agents(self) -> list[dict]:
        """The chassis as Neutron lists OVN agents."""
        if self.sb is None:
            return []
        cfg, up = self._liveness()
        nb_cfg = self.nb.cfg()[0] if self.nb is not None else 0
        return [{"id": c.name, "agent_type": "OVN Controller Gateway agent" if c.gateway
                 else "OVN Controller agent", "binary": "ovn-controller", "host": c.hostname,
                 "alive": c.name in up, "admin_state_up": True, "topic": "n/a",
                 "availability_zone": "", "description": "",
                 "configurations": {"chassis_name": c.name, "bridge-mappings":
                                    sorted(c.physnets), "nb_cfg": cfg[c.name].nb_cfg
                                    if c.name in cfg else None,
                                    "caught_up": c.name in cfg and cfg[c.name].nb_cfg >= nb_cfg}}
                for c in self.sb.chassis()]

    # -- readiness per object from the chassis that matter to it ---------------------------
    def _liveness(self):
        cfg = self.sb.chassis_cfg()
        nb_cfg = self.nb.cfg()[0] if self.nb is not None else 0
        return cfg, alive(cfg, nb_cfg, time.time() * 1000, self.config.agent_down_time)

    def _matter(self, obj: str) -> set[str] | None:
        """The chassis an object waits for (None: every live one): a router its gateway
        chassis, a floating IP those of its router and the chassis of its VM."""
        kind, _, oid = obj.partition(":")
        if kind == "router":
            return gateway_chassis(self.rows, oid)
        if kind != "fip":
            return None
        out = gateway_chassis(self.rows, self._fip_router.get(oid, ""))
        f = self.desired.state.floatingips.get(oid) if self.desired.state else None
        if f is not None and f.port_id:
            bound = self.sb.bindings([f.port_id]).get(f.port_id)
            if bound is not None:
                out.add(bound[0])
        return out

    def _realised(self, want: int, obj: str | None, liveness=None) -> bool:
        cfg, up = liveness or self._liveness()
        return realised(want, self._matter(obj) if obj else None, cfg, up)

    # -- the loop -------------------------------------------------------------------------
    def _note(self, reason: str) -> None:
        """Called from the IDL threads: remember why, and wake the loop."""
        with self._lock:
            self._reasons.add(reason)
        self.wake.set()

    def _run(self) -> None:
        backoff = 0.2
        last_full = time.monotonic()
        while not self.stop_event.is_set():
            # the full pass is due every ``interval`` whatever wakes the loop meanwhile
            due = last_full + self.config.interval
            ping = self._raised + self.config.agent_down_time / 2
            self.wake.wait(timeout=max(0.0, min(due, ping) - time.monotonic()))
            if self.stop_event.is_set():
                break
            self.wake.clear()
            if time.monotonic() >= ping:   # live chassis answer with a fresh timestamp
                self._raised = time.monotonic()
                try:
                    self.nb.bump()
                except Exception as e:  # noqa: BLE001 - the next pass tells what is wrong
                    log.warning("raising nb_cfg for the liveness check: %s", e)
            with self._lock:
                reasons, self._reasons = self._reasons, set()
            # after a reconnect the IDL refilled without telling what was deleted meanwhile
            full = self._want_full or time.monotonic() >= due or "reconnect" in reasons
            self._want_full = False
            try:
                self._pass(reasons, full)
                if full:
                    last_full = time.monotonic()
                backoff = 0.2
            except Exception as e:  # noqa: BLE001 - the loop survives and retries in full
                log.exception("OVN pass failed")
                self.stats.last_error = str(e)
                self._want_full = True
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 10)
                self.wake.set()
            with self.done:
                self.done.notify_all()

    def _read(self, reasons: set[str], full: bool) -> tuple[bool, dict | None]:
        """Move the desired state forward: (full, the changed ids per kind). A full read
        at start, when asked, and when the change feed does not reach back far enough."""
        d = self.desired
        if not full and d.state is not None:
            if "source" not in reasons:
                return False, {}
            if hasattr(self.source, "delta"):
                delta = self.source.delta(d.generation)
                if not delta.get("full"):
                    return False, d.apply(delta)
                d.load(delta)
                return True, None
        d.load(self.source.snapshot())
        return True, None

    def _touched(self, changed: dict[str, set[str]], reasons: set[str]) -> set[str]:
        """The floatip objects whose NB rows a change may alter."""
        st, d = self.desired.state, self.desired
        nets, subs = changed.get("networks", set()), changed.get("subnets", set())
        ports, routers = changed.get("ports", set()), set(changed.get("routers", ()))
        fips = set(changed.get("floatingips", ()))
        objs = {f"network:{n}" for n in nets} | {f"port:{p}" for p in ports}
        objs |= {f"sg:{g}" for g in changed.get("security_groups", ())}
        objs |= {f"ag:{a}" for a in changed.get("address_groups", ())}
        # a subnet's DHCP options name its network's MTU and DHCP port; its ports refer to
        # them (rare changes, or a DHCP port: a scan is fine)
        dnets = set(nets) | {x.network_id for p in ports if (x := st.ports.get(p)) is not None
                             and x.device_owner == DHCP_OWNER}
        subs = set(subs) | {s.id for s in st.subnets.values() if s.network_id in dnets}
        objs |= {f"subnet:{s}" for s in subs}
        if subs:
            objs |= {f"port:{p.id}" for p in st.ports.values()
                     if any(sid in subs for sid, _ in p.fixed_ips)}
        if nets:   # rare: a scan of the ports and floating IPs is fine
            objs |= {f"port:{p.id}" for p in st.ports.values() if p.network_id in nets}
            fips |= {f.id for f in st.floatingips.values() if f.floating_network_id in nets}
        if nets or subs:
            for r in st.routers.values():
                used = {i.subnet_id for i in r.interfaces}
                if r.gateway is not None:
                    used |= {r.gateway.subnet_id, *(s for s, _ in r.gateway.extra_ips)}
                if used & subs or (r.gateway is not None and r.gateway.network_id in nets) or \
                        any(st.subnets[s].network_id in nets for s in used if s in st.subnets):
                    routers.add(r.id)
        for p in ports:
            fips |= d.port_fips.get(p, set())
        if self.opts.distributed_fip:   # a FIP follows its VM's chassis
            for r in reasons:
                if r.startswith("pb:"):
                    fips |= d.port_fips.get(r[3:], set())
        if routers:   # floating IPs may move to or from them: every mapping again
            new = fip_routers(st)
            old, self._fip_router = self._fip_router, new
            fips |= {f for f in old.keys() | new.keys()
                     if old.get(f) != new.get(f) or new.get(f) in routers}
        else:
            for f in fips:
                x = st.floatingips.get(f)
                r = st.router_for_fip(x) if x is not None else None
                if r is None:
                    self._fip_router.pop(f, None)
                else:
                    self._fip_router[f] = r.id
        objs |= {f"router:{r}" for r in routers} | {f"fip:{f}" for f in fips}
        objs |= self._groups_touched(st, ports, nets, reasons)
        return objs | {r[6:] for r in reasons if r.startswith("drift:")}

    def _members(self, state: State) -> None:
        self._group_ports, self._secured = members(state)
        self._member = {p: membership(state, p) for p in state.ports}

    def _groups_touched(self, st: State, ports: set[str], nets: set[str],
                        reasons: set[str]) -> set[str]:
        """The security groups (``sg:``) whose port group gains or loses a member, and the
        drop group when a port's port security comes or goes (its LSP deleted by hand and
        written again: its port groups refer to the new row)."""
        redo = {r[11:] for r in reasons if r.startswith("drift:port:")}
        if nets:   # rare: every port's membership again
            ports = set(ports) | set(self._member) | set(st.ports)
        objs: set[str] = set()
        for p in set(ports) | redo:
            old = self._member.get(p, (frozenset(), False))
            new = membership(st, p)
            if p in redo:
                objs |= {f"sg:{g}" for g in old[0] | new[0]}
                objs |= {DROP_OBJ} if old[1] or new[1] else set()
            if new == old:
                continue
            objs |= {f"sg:{g}" for g in old[0] ^ new[0]}
            if old[1] != new[1]:
                objs.add(DROP_OBJ)
            for g in old[0] - new[0]:
                self._group_ports.get(g, set()).discard(p)
            for g in new[0] - old[0]:
                self._group_ports.setdefault(g, set()).add(p)
            (self._secured.add if new[1] else self._secured.discard)(p)
            if new[1]:
                self._member[p] = new
            else:
                self._member.pop(p, None)
        return objs

    def _pass(self, reasons: set[str], full: bool) -> None:
        t0 = time.perf_counter()
        timing: dict[str, float] = {}

        def lap(what: str) -> None:
            nonlocal t0
            now = time.perf_counter()
            timing[what] = (now - t0) * 1000
            t0 = now
        start = t0
        full, changed = self._read(reasons, full)
        lap("read")
        d = self.desired
        state: State = d.state
        if full:
            self.sb.rescan()
        kind = "full" if full else "rebuild" if (
            "chassis" in reasons or self.rows is None) else "incremental"
        invalid = {f"router:{r}" for r in d.invalid_routers}
        skip = invalid | {f"fip:{f}" for f in d.invalid_fips}
        chassis = self.sb.chassis()
        if kind == "incremental":
            scope = self._touched(changed, reasons)
            lap("scope")
            fip_ids = [o[4:] for o in scope if o.startswith("fip:")]
            bound = self.sb.bindings(
                {state.floatingips[f].port_id for f in fip_ids if f in state.floatingips
                 and state.floatingips[f].port_id}) if self.opts.distributed_fip else {}
            part = translate(state, self.opts, chassis, {p: c for p, (c, _) in bound.items()},
                             d.vm_ports, objects=scope, skip=skip, fip_router=self._fip_router,
                             group_ports=self._group_ports, secured=self._secured)
            self.rows.replace(scope, part)
            hold = invalid | {f"fip:{f}" for f in fip_ids
                              if f"router:{self._fip_router.get(f)}" in invalid}
        else:
            scope = None
            if full:
                self._fip_router = fip_routers(state)
            self._members(state)
            bound = self.sb.bindings(state.ports) if self.opts.distributed_fip else {}
            self.rows = translate(state, self.opts, chassis,
                                  {p: c for p, (c, _) in bound.items()}, d.vm_ports,
                                  skip=skip, fip_router=self._fip_router,
                                  group_ports=self._group_ports, secured=self._secured)
            hold = invalid | {f"fip:{f}" for f, r in self._fip_router.items()
                              if f"router:{r}" in invalid}
        lap("translate")
        plan = None
        if scope is None or scope:
            actual, foreign = self.nb.actual(rescan=full)
            if scope is None:
                actual.prefetch(self.rows.rows)
                lap("read NB")
            plan = diff(self.rows, actual, foreign, scope, hold)
            lap("diff")
            if plan:
                nb_cfg = self.nb.apply(plan, actual)
                self._raised = time.monotonic()
                lap("write NB")
                self.stats.write_timing = timing
                self.stats.last_write_at = time.perf_counter()
                for obj in plan.objects:
                    self._pending[obj] = nb_cfg
                self.stats.nb_cfg = nb_cfg
                self.stats.writes += 1
                self.stats.last_plan = plan.summary()
                log.info("%s pass: %s (nb_cfg %d)", kind, plan.summary(), nb_cfg)
            if scope is None:
                self._conflicts = dict(plan.conflicts)
            else:
                self._conflicts = {o: e for o, e in self._conflicts.items() if o not in scope}
                self._conflicts.update(plan.conflicts)
        errors = {**{f"router:{r}": e for r, e in d.invalid_routers.items()},
                  **{f"fip:{f}": e for f, e in d.invalid_fips.items()},
                  **self.rows.problems, **self._conflicts}
        live = self._liveness() if self._pending else None
        cleared = {o for o, c in self._pending.items() if self._realised(c, o, live)}
        for o in cleared:
            del self._pending[o]
        if scope is None:
            self._recheck = set()
            self._report(None, errors)
        else:
            check = scope | cleared | {o for o in errors.keys() ^ self.stats.errors.keys()}
            check |= self._recheck
            self._recheck = set()
            check |= {o for o in errors.keys() & self.stats.errors.keys()
                      if errors[o] != self.stats.errors[o]}
            check |= {"port:" + r[3:] for r in reasons if r.startswith("pb:")}
            self._report(check, errors)
        self.stats.errors = errors
        lap("report")
        st = self.stats
        st.passes += 1
        st.full_passes += kind == "full"
        st.incremental_passes += kind == "incremental"
        st.rebuilds += kind == "rebuild"
        st.last_kind = kind
        st.last_scope = -1 if scope is None else len(scope)
        st.timing = timing
        st.last_generation = d.generation
        st.last_seconds = time.perf_counter() - start
        st.seconds[kind] = st.last_seconds
        st.last_error = "; ".join(f"{k}: {v}" for k, v in errors.items()) or None
        if self.on_pass is not None:
            self.on_pass(kind, st.last_seconds)

    def _report(self, check: set[str] | None, errors: dict[str, str]) -> None:
        """Statuses of the objects in ``check`` (None: all) that differ from what the
        database holds, to the source. A floating IP follows its router: when a router's
        error comes or goes, its floating IPs are looked at too."""
        d = self.desired
        st = d.state
        if check is None:
            routers, fips, ports = set(st.routers), set(st.floatingips), set(d.vm_ports)
        else:
            routers, fips, ports = set(), set(), set()
            for o in check:
                kind, _, oid = o.partition(":")
                {"router": routers, "fip": fips, "port": ports}.get(kind, set()).add(oid)
            before = self.stats.errors
            moved = {r for r in routers
                     if errors.get(f"router:{r}") != before.get(f"router:{r}")}
            if moved:
                fips |= {f for f, r in self._fip_router.items() if r in moved}
        out_routers = {}
        for rid in routers:
            r = st.routers.get(rid)
            obj = f"router:{rid}"
            if r is None:
                continue
            if obj in errors:
                out_routers[rid] = {"status": "ERROR", "reason": errors[obj]}
            elif not r.admin_state_up:
                out_routers[rid] = {"status": "DOWN", "reason": None}
            elif obj not in self._pending:
                out_routers[rid] = {"status": "ACTIVE", "reason": None}
        out_fips = {}
        for fid in fips:
            f = st.floatingips.get(fid)
            if f is None:
                continue
            obj = f"fip:{fid}"
            router = st.routers.get(self._fip_router.get(fid, ""))
            if obj in errors:
                status, why = "ERROR", errors[obj]
            elif router is None or not router.admin_state_up:
                status, why = "DOWN", None
            elif f"router:{router.id}" in errors:
                status, why = "ERROR", f"router {router.id}: {errors['router:' + router.id]}"
            else:
                status, why = ("DOWN" if obj in self._pending else "ACTIVE"), None
            out_fips[fid] = {"status": status, "reason": why, "port_id": f.port_id,
                             "fixed_ip": f.fixed_ip_address}
        ports = {p for p in ports if p in d.vm_ports}
        bound = self.sb.bindings(ports)
        out_ports = {p: {"status": "ACTIVE", "host": bound[p][1]} if p in bound
                     else {"status": "DOWN"} for p in ports}
        # only what differs from what the database holds (read, or reported by us since)
        db, vm = d.db, d.vm_ports
        out_fips = {f: v for f, v in out_fips.items()
                    if db["fip_status"].get(f) != v["status"]
                    or db["fip_reason"].get(f) != v["reason"]}
        out_routers = {r: v for r, v in out_routers.items()
                       if db["router_status"].get(r) != v["status"]
                       or db["router_reason"].get(r) != v["reason"]}
        out_ports = {p: v for p, v in out_ports.items()
                     if vm[p].get("status") != v["status"]
                     or ("host" in v and vm[p].get("host") != v["host"])}
        if out_fips or out_routers or out_ports:
            try:
                self.source.report(out_fips, out_routers, out_ports)
            except Exception as e:  # noqa: BLE001 - e.g. the database busy: report later
                log.warning("status report failed, retried in 1 s: %s", e)
                self._recheck |= {f"fip:{f}" for f in out_fips} | \
                    {f"router:{r}" for r in out_routers} | {f"port:{p}" for p in out_ports}
                retry = threading.Timer(1.0, self._note, ("retry",))
                retry.daemon = True
                retry.start()
                return
            for f, v in out_fips.items():
                db["fip_status"][f], db["fip_reason"][f] = v["status"], v["reason"]
            for r, v in out_routers.items():
                db["router_status"][r], db["router_reason"][r] = v["status"], v["reason"]
            for p, v in out_ports.items():
                vm[p] = {**vm[p], **v}


class _Wake(threading.Event):
    """The event handed to the source: setting it records why, then wakes the loop."""

    def __init__(self, note, reason: str):
        super().__init__()
        self._note_fn, self._reason = note, reason

    def set(self) -> None:
        self._note_fn(self._reason)


__all__ = ["OvnBackend", "OvnConfig", "ChassisInfo"]
