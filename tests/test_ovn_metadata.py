"""On OVN a VM reads its metadata (issue 23): ``floatip ovn-metadata`` beside each chassis'
ovn-controller makes a namespace per network with VMs there, plugged into br-int as the
network's localport, with a proxy on 169.254.169.254:80. A VM on the chassis that is not the
gateway gets its address from OVN's DHCP (with the metadata route) and reads its floating
IP, instance id and key; cloud-init's OpenStack and EC2 readers find them; a VM that forges
another's address reads nothing of it; a VM on a second network reads its own; the
namespace goes with the last VM of its network and comes back when removed by hand."""
from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid

import pytest

from floatip import lab as L
from floatip.backends.ovn.metadata import OvnMetadataAgent, veth_names
from floatip.backends.remote import RemoteSource
from floatip.client import Client
from cloud import stop_process
from test_e2e_backends import ovn_deployment, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.ovn,
              pytest.mark.skipif(shutil.which("dhclient") is None,
                                 reason="isc-dhcp-client needed"),
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*influxdb:DeprecationWarning")]
MD = "169.254.169.254"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFloatipTestKeyFloatipTestKeyFloatipTest im@test"
CRAWL = os.path.join(os.path.dirname(__file__), "cloudinit_crawl.py")


@pytest.fixture
def ovn(tmp_path):
    yield from ovn_deployment(tmp_path, firewall=True, prefix="im")


def namespaces() -> set[str]:
    return set(L.sh("ip", "netns", "list").stdout.split())


