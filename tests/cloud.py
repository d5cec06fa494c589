"""A floatip server with its agent on per-test bridges, and an API topology built through
httpx: one external network (203.0.113.0/24, upstream host .1) and routers, each with its
own tenant subnet, VMs plugged as a hypervisor would and floating IPs. Names carry the
``fp`` prefix and a random suffix; everything is removed after the test."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import uuid

import httpx

from floatip import lab as L
from floatip.agent import binding
from floatip.core.layout import AgentConfig

UPSTREAM_IP = "203.0.113.1"


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """A process this test started: SIGTERM (its clean stop), SIGKILL after ``timeout``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for(fn, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def ok(r: httpx.Response, code: int = 200) -> dict:
    assert r.status_code == code, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    return r.json() if r.content else {}


def refused(r: httpx.Response, code: int, type_: str) -> str:
    """The Neutron error body's message, once its code and type are the expected ones."""
    assert r.status_code == code, r.text
    body = r.json()["NeutronError"]
    assert body["type"] == type_, body
    return body["message"]


def served_server(request, tmp_path_factory, tag: str):
    """For a module fixture: a real server (uvicorn, agent off, noauth) on a fresh SQLite
    file, or on a fresh PostgreSQL database when ``request.param`` says so."""
    from floatip.server import Server, free_port
    from pgserver import fresh_database
    ctx = None
    if getattr(request, "param", "sqlite") == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp(tag)}/floatip.db"
    else:
        ctx = fresh_database(request.getfixturevalue("pg_url"))
        url = ctx.__enter__()
    srv = Server(url, f"127.0.0.1:{free_port()}", agent=False).start()
    try:
        yield srv
    finally:
        srv.close()
        if ctx is not None:
            ctx.__exit__(None, None, None)


def served_api(request, tmp_path_factory, tag: str):
    """As ``served_server``, an httpx client of it."""
    for srv in served_server(request, tmp_path_factory, tag):
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            yield c


BIN = os.path.dirname(sys.executable)  # the virtualenv's ``openstack``


@contextlib.contextmanager
def served(path, keystone=None):
    """A real server (uvicorn, agent off) on a fresh SQLite file in ``path``: noauth, or
    behind ``keystone`` (conftest's), the network endpoint of its catalog."""
    from floatip.api.auth import AuthSettings
    from floatip.server import Server, free_port
    auth = AuthSettings("keystone", keystone.authtoken()) if keystone is not None else None
    srv = Server(f"sqlite:///{path}/floatip.db", f"127.0.0.1:{free_port()}", agent=False,
                 auth=auth).start()
    try:
        if keystone is not None:
            keystone.set_network_endpoint(srv.url)
        yield srv
    finally:
        srv.close()


class Osc:
    """The real ``openstack`` CLI as a new Keystone user with ``roles`` in a new project
    (names: ``tag``, ``who`` and a random suffix). ``osc(*args)``: the command's JSON
    (``parse=False``: its text); ``ok=False``: it must fail, its error output."""

    def __init__(self, keystone, tag: str, roles=("member",), who: str = ""):
        sfx = uuid.uuid4().hex[:6]
        self.user, self.project = f"{tag}-{who}u-{sfx}", f"{tag}-{who}p-{sfx}"
        password = secrets.token_urlsafe(12)
        keystone.user(self.user, password, self.project, list(roles))
        self.project_id = keystone.project(self.project)
        self.env = keystone.osc_env(self.user, password, self.project)

    def __call__(self, *args: str, parse: bool = True, ok: bool = True):
        r = subprocess.run([f"{BIN}/openstack", *args, *(["-f", "json"] if parse else [])],
                           env=self.env, capture_output=True, text=True, timeout=120)
        if not ok:
            assert r.returncode != 0, r.stdout
            return r.stderr
        assert r.returncode == 0, f"openstack {' '.join(args)}: {r.stderr}"
        return json.loads(r.stdout) if parse and r.stdout.strip() else r.stdout


def floatip_cli(url: str, monkeypatch):
    """``floatip`` (typer's runner, in this process) against ``url``, 250 columns wide:
    ``run(*args)`` answers its output; ``code``: the exit code it must end with (not 0: its
    error output)."""
    # imported here: the CLI's console is made at import (test_cli_output sets it up first)
    from typer.testing import CliRunner

    from floatip.cli import resources
    from floatip.cli.main import app
    monkeypatch.setattr(resources.out, "width", 250)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        r = runner.invoke(app, list(args), env={"FLOATIP_URL": url})
        assert r.exit_code == code, r.stdout + r.stderr + repr(r.exception)
        return r.stdout if code == 0 else r.stderr
    return run


