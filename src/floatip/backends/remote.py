"""The desired state from a floatip API on another host: ``/floatip/v1/state`` for a full
read and a long poll on ``/floatip/v1/changes?objects=true`` that returns the changed
objects (like a watch): the agent applies them to its copy of the desired state."""
from __future__ import annotations

import logging
import socket
import threading

from ..client import Client
from ..core.errors import NeutronError
from ..core.model import objects_from_json, state_from_json

log = logging.getLogger("floatip.agent")


def _snapshot(doc: dict) -> dict:
    return {"generation": doc["generation"], "full": True,
            "state": state_from_json(doc["state"]),
            "vm_ports": doc["vm_ports"], "known_routers": set(doc["known_routers"]),
            **{k: doc.get(k, {}) for k in ("fip_revisions", "fip_status", "router_status",
                                           "fip_reason", "router_reason")}}


class RemoteSource:
    def __init__(self, url: str, secret: str | None = None, host: str | None = None):
        self.host = host or socket.gethostname()
        self.client = Client(url, secret=secret, agent_host=self.host)
        self.url = url
        self._lock = threading.Lock()
        self._stash: tuple[int, dict] | None = None  # (since, answer) from the long poll
        self.secret = secret

    def snapshot(self) -> dict:
        return _snapshot(self.client.agent_state())

    def delta(self, since: int) -> dict:
        """The changes after ``since``: the long poll's answer when it was about ``since``,
        else one immediate request."""
        with self._lock:
            stash, self._stash = self._stash, None
        doc = stash[1] if stash is not None and stash[0] == since else \
            self.client.delta(since)
        if doc.get("full"):
            return _snapshot(doc)
        return {**doc, "upserts": objects_from_json(doc["upserts"])}

    def report(self, floatingips, routers, ports) -> None:
        self.client.report(floatingips=floatingips, routers=routers, ports=ports)

    def watch(self, wake: threading.Event, stop: threading.Event) -> None:
        def loop():
            c = Client(self.url, secret=self.secret, agent_host=self.host)
            gen = -1
            while not stop.is_set():
                try:
                    doc = c.delta(gen, timeout=25)
                except NeutronError as e:  # 503 (too many agents waiting) included
                    log.warning("long poll: %s", e)
                    stop.wait(2)
                    continue
                if doc["generation"] != gen or doc.get("full"):
                    with self._lock:
                        self._stash = (gen, doc)
                    gen = doc["generation"]
                    wake.set()
        threading.Thread(target=loop, name="floatip-watch", daemon=True).start()
