"""The agent's loop: wake on a change (or every ``interval`` seconds), read the desired state
from a source (the in-process database, or a remote API), reconcile this host's kernel through
``Reconciler`` and report statuses back."""
from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field, replace

from ..core.errors import InvalidState, NeutronError
from ..core.layout import AgentConfig, router_layouts
from ..core.model import State
from ..core.validate import validate
from ..dataplane.kernel import Dataplane
from .binding import Binder
from .dhcp import DhcpAgent
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


@dataclass
class AgentStats:
    passes: int = 0
    last_seconds: float = 0.0
    last_error: str | None = None
    last_generation: int = -1
    last_full: bool = True
    full_passes: int = 0
    fip_status: dict[str, str] = field(default_factory=dict)


def fip_routers(state: State) -> dict[str, str]:
    """floating IP id -> id of the router that carries it: ``State.router_for_fip`` for all
    of them at once, through an index instead of a scan of every router per floating IP."""
    order = {rid: i for i, rid in enumerate(state.routers)}
    index: dict[tuple[str, str], str] = {}
    for rid, r in state.routers.items():
        if r.gateway is not None:
            for itf in r.interfaces:
                index.setdefault((itf.subnet_id, r.gateway.network_id), rid)
    out = {}
    for fid, f in state.floatingips.items():
        port = state.ports.get(f.port_id) if f.port_id else None
        if port is None:
            continue
        found = [index[key] for sid, ip in port.fixed_ips
                 if f.fixed_ip_address in (None, ip)
                 and (key := (sid, f.floating_network_id)) in index]
        if found:
            out[fid] = min(found, key=order.__getitem__)
    return out


class Agent:
    def __init__(self, backend, config: AgentConfig, *, interval: float = 30.0,
                 prune_scope: str = "all", host: str | None = None, bind_ports: bool = True,
                 dhcp: bool = True, run_dir: str = "/run/floatip", hooks=()):
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
        self.router_errors: dict[str, str] = {}  # router id -> why its last pass failed
        self._want_full = False
        self._dp = None
        self.binder = None
        if bind_ports:
            self.binder = Binder(config.integration_bridge, self.host, self.wake.set)
        # DHCP: a dnsmasq per tenant network, its files in run_dir/dhcp. hooks: services
        # run after each pass from layers above (the metadata proxies): each has
        # sync(state, routers built, full) -> {id: error} and close()
        self.dhcp = DhcpAgent(config.integration_bridge, f"{run_dir}/dhcp",
                              prune_scope=prune_scope) if dhcp else None
        self.hooks = list(hooks)
        self.thread: threading.Thread | None = None

    @property
    def dp(self):
        if self._dp is None:
            self._dp = Dataplane(self.config.nat_driver)
        return self._dp

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
        while not self.stop_event.is_set():
            retry = 2.0 if self.router_errors else self.interval
            woken = self.wake.wait(timeout=min(self.interval, retry))
            if self.stop_event.is_set():
                break
            self.wake.clear()
            if self._want_full:
                self._want_full, full = False, True
            try:
                self.sync(full=full or not woken)
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
        if broken:
            log.error("routers left out: %s", broken)
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
        if broken:
            log.error("routers left out: %s", broken)
        return layouts, broken

    def _services(self, state: State, broken: dict[str, str], full: bool) -> dict[str, str]:
        """DHCP for the tenant networks, then the hooks (a metadata proxy in each router
        built). Their failures are logged and reported, never stop the routers' pass."""
        errors: dict[str, str] = {}
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
        """One pass through ``agent.Reconciler``. ``full``: every router observed and
        reconciled with ``prune=True`` (the first pass, the periodic resync, after a failure,
        on request). Otherwise a partial sync: only floating IP changes are planned (nothing
        observed) when no router, network or subnet changed, else only the routers whose
        layout changed are observed and reconciled, and routers gone are removed."""
        t0 = time.perf_counter()
        snap = self.backend.snapshot()
        state: State = snap["state"]
        try:
            validate(state)
        except InvalidState as e:
            log.error("desired state is invalid, not applied: %s", e)
            self.stats.last_error = str(e)
            self.backend.report({f: "ERROR" for f in state.floatingips},
                                {r: "ERROR" for r in state.routers}, {})
            return
        broken = self._quick_broken(state)
        owner = fip_routers(state)
        dp = self.dp
        view = ScopedDataplane(dp, snap["known_routers"]) if self.prune_scope == "known" else dp
        if self.reconciler is None or self.reconciler_dp is not dp:
            self.reconciler, self.reconciler_dp = Reconciler(view, self.config), dp
            full = True
        self.reconciler.dp = view

        def without(bad):
            return replace(state, routers={r: x for r, x in state.routers.items()
                                           if r not in bad}) if bad else state
        try:
            report = self.reconciler.sync(without(broken), prune=True, full=full)
        except NeutronError:  # a router the quick check missed: find it the slow way
            _, broken = self._layouts(state)
            report = self.reconciler.sync(without(broken), prune=True, full=full)
        steps = len(report.plan.steps)
        errors = dict(report.errors)
        errors.update(broken)
        if not full:  # a router that failed before and was not retried is still failing
            for rid, e in self.router_errors.items():
                if rid not in errors and rid in self.reconciler.dirty:
                    errors[rid] = e
        self.router_errors = {rid: e for rid, e in errors.items() if rid in state.routers}
        router_status = {rid: "ERROR" if rid in self.router_errors else
                         ("ACTIVE" if r.admin_state_up else "DOWN")
                         for rid, r in state.routers.items()}
        fip_status: dict[str, str] = {}
        for fid, f in state.floatingips.items():
            router = state.routers.get(owner.get(fid))
            if router is None or not router.admin_state_up:
                fip_status[fid] = "DOWN"
            else:
                fip_status[fid] = "ERROR" if router.id in self.router_errors else "ACTIVE"
        ports = self.binder.sync(snap["vm_ports"]) if self.binder is not None else {}
        extra_errors = self._services(state, broken, full)
        # report what differs from the database's view only
        revisions = snap.get("fip_revisions", {})
        have_fip, have_router = snap.get("fip_status", {}), snap.get("router_status", {})
        vm = snap["vm_ports"]
        fips = {f: [st, revisions[f]] if f in revisions else st
                for f, st in fip_status.items() if have_fip.get(f) != st}
        routers = {r: st for r, st in router_status.items() if have_router.get(r) != st}
        ports = {p: v for p, v in ports.items()
                 if vm.get(p, {}).get("status") != v.get("status")
                 or (v.get("host") is not None and vm.get(p, {}).get("host") != v["host"])}
        if fips or routers or ports:
            self.backend.report(fips, routers, ports)
        self.stats.passes += 1
        self.stats.last_seconds = time.perf_counter() - t0
        self.stats.last_generation = snap["generation"]
        self.stats.last_full = full
        self.stats.full_passes += full
        self.stats.last_error = "; ".join(f"{k}: {v}" for k, v in
                                          {**self.router_errors, **extra_errors}.items()) or None
        self.stats.fip_status = fip_status
        if steps or errors:
            log.info("%s pass: %d step(s), %d error(s) in %.1f ms", "full" if full else
                     "incremental", steps, len(errors), self.stats.last_seconds * 1000)
        with self.passes_done:
            self.passes_done.notify_all()
