"""Agents on other hosts, as the server last heard from them. A remote agent names its host
in ``X-Floatip-Agent-Host`` on every ``/floatip/v1/*`` call; its long poll comes back at least
every 25 s, so a host unheard of for ``AGENT_DOWN_TIME`` seconds (Neutron's default 75) is
not alive. Kept in memory: after a server restart an agent reappears with its next poll."""
from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timezone

HEADER = "X-Floatip-Agent-Host"
AGENT_DOWN_TIME = 75.0
_HOST = re.compile(r"^[A-Za-z0-9._-]{1,255}$")


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


class Heartbeats:
    def __init__(self):
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, float]] = {}  # host -> (first, last) epoch seconds

    def beat(self, host: str | None) -> None:
        if not host or not _HOST.match(host):  # a name we would echo back: validated
            return
        now = time.time()
        with self._lock:
            first = self._seen.get(host, (now, now))[0]
            self._seen[host] = (first, now)

    def agents(self) -> list[dict]:
        """In the shape of ``Backend.agents()``."""
        now = time.time()
        with self._lock:
            seen = dict(self._seen)
        return [{"agent_type": "L3 agent", "binary": "floatip-agent", "host": host,
                 "alive": now - last < AGENT_DOWN_TIME, "heartbeat": _stamp(last),
                 "started": _stamp(first)} for host, (first, last) in sorted(seen.items())]


def merge(parts: list[dict]) -> list[dict]:
    """What several API processes of one ``serve --workers N`` know (each ``{"local":
    Backend.agents(), "heartbeats": Heartbeats.agents()}``, this process' first) as one
    list: the backend's agents as their process says (only the first process has one),
    and each remote host once, as the process that heard from it last says, seen first when
    any first saw it."""
    local, hosts = [], {}
    for part in parts:
        local += [a for a in part["local"] if a not in local]
        for a in part["heartbeats"]:
            had = hosts.get(a["host"])
            if had is None or a["heartbeat"] > had["heartbeat"]:
                hosts[a["host"]] = {**a, "started": min(a["started"], (had or a)["started"])}
            else:
                had["started"] = min(had["started"], a["started"])
    return local + [hosts[h] for h in sorted(hosts)]
