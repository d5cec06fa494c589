"""``OvnBackend``: floatip's desired state realised by OVN (issue 11).

One thread. It wakes when the source says the desired state changed, when an owned NB row
changed under it (hand-made drift), when the SB changed (a chassis came or went, a port was
bound) or when the chassis caught up with an nb_cfg; and every ``interval`` seconds for a
full compare. A pass translates the snapshot into NB rows (``translate``), compares them with
the owned rows in the IDL cache (``diff``) — only the objects that changed, except on full
passes — and writes the difference in one transaction (``nb.Northbound.apply``). Statuses go
back to the source: a port is ACTIVE once a chassis claimed it, a router or floating IP once
every chassis caught up with the nb_cfg of the transaction that last changed it.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field

from ...core.errors import InvalidState
from ...core.model import State, fip_routers
from ...core.validate import validate
from .diff import diff
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

    @classmethod
    def of(cls, config) -> "OvnConfig":
        if isinstance(config, cls):
            c = config
        elif isinstance(config, dict):
            c = cls(**{k.replace("-", "_").removeprefix("ovn_"): v for k, v in config.items()})
        else:  # anything with attributes of these names (an argparse/typer namespace)
            c = cls(**{k: getattr(config, k) for k in
                       ("nb", "sb", "owner", "distributed_fip", "provider_tenant_networks",
                        "interval", "timeout")
                       if hasattr(config, k)})
        if not c.owner:
            c.owner = f"floatip@{socket.gethostname()}"
        return c


@dataclass
class OvnStats:
    passes: int = 0
    full_passes: int = 0
    writes: int = 0
    last_plan: str = ""
    last_seconds: float = 0.0
    last_error: str | None = None
    last_generation: int = -1
    nb_cfg: int = 0                     # the nb_cfg of our last write
    last_write_at: float = 0.0          # time.monotonic() when it committed
    errors: dict[str, str] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)   # last pass, ms per step
    write_timing: dict[str, float] = field(default_factory=dict)  # last pass that wrote


class OvnBackend:
    name = "ovn"

    def __init__(self, source, config):
        self.source = source
        self.config = OvnConfig.of(config)
        self.opts = Options(self.config.owner, self.config.distributed_fip,
                            self.config.provider_tenant_networks)
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.done = threading.Condition()
        self.stats = OvnStats()
        self._lock = threading.Lock()
        self._reasons: set[str] = set()
        self._want_full = True
        self._snap: dict | None = None
        self._desired: Desired | None = None
        self._pending: dict[str, int] = {}     # object -> nb_cfg every chassis must reach
        self._reported: dict[str, object] = {}  # what we last told the source, per object
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
                caught_up = self.nb is not None and self.nb.cfg()[1] >= self.stats.nb_cfg
                if self.stats.last_generation >= want and not self.wake.is_set() and \
                        not self._reasons and caught_up and not self._pending:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.done.wait(min(left, 0.2))

    def agents(self) -> list[dict]:
        """The chassis as Neutron lists OVN agents."""
        if self.sb is None:
            return []
        cfg = self.sb.chassis_cfg()
        nb_cfg = self.nb.cfg()[0] if self.nb is not None else 0
        return [{"id": c.name, "agent_type": "OVN Controller Gateway agent" if c.gateway
                 else "OVN Controller agent", "binary": "ovn-controller", "host": c.hostname,
                 "alive": c.name in cfg, "admin_state_up": True, "topic": "n/a",
                 "availability_zone": "", "description": "",
                 "configurations": {"chassis_name": c.name, "bridge-mappings":
                                    sorted(c.physnets), "nb_cfg": cfg.get(c.name),
                                    "caught_up": cfg.get(c.name, -1) >= nb_cfg}}
                for c in self.sb.chassis()]

    # -- the loop -------------------------------------------------------------------------
    def _note(self, reason: str) -> None:
        """Called from the IDL threads: remember why, and wake the loop."""
        with self._lock:
            self._reasons.add(reason)
        self.wake.set()

    def _run(self) -> None:
        backoff = 0.2
        last_full = 0.0
        while not self.stop_event.is_set():
            self.wake.wait(timeout=self.config.interval)
            if self.stop_event.is_set():
                break
            self.wake.clear()
            with self._lock:
                reasons, self._reasons = self._reasons, set()
            # the periodic full compare, even while wakes keep coming
            full = self._want_full or time.monotonic() - last_full >= self.config.interval
            self._want_full = False
            if full:
                last_full = time.monotonic()
            try:
                self._pass(reasons, full)
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

    def _pass(self, reasons: set[str], full: bool) -> None:
        t0 = time.perf_counter()
        timing = self.stats.timing = {}

        def lap(what: str) -> None:
            nonlocal t0
            now = time.perf_counter()
            timing[what] = (now - t0) * 1000
            t0 = now
        start = t0
        source_changed = full or self._snap is None or "source" in reasons
        if source_changed:
            self._snap = self.source.snapshot()
            self._reported = {}
            lap("snapshot")
        snap = self._snap
        state: State = snap["state"]
        try:
            if source_changed:
                validate(state)
                lap("validate")
        except InvalidState as e:
            log.error("desired state is invalid, not applied: %s", e)
            self.stats.last_error = str(e)
            self._report(state, {}, {o: str(e) for o in
                                     [f"router:{r}" for r in state.routers] +
                                     [f"fip:{f}" for f in state.floatingips]}, {})
            self.stats.last_generation = snap["generation"]
            return
        # what changes the translation: chassis (gateway scheduling, mappings), and port
        # bindings when FIPs follow their VM's chassis; the rest only changes statuses
        sb_changed = "sb:Chassis" in reasons or (
            self.opts.distributed_fip and "sb:Port_Binding" in reasons)
        drift = {r[6:] for r in reasons if r.startswith("drift:")}
        chassis = self.sb.chassis()
        bindings = self.sb.bindings(state.ports)
        scope: set[str] | None = None
        if source_changed or sb_changed or self._desired is None:
            desired = translate(state, self.opts, chassis,
                                {p: ch for p, (ch, _) in bindings.items()}, snap["vm_ports"])
            lap("translate")
            if not full:
                changed = _changed_objects(self._desired, desired)
                scope = None if changed is None else changed | drift
                lap("changed")
            self._desired = desired
        else:
            desired = self._desired
            scope = drift
        if full:
            scope = None
        if scope is None or scope:
            actual, foreign = self.nb.actual(rescan=full)
            lap("read NB")
            plan = diff(desired, actual, foreign, scope)
            lap("diff")
            if plan:
                nb_cfg = self.nb.apply(plan, actual)
                lap("write NB")
                self.stats.write_timing = timing
                self.stats.last_write_at = time.monotonic()
                for obj in plan.objects:
                    self._pending[obj] = nb_cfg
                self.stats.nb_cfg = nb_cfg
                self.stats.writes += 1
                self.stats.last_plan = plan.summary()
                log.info("%s pass: %s (nb_cfg %d)", "full" if full else "partial",
                         plan.summary(), nb_cfg)
            if plan.deferred:
                for obj in plan.deferred:
                    self._note("drift:" + obj)
            errors = {} if scope is None else \
                {o: e for o, e in self.stats.errors.items() if o not in scope}
            errors.update(desired.problems)
            errors.update(plan.conflicts)
            self.stats.errors = errors
        _, hv_cfg = self.nb.cfg()
        self._pending = {o: c for o, c in self._pending.items() if c > hv_cfg}
        self._report(state, bindings, self.stats.errors, snap)
        lap("report")
        self.stats.passes += 1
        self.stats.full_passes += full
        self.stats.last_generation = snap["generation"]
        self.stats.last_seconds = time.perf_counter() - start
        self.stats.last_error = "; ".join(f"{k}: {v}" for k, v in self.stats.errors.items()) \
            or None

    def _report(self, state: State, bindings, errors: dict[str, str], snap=None) -> None:
        snap = snap or {}
        owner = fip_routers(state)
        routers = {}
        for rid, r in state.routers.items():
            obj = f"router:{rid}"
            if obj in errors:
                routers[rid] = "ERROR"
            elif not r.admin_state_up:
                routers[rid] = "DOWN"
            elif obj not in self._pending:
                routers[rid] = "ACTIVE"
        fips = {}
        for fid, f in state.floatingips.items():
            router = state.routers.get(owner.get(fid, ""))
            obj = f"fip:{fid}"
            if router is None or not router.admin_state_up:
                fips[fid] = "DOWN"
            elif obj in errors or f"router:{router.id}" in errors:
                fips[fid] = "ERROR"
            else:
                fips[fid] = "DOWN" if obj in self._pending else "ACTIVE"
        ports = {}
        for pid in snap.get("vm_ports", {}):
            if pid in bindings:
                ports[pid] = {"status": "ACTIVE", "host": bindings[pid][1]}
            else:
                ports[pid] = {"status": "DOWN"}
        # only what differs from what the source knows: its snapshot, or our own report
        # since that snapshot was taken (cleared when a new snapshot is read)
        known = {**{"fip:" + f: st for f, st in snap.get("fip_status", {}).items()},
                 **{"router:" + r: st for r, st in snap.get("router_status", {}).items()},
                 **{"port:" + p: (v.get("status"), v.get("host"))
                    for p, v in snap.get("vm_ports", {}).items()},
                 **self._reported}
        revisions = snap.get("fip_revisions", {})
        fips = {f: st for f, st in fips.items() if known.get("fip:" + f) != st}
        routers = {r: st for r, st in routers.items() if known.get("router:" + r) != st}
        ports = {p: v for p, v in ports.items()
                 if known.get("port:" + p, (None, None))[0] != v["status"]
                 or ("host" in v and known.get("port:" + p, (None, None))[1] != v["host"])}
        if fips or routers or ports:
            self.source.report({f: [st, revisions[f]] if f in revisions else st
                                for f, st in fips.items()}, routers, ports)
            self._reported.update({"fip:" + f: st for f, st in fips.items()})
            self._reported.update({"router:" + r: st for r, st in routers.items()})
            self._reported.update({"port:" + p: (v["status"], v.get("host"))
                                   for p, v in ports.items()})


class _Wake(threading.Event):
    """The event handed to the source: setting it records why, then wakes the loop."""

    def __init__(self, note, reason: str):
        super().__init__()
        self._note_fn, self._reason = note, reason

    def set(self) -> None:
        self._note_fn(self._reason)


def _changed_objects(old: Desired | None, new: Desired) -> set[str] | None:
    """The objects whose rows differ between two translations (None: compare all)."""
    if old is None:
        return None
    out = set()
    for key in old.rows.keys() | new.rows.keys():
        a, b = old.rows.get(key), new.rows.get(key)
        if a != b:
            out.update(r.obj for r in (a, b) if r is not None)
    return out


__all__ = ["OvnBackend", "OvnConfig", "ChassisInfo"]
