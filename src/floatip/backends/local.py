"""The desired state from the database of this process."""
from __future__ import annotations

import threading

from ..service import agent_view
from ..store.database import Database


class LocalSource:
    def __init__(self, db: Database):
        self.db = db

    def snapshot(self) -> dict:
        with self.db.read() as s:
            return agent_view.agent_snapshot(s)

    def delta(self, since: int) -> dict:
        with self.db.read() as s:
            d = agent_view.agent_delta(s, since)
        if d.get("held"):  # committed changes behind a writer still running: soon again
            self.db.notify_soon()
        return d

    def report(self, floatingips, routers, ports) -> None:
        with self.db.tx(notify=False) as s:
            agent_view.report_status(s, floatingips, routers, ports)

    def watch(self, wake: threading.Event, stop: threading.Event) -> None:
        self.db.listeners.append(wake.set)
