"""``GET /v2.0/agents`` lists the agents that follow this server from other hosts
(``floatip agent --server URL``), alive while they keep polling, as Neutron lists its agents."""
from __future__ import annotations

import httpx
import pytest

from floatip.api import heartbeats as hb
from floatip.backends.remote import RemoteSource
from floatip.server import Server, free_port


@pytest.fixture
def server(tmp_path):
    srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}",
                 agent=False).start()
    yield srv
    srv.close()


def agents(url: str) -> list[dict]:
    r = httpx.get(f"{url}/v2.0/agents")
    assert r.status_code == 200, r.text
    return r.json()["agents"]


def test_a_remote_agent_is_listed_alive_with_its_heartbeat(server):
    assert agents(server.url) == []          # no backend here and no agent has called yet
    src = RemoteSource(server.url, host="fa-edge-1")
    src.snapshot()                            # what an agent does first
    src.report({}, {}, {})
    listed = agents(server.url)
    assert [(a["host"], a["agent_type"], a["binary"], a["alive"]) for a in listed] == \
        [("fa-edge-1", "L3 agent", "floatip-agent", True)]
    one = httpx.get(f"{server.url}/v2.0/agents/{listed[0]['id']}").json()["agent"]
    assert one["heartbeat_timestamp"] == listed[0]["heartbeat_timestamp"]
    # a long poll is a heartbeat too; the same host stays one agent
    httpx.get(f"{server.url}/floatip/v1/changes", params={"timeout": 0},
              headers={hb.HEADER: "fa-edge-1"})
    assert len(agents(server.url)) == 1


def test_an_agent_that_stopped_polling_is_not_alive(server, monkeypatch):
    RemoteSource(server.url, host="fa-edge-2").snapshot()
    monkeypatch.setattr(hb, "AGENT_DOWN_TIME", 0.0)
    assert [a["alive"] for a in agents(server.url)] == [False]


def test_a_host_name_that_is_not_one_is_not_recorded(server):
    for bad in ("a b", "x" * 300, "<script>"):
        httpx.get(f"{server.url}/floatip/v1/changes", params={"timeout": 0},
                  headers={hb.HEADER: bad})
    assert agents(server.url) == []
