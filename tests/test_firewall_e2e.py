"""Security groups end to end on the kernel backend: the API (Neutron's resources), the
agent (``firewall=True``) and a VM plugged as a hypervisor does, reached from an outside
namespace through its floating IP."""
from __future__ import annotations

import time

import pytest

from floatip import lab as L

from cloud import Cloud, UPSTREAM_IP, ok
from fwprobe import wait_for

pytestmark = pytest.mark.kernel


def reaches(ns: str, ip: str, port: int, timeout: float = 1.0) -> bool:
    return L.tcp_source(ns, ip, port, timeout) is not None


def vm(cloud: Cloud, router: dict, project: str) -> tuple[dict, str]:
    """A VM port of ``project`` (it gets the project's default group), plugged."""
    from floatip.agent import binding
    cloud.vms += 1
    ns = f"fp{cloud.sfx}v{cloud.vms}"
    L.sh("ip", "netns", "add", ns)
    cloud.lab.namespaces.append(ns)
    port = cloud.post("port", {"network_id": router["net"]["id"], "name": ns,
                               "project_id": project})
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
