"""The kernel backend: this host's agent builds every router in namespaces, OVS and netfilter."""
from __future__ import annotations

import time

from ..agent.loop import Agent
from ..core.layout import AgentConfig
from ..metadata.agent import metadata_hooks
from .base import StateSource


class KernelBackend:
    name = "kernel"

    def __init__(self, source: StateSource, config: AgentConfig, *, metadata: bool = True,
                 nova_metadata_url: str | None = None, metadata_secret: str = "",
                 **agent_options):
        """``agent_options`` go to ``agent.loop.Agent`` (dhcp, run_dir, interval, ...); the
        metadata proxies are its hook."""
        hooks = metadata_hooks(agent_options.get("run_dir", "/run/floatip"), metadata,
                               nova_metadata_url, metadata_secret)
        self.agent = Agent(source, config, hooks=hooks, **agent_options)

    def start(self) -> None:
        self.agent.start()

    def stop(self) -> None:
        self.agent.stop()

    def request_full(self) -> None:
        self.agent.request_full()

    def wait_synced(self, generation: int, timeout: float) -> bool:
        agent = self.agent
        deadline = time.monotonic() + timeout
        with agent.passes_done:
            while agent.stats.last_generation < generation or agent.wake.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                agent.passes_done.wait(min(left, 0.5))
        return True

    def agents(self) -> list[dict]:
        st = self.agent.stats
        return [{"agent_type": "L3 agent", "binary": "floatip-agent", "host": self.agent.host,
                 "alive": self.agent.thread is not None and self.agent.thread.is_alive(),
                 "passes": st.passes, "last_error": st.last_error}]
