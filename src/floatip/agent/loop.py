"""The agent's loop: wake on a change (or every ``interval`` seconds), read the desired state
from a source (the in-process database, or a remote API), reconcile this host's kernel through
``Reconciler`` and report statuses back."""
from __future__ import annotations

import contextlib
import gc
import logging
import socket
import threading
import time
from dataclasses import dataclass, field, replace

from ..core.errors import NeutronError
from ..core.layout import AgentConfig, router_layouts, with_fips
from ..core.model import State, fip_routers
from ..dataplane.kernel import Dataplane
from .binding import Binder
from .changes import log_forwardings, log_pass
from .desired import Desired
from .dhcp import DhcpAgent
from .firewall import FirewallAgent
from .reconciler import Reconciler

log = logging.getLogger("floatip.agent")


class ScopedDataplane:
    """The dataplane as seen by an agent that prunes only routers its database knows (live
    or deleted): other floatip routers on the host (another server, ``apply --local``,
    tests) are invisible to it and so never removed."""

    def __init__(self, dp, known: set[str]):
        self.dp, self.known = dp, known

    def observe(self, scope=None):
        obs = self.dp.observe(scope)
        obs.namespaces = {ns: f for ns, f in obs.namespaces.items() if f.router_id in self.known}
        obs.ports = {n: p for n, p in obs.ports.items() if p.router_id in self.known}
        return obs

    def __getattr__(self, name):
        return getattr(self.dp, name)