def test_a_vm_on_a_compute_chassis_reads_its_metadata_through_ovn(ovn):
    import openstack
    d = ovn
    lab, _ = d.extra
    conn = openstack.connect(auth_type="none", auth={"endpoint": d.url}, region_name="")
    net = conn.network
    ext = net.create_network(name="ext", is_router_external=True,
                             provider_network_type="flat", provider_physical_network="physnet1")
    net.create_subnet(network_id=ext.id, cidr="203.0.113.0/24", ip_version=4,
                      gateway_ip="203.0.113.1", is_dhcp_enabled=False)
    n1 = net.create_network(name="n1")
    s1 = net.create_subnet(network_id=n1.id, cidr="198.51.100.0/24", ip_version=4)
    n2 = net.create_network(name="n2")
    net.create_subnet(network_id=n2.id, cidr="192.0.2.0/24", ip_version=4)
    router = net.create_router(name="r", external_gateway_info={"network_id": ext.id})
    net.add_interface_to_router(router, subnet_id=s1.id)
    # the floating IP and the SSH key: what a user checks
    instance = str(uuid.uuid4())
    # a new group has Neutron's egress rules (noauth callers have no default group)
    out = net.create_security_group(name="im-out")
    api = Client(d.url)
    vm1 = api.create("port", network_id=n1.id, name="vm1", device_id=instance,
                     security_groups=[out.id],
                     **{"floatip:user_data": "#cloud-config\nhostname: vm1\n",
                        "floatip:public_keys": {"im-key": KEY}})
    vm2 = net.create_port(network_id=n1.id, name="vm2", security_group_ids=[out.id])
    vm3 = net.create_port(network_id=n2.id, name="vm3", security_group_ids=[out.id])
    fip = net.create_ip(floating_network_id=ext.id, port_id=vm1["id"])
    compute, gateway = lab.chassis[-1], lab.chassis[0]
    agents = [OvnMetadataAgent(RemoteSource(d.url), lab.sb, os.path.join(lab.dir, "meta"),
                               ovs=ch.db, ovs_netns=ch.ns, chassis=ch.name,
                               ns_prefix=f"{ch.ns}-meta-", interval=5).start()
              for ch in (compute, gateway)]
    meta_ns = {n: f"{compute.ns}-meta-{n}" for n in (n1.id, n2.id)}
    try:
        ns1 = lab.vm("vm1", -1, vm1["id"], vm1["mac_address"])
        ns2 = lab.vm("vm2", -1, vm2.id, vm2.mac_address)
        ns3 = lab.vm("vm3", -1, vm3.id, vm3.mac_address)
        wait_for(lambda: all(net.get_port(p).status == "ACTIVE"
                             for p in (vm1["id"], vm2.id, vm3.id)), what="VM ports ACTIVE")
        assert d.wait_synced()
        for ns, port in ((ns1, vm1), (ns2, vm2), (ns3, vm3)):
            got = lab.dhcp(ns)
            ip = port["fixed_ips"][0]["ip_address"]
            assert got is not None and got["new_ip_address"] == ip, lab.dhcp_error
        # one namespace per network with VMs on the compute chassis, none on the gateway
        wait_for(lambda: set(meta_ns.values()) <= namespaces(), what="metadata namespaces")
        assert not [n for n in namespaces() if n.startswith(f"{gateway.ns}-meta-")]

        def get(ns, path, src=None):
            return L.http_get(ns, MD, path, src=src)
        try:
            wait_for(lambda: get(ns1, "/latest/meta-data/public-ipv4")[0] == 200,
                     what="vm1's metadata")
        except AssertionError:
            m = meta_ns[n1.id]
            raise AssertionError(str((
                get(ns1, "/latest/meta-data/public-ipv4"), agents[0].last_error,
                L.sh("ip", "netns", "exec", ns1, "ip", "route").stdout,
                L.sh("ip", "netns", "exec", ns1, "ip", "neigh").stdout,
                L.sh("ip", "netns", "exec", m, "ip", "addr").stdout,
                L.sh("ip", "netns", "exec", m, "ss", "-ltn").stdout,
                compute.vsctl("show").stdout,
                L.sh("ovn-sbctl", f"--db={lab.sb}", "show").stdout,
                L.sh("ovn-nbctl", f"--db={lab.nb}", "show").stdout,
                ))) from None
        assert get(ns1, "/latest/meta-data/public-ipv4") == (200, fip.floating_ip_address)
        assert get(ns1, "/latest/meta-data/instance-id") == (200, instance)
        assert get(ns2, "/latest/meta-data/instance-id") == (200, vm2.device_id or vm2.id)
        assert get(ns2, "/latest/meta-data/public-ipv4")[0] == 404
        # the second network's VM reads its own (its proxy may come a pass after vm1's)
        wait_for(lambda: get(ns3, "/latest/meta-data/local-ipv4")[0] == 200,
                 what="vm3's metadata")
        assert get(ns3, "/latest/meta-data/local-ipv4") == (200, vm3.fixed_ips[0]["ip_address"])

        # vm2 forges vm1's address: port security drops it, vm1's data stays vm1's
        ip1 = vm1["fixed_ips"][0]["ip_address"]
        L.sh("ip", "netns", "exec", ns2, "ip", "addr", "add", f"{ip1}/32", "dev", "eth0")
        status, body = L.http_get(ns2, MD, "/latest/meta-data/instance-id", src=ip1,
                                  timeout=2)
        assert status == 0 and instance not in body, (status, body)

        # cloud-init's own readers
        r = L.sh("ip", "netns", "exec", ns1, "/usr/bin/python3", CRAWL, vm1["mac_address"],
                 check=False)
        assert r.returncode == 0, r.stderr[-2000:]
        got = json.loads(r.stdout)
        assert got["openstack"]["metadata"]["instance-id"] == instance
        assert got["openstack"]["metadata"]["public_keys"] == {"im-key": KEY}
        assert got["ec2"]["instance-id"] == instance
        assert got["ec2"]["public-ipv4"] == fip.floating_ip_address
        assert got["ec2"]["public-keys"] in ({"im-key": [KEY]}, {"im-key": KEY})

        # drift: the namespace's port on br-int deleted by hand comes back
        outer, _ = veth_names(n1.id)
        compute.vsctl("del-port", "br-int", outer)
        wait_for(lambda: compute.vsctl("--if-exists", "get", "Interface", outer, "name",
                                       check=False).stdout.strip() != "",
                 timeout=30, what="the metadata port again")
        wait_for(lambda: get(ns1, "/latest/meta-data/instance-id") == (200, instance),
                 what="vm1's metadata after the repair")

        # the last VM of n2 leaves the chassis: its namespace goes
        lab.unplug(ns3)
        wait_for(lambda: meta_ns[n2.id] not in namespaces(), timeout=30,
                 what="n2's metadata namespace removed")
        assert meta_ns[n1.id] in namespaces()
    finally:
        for a in agents:
            a.stop()
    assert not [n for n in namespaces() if n.startswith(f"{lab.tag}-") and "-meta-" in n]


