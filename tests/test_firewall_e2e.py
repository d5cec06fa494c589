"""Security groups end to end on the kernel backend: the API (Neutron's resources), the
agent (``firewall=True``, and ``floatip serve``'s default) and a VM plugged as a hypervisor
does, reached from an outside namespace through its floating IP; a VM that forges another's
address to read its metadata."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from floatip import lab as L
from floatip.agent import binding
from floatip.agent.reconciler import reconcile
from floatip.cli.demo_api import remove_all
from floatip.client import Client
from floatip.core.layout import AgentConfig
from floatip.core.model import State
from floatip.dataplane.kernel import Dataplane
from floatip.server import free_port

from cloud import Cloud, UPSTREAM_IP, ok, stop_process
from fwprobe import send_arp, wait_for

pytestmark = pytest.mark.kernel


def reaches(ns: str, ip: str, port: int, timeout: float = 1.0) -> bool:
    return L.tcp_source(ns, ip, port, timeout) is not None


def vm(cloud: Cloud, router: dict, project: str, extra: dict | None = None,
       tag: str = "v") -> tuple[dict, str]:
    """A VM port of ``project`` (it gets the project's default group), plugged."""
    cloud.vms += 1
    ns = f"fp{cloud.sfx}{tag}{cloud.vms}"
    L.sh("ip", "netns", "add", ns)
    cloud.lab.namespaces.append(ns)
    port = cloud.post("port", {"network_id": router["net"]["id"], "name": ns,
                               "project_id": project, **(extra or {})})
    sub = router["sub"]
    binding.plug(port, {sub["id"]: {"cidr": sub["cidr"], "gateway_ip": sub["gateway_ip"]}},
                 ns, cloud.int_br)
    return port, ns


def test_default_group_then_a_tcp_22_rule_through_the_api(lab, tmp_path):
    cloud = Cloud(lab, tmp_path, firewall=True)
    try:
        r = cloud.router("198.51.100.0/24")
        port, ns = vm(cloud, r, "fwproj")
        assert port["port_security_enabled"] is True and len(port["security_groups"]) == 1
        sg = port["security_groups"][0]
        fip = cloud.fip(port)
        cloud.status("floatingip", fip["id"], "ACTIVE")
        cloud.wait_for_agent()
        addr = fip["floating_ip_address"]
        lab.serve(ns, port=22)
        lab.serve(ns, port=8080)
        lab.serve(cloud.upstream, port=8081)
        # its own outbound works (and the replies come back) ...
        assert wait_for(lambda: L.tcp_source(ns, UPSTREAM_IP, 8081, 1.0) == addr, 15)
        # ... but no new inbound connection through the floating IP
        assert not reaches(cloud.upstream, addr, 22) and not reaches(cloud.upstream, addr, 8080)
        t0 = time.monotonic()
        rule = ok(cloud.api.post("/v2.0/security-group-rules", json={"security_group_rule": {
            "security_group_id": sg, "direction": "ingress", "protocol": "tcp",
            "port_range_min": 22, "port_range_max": 22}}), 201)["security_group_rule"]
        assert wait_for(lambda: reaches(cloud.upstream, addr, 22, 0.3), 15)
        print(f"\nrule create -> port 22 answers through the FIP: "
              f"{(time.monotonic() - t0) * 1000:.0f} ms")
        assert not reaches(cloud.upstream, addr, 8080)
        conn = L.TcpClient(cloud.upstream, addr, 22)
        assert conn.echo("open")
        ok(cloud.api.delete(f"/v2.0/security-group-rules/{rule['id']}"), 204)
        conn.sock.settimeout(0.5)
        assert wait_for(lambda: not conn.echo("after"), 15), "the connection survived"
        conn.close()
        assert not reaches(cloud.upstream, addr, 22)
    finally:
        cloud.close()


def forged_get(ns: str, src: str, path: str, timeout: float = 1.0) -> tuple[int, str]:
    """GET from 169.254.169.254 in ``ns`` with the source address ``src`` (another VM's,
    put on the attacker's own interface): (status, body), (0, why) when nothing answers."""
    return L.http_get(ns, "169.254.169.254", path, timeout=timeout, src=src)


def test_a_vm_cannot_read_another_vms_metadata_by_forging_its_address(lab, tmp_path):
    """The metadata service knows a VM by its source address: an attacker on the same network
    takes the victim's address (on its own interface, and one ARP saying so) and asks for
    the victim's user data. Blocked with port security; shown to work once the attacker's
    port is unfiltered (the attack is real, as on a floatip without the firewall)."""
    run_dir = f"/run/icl-{uuid.uuid4().hex[:6]}"
    os.makedirs(run_dir, mode=0o755)
    cloud = Cloud(lab, tmp_path, firewall=True, metadata=True, run_dir=run_dir)
    try:
        r = cloud.router("198.51.100.0/24")
        secret = f"#cloud-config\npassword: icl-{uuid.uuid4().hex[:8]}\n"
        victim, vns = vm(cloud, r, "iclvictim", {"floatip:user_data": secret}, tag="iclv")
        attacker, ans = vm(cloud, r, "iclattacker", tag="icla")
        vip, aip = victim["fixed_ips"][0]["ip_address"], attacker["fixed_ips"][0]["ip_address"]
        cloud.wait_for_agent()
        def reads(ns: str, path: str) -> tuple[int, str]:
            return L.http_get(ns, "169.254.169.254", path, timeout=1.0)
        # both read their own metadata through the firewall
        assert wait_for(lambda: reads(vns, "/latest/user-data") == (200, secret), 20)
        assert wait_for(lambda: reads(ans, "/latest/meta-data/local-ipv4") == (200, aip), 20)
        L.sh("ip", "netns", "exec", ans, "ip", "addr", "add", f"{vip}/32", "dev", "eth0")

        def attack() -> bool:
            send_arp(ans, "eth0", attacker["mac_address"], vip, r["sub"]["gateway_ip"], count=1)
            return forged_get(ans, vip, "/latest/user-data") == (200, secret)
        assert not wait_for(attack, 6), "the attacker read the victim's user data"
        # the victim still reads its own (its neighbour entry was not taken over)
        assert wait_for(lambda: reads(vns, "/latest/user-data") == (200, secret), 20)

        # the same attack from an unfiltered port works: what port security prevents
        ok(cloud.put("port", attacker["id"], {"security_groups": [],
                                              "port_security_enabled": False}))
        cloud.wait_for_agent()
        assert wait_for(attack, 20), "the attack should work without port security"
    finally:
        cloud.close()
        shutil.rmtree(run_dir, ignore_errors=True)


def test_floatip_serve_filters_vm_ports_by_default(lab, tmp_path):
    """``floatip serve`` as a user starts it (no firewall flag): a VM port behind a floating
    IP answers no new inbound connection, its own outbound works; the same VM with port
    security off answers (what the firewall held back)."""
    sfx = uuid.uuid4().hex[:5]
    int_br, ex_br, up, ns = f"icl{sfx}i", f"icl{sfx}e", f"icl{sfx}up", f"icl{sfx}vm"
    lab.bridge(int_br)
    lab.bridge(ex_br)
    lab.host(up, ex_br, f"icl{sfx}u0", f"{UPSTREAM_IP}/24")
    url = f"http://127.0.0.1:{free_port()}"
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([f"{sys.prefix}/bin/floatip", "--integration-bridge", int_br,
                             "--bridge-mapping", f"physnet1:{ex_br}", "serve", "--listen",
                             url.removeprefix("http://"), "--db",
                             f"sqlite:///{tmp_path}/floatip.db", "--prune", "known",
                             "--no-dhcp", "--no-metadata"], stdout=log, stderr=subprocess.STDOUT)
    routers: set[str] = set()
    try:
        def up_() -> bool:
            try:
                return httpx.get(url + "/", timeout=1).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None
        assert wait_for(up_, 120) and proc.poll() is None, (tmp_path / "serve.log").read_text()
        api = httpx.Client(base_url=url, timeout=30)

        def post(kind: str, body: dict) -> dict:
            return ok(api.post(f"/v2.0/{kind}s", json={kind: body}), 201)[kind]
        ext = post("network", {"name": "ext", "router:external": True,
                               "provider:network_type": "flat",
                               "provider:physical_network": "physnet1"})
        post("subnet", {"network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4,
                        "gateway_ip": UPSTREAM_IP, "enable_dhcp": False})
        net = post("network", {"name": "ten"})
        sub = post("subnet", {"network_id": net["id"], "cidr": "198.51.100.0/24",
                              "ip_version": 4})
        router = post("router", {"name": "r", "external_gateway_info": {
            "network_id": ext["id"]}})
        routers.add(router["id"])
        ok(api.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                   json={"subnet_id": sub["id"]}))
        port = post("port", {"network_id": net["id"], "name": "vm", "project_id": "iclp"})
        L.sh("ip", "netns", "add", ns)
        lab.namespaces.append(ns)
        binding.plug(port, {sub["id"]: sub}, ns, int_br)
        fip = post("floatingip", {"floating_network_id": ext["id"], "port_id": port["id"]})
        addr = fip["floating_ip_address"]
        lab.serve(ns, port=8080)
        lab.serve(up, port=8081)
        assert wait_for(lambda: L.tcp_source(ns, UPSTREAM_IP, 8081, 1.0) == addr, 30)
        assert not reaches(up, addr, 8080)
        ok(api.put(f"/v2.0/ports/{port['id']}", json={"port": {
            "security_groups": [], "port_security_enabled": False}}))
        assert wait_for(lambda: reaches(up, addr, 8080), 15)
        api.close()
        assert "firewall on" in " ".join((tmp_path / "serve.log").read_text().split())
    finally:
        try:
            if proc.poll() is None and up_():
                with Client(url) as c:
                    routers |= {r["id"] for r in c.list("router")}
                    remove_all(c)
                wait_for(lambda: not [n for n in L.sh("ip", "netns", "list").stdout.split()
                                      if any(r in n for r in routers)], 15)
        finally:
            stop_process(proc)
            log.close()
            config = AgentConfig(int_br, {"physnet1": ex_br})
            dp = Dataplane(config.nat_driver)
            try:
                reconcile(dp, State(), config, remove=routers)
            finally:
                dp.close()
