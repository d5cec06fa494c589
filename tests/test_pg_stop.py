"""Issue 27, clean stop: SIGTERM (what systemd sends) and SIGINT run ``floatip serve``'s
whole stop within a bounded time: its agent process ends, its database is closed, its
pid file is gone and a marker says the instance was stopped, and ``cleanup --orphans`` leaves the routers of that
stopped server alone (they keep forwarding until it is back). A real ``floatip serve``
process, on SQLite and on PostgreSQL."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from floatip import lab as L
from floatip.cli.main import app
from floatip.server import (INSTANCES_DIR, free_port, instance_alive, instance_gone,
                            instance_stopped)
from cloud import wait_for
from pgserver import fresh_database

STOP_BOUND = 15.0  # seconds from the signal to the process' exit


def _serve(args: list[str], port: int, env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "floatip.cli", *args],
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)

    def up():
        assert proc.poll() is None, proc.stdout.read().decode()
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}/floatip/v1/agent", timeout=2).json()
    try:
        wait_for(up, 120, "floatip serve answers")
    except BaseException:  # a server that never answered is not left running
        proc.kill()
        proc.wait()
        raise
    return proc


def _stop(proc: subprocess.Popen, sig: int) -> float:
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=STOP_BOUND)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"floatip serve still running {STOP_BOUND} s after {sig!r}")
    out = proc.stdout.read().decode()
    assert code == 0, out
    assert "Traceback" not in out, out
    return time.monotonic() - t0


def _record(instance: str) -> str | None:
    path = os.path.join(INSTANCES_DIR, instance + ".pid")
    with contextlib.suppress(OSError), open(path) as f:
        return f.read()


def _forget(instance: str) -> None:
    for kind in ("pid", "stopped", "started"):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(INSTANCES_DIR, f"{instance}.{kind}"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(tmp_path, request):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/floatip.db"
        return
    with fresh_database(request.getfixturevalue("pg_url")) as url:
        yield url


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_runs_the_full_stop(db_url, sig):
    port = free_port()
    proc = _serve(["serve", "--no-agent", "--db", db_url, "--listen", f"127.0.0.1:{port}"],
                  port)
    instance = httpx.get(f"http://127.0.0.1:{port}/floatip/v1/agent").json()["instance"]
    try:
        assert _record(instance) == str(proc.pid) and instance_alive(instance)
        took = _stop(proc, sig)
        print(f"{sig.name}: stopped in {took * 1000:.0f} ms")
        # no pid file, a marker: not alive, and not gone either
        assert _record(instance) is None and instance_stopped(instance)
        assert not instance_alive(instance) and not instance_gone(instance)
    finally:
        if proc.poll() is None:
            proc.kill()
        _forget(instance)


@pytest.mark.kernel
def test_sigterm_stops_the_agent_and_cleanup_keeps_its_routers(tmp_path):
    """With the agent in a process of its own: SIGTERM ends it too; the router namespace it
    made stays, and ``cleanup --orphans`` does not count it as an orphan. A server killed
    (SIGKILL) is gone: its routers are orphans."""
    from floatip.dataplane.ovs import datapath_type
    lab = L.Lab(datapath_type())
    sfx = os.urandom(3).hex()
    int_br, ex_br = lab.bridge(f"fs{sfx}i"), lab.bridge(f"fs{sfx}e")
    port = free_port()
    instance = None
    proc = _serve(["--integration-bridge", int_br, "--bridge-mapping", f"physnet1:{ex_br}",
                   "serve", "--agent", "--agent-process", "--prune", "known", "--no-dhcp",
                   "--no-metadata", "--db", f"sqlite:///{tmp_path}/floatip.db",
                   "--listen", f"127.0.0.1:{port}"], port)
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        instance = api.get("/floatip/v1/agent").json()["instance"]
        ext = api.post("/v2.0/networks", json={"network": {
            "name": f"fs-ext-{sfx}", "router:external": True, "provider:network_type": "flat",
            "provider:physical_network": "physnet1"}}).json()["network"]
        api.post("/v2.0/subnets", json={"subnet": {
            "network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4,
            "enable_dhcp": False}}).raise_for_status()
        r = api.post("/v2.0/routers", json={"router": {
            "name": f"fs-r-{sfx}", "external_gateway_info": {"network_id": ext["id"]}}}
        ).json()["router"]
        ns = f"qrouter-{r['id']}"
        lab.namespaces.append(ns)  # removed by the lab at the end
        wait_for(lambda: os.path.exists(f"/run/netns/{ns}"), 30, f"{ns} made by the agent")
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                  text=True).stdout.split()
        assert children, "no agent process"
        _stop(proc, signal.SIGTERM)
        for pid in children:  # the agent process ended with the server
            assert not os.path.exists(f"/proc/{pid}") or \
                open(f"/proc/{pid}/stat").read().split(") ", 1)[1][0] == "Z"
        assert _record(instance) is None and instance_stopped(instance)
        assert not instance_gone(instance)
        res = CliRunner().invoke(app, ["--integration-bridge", int_br, "--bridge-mapping",
                                       f"physnet1:{ex_br}", "cleanup", "--orphans",
                                       "--dry-run"])
        assert res.exit_code == 0, res.output
        assert r["id"] not in res.output
        assert os.path.exists(f"/run/netns/{ns}")
        # without the marker (a server that was killed): an orphan
        _forget(instance)
        assert instance_gone(instance)
        res = CliRunner().invoke(app, ["--integration-bridge", int_br, "--bridge-mapping",
                                       f"physnet1:{ex_br}", "cleanup", "--orphans",
                                       "--dry-run"])
        assert f"router {r['id']} of instance {instance} (dead): would be removed" \
            in " ".join(res.output.split()), res.output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if instance:
            _forget(instance)
        left = lab.cleanup()
        assert not left, f"could not clean up: {left}"