class FakeNova(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):  # noqa: N802
        FakeNova.seen.append(self.headers)  # case-insensitive
        body = f"nova says {self.headers['X-Instance-ID']}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_a_restarted_agent_adopts_and_cleans_reconnects_and_forwards_to_nova(ovn):
    """The agent stops (its namespaces stay: VMs keep their path); meanwhile the network's
    last VM goes: the next agent removes that namespace (only its own, marked on br-int).
    The Southbound restarts under it: a new VM still gets its namespace. With Nova's URL the
    request goes to Nova signed, as Neutron's metadata agent signs it."""
    d = ovn
    lab, _ = d.extra
    api = Client(d.url)
    out = api.create("security_group", name="im-out")
    ch = lab.chassis[-1]
    nova = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeNova)
    threading.Thread(target=nova.serve_forever, daemon=True).start()

    def network(name, cidr):
        n = api.create("network", name=name)
        api.create("subnet", network_id=n["id"], cidr=cidr, ip_version=4)
        return n

    def vm(name, n):
        p = api.create("port", network_id=n["id"], name=name, device_id=str(uuid.uuid4()),
                       security_groups=[out["id"]])
        ns = lab.vm(name, -1, p["id"], p["mac_address"])
        wait_for(lambda: api.show("port", p["id"])["status"] == "ACTIVE", what=f"{name} ACTIVE")
        assert lab.dhcp(ns) is not None, lab.dhcp_error
        return p, ns

    def agent(**kw):
        return OvnMetadataAgent(RemoteSource(d.url), lab.sb, os.path.join(lab.dir, "meta"),
                                ovs=ch.db, ovs_netns=ch.ns, chassis=ch.name,
                                ns_prefix=f"{ch.ns}-meta-", interval=5, **kw).start()
    n1, n2 = network("n1", "198.51.100.0/24"), network("n2", "192.0.2.0/24")
    a = agent()
    b = None
    try:
        p1, ns1 = vm("vm1", n1)
        wait_for(lambda: L.http_get(ns1, MD, "/latest/meta-data/instance-id")
                 == (200, p1["device_id"]), what="vm1's metadata")
        a.stop(remove=False)
        assert f"{ch.ns}-meta-{n1['id']}" in namespaces()   # kept for the restart
        lab.unplug(ns1)
        api.delete("port", p1["id"])
        secret = "im-shared-secret"
        b = agent(nova_url=f"http://127.0.0.1:{nova.server_address[1]}", secret=secret)
        wait_for(lambda: f"{ch.ns}-meta-{n1['id']}" not in namespaces(), timeout=30,
                 what="the stale namespace removed by the next agent")
        lab.restart_db("sb")
        p2, ns2 = vm("vm2", n2)
        wait_for(lambda: L.http_get(ns2, MD, "/latest/meta-data/instance-id")[0] == 200,
                 timeout=30, what="vm2's metadata after the Southbound restart")
        status, body = L.http_get(ns2, MD, "/latest/meta-data/instance-id")
        assert (status, body) == (200, f"nova says {p2['device_id']}")
        h = FakeNova.seen[-1]
        assert h["X-Instance-ID"] == p2["device_id"]
        assert h["X-Forwarded-For"] == p2["fixed_ips"][0]["ip_address"]
        assert h["X-Instance-ID-Signature"] == hmac.new(
            secret.encode(), p2["device_id"].encode(), hashlib.sha256).hexdigest()
    finally:
        nova.shutdown()
        a.stop()
        if b is not None:
            b.stop()
    assert not [n for n in namespaces() if n.startswith(f"{ch.ns}-meta-")]


