"""``/metrics`` in Prometheus' text format (prometheus-client): agent pass durations (full
and incremental), objects programmed, repairs by kind, errors, generations behind, whether the
agent is alive and when it last finished a pass, API requests by status code and latency per
route, the build (version) and the process (CPU, memory, open files: prometheus_client's
process collector). One registry per app, so several servers in one process (tests) do not
collide.

``Requests`` is also the access log: one line per request on the ``floatip.access`` logger
(method, path, status, milliseconds, project, request id), and the request id Neutron
answers in ``X-Openstack-Request-Id``."""
from __future__ import annotations

import logging
import random
import time
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, Info, ProcessCollector, generate_latest)
from prometheus_client.metrics_core import Metric
from starlette.responses import Response

access_log = logging.getLogger("floatip.access")
REQUEST_ID_HEADER = b"x-openstack-request-id"
# Neutron's agent_down_time: an agent whose last pass ended longer ago is not alive
AGENT_DOWN_TIME = 75.0


def build_version() -> str:
    try:
        return version("floatip")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"

PASS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
API_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class Metrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.passes = Histogram("floatip_agent_pass_seconds", "Agent pass duration",
                                ["kind"], registry=r, buckets=PASS_BUCKETS)
        self.phases = Histogram("floatip_agent_pass_phase_seconds",
                                "Agent pass time by phase: read (desired state from the "
                                "database), apply (plan and kernel), report (statuses)",
                                ["kind", "phase"], registry=r, buckets=PASS_BUCKETS)
        self.programmed = Gauge("floatip_floatingips_programmed",
                                "Floating IPs the agent holds as programmed", registry=r)
        self.routers = Gauge("floatip_routers_programmed", "Routers applied without error",
                             registry=r)
        self.repairs = Counter("floatip_repairs_total", "Drift repaired by full passes, by kind",
                               ["kind"], registry=r)
        self.errors = Counter("floatip_router_errors_total",
                              "Routers in error after a pass (summed over passes)", registry=r)
        self.behind = Gauge("floatip_generations_behind",
                            "Committed changes the agent has not applied yet", registry=r)
        self.api = Histogram("floatip_api_request_seconds", "API latency per route",
                             ["method", "route"], registry=r, buckets=API_BUCKETS)
        self.requests = Counter("floatip_api_requests", "API requests by route and status "
                                "code", ["method", "route", "code"], registry=r)
        self.last_pass = Gauge("floatip_agent_last_pass_timestamp_seconds",
                               "When this server's agent last finished a pass (Unix time; 0: "
                               "never)", registry=r)
        Gauge("floatip_agent_alive", f"1 when this server's agent finished a pass within "
              f"the last {AGENT_DOWN_TIME:.0f} s (Neutron's agent_down_time), else 0",
              registry=r).set_function(self.agent_alive)
        Info("floatip_build", "The running floatip", registry=r).info(
            {"version": build_version()})
        ProcessCollector(registry=r)
        self._namespace_repairs = 0
        self._agent_generation = -1
        self._last_pass = 0.0
        # the server's own answer when it has one (/v2.0/agents: its agent_down_time)
        self.alive_source = None
        # ``serve --workers N``: the other API processes' ``families()``, merged into ours
        self.others = None

    def agent_alive(self) -> int:
        if self.alive_source is not None:
            return int(self.alive_source())
        return int(self._last_pass > 0 and time.time() - self._last_pass < AGENT_DOWN_TIME)

    def observe(self, p: dict) -> None:
        """After each agent pass, with its ``agent.loop.pass_summary`` (in process, or sent
        by the agent's own process)."""
        kind = "full" if p["full"] else "incremental"
        self.passes.labels(kind).observe(p["seconds"])
        for phase, seconds in p.get("phases", {}).items():
            self.phases.labels(kind, phase).observe(seconds)
        self.programmed.set(p["programmed"])
        self.routers.set(p["routers_ok"])
        for action, n in p["repairs"].items():
            self.repairs.labels(action).inc(n)
        ns = p["namespace_repairs"]
        if ns > self._namespace_repairs:
            self.repairs.labels("namespace_replaced").inc(ns - self._namespace_repairs)
            self._namespace_repairs = ns
        self.errors.inc(p["errors"])
        self._agent_generation = p["generation"]
        self.passed()

    def passed(self, kind: str | None = None, seconds: float | None = None) -> None:
        """A pass ended now (with ``kind`` and ``seconds``: one the OVN backend timed)."""
        if kind is not None:
            self.passes.labels(kind).observe(seconds)
        self._last_pass = time.time()
        self.last_pass.set(self._last_pass)

    def watch_generation(self, fn) -> None:
        """``fn()`` gives the database's generation, read when /metrics is scraped (not
        after every pass: a read transaction per pass cost the agent ~15% of its time)."""
        self.behind.set_function(lambda: max(0, fn() - self._agent_generation)
                                 if self._agent_generation >= 0 else 0)

    def text(self) -> bytes:
        if self.others is None:
            return generate_latest(self.registry)
        return generate_latest(_Fixed(merge([families(self.registry), *self.others()])))


