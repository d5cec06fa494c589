"""A VM that boots configures itself: its address from dnsmasq (ISC dhclient), the outside
through its floating IP, and its metadata through the router's 169.254.169.254 redirect,
read with curl and with cloud-init's own readers."""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import shutil
import threading
import uuid

import pytest

from floatip import lab as L
from floatip.agent.dhcp import DhcpAgent
from floatip.agent.reconciler import reconcile
from floatip.core.document import load
from floatip.core.layout import AgentConfig
from floatip.core.model import Port, State
from floatip.dataplane.kernel import Dataplane
from floatip.metadata.agent import MetadataAgent
from floatip.metadata.service import sign

from dhcpvm import Vm
from topo import TEST_INSTANCE

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(any(shutil.which(t) is None for t in ("dnsmasq", "dhclient", "curl")),
                                 reason="dnsmasq-base, isc-dhcp-client and curl needed")]
FIP, UPSTREAM = "203.0.113.84", "203.0.113.1"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFloatipTestKeyFloatipTestKeyFloatipTest fd@test"
CRAWL = os.path.join(os.path.dirname(__file__), "cloudinit_crawl.py")


class Cloud:
    """Router + floating IP (floatip's dataplane), DHCP and metadata agents, on the seed's
    topology with documentation ranges and this test's own names."""

    def __init__(self, lab, workdir: str, nova_url: str | None = None, secret: str = ""):
        s = self.sid = uuid.uuid4().hex[:6]
        self.lab, self.workdir = lab, workdir
        self.int_br, self.ex_br = lab.bridge(f"fd-int-{s}"), lab.bridge(f"fd-ex-{s}")
        self.config = AgentConfig(self.int_br, {"physnet1": self.ex_br}, "nftables")
        lab.host(f"fd-up-{s}", self.ex_br, f"fd-upv-{s}", f"{UPSTREAM}/24", arp_accept=True)
        self.upstream = f"fd-up-{s}"
        self.instance = str(uuid.uuid4())
        doc = {
            "networks": [{"name": "ext", "router:external": True},
                         {"name": "ten", "provider:network_type": "vlan",
                          "provider:segmentation_id": 3}],
            "subnets": [{"name": "exts", "network": "ext", "cidr": "203.0.113.0/24",
                         "gateway_ip": UPSTREAM},
                        {"name": "tens", "network": "ten", "cidr": "198.51.100.0/24",
                         "gateway_ip": "198.51.100.1"}],
            "ports": [{"name": "vm4", "network": "ten", "fixed_ip": "198.51.100.84",
                       "device_id": self.instance},
                      {"name": "vm5", "network": "ten", "fixed_ip": "198.51.100.85"},
                      {"name": "dhcp", "network": "ten", "fixed_ip": "198.51.100.2",
                       "device_owner": "network:dhcp"}],
            "routers": [{"name": "r", "external_gateway_info": {"network": "ext",
                                                                "ip_address": "203.0.113.11"},
                         "interfaces": ["tens"]}],
            "floatingips": [{"floating_ip_address": FIP, "port": "vm4"}]}
        # ids unique to this test (without them, a file's ids derive from its names)
        state = load({k: [dict(x, id=str(uuid.uuid4())) for x in v] for k, v in doc.items()})
        subs = {i: dataclasses.replace(x, enable_dhcp=not state.networks[x.network_id].external)
                for i, x in state.subnets.items()}
        ports = {i: dataclasses.replace(p, project_id="fd-project", **(
            {"user_data": "#cloud-config\nhostname: vm4\n", "public_keys": (("fd-key", KEY),)}
            if p.name == "vm4" else {})) for i, p in state.ports.items()}
        self.state = dataclasses.replace(state, subnets=subs, ports=ports)
        self.router_id = next(iter(self.state.routers))
        self.dp = Dataplane("nftables", instance=TEST_INSTANCE)
        self.dhcp = DhcpAgent(self.int_br, os.path.join(workdir, "dhcp"), prune_scope="known",
                              instance=TEST_INSTANCE)
        self.metadata = MetadataAgent(os.path.join(workdir, "metadata.sock"), nova_url, secret)
        self.vms: list[Vm] = []

    def port(self, name: str) -> Port:
        return next(p for p in self.state.ports.values() if p.name == name)

    def sync(self) -> None:
        report = reconcile(self.dp, self.state, self.config)
        assert report.ok, report.errors
        assert not self.dhcp.sync(self.state)
        assert not self.metadata.sync(self.state, {self.router_id})

    def vm(self, name: str, mac: str | None = None) -> Vm:
        mac = mac or self.port(name).mac_address
        vm = Vm(f"fd-{name}-{self.sid}", self.int_br, mac, self.workdir, tag=3)
        self.vms.append(vm)
        return vm

    def close(self) -> None:
        for vm in self.vms:
            vm.close()
        try:
            self.metadata.close()
            self.dhcp.sync(State())
            reconcile(self.dp, State(), self.config, remove={self.router_id})
        finally:
            self.dhcp.close()
            self.dp.close()