def test_floatip_ovn_metadata_as_a_process(ovn):
    """``floatip ovn-metadata`` on the command line (the lab's chassis OVS in its namespace):
    a VM reads its metadata; SIGTERM leaves the namespace (VMs keep their path while it
    restarts); a namespace prefix that is no plain name is refused."""
    d = ovn
    lab, _ = d.extra
    ch = lab.chassis[-1]
    prefix = f"{ch.ns}-cli-"
    exe = f"{sys.prefix}/bin/floatip"
    bad = subprocess.run([exe, "ovn-metadata", "--server", d.url, "--ovn-sb", lab.sb,
                          "--namespace-prefix", "../x"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--namespace-prefix" in bad.stderr
    api = Client(d.url)
    out = api.create("security_group", name="im-out")
    n = api.create("network", name="n")
    api.create("subnet", network_id=n["id"], cidr="198.51.100.0/24", ip_version=4)
    p = api.create("port", network_id=n["id"], name="vm", device_id=str(uuid.uuid4()),
                   security_groups=[out["id"]])
    log = open(os.path.join(lab.dir, "ovn-metadata.log"), "w")
    proc = subprocess.Popen([exe, "ovn-metadata", "--server", d.url, "--ovn-sb", lab.sb,
                             "--ovs-db", ch.db, "--ovs-netns", ch.ns, "--chassis", ch.name,
                             "--namespace-prefix", prefix, "--run-dir",
                             os.path.join(lab.dir, "cli"), "--interval", "5"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        ns = lab.vm("vm", -1, p["id"], p["mac_address"])
        wait_for(lambda: api.show("port", p["id"])["status"] == "ACTIVE", what="VM ACTIVE")
        assert lab.dhcp(ns) is not None, lab.dhcp_error
        wait_for(lambda: proc.poll() is not None or L.http_get(
            ns, MD, "/latest/meta-data/instance-id") == (200, p["device_id"]),
            timeout=30, what="the VM's metadata")
        assert proc.poll() is None, open(log.name).read()[-2000:]
    finally:
        stop_process(proc)
        log.close()
        kept = [x for x in namespaces() if x.startswith(prefix)]
        for x in kept:   # made by the process this test started
            L.sh("ip", "netns", "delete", x, check=False)
    assert kept == [prefix + n["id"]]


@pytest.fixture
def ovn_secret(tmp_path):
    from floatip.api.auth import AuthSettings
    yield from ovn_deployment(tmp_path, prefix="is",
                              auth=AuthSettings("noauth", {}, "is-right-secret"))


def test_ovn_metadata_needs_the_agents_shared_secret(ovn_secret, tmp_path):
    """A server with ``[agent] shared_secret``: ``floatip ovn-metadata`` with a wrong secret
    or none in its ``--config`` reads nothing (401), says so in its log and makes no
    namespace (the VM gets no metadata); with the right one the VM reads its own."""
    d = ovn_secret
    lab, _ = d.extra
    ch = lab.chassis[-1]
    exe = f"{sys.prefix}/bin/floatip"
    api = Client(d.url)
    out = api.create("security_group", name="is-out")
    n = api.create("network", name="n")
    api.create("subnet", network_id=n["id"], cidr="198.51.100.0/24", ip_version=4)
    p = api.create("port", network_id=n["id"], name="vm", device_id=str(uuid.uuid4()),
                   security_groups=[out["id"]])
    ns = lab.vm("vm", -1, p["id"], p["mac_address"])
    wait_for(lambda: api.show("port", p["id"])["status"] == "ACTIVE", what="VM ACTIVE")
    assert lab.dhcp(ns) is not None, lab.dhcp_error
    env = {k: v for k, v in os.environ.items() if k != "FLOATIP_AGENT_SECRET"}
    procs = {}

    def start(name, secret):
        conf = tmp_path / f"{name}.conf"
        conf.write_text(f"[agent]\nshared_secret = {secret}\n" if secret else "")
        log = open(tmp_path / f"{name}.log", "w")
        procs[name] = (subprocess.Popen(
            [exe, "ovn-metadata", "--server", d.url, "--ovn-sb", lab.sb, "--config", str(conf),
             "--ovs-db", ch.db, "--ovs-netns", ch.ns, "--chassis", ch.name,
             "--namespace-prefix", f"{ch.ns}-{name}-", "--run-dir", str(tmp_path / name),
             "--interval", "5"], stdout=log, stderr=subprocess.STDOUT, env=env), log)

    def stop(name):
        proc, log = procs.pop(name)
        stop_process(proc)
        log.close()
        for x in namespaces():   # made by the process this test started
            if x.startswith(f"{ch.ns}-{name}-"):
                L.sh("ip", "netns", "delete", x, check=False)

    def logged(name):
        return (tmp_path / f"{name}.log").read_text()

    try:
        start("wrong", "is-wrong-secret")
        start("none", "")
        for name in ("wrong", "none"):
            wait_for(lambda: "shared secret" in logged(name), timeout=30,
                     what=f"the {name}-secret agent's refusal in its log")
            assert procs[name][0].poll() is None, logged(name)[-2000:]
        refused = logged("wrong")
        assert "401" in refused or "HTTPUnauthorized" in refused or "uthenticate" in refused
        assert not [x for x in namespaces() if x.startswith(f"{ch.ns}-wrong-")
                    or x.startswith(f"{ch.ns}-none-")]
        status, _ = L.http_get(ns, MD, "/latest/meta-data/instance-id")
        assert status != 200
        for name in ("wrong", "none"):
            stop(name)
        start("right", "is-right-secret")
        wait_for(lambda: procs["right"][0].poll() is not None or L.http_get(
            ns, MD, "/latest/meta-data/instance-id") == (200, p["device_id"]),
            timeout=30, what="the VM's metadata through the right-secret agent")
        assert procs["right"][0].poll() is None, logged("right")[-2000:]
        assert "shared secret" not in logged("right")
    finally:
        for name in list(procs):
            stop(name)
