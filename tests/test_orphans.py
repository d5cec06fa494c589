"""``floatip cleanup --orphans`` (issue 26, item 5): what a DEAD server instance left on the host
goes (its router namespace, DHCP namespace with dnsmasq and tap, metadata process with its
socket, pid file), and only for dead instances: a server stopped on purpose keeps all of its
things serving. A reused pid does not make a dead instance look alive. Two real ``floatip
serve`` processes with DHCP and metadata; one killed with SIGKILL, one stopped with SIGTERM."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import uuid

import httpx
import pytest
from typer.testing import CliRunner

from floatip import lab as L
from floatip.agent import binding
from floatip.cli.main import app
from floatip.dataplane.dhcp import DhcpDataplane
from floatip.dataplane.process import running, start_ticks
from floatip.metadata.agent import daemons
from floatip.server import INSTANCES_DIR, free_port, instance_alive, instance_stopped
from cloud import wait_for
from test_pg_stop import _forget, _serve, _stop


def test_a_reused_pid_does_not_make_an_instance_alive():
    inst = f"op-{uuid.uuid4()}"
    os.makedirs(INSTANCES_DIR, exist_ok=True)
    path = os.path.join(INSTANCES_DIR, inst)
    me = os.getpid()
    try:
        with open(path + ".pid", "w") as f:
            f.write(str(me))
        for started, alive in ((f"{me} {start_ticks(me)}", True),
                               (f"{me} {start_ticks(me) - 1}", False),  # another, same pid
                               (None, True)):    # a record of an older version
            with contextlib.suppress(OSError):
                os.unlink(path + ".started")
            if started:
                with open(path + ".started", "w") as f:
                    f.write(started)
            assert instance_alive(inst) is alive, started
    finally:
        for kind in ("pid", "started"):
            with contextlib.suppress(OSError):
                os.unlink(f"{path}.{kind}")


class Host:
    """One ``floatip serve`` (agent process, DHCP, metadata) with a router, a DHCP network
    and a VM on the test's bridges."""

    def __init__(self, lab, tag: str, int_br: str, ex_br: str, tmp_path, third: int):
        self.lab, self.tag = lab, tag
        self.run_dir = f"/run/fp-op-{tag}"
        os.makedirs(self.run_dir, mode=0o755, exist_ok=True)
        self.port = free_port()
        self.proc = _serve(["--integration-bridge", int_br, "--bridge-mapping",
                            f"physnet1:{ex_br}", "serve", "--agent", "--agent-process",
                            "--prune", "known", "--dhcp", "--metadata", "--run-dir",
                            self.run_dir, "--db", f"sqlite:///{tmp_path}/{tag}.db",
                            "--listen", f"127.0.0.1:{self.port}"], self.port)
        api = self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        self.instance = api.get("/floatip/v1/agent").json()["instance"]

        def post(kind, body):
            r = api.post(f"/v2.0/{kind}s", json={kind: body})
            assert r.status_code == 201, r.text
            return r.json()[kind]
        ext = post("network", {"name": f"op-ext-{tag}", "router:external": True,
                               "provider:network_type": "flat",
                               "provider:physical_network": "physnet1"})
        post("subnet", {"network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4,
                        "enable_dhcp": False, "allocation_pools": [
                            {"start": f"203.0.113.{third}", "end": f"203.0.113.{third + 9}"}]})
        self.net = post("network", {"name": f"op-n-{tag}"})
        cidr = f"198.51.100.{third}/28"
        sub = post("subnet", {"network_id": self.net["id"], "cidr": cidr, "ip_version": 4})
        self.router = post("router", {"name": f"op-r-{tag}",
                                      "external_gateway_info": {"network_id": ext["id"]}})
        r = api.put(f"/v2.0/routers/{self.router['id']}/add_router_interface",
                    json={"subnet_id": sub["id"]})
        assert r.status_code == 200, r.text
        vm = post("port", {"network_id": self.net["id"], "name": f"op-vm-{tag}"})
        self.vm = f"op{tag}vm"
        L.sh("ip", "netns", "add", self.vm)
        lab.namespaces.append(self.vm)
        binding.plug(vm, {sub["id"]: {"cidr": sub["cidr"], "gateway_ip": sub["gateway_ip"]}},
                     self.vm, int_br)
        self.ns = f"qrouter-{self.router['id']}"
        self.dhcp = DhcpDataplane(os.path.join(self.run_dir, "dhcp"))
        self.things = wait_for(self.look, 60, f"server {tag}'s router, DHCP and metadata")
        assert self.things["metadata"] is not None

    def look(self) -> dict | None:
        """What of this server is on the host; None until all of it is there."""
        facts = self.dhcp.observe().get(self.net["id"])
        meta = [pid for pid, _, owner in daemons() if owner == self.instance]
        things = {"router": os.path.exists(f"/run/netns/{self.ns}"),
                  "dhcp_ns": facts.namespace if facts else None,
                  "dnsmasq": facts.pid if facts else None,
                  "taps": sorted(facts.ports) if facts else [],
                  "metadata": meta[0] if meta else None}
        return things if all(things.values()) else None

    def left(self) -> list[str]:
        """What of this server is still on the host."""
        t = self.things
        out = []
        if os.path.exists(f"/run/netns/{self.ns}"):
            out.append(self.ns)
        if os.path.exists(f"/run/netns/{t['dhcp_ns']}"):
            out.append(t["dhcp_ns"])
        for what in ("dnsmasq", "metadata"):
            if running(t[what]):
                out.append(f"{what} {t[what]}")
        ports = L.sh("ovs-vsctl", "--bare", "--columns=name", "find", "Interface",
                     f"external_ids:floatip-dhcp={self.net['id']}").stdout.split() + \
            L.sh("ovs-vsctl", "--bare", "--columns=name", "find", "Interface",
                 f"external_ids:floatip-router={self.router['id']}").stdout.split()
        out += ports
        sock = os.path.join(self.run_dir, f"metadata-{self.instance}.sock")
        out += [p for p in (sock, sock + ".d") if os.path.exists(p)]
        for kind in ("pid", "started"):
            if os.path.exists(os.path.join(INSTANCES_DIR, f"{self.instance}.{kind}")):
                out.append(f"{kind} file")
        return out

    def close(self) -> None:
        self.api.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.dhcp.close()