@pytest.fixture
def workdir():
    d = f"/run/fd-test-{uuid.uuid4().hex[:6]}"
    os.makedirs(d, mode=0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def cloud(lab, workdir):
    c = Cloud(lab, workdir)
    yield c
    c.close()


def curl(vm: Vm, path: str, *headers: str) -> tuple[int, str]:
    argv = ["curl", "-s", "--noproxy", "*", "-m", "5", "-w", "\n%{http_code}"]
    for h in headers:
        argv += ["-H", h]
    r = vm.run(*argv, f"http://169.254.169.254{path}", check=False)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def test_vm_boots_with_dhcp_reaches_out_by_its_fip_and_reads_its_metadata(cloud):
    cloud.sync()
    vm4, vm5 = cloud.vm("vm4"), cloud.vm("vm5")
    assert vm4.dhclient()["new_ip_address"] == "198.51.100.84"
    assert vm5.dhclient()["new_ip_address"] == "198.51.100.85"
    # the outside sees vm4 by its floating IP, vm5 by the router's SNAT address
    srv = cloud.lab.serve(cloud.upstream, UPSTREAM, 8080)
    assert L.tcp_source(vm4.ns, UPSTREAM, 8080) == FIP
    assert L.tcp_source(vm5.ns, UPSTREAM, 8080) == "203.0.113.11"
    assert srv.peers

    assert curl(vm4, "/latest/meta-data/public-ipv4") == (200, FIP)
    assert curl(vm4, "/latest/meta-data/instance-id") == (200, cloud.instance)
    assert curl(vm4, "/latest/meta-data/local-ipv4") == (200, "198.51.100.84")
    assert curl(vm4, "/latest/meta-data/hostname") == (200, "vm4")
    assert curl(vm4, "/latest/meta-data/public-keys/") == (200, "0=fd-key")
    assert curl(vm4, "/latest/meta-data/public-keys/0/openssh-key") == (200, KEY)
    assert curl(vm4, "/latest/user-data") == (200, "#cloud-config\nhostname: vm4\n")
    code, body = curl(vm4, "/openstack/latest/meta_data.json")
    md = json.loads(body)
    assert code == 200 and md["uuid"] == cloud.instance and md["name"] == "vm4"
    assert md["public_keys"] == {"fd-key": KEY}
    nd = json.loads(curl(vm4, "/openstack/latest/network_data.json")[1])
    assert nd["networks"][0]["ip_address"] == "198.51.100.84"
    # vm5 has no floating IP, no keys, no user data
    assert curl(vm5, "/latest/meta-data/public-ipv4")[0] == 404
    assert curl(vm5, "/latest/meta-data/local-ipv4") == (200, "198.51.100.85")
    assert curl(vm5, "/latest/user-data")[0] == 404


def test_a_vm_reads_only_its_own_metadata(cloud):
    cloud.sync()
    vm5 = cloud.vm("vm5")
    vm5.dhclient()
    port4 = cloud.port("vm4")
    # spoofed identity headers are replaced by the proxy: vm5 still gets vm5's data
    for h in ("X-Forwarded-For: 198.51.100.84", f"X-Neutron-Router-ID: {uuid.uuid4()}",
              f"X-Instance-ID: {cloud.instance}"):
        assert curl(vm5, "/latest/meta-data/local-ipv4", h) == (200, "198.51.100.85")
        assert curl(vm5, "/latest/meta-data/instance-id", h) == (200, cloud.port("vm5").id)
    # an address that is no port's (a host set up by hand) gets nothing
    stranger = cloud.vm("x", mac="fa:16:3e:00:00:99")
    stranger.run("ip", "addr", "add", "198.51.100.99/24", "dev", "eth0")
    stranger.run("ip", "route", "add", "default", "via", "198.51.100.1")
    assert curl(stranger, "/latest/meta-data/instance-id")[0] == 404
    assert curl(stranger, "/latest/meta-data/instance-id", "X-Forwarded-For: 198.51.100.84")[0] \
        == 404
    assert curl(stranger, "/openstack/latest/meta_data.json")[0] == 404
    assert port4.id  # vm4 is in the state, yet nobody else reads its data


def test_cloud_init_crawls_openstack_and_ec2_metadata(cloud):
    cloud.sync()
    vm4 = cloud.vm("vm4")
    vm4.dhclient()
    r = vm4.run("/usr/bin/python3", CRAWL, cloud.port("vm4").mac_address,
                check=False, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout)
    osmd = got["openstack"]["metadata"]
    assert osmd["instance-id"] == cloud.instance       # cloud-init's key, from "uuid"
    assert osmd["local-hostname"] == "vm4"
    assert osmd["public_keys"] == {"fd-key": KEY}
    assert got["openstack"]["userdata"].startswith("#cloud-config")
    cfg = got["openstack"]["network_config"]
    assert cfg["config"][0]["name"] == "eth0"
    assert cfg["config"][0]["subnets"][0]["address"] == "198.51.100.84"
    ec2 = got["ec2"]
    assert ec2["instance-id"] == cloud.instance
    assert ec2["public-ipv4"] == FIP
    assert ec2["public-keys"] == {"fd-key": [KEY]} or ec2["public-keys"] == {"fd-key": KEY}
    assert got["ec2_userdata"].startswith("#cloud-config")


class FakeNova(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):  # noqa: N802
        FakeNova.seen.append((self.path, self.headers))  # case-insensitive
        body = f"nova says {self.headers['X-Instance-ID']}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_with_nova_configured_requests_are_forwarded_signed(lab, workdir):
    nova = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeNova)
    threading.Thread(target=nova.serve_forever, daemon=True).start()
    secret = "fd-shared-secret"
    c = Cloud(lab, workdir, nova_url=f"http://127.0.0.1:{nova.server_address[1]}", secret=secret)
    try:
        c.sync()
        vm4 = c.vm("vm4")
        vm4.dhclient()
        assert curl(vm4, "/openstack/latest/meta_data.json", "X-Instance-ID: evil") == \
            (200, f"nova says {c.instance}")
        path, headers = FakeNova.seen[-1]
        assert path == "/openstack/latest/meta_data.json"
        assert headers["X-Forwarded-For"] == "198.51.100.84"
        assert headers["X-Tenant-ID"] == "fd-project"
        assert headers["X-Instance-ID-Signature"] == sign(c.instance, secret)
        import hmac
        assert sign(c.instance, secret) == hmac.new(secret.encode(), c.instance.encode(),
                                                    hashlib.sha256).hexdigest()
    finally:
        c.close()
        nova.shutdown()


def test_a_router_made_anew_gets_its_proxy_back(cloud):
    cloud.sync()
    vm4 = cloud.vm("vm4")
    vm4.dhclient()
    assert curl(vm4, "/latest/meta-data/local-ipv4") == (200, "198.51.100.84")
    # the router's namespace goes and comes back (a new namespace under the same name)
    reconcile(cloud.dp, State(), cloud.config, remove={cloud.router_id})
    assert not cloud.metadata.sync(cloud.state, {cloud.router_id})
    assert curl(vm4, "/latest/meta-data/local-ipv4")[0] != 200
    cloud.sync()
    assert curl(vm4, "/latest/meta-data/local-ipv4") == (200, "198.51.100.84")
