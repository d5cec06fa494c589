"""The kernel backend: this host's agent builds every router in namespaces, OVS and netfilter."""
from __future__ import annotations

import time

from ..agent.loop import Agent
from ..core.layout import AgentConfig
from ..metadata.agent import metadata_hooks
from .base import AGENT_DOWN_TIME, StateSource, l3_agent, wait_until


class KernelBackend:
    name = "kernel"

    def __init__(self, source: StateSource, config: AgentConfig, *, metadata: bool = True,
                 nova_metadata_url: str | None = None, metadata_secret: str = "",
                 **agent_options):
        """``agent_options`` go to ``agent.loop.Agent`` (dhcp, run_dir, interval, ...); the
        metadata proxies are its hook."""
        hooks = metadata_hooks(agent_options.get("run_dir", "/run/floatip"), metadata,
                               nova_metadata_url, metadata_secret, owner=config.instance)
        self.agent = Agent(source, config, hooks=hooks, **agent_options)
        self.agent_down_time, self.started_at = AGENT_DOWN_TIME, None

    def start(self) -> None:
        self.started_at = time.time()
        self.agent.start()

    def stop(self) -> None:
        self.agent.stop()

    def request_full(self) -> None:
        self.agent.request_full()

    def wait_synced(self, generation: int, timeout: float) -> bool:
        agent = self.agent
        return wait_until(agent.passes_done, lambda: agent.stats.last_generation >= generation
                          and not agent.wake.is_set(), timeout)

    def agents(self) -> list[dict]:
        a = self.agent
        return [l3_agent(a.host, a.thread is not None and a.thread.is_alive(), a.stats,
                         self.started_at, self.agent_down_time, a.interval)]
