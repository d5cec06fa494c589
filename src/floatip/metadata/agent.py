"""The agent's side of metadata: the service and the router proxies on one asyncio loop,
answering from the latest desired state the agent applied. An ``Agent`` hook: the agent calls
``sync`` after each pass, ``close`` when it stops."""
from __future__ import annotations

import itertools
import os

from ..core.model import State
from .content import Instance, find_instance
from .proxy import PORT, Loop, MetadataProxies
from .service import MetadataService

_serial = itertools.count()


class MetadataAgent:
    def __init__(self, socket_path: str, nova_url: str | None = None, secret: str = "",
                 port: int = PORT):
        self.socket_path, self.nova_url, self.secret, self.port = \
            socket_path, nova_url, secret, port
        self.state = State()
        self.loop: Loop | None = None
        self.service: MetadataService | None = None
        self.proxies: MetadataProxies | None = None

    def lookup(self, router_id: str, ip: str) -> Instance | None:
        return find_instance(self.state, router_id, ip)

    def start(self) -> None:
        self.loop = Loop()
        self.service = MetadataService(self.lookup, self.socket_path, self.nova_url, self.secret)
        self.loop.call(self.service.start())
        self.proxies = MetadataProxies(self.loop, self.socket_path, self.port)

    def sync(self, state: State, routers: set[str], full: bool = True) -> dict[str, str]:
        """Answer from ``state`` from now on; a proxy in each router of ``routers`` (those
        the last pass built), none elsewhere. Returns {router id: error}."""
        if self.loop is None:
            self.start()
        self.state = state
        return self.proxies.sync(routers)

    def close(self) -> None:
        if self.loop is None:
            return
        self.proxies.close()
        self.loop.call(self.service.stop())
        self.loop.stop()
        self.loop = None


def metadata_hooks(run_dir: str, enabled: bool = True, nova_url: str | None = None,
                   secret: str = "") -> list[MetadataAgent]:
    """The agent hook for metadata, or none; its socket is unique to this process and hook
    (several agents may share a host and a run dir)."""
    if not enabled:
        return []
    sock = os.path.join(run_dir, f"metadata-{os.getpid()}-{next(_serial)}.sock")
    return [MetadataAgent(sock, nova_url, secret)]