@contextlib.contextmanager
def no_collection():
    """The cyclic garbage collector off during a full pass. The pass holds ~10^5 objects
    for a moment (rows, models, layouts of every router and FIP): collections their
    allocation triggers walked them all while they were alive, stopping every thread of the
    process (the API's too) for up to 110 ms at 10,000 FIPs. They are freed by reference
    counting when the pass ends; the collector then walks what stays."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def pass_summary(agent, full: bool, seconds: float, report) -> dict:
    """What ``/metrics`` keeps of a pass (plain data: it may cross a process boundary)."""
    rec = agent.reconciler
    repairs: dict[str, int] = {}
    if full:  # what a full pass had to do was drift
        for step in report.plan.steps:
            if step.action != "create_namespace":
                repairs[step.action] = repairs.get(step.action, 0) + 1
    return {"full": full, "seconds": seconds,
            "programmed": sum(len(f) for f in rec.fips.values()),
            "routers_ok": len(rec.layouts) - len(rec.dirty), "repairs": repairs,
            "namespace_repairs": rec.repairs.get("namespace", 0),
            "errors": len(agent.router_errors), "generation": agent.stats.last_generation,
            "phases": dict(agent.stats.last_phases)}


def drift_repairs(steps, applied: tuple[dict, dict], desired: dict) -> dict[str, str]:
    """router id -> what a full pass put back, for the routers whose desired layout is the
    one applied before (``applied``: the reconciler's layouts and floating IPs) and which
    still needed steps: the host drifted (an address, a map element, a port removed by
    hand; a namespace replaced)."""
    layouts, fips = applied
    out: dict[str, list[str]] = {}
    for st in steps:
        rid = st.router
        if rid in out or (rid in layouts and rid in desired
                          and with_fips(layouts[rid], fips.get(rid, {})) == desired[rid]):
            what = f"{st.action} {st.target}: {st.why}"
            script = st.args[0] if st.phase == "nat" and st.args else None
            if isinstance(script, str) and len(script) <= 400:  # name what was put back
                what += " (" + "; ".join(ln for ln in script.splitlines() if ln) + ")"
            out.setdefault(rid, []).append(what)
    return {rid: "; ".join(dict.fromkeys(w))[:1000] for rid, w in out.items()}


@dataclass
class AgentStats:
    passes: int = 0
    last_seconds: float = 0.0
    last_cpu_seconds: float = 0.0  # the pass thread's CPU time: steady on a busy machine
    last_full_seconds: float = 0.0
    last_error: str | None = None
    last_generation: int = -1
    last_full: bool = True
    full_passes: int = 0
    last_pass_at: float = 0.0
    last_read: str = "full"
    last_phases: dict[str, float] = field(default_factory=dict)  # read/apply/report: seconds
    fip_status: dict = field(default_factory=dict)  # id -> [status, reason]
    router_status: dict[str, list] = field(default_factory=dict)  # id -> [status, reason]
    repairs: dict[str, int] = field(default_factory=dict)


class Agent:
    def __init__(self, backend, config: AgentConfig, *, interval: float = 30.0,
                 prune_scope: str = "all", host: str | None = None, bind_ports: bool = True,
                 dhcp: bool = True, run_dir: str = "/run/floatip", hooks=(),
                 firewall: bool = False):
        if prune_scope not in ("all", "known"):
            raise NeutronError(f"prune scope {prune_scope!r}: all or known")
        self.backend, self.config = backend, config
        self.interval, self.prune_scope = interval, prune_scope
        self.host = host or socket.gethostname()
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.passes_done = threading.Condition()
        self.stats = AgentStats()
        self.reconciler = None                 # agent.Reconciler, one per Dataplane
        self.reconciler_dp = None
        self.desired = Desired()
        self.fip_status: dict[str, list] = {}   # floating IP id -> [status, reason]
        self.on_pass = None  # called after each pass (metrics)
        self._ovs_woken = True
        self.router_errors: dict[str, str] = {}  # router id -> why it is in ERROR
        self.retry_routers: dict[str, str] = {}  # routers whose apply failed: retried soon
        self._want_full = False
        self._fw_due = True
        self._fw_changed: tuple | None = None
        self._dp = None
        self.binder = None
        if bind_ports:
            self.binder = Binder(config.integration_bridge, self.host, self._ovs_wake)
        # DHCP: a dnsmasq per tenant network, its files in run_dir/dhcp. hooks: services
        # run after each pass from layers above (the metadata proxies): each has
        # sync(state, routers built, full) -> {id: error} and close()
        self.dhcp = DhcpAgent(config.integration_bridge, f"{run_dir}/dhcp",
                              prune_scope=prune_scope,
                              instance=config.instance) if dhcp else None
        self.hooks = list(hooks)
        # security groups as OpenFlow flows on the integration bridge (off by default)
        self.firewall = FirewallAgent(config.integration_bridge) \
            if firewall and self.binder is not None else None
        self.run_dir = run_dir  # radvd's files: run_dir/ra
        self.thread: threading.Thread | None = None

    @property
    def dp(self):
        if self._dp is None:
            self._dp = Dataplane(self.config.nat_driver, instance=self.config.instance,
                                 run_dir=self.run_dir)
        return self._dp

    def status(self) -> dict:
        """For ``floatip status``: per router in sync or not, the last pass, repairs, errors."""
        st, rec = self.stats, self.reconciler
        routers = {}
        for rid, (status, reason) in st.router_status.items():
            routers[rid] = {"status": status, "reason": reason,
                            "in_sync": rec is not None and rid not in self.router_errors
                            and rid not in rec.dirty,
                            "floating_ips": len(rec.fips.get(rid, {})) if rec else 0}
        return {"host": self.host, "instance": self.config.instance,
                "alive": self.thread is not None and self.thread.is_alive(),
                "generation": st.last_generation, "passes": st.passes,
                "full_passes": st.full_passes, "last_pass_at": st.last_pass_at,
                "last_pass_seconds": st.last_seconds, "last_pass_full": st.last_full,
                "repairs": dict(st.repairs), "routers": routers,
                "port_forwardings": {i: why for bad in self.desired.invalid_pfs.values()
                                     for i, why in bad.items()}}

    def _ovs_wake(self) -> None:
        self._ovs_woken = True
        self.wake.set()

    def request_full(self) -> None:
        """Ask for a full pass (every router observed and repaired, stale ones pruned) now
        rather than at the next periodic resync."""
        self._want_full = True
        self.wake.set()

    def start(self) -> "Agent":
        self.backend.watch(self.wake, self.stop_event)
        self.wake.set()
        self.thread = threading.Thread(target=self.run, name="floatip-agent", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        if self.binder is not None:
            self.binder.close()
        if self.dhcp is not None:  # dnsmasq keeps serving leases, as Neutron's does
            self.dhcp.close()
        for hook in self.hooks:
            hook.close()
        if self._dp is not None:
            self._dp.close()
            self._dp = None

    def run(self) -> None:
        backoff = 0.2
        full = True  # the first pass looks at everything
        last_full = time.monotonic()
        while not self.stop_event.is_set():
            # the full pass is due every ``interval`` seconds whatever wakes the agent
            # meanwhile: a steady stream of API writes or OVS events cannot postpone it
            due = last_full + self.interval
            retry = 2.0 if self.retry_routers else self.interval
            self.wake.wait(timeout=max(0.0, min(due - time.monotonic(), retry)))
            if self.stop_event.is_set():
                break
            self.wake.clear()
            if self._want_full or time.monotonic() >= due:
                self._want_full, full = False, True
            try:
                with no_collection() if full else contextlib.nullcontext():
                    self.sync(full=full)
                if full:
                    last_full = time.monotonic()
                full = False
                backoff = 0.2
            except Exception as e:  # noqa: BLE001 - the agent must survive and retry
                log.exception("agent pass failed")
                self.stats.last_error = str(e)
                if self._dp is not None:
                    try:
                        self._dp.close()
                    except Exception:  # noqa: BLE001
                        pass
                    self._dp = None
                full = True
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 10)
                self.wake.set()

    def _quick_broken(self, state: State) -> dict[str, str]:
        """The routers ``layout`` would refuse, found without laying every router out: a
        gateway on a physical network this agent has no bridge for, an interface on a
        network without a VLAN on the integration bridge."""
        broken = {}
        for rid, r in state.routers.items():
            if not r.admin_state_up:
                continue
            gw = r.gateway
            net = state.networks.get(gw.network_id) if gw is not None else None
            if net is not None and (net.physical_network or "") not in \
                    self.config.bridge_mappings:
                broken[rid] = (f"No bridge mapped for physical network {net.physical_network} "
                               f"(bridge mappings: {self.config.bridge_mappings})")
                continue
            for itf in r.interfaces:
                sub = state.subnets.get(itf.subnet_id)
                tnet = state.networks.get(sub.network_id) if sub is not None else None
                if tnet is not None and tnet.local_vlan is None and tnet.segmentation_id is None:
                    broken[rid] = f"Network {tnet.name or tnet.id} has no local VLAN"
                    break
        return broken

    def _layouts(self, state: State) -> tuple[dict, dict[str, str]]:
        """Each router's layout, computed alone. A router this agent cannot lay out (e.g. a
        gateway on a physical network without a bridge mapping here) is left out and
        reported ERROR, so one of them does not stop every other router."""
        layouts, broken = {}, {}
        owner = fip_routers(state)
        for rid, r in state.routers.items():
            sub = replace(state, routers={rid: r},
                          floatingips={f: x for f, x in state.floatingips.items()
                                       if owner.get(f) == rid})
            try:
                layouts.update(router_layouts(sub, self.config))
            except NeutronError as e:
                broken[rid] = e.message
        return layouts, broken

    def _read(self, full: bool) -> tuple[str, dict | None]:
        """Move the in-memory desired state forward: a full consistent read when ``full``
        (or when the source has no change feed / it does not reach back far enough),
        else only the changes since our generation."""
        d = self.desired
        delta = None
        if not full and d.state is not None and hasattr(self.backend, "delta"):
            delta = self.backend.delta(d.generation)
            if not delta.get("full"):
                return "delta", d.apply(delta)
        d.load(delta if delta is not None else self.backend.snapshot())
        return "full", None
    def _services(self, state: State, broken: dict[str, str], full: bool) -> dict[str, str]:
        """DHCP for the tenant networks, then the hooks (a metadata proxy in each router
        built). Their failures are logged and reported, never stop the routers' pass."""
        errors: dict[str, str] = {}
        if self.firewall is not None and (full or self._fw_due):  # before the binder tags
            # a new VM port (_report)
            try:
                ports, groups = self._fw_changed or (None, frozenset())
                errors.update(self.firewall.sync(state, self.binder.ofports(), full,
                                                 ports, groups))
            except Exception as e:  # noqa: BLE001
                log.exception("firewall pass failed")
                errors["firewall"] = str(e)
        if self.dhcp is not None:
            try:
                errors.update(self.dhcp.sync(state, full=full))
            except Exception as e:  # noqa: BLE001
                log.exception("DHCP pass failed")
                errors["dhcp"] = str(e)
        up = {rid for rid, r in state.routers.items() if r.admin_state_up
              and rid not in broken and rid not in self.router_errors}
        for hook in self.hooks:
            try:
                errors.update(hook.sync(state, up, full))
            except Exception as e:  # noqa: BLE001
                log.exception("%s failed", type(hook).__name__)
                errors[type(hook).__name__] = str(e)
        return errors

    def sync(self, full: bool = True) -> None:
        """One pass through ``agent.Reconciler``. ``full``: everything read again, every
        router observed and reconciled with ``prune=True`` (the first pass, the periodic
        resync, after a failure, on request). Otherwise only the changes since the last
        pass are read and planned: floating IP changes without observing anything when no
        router, network or subnet changed, else only the routers whose layout changed.

        Objects are checked one by one: an invalid router or floating IP is reported ERROR
        with its reason and left out (an invalid router's kernel state is left as it is);
        every other router is applied."""
        t0, c0 = time.perf_counter(), time.thread_time()
        bad_before = {i: why for bad in self.desired.invalid_pfs.values()
                      for i, why in bad.items()}
        read, changed = self._read(full)
        t_read = time.perf_counter()
        d = self.desired
        log_forwardings(bad_before, d.invalid_pfs)
        state = d.clean()
        invalid = dict(d.invalid_routers)
        invalid.update(self._quick_broken(state))
        dp = self.dp
        view = ScopedDataplane(dp, d.known_routers) if self.prune_scope == "known" else dp
        if self.reconciler is None or self.reconciler_dp is not dp:
            self.reconciler, self.reconciler_dp = Reconciler(view, self.config), dp
            full = True
        self.reconciler.dp = view

        def without(bad):
            return replace(state, routers={r: x for r, x in state.routers.items()
                                           if r not in bad}) if bad else state
        ids = forwarded = None
        if changed is not None:
            ids = changed.get("floatingips", set()) | changed.get("ports", set())
            forwarded = d.forwarded
            # forwardings changed on their own stand for their floating IPs (in ``ids``)
            changed = {k: v for k, v in changed.items() if k != "port_forwardings"}
        # what was applied (a full sync replaces both dicts, so these stay as they were)
        applied = (self.reconciler.layouts, self.reconciler.fips)
        try:
            report = self.reconciler.sync(without(invalid), prune=True, full=full,
                                          hold=set(invalid), changed=ids,
                                          forwarded=forwarded)
        except NeutronError:  # a router the quick check missed: find it the slow way
            _, broken = self._layouts(state)
            invalid.update(broken)
            report = self.reconciler.sync(without(invalid), prune=True, full=full,
                                          hold=set(invalid), changed=ids,
                                          forwarded=forwarded)
        t_routers = time.perf_counter()
        steps = len(report.plan.steps)
        repaired = drift_repairs(report.plan.steps, applied, report.layouts) \
            if self.reconciler.layouts is not applied[0] else {}
        failed = {rid: e for rid, e in report.errors.items() if rid in state.routers}
        if not full:  # a router that failed before and was not retried is still failing
            for rid, e in self.retry_routers.items():
                if rid not in failed and rid in self.reconciler.dirty and rid in state.routers:
                    failed[rid] = e
        self.retry_routers = failed
        before = self.router_errors
        self.router_errors = {**invalid, **failed}
        whole = d.state
        router_status = {rid: ["ERROR", self.router_errors[rid]] if rid in self.router_errors
                         else ["ACTIVE" if r.admin_state_up else "DOWN", None]
                         for rid, r in whole.routers.items()}
        check = None
        if changed is None or before != self.router_errors or \
                set(changed) - {"ports", "floatingips"}:
            fips_before = self.fip_status
            self.fip_status = self._fip_status(whole, d.invalid_fips, whole.floatingips)
            fips_now = self.fip_status
        else:
            fids = set(changed.get("floatingips", ()))
            for pid in changed.get("ports", ()):
                fids |= d.port_fips.get(pid, set())
            fips_before = {f: self.fip_status[f] for f in fids if f in self.fip_status}
            for fid in fids:
                if fid not in whole.floatingips:
                    self.fip_status.pop(fid, None)
            check = {f for f in fids if f in whole.floatingips}
            fips_now = self._fip_status(whole, d.invalid_fips,
                                        {f: whole.floatingips[f] for f in check})
            self.fip_status.update(fips_now)
        log_pass(report.plan.steps, whole, before, self.router_errors, fips_before, fips_now,
                 [f for f in fips_before if f not in whole.floatingips])
        # the bridge is read again after OVS events and changes to networks or routers (a
        # VLAN moves every port's tag); else only for the ports that changed
        ports_changed = None if changed is None or self._ovs_woken or \
            set(changed) - {"ports", "floatingips"} else set(changed.get("ports", ()))
        # the firewall looks at the ports when they, their groups or the bridge changed
        self._fw_due = changed is None or self._ovs_woken or bool(
            set(changed) & {"ports", "networks", "security_groups", "address_groups"})
        # what the firewall needs to look at: these ports and groups (None: every port)
        self._fw_changed = None if changed is None or self._ovs_woken or \
            set(changed) - {"ports", "floatingips", "security_groups"} else (
                set(changed.get("ports", ())), set(changed.get("security_groups", ())))
        # a pass that changed floating IPs (or their forwardings) alone changes nothing the
        # DHCP servers and the hooks serve: they wait for the next other pass (their
        # repairs too: at the latest the periodic full pass)
        fips_only = changed is not None and not self._ovs_woken and \
            set(changed) <= {"floatingips"} and before == self.router_errors
        self._ovs_woken = False
        extra_errors = {} if fips_only else self._services(state, invalid, full)
        t_apply = time.perf_counter()
        self._report(router_status, check, ports_changed, repaired)
        t_end = time.perf_counter()
        # "routers": the reconciler's part of "apply" (the kernel changed when it ends)
        self.stats.last_phases = {"read": t_read - t0, "apply": t_apply - t_read,
                                  "routers": t_routers - t_read,
                                  "report": t_end - t_apply}
        self.stats.passes += 1
        self.stats.last_seconds = t_end - t0
        self.stats.last_cpu_seconds = time.thread_time() - c0
        self.stats.last_generation = d.generation
        self.stats.last_full = full
        self.stats.full_passes += full
        if full:
            self.stats.last_full_seconds = self.stats.last_seconds
        self.stats.last_read = read
        self.stats.last_pass_at = time.time()
        self.stats.last_error = "; ".join(f"{k}: {v}" for k, v in
                                          {**self.router_errors, **extra_errors}.items()) or None
        self.stats.router_status = router_status
        self.stats.fip_status = self.fip_status
        self.stats.repairs = dict(self.reconciler.repairs)
        if self.on_pass is not None:
            self.on_pass(self, full, self.stats.last_seconds, report)
        if steps:  # a router in ERROR is said once (changes.log_pass), not at every pass
            log.info("%s pass: %d step(s), %d error(s) in %.1f ms", "full" if full else
                     "incremental", steps, len(self.router_errors),
                     self.stats.last_seconds * 1000)
        with self.passes_done:
            self.passes_done.notify_all()

    def _fip_status(self, whole: State, fip_errors: dict[str, str], fips: dict) -> dict:
        """floating IP id -> [status, reason] for ``fips``. ACTIVE only when the reconciler
        holds the floating IP as programmed on its router (its steps succeeded)."""
        programmed = self.reconciler.fips
        out: dict[str, list] = {}
        for fid, f in fips.items():
            if fid in fip_errors:
                out[fid] = ["ERROR", fip_errors[fid]]
                continue
            router = whole.router_for_fip(f) if f.port_id or f.port_forwardings else None
            if router is None or not router.admin_state_up or router.gateway is None:
                out[fid] = ["DOWN", None]
            elif router.id in self.router_errors:
                out[fid] = ["ERROR", f"router {router.id}: {self.router_errors[router.id]}"]
            elif f.port_forwardings:  # its forwardings are in the router's NAT spec
                lay = self.reconciler.layouts.get(router.id)
                out[fid] = ["ACTIVE", None] if lay is not None and \
                    f.floating_ip_address in lay.fip_addresses else \
                    ["ERROR", "not programmed on this host"]
            elif f.fixed_ip_address and \
                    programmed.get(router.id, {}).get(f.floating_ip_address) == f.fixed_ip_address:
                out[fid] = ["ACTIVE", None]
            else:
                out[fid] = ["ERROR", "not programmed on this host"]
        return out

    def _report(self, router_status: dict, fips_to_check: set | None,
                ports_to_check: set | None, repaired: dict[str, str] | None = None) -> None:
        """Send what differs from the database's view only (``None``: check them all)."""
        d = self.desired
        db = d.db
        ports = self.binder.sync(d.vm_ports, ports_to_check) if self.binder is not None else {}
        whole = d.state
        fips = {}
        for f in (self.fip_status if fips_to_check is None else fips_to_check):
            st, why = self.fip_status[f]
            if db["fip_status"].get(f) != st or db["fip_reason"].get(f) != why:
                x = whole.floatingips[f]
                fips[f] = {"status": st, "reason": why, "port_id": x.port_id,
                           "fixed_ip": x.fixed_ip_address}
        routers = {r: {"status": st, "reason": why} for r, (st, why) in router_status.items()
                   if db["router_status"].get(r) != st or db["router_reason"].get(r) != why
                   or r in (repaired or {})}
        for r, what in (repaired or {}).items():
            if r in routers:  # recorded in the event history with the router
                routers[r]["repaired"] = what
        vm = d.vm_ports
        ports = {p: v for p, v in ports.items()
                 if vm.get(p, {}).get("status") != v.get("status")
                 or (v.get("host") is not None and vm.get(p, {}).get("host") != v["host"])}
        if fips or routers or ports:
            self.backend.report(fips, routers, ports)
            for f, v in fips.items():
                db["fip_status"][f], db["fip_reason"][f] = v["status"], v["reason"]
            for r, v in routers.items():
                db["router_status"][r], db["router_reason"][r] = v["status"], v["reason"]
            for p, v in ports.items():
                if p in vm:
                    vm[p] = {**vm[p], **{k: x for k, x in v.items() if x is not None}}