class Cloud:
    def __init__(self, lab: L.Lab, tmp_path, interval: float = 30.0, db_url: str | None = None,
                 remote: bool = False, run_dir: str | None = None,
                 agent_process: bool = False, firewall: bool = False, metadata: bool = False):
        """``run_dir``: the agent serves DHCP, its files there (a directory others may
        traverse: dnsmasq rereads them as nobody); ``metadata``: and 169.254.169.254 (its
        socket there too)."""
        from floatip.server import Server, free_port
        self.sfx = uuid.uuid4().hex[:5]
        self.lab = lab
        self.int_br, self.ex_br = f"fp{self.sfx}i", f"fp{self.sfx}e"
        self.upstream = f"fp{self.sfx}up"
        self.config = AgentConfig(self.int_br, {"physnet1": self.ex_br})
        lab.bridge(self.int_br)
        lab.bridge(self.ex_br)
        lab.host(self.upstream, self.ex_br, f"fp{self.sfx}u0", f"{UPSTREAM_IP}/24")
        self.router_ids: set[str] = set()
        self.server = Server(db_url or f"sqlite:///{tmp_path}/floatip.db",
                             f"127.0.0.1:{free_port()}", self.config, prune_scope="known",
                             interval=interval, agent=not remote, agent_process=agent_process,
                             agent_options={"dhcp": run_dir is not None, "metadata": metadata,
                                            **({"run_dir": run_dir} if run_dir else {}),
                                            **({"firewall": True} if firewall else {})}).start()
        self.remote = None
        if remote:  # the agent of another host: the API's long poll feeds it
            from floatip.backends.kernel import KernelBackend
            from floatip.backends.remote import RemoteSource
            self.remote = KernelBackend(RemoteSource(self.server.url), self.config,
                                        interval=interval, prune_scope="known", dhcp=False,
                                        metadata=False)
            self.remote.start()
        self.api = httpx.Client(base_url=self.server.url, timeout=30)
        self.ext = self.post("network", {"name": f"fp-ext-{self.sfx}", "router:external": True,
                                         "provider:network_type": "flat",
                                         "provider:physical_network": "physnet1"})
        self.ext_sub = self.post("subnet", {
            "network_id": self.ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4,
            "gateway_ip": UPSTREAM_IP, "enable_dhcp": False,
            "allocation_pools": [{"start": "203.0.113.10", "end": "203.0.113.99"}]})
        self.vms = 0

    @property
    def agent(self):
        return self.remote.agent if self.remote is not None else self.server.agent

    def wait_for_agent(self, timeout: float = 30.0) -> bool:
        if self.remote is None:
            return self.server.wait_for_agent(timeout)
        from floatip.store.queries import generation
        with self.server.db.read() as s:
            want = generation(s)
        return self.remote.wait_synced(want, timeout)

    def post(self, kind: str, body: dict) -> dict:
        return ok(self.api.post(f"/v2.0/{kind}s", json={kind: body}), 201)[kind]

    def get(self, kind: str, rid: str) -> dict:
        return ok(self.api.get(f"/v2.0/{kind}s/{rid}"))[kind]

    def put(self, kind: str, rid: str, body: dict) -> httpx.Response:
        return self.api.put(f"/v2.0/{kind}s/{rid}", json={kind: body})

    def router(self, cidr: str) -> dict:
        """A router with a gateway and one tenant subnet ``cidr`` (gateway .1)."""
        net = self.post("network", {"name": f"fp-n-{self.sfx}"})
        sub = self.post("subnet", {"network_id": net["id"], "cidr": cidr, "ip_version": 4})
        r = self.post("router", {"name": f"fp-r-{self.sfx}",
                                 "external_gateway_info": {"network_id": self.ext["id"]}})
        self.router_ids.add(r["id"])
        ok(self.api.put(f"/v2.0/routers/{r['id']}/add_router_interface",
                        json={"subnet_id": sub["id"]}))
        r["net"], r["sub"] = net, sub
        return r

    def vm(self, router: dict) -> tuple[dict, str]:
        """A VM port on the router's subnet, plugged into a new namespace."""
        self.vms += 1
        ns = f"fp{self.sfx}v{self.vms}"
        L.sh("ip", "netns", "add", ns)
        self.lab.namespaces.append(ns)
        port = self.post("port", {"network_id": router["net"]["id"], "name": ns})
        sub = router["sub"]
        binding.plug(port, {sub["id"]: {"cidr": sub["cidr"], "gateway_ip": sub["gateway_ip"]}},
                     ns, self.int_br)
        return port, ns

    def fip(self, port: dict | None, address: str | None = None) -> dict:
        body = {"floating_network_id": self.ext["id"]}
        if port is not None:
            body["port_id"] = port["id"]
        if address:
            body["floating_ip_address"] = address
        return self.post("floatingip", body)

    def status(self, kind: str, rid: str, want: str, timeout: float = 20.0) -> dict:
        return wait_for(lambda: (d := self.get(kind, rid))["status"] == want and d,
                        timeout, f"{kind} {rid} {want}")

    def reachable(self, ip: str, timeout: float = 20.0) -> bool:
        return wait_for(lambda: L.ping(self.upstream, ip, timeout=0.3), timeout,
                        f"ping {ip} from upstream")

    def close(self) -> None:
        """Routers through the API, then a safety net through floatip, then the server."""
        from floatip.agent.reconciler import reconcile
        from floatip.cli.demo_api import remove_all
        from floatip.client import Client
        from floatip.core.model import State
        from floatip.dataplane.kernel import Dataplane
        try:
            with Client(self.server.url) as c:
                self.router_ids |= {r["id"] for r in c.list("router")}
                remove_all(c)
            self.wait_for_agent()
        finally:
            self.api.close()
            if self.remote is not None:
                self.remote.stop()
            self.server.close()
            dp = Dataplane(self.config.nat_driver)
            try:
                reconcile(dp, State(), self.config, remove=set(self.router_ids))
            finally:
                dp.close()
