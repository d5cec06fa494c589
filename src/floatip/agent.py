"""One reconcile pass: desired state -> layouts -> observe -> plan -> apply -> report."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from .dataplane import Dataplane
from .layout import AgentConfig, RouterLayout, router_layouts
from .model import State
from .plan import Plan, plan


@dataclass
class Report:
    plan: Plan
    writes: int = 0
    errors: dict[str, str] = field(default_factory=dict)   # router id -> error
    seconds: float = 0.0
    layouts: dict[str, RouterLayout] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def reconcile(dp: Dataplane, state: State, config: AgentConfig, *, remove: set[str] = frozenset(),
              prune: bool = False, dry_run: bool = False) -> Report:
    t0 = time.perf_counter()
    layouts = router_layouts(state, config)
    scope = None if prune else set(layouts) | set(remove)
    observed = dp.observe(scope)
    p = plan(layouts, observed, dp.nat, remove=set(remove), prune=prune)
    report = Report(p, layouts=layouts)
    report.errors.update(p.problems)
    if not dry_run and p.steps:
        res = dp.apply(p)
        report.writes = res.writes
        for target, err in res.errors.items():
            report.errors[target.removeprefix("qrouter-")] = err
    report.seconds = time.perf_counter() - t0
    return report
