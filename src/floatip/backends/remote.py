"""The desired state from a floatip API on another host: ``/floatip/v1/state`` and a long
poll on ``/floatip/v1/changes``."""
from __future__ import annotations

import logging
import threading

from ..client import Client
from ..core.errors import NeutronError
from ..core.model import state_from_json

log = logging.getLogger("floatip.agent")


class RemoteSource:
    def __init__(self, url: str, secret: str | None = None):
        self.client = Client(url, secret=secret)
        self.url = url
        self.secret = secret

    def snapshot(self) -> dict:
        doc = self.client.agent_state()
        return {"generation": doc["generation"], "state": state_from_json(doc["state"]),
                "vm_ports": doc["vm_ports"], "known_routers": set(doc["known_routers"]),
                "fip_revisions": doc.get("fip_revisions", {}),
                "fip_status": doc.get("fip_status", {}),
                "router_status": doc.get("router_status", {})}

    def report(self, floatingips, routers, ports) -> None:
        self.client.report(floatingips=floatingips, routers=routers, ports=ports)

    def watch(self, wake: threading.Event, stop: threading.Event) -> None:
        def loop():
            c = Client(self.url, secret=self.secret)
            gen = -1
            while not stop.is_set():
                try:
                    new = c.changes(gen, timeout=25)
                except NeutronError as e:
                    log.warning("long poll: %s", e)
                    stop.wait(2)
                    continue
                if new != gen:
                    gen = new
                    wake.set()
        threading.Thread(target=loop, name="floatip-watch", daemon=True).start()
