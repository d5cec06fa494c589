"""Agent liveness as Neutron's (issue 26, item 3): ``alive`` in ``/v2.0/agents`` and ``floatip
status`` means a pass finished within ``agent_down_time``. An agent process that crash-loops
(here: it refuses its prune scope at every start) is not alive, and ``floatip status`` says so
without crashing; a working agent is alive."""
from __future__ import annotations

import time

import httpx
import pytest
from typer.testing import CliRunner

from floatip.cli.main import app
from floatip.core.layout import AgentConfig
from floatip.server import Server, free_port
from cloud import wait_for

pytestmark = pytest.mark.kernel


def _alive(url: str) -> list[bool]:
    r = httpx.get(f"{url}/v2.0/agents", timeout=10)
    assert r.status_code == 200, r.text
    return [a["alive"] for a in r.json()["agents"] if a["binary"] == "floatip-agent"]


def test_a_crash_looping_agent_is_not_alive(tmp_path):
    srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}",
                 AgentConfig("opbr-none", {}), prune_scope="nown", agent_process=True,
                 interval=0.5,
                 agent_options={"dhcp": False, "metadata": False}, agent_down_time=2).start()
    try:
        wait_for(lambda: srv.backend.restarts >= 1, 20, "the agent process to crash")
        wait_for(lambda: _alive(srv.url) == [False], 10, "alive false")
        for _ in range(10):   # whatever the moment in its restart loop
            assert _alive(srv.url) == [False]
            time.sleep(0.15)
        res = CliRunner().invoke(app, ["status", "--url", srv.url])
        assert res.exit_code == 0, res.output
        assert "STOPPED" in res.output and "last pass never" in res.output, res.output
    finally:
        srv.close()


def test_an_agent_that_passes_is_alive_and_one_that_stopped_passing_is_not(tmp_path):
    srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}",
                 AgentConfig("opbr-none", {}), prune_scope="known", interval=0.5,
                 agent_options={"dhcp": False, "metadata": False, "bind_ports": False},
                 agent_down_time=2).start()
    try:
        wait_for(lambda: srv.agent.stats.passes >= 2, 20, "passes")
        assert _alive(srv.url) == [True]
        doc = httpx.get(f"{srv.url}/floatip/v1/agent", timeout=10).json()
        assert doc["agent"]["alive"] is True
        # its thread runs but no pass finishes any more (a pass hangs)
        srv.agent.sync = lambda full=True: srv.agent.stop_event.wait(3600)
        srv.agent.request_full()
        wait_for(lambda: _alive(srv.url) == [False], 15, "alive false")
        doc = httpx.get(f"{srv.url}/floatip/v1/agent", timeout=10).json()
        assert doc["agent"]["alive"] is False
    finally:
        srv.close()
