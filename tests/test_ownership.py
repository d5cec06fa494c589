"""Ownership per server (issue 8, item 5): each server has a stable instance id kept in its
database; its routers and OVS ports carry it; it prunes only its own; ``floatip show``
lists routers of other instances and ``floatip cleanup --orphans`` removes those of
instances that no longer run. Real namespaces and OVS, once per NAT driver."""
from __future__ import annotations

import os
import uuid

import pytest
from typer.testing import CliRunner

from floatip import lab as L
from floatip.agent.reconciler import reconcile
from floatip.cli.main import app
from floatip.core.model import State
from floatip.dataplane.kernel import Dataplane
from floatip.server import INSTANCES_DIR, Server, free_port, instance_alive

pytestmark = pytest.mark.kernel


def test_instance_id_is_stable_and_registered(tmp_path):
    url = f"sqlite:///{tmp_path}/floatip.db"
    srv = Server(url, f"127.0.0.1:{free_port()}", agent=False).start()
    try:
        first = srv.instance
        assert instance_alive(first)
        assert os.path.exists(os.path.join(INSTANCES_DIR, first + ".pid"))
    finally:
        srv.close()
    assert not instance_alive(first)
    srv = Server(url, f"127.0.0.1:{free_port()}", agent=False)
    try:
        assert srv.instance == first
    finally:
        srv.close()


def test_pid_files_of_killed_servers_go_when_a_server_starts(tmp_path):
    """A server killed without closing left its pid file behind: the next server to start
    removes it (its pid is dead); the file of an instance that runs stays."""
    import subprocess
    import uuid
    dead = subprocess.Popen(["true"])
    dead.wait()
    os.makedirs(INSTANCES_DIR, exist_ok=True)
    gone, alive = (os.path.join(INSTANCES_DIR, f"test-{uuid.uuid4().hex[:12]}.pid")
                   for _ in range(2))
    for path, pid in ((gone, dead.pid), (alive, os.getpid())):
        with open(path, "w") as f:
            f.write(str(pid))
    try:
        srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}",
                     agent=False).start()
        try:
            assert not os.path.exists(gone)
            assert os.path.exists(alive) and instance_alive(srv.instance)
        finally:
            srv.close()
    finally:
        for path in (gone, alive):
            if os.path.exists(path):
                os.unlink(path)


def test_a_server_prunes_only_its_own_routers(topo, nat_driver):
    topo.vm("vm4", "198.51.100.84")
    topo.fip("203.0.113.84", "vm4")
    mine = f"fp{uuid.uuid4().hex[:8]}"   # an instance id that does not run
    other = f"fp{uuid.uuid4().hex[:8]}"
    a = Dataplane(nat_driver, instance=mine)
    b = Dataplane(nat_driver, instance=other)
    try:
        assert reconcile(a, topo.state(), topo.config).ok
        mark = L.sh("ip", "netns", "exec", topo.ns, "ip", "-o", "link", "show", "lo").stdout
        assert f"instance={mine}" in mark
        ports = L.sh("ovs-vsctl", "--columns=external_ids", "find", "Interface",
                     f"external_ids:floatip-router={topo.router_id}").stdout
        assert f'floatip-instance="{mine}"' in ports or f"floatip-instance={mine}" in ports
        # another server with another database prunes everything it owns: not ours
        report = reconcile(b, State(), topo.config, prune=True)
        assert not [s for s in report.plan.steps if s.router == topo.router_id]
        obs = b.observe()
        assert obs.other_instances.get(topo.router_id) == mine
        assert topo.ns not in obs.namespaces
        assert L.ping_until(topo.upstream, "203.0.113.84")
        # floatip show lists it as another instance's router
        r = CliRunner().invoke(app, ["--nat-driver", nat_driver, "show", "--json"])
        assert r.exit_code == 0, r.output
        assert {"router_id": topo.router_id, "instance": mine,
                "server": "dead: floatip cleanup --orphans"} in \
            __import__("json").loads(r.output)["other_instances"]
        # its instance does not run: cleanup --orphans removes it, namespace and ports
        # (only this test's instance: other tests' servers run beside it with their records
        # in their own run dirs, so a host-wide cleanup would take their routers for orphans)
        r = CliRunner().invoke(app, ["--nat-driver", nat_driver, "cleanup", "--orphans",
                                     "--instance", mine])
        assert r.exit_code == 0, r.output
        assert topo.router_id in r.output
        assert not os.path.exists(f"/run/netns/{topo.ns}")
        left = L.sh("ovs-vsctl", "--bare", "--columns=name", "find", "Interface",
                    f"external_ids:floatip-router={topo.router_id}").stdout.split()
        assert not left
    finally:
        a.close()
        b.close()