def _cleanup(run_dir: str, instance: str) -> str:
    """Only this test's instance: other tests' dead instances are theirs to clean."""
    res = CliRunner().invoke(app, ["cleanup", "--orphans", "--run-dir", run_dir,
                                   "--instance", instance])
    assert res.exit_code == 0, res.output
    return " ".join(res.output.split())


@pytest.mark.kernel
@pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq needed")
def test_cleanup_removes_everything_of_a_killed_server_and_nothing_of_a_stopped_one(tmp_path):
    from floatip.dataplane.ovs import datapath_type
    lab = L.Lab(datapath_type())
    sfx = os.urandom(2).hex()
    int_br, ex_br = lab.bridge(f"op{sfx}i"), lab.bridge(f"op{sfx}e")
    hosts = []
    try:
        killed = Host(lab, f"{sfx}k", int_br, ex_br, tmp_path, 16)
        hosts.append(killed)
        stopped = Host(lab, f"{sfx}s", int_br, ex_br, tmp_path, 32)
        hosts.append(stopped)
        killed.proc.send_signal(signal.SIGKILL)
        killed.proc.wait()
        _stop(stopped.proc, signal.SIGTERM)
        assert instance_stopped(stopped.instance)
        wait_for(lambda: not instance_alive(killed.instance), 10, "the killed server gone")

        out = _cleanup(killed.run_dir, killed.instance)
        assert f"router {killed.router['id']} of instance {killed.instance} (dead)" in out, out
        assert killed.left() == [], out
        # the stopped server's things all stay, and serve
        assert stopped.look() is not None and stopped.things == stopped.look()
        assert stopped.router["id"] not in out and stopped.instance not in out, out
        assert instance_stopped(stopped.instance)

        # once it is not stopped but dead (its marker gone), its things go too
        _forget(stopped.instance)
        _cleanup(stopped.run_dir, stopped.instance)
        assert stopped.left() == []
    finally:
        for h in hosts:
            h.close()
            _forget(h.instance)
        with contextlib.suppress(Exception):
            for h in hosts:
                _cleanup(h.run_dir, h.instance)
        for h in hosts:
            shutil.rmtree(h.run_dir, ignore_errors=True)
        left = lab.cleanup()
    assert not left, left
