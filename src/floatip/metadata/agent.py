"""The agent's side of metadata: the service and the router proxies on one asyncio loop,
answering from the latest desired state the agent applied."""
from __future__ import annotations

from ..core.model import State
from .content import Instance, find_instance
from .proxy import PORT, Loop, MetadataProxies
from .service import SOCKET, MetadataService


class MetadataAgent:
    def __init__(self, socket_path: str = SOCKET, nova_url: str | None = None,
                 secret: str = "", port: int = PORT):
        self.state = State()
        self.loop = Loop()
        self.service = MetadataService(self.lookup, socket_path, nova_url, secret)
        self.loop.call(self.service.start())
        self.proxies = MetadataProxies(self.loop, socket_path, port)

    def lookup(self, router_id: str, ip: str) -> Instance | None:
        return find_instance(self.state, router_id, ip)

    def sync(self, state: State, routers: set[str]) -> dict[str, str]:
        """Answer from ``state`` from now on; a proxy in each router of ``routers`` (those
        whose namespace the last pass built). Returns {router id: error}."""
        self.state = state
        return self.proxies.sync(routers)

    def close(self) -> None:
        self.proxies.close()
        self.loop.call(self.service.stop())
        self.loop.stop()