def families(registry) -> list:
    """A registry's metrics as plain data (they cross to another process)."""
    return [[m.name, m.type, m.documentation, m.unit,
             [[s.name, s.labels, s.value] for s in m.samples]] for m in registry.collect()]


# Gauges of processes that add up to the service's (memory, open files); the others take
# the largest value: floatip's own are set by the process with the agent only (0 in the
# others), build info is 1 in each.
_SUMMED_GAUGES = {"process_virtual_memory_bytes", "process_resident_memory_bytes",
                  "process_open_fds"}


def merge(parts: list[list]) -> list[Metric]:
    """The ``families()`` of several processes as one: counters, histograms and summaries
    add up (their ``_created`` time is the earliest); gauges as ``_SUMMED_GAUGES`` says,
    a start time the earliest."""
    out: dict[str, Metric] = {}
    values: dict[str, dict[tuple, float]] = {}
    for part in parts:
        for name, kind, doc, unit, samples in part:
            if name not in out:
                out[name], values[name] = Metric(name, doc, kind, unit), {}
            seen = values[name]
            for sname, labels, value in samples:
                key = (sname, tuple(labels.items()))
                if key not in seen:
                    seen[key] = value
                elif sname.endswith("_created") or sname == "process_start_time_seconds":
                    seen[key] = min(seen[key], value)
                elif kind in ("counter", "histogram", "summary") or name in _SUMMED_GAUGES:
                    seen[key] += value
                else:
                    seen[key] = max(seen[key], value)
    for name, m in out.items():
        for (sname, labels), value in values[name].items():
            m.add_sample(sname, dict(labels), value)
    return list(out.values())


class _Fixed:
    """What ``generate_latest`` reads: metrics already collected."""

    def __init__(self, metrics: list[Metric]):
        self.metrics = metrics

    def collect(self):
        return self.metrics


# the version and variant bits of a random (version 4) UUID
_V4_CLEAR, _V4_SET = ~((0xF000 << 64) | (0xC000 << 48)), (0x4000 << 64) | (0x8000 << 48)


def request_id() -> str:
    """``req-<uuid4>``: Python's generator, not ``uuid.uuid4()``'s getrandom() system call
    per request (an id to find a request by, not a secret)."""
    h = "%032x" % (random.getrandbits(128) & _V4_CLEAR | _V4_SET)
    return f"req-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Requests:
    """ASGI middleware, outermost: a request id for each request (``req-<uuid>``, in
    ``scope["state"]["request_id"]`` for the error handlers and in the response's
    ``X-Openstack-Request-Id``), the latency per route template (not per URL: ids stay out),
    the count by status code, and the access log line."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics
        # (method, route template, status) -> its latency and count series; bounded by
        # the routes and the status codes they answer
        self._series: dict[tuple, tuple] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        rid = request_id()
        # the same dict the inner middlewares and handlers see (auth puts the caller in it)
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        status = [500]  # an exception with no response sent: the server's own 500

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (REQUEST_ID_HEADER, rid.encode())]}
            await send(message)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - t0
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            key = (scope["method"], route, status[0])
            series = self._series.get(key)
            if series is None:  # labels() validates and locks on every call: once a series
                m = self.metrics
                series = self._series[key] = (m.api.labels(key[0], route),
                                              m.requests.labels(key[0], route, str(key[2])))
            series[0].observe(seconds)
            series[1].inc()
            ctx = state.get("ctx")
            access_log.info("%s %s %d %.1fms project=%s %s", scope["method"], scope["path"],
                            status[0], seconds * 1000,
                            getattr(ctx, "project_id", "") or "-", rid)


def install(app) -> Metrics:
    """Mount ``/metrics`` and the request middleware on a FastAPI app."""
    m = Metrics()
    app.state.metrics = m
    app.add_middleware(Requests, metrics=m)
    app.add_route("/metrics", lambda _req: Response(m.text(), media_type=CONTENT_TYPE_LATEST),
                  methods=["GET"], include_in_schema=False)
    return m
