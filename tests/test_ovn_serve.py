"""``floatip serve --backend ovn`` as a process, the OVN lab's NB/SB on its command line: the
FIP checks pass through openstacksdk, the VM ports are bound on the non-gateway chassis, and
deleting everything through the API leaves no row in the Northbound."""
from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest

from floatip import lab as L
from cloud import stop_process
from test_e2e_backends import TCP_PORT, Deployment, Scenario, assert_checks, wait_for
from test_e2e_sdk import _answers

pytestmark = [pytest.mark.kernel, pytest.mark.ovn,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*influxdb:DeprecationWarning")]


def test_serve_with_the_ovn_backend(ovn_lab, tmp_path):
    from floatip.cli.demo_api import remove_all
    from floatip.client import Client
    from floatip.server import free_port
    lab = ovn_lab
    url = f"http://127.0.0.1:{free_port()}"
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([f"{sys.prefix}/bin/floatip", "serve", "--backend", "ovn",
                             "--ovn-nb", lab.nb, "--ovn-sb", lab.sb,
                             "--listen", url.removeprefix("http://"),
                             "--db", f"sqlite:///{tmp_path}/floatip.db"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is not None or _answers(url), timeout=30, what="serve")
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()

        def plug(name, port, subnets):
            ip = port["fixed_ips"][0]
            sub = subnets[ip["subnet_id"]]
            return lab.vm(name, 1, port["id"], port["mac_address"],
                          f"{ip['ip_address']}/24", sub["gateway_ip"])
        d = Deployment("ovn", url, lab.upstream, lab, plug, lambda: True)
        sc = Scenario(d)
        # the firewall is on (serve's default): the checks' ping and TCP port opened
        web = sc.net.create_security_group(name="iso-open", project_id="isoserve")
        for proto, port in (("icmp", None), ("tcp", TCP_PORT)):
            sc.net.create_security_group_rule(security_group_id=web.id, direction="ingress",
                                              ethertype="IPv4", protocol=proto,
                                              port_range_min=port, port_range_max=port)
        for p in sc.ports.values():
            sc.net.update_port(p, security_group_ids=[web.id])
        fip = sc.net.create_ip(floating_network_id=sc.ext.id, port_id=sc.ports["vm1"].id,
                               floating_ip_address="203.0.113.50")
        wait_for(lambda: sc.net.get_ip(fip.id).status == "ACTIVE", what="floating IP ACTIVE")
        assert {sc.net.get_port(p.id).binding_host_id for p in sc.ports.values()} == \
            {lab.chassis[1].name}
        wait_for(lambda: L.ping(lab.upstream, "203.0.113.50", timeout=0.3), what="ping")
        assert_checks(sc.checks("vm1", "vm2"))
        # the changes went through incremental passes, the start through a full one
        metrics = httpx.get(url + "/metrics").text
        assert re.search(r'floatip_agent_pass_seconds_count\{kind="incremental"\} [1-9]',
                         metrics), metrics
        assert re.search(r'floatip_agent_pass_seconds_count\{kind="full"\} [1-9]', metrics)
        with Client(url) as c:
            remove_all(c)
        wait_for(lambda: L.sh("ovn-nbctl", f"--db={lab.nb}", "show").stdout == "",
                 what="the Northbound empty")
    finally:
        stop_process(proc)
        log.close()
