"""``/metrics`` in Prometheus' text format (prometheus-client): agent pass durations (full
and incremental), objects programmed, repairs by kind, errors, generations behind, and API
latency per route. One registry per app, so several servers in one process (tests) do not
collide."""
from __future__ import annotations

import time

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest)
from starlette.responses import Response

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
        self._namespace_repairs = 0
        self._agent_generation = -1

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

    def watch_generation(self, fn) -> None:
        """``fn()`` gives the database's generation, read when /metrics is scraped (not
        after every pass: a read transaction per pass cost the agent ~15% of its time)."""
        self.behind.set_function(lambda: max(0, fn() - self._agent_generation)
                                 if self._agent_generation >= 0 else 0)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class Timing:
    """ASGI middleware: request latency per route template (not per URL: ids stay out)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.hist = app, metrics.api

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.hist.labels(scope["method"], route).observe(time.perf_counter() - t0)


def install(app) -> Metrics:
    """Mount ``/metrics`` and the latency middleware on a FastAPI app."""
    m = Metrics()
    app.state.metrics = m
    app.add_middleware(Timing, metrics=m)
    app.add_route("/metrics", lambda _req: Response(m.text(), media_type=CONTENT_TYPE_LATEST),
                  methods=["GET"], include_in_schema=False)
    return m
