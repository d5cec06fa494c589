"""``floatip trace`` on the OVN backend (two chassis, the API server with the OVN backend):
ovn-trace's logical pipeline and the gateway chassis' ofproto/trace; --probe sends a real
packet into the gateway chassis and must agree. Upstream -> the
floating IP reaches the VM's logical port after the DNAT; an address that is no floating IP
stops at ARP; after the NAT row is deleted by hand the trace names it and the API's ACTIVE
status it contradicts."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from floatip import lab as L
from floatip.client import Client

from test_e2e_backends import ovn_deployment

pytestmark = [pytest.mark.kernel, pytest.mark.ovn,
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture
def ovn(tmp_path):
    from conftest import _ovn_ready
    why = _ovn_ready()
    if why:
        pytest.skip(why)
    yield from ovn_deployment(tmp_path, interval=600)  # no full pass repairs it meanwhile


def trace(d, dest: str) -> tuple[int, dict]:
    lab, _ = d.extra
    gw = lab.chassis[0]
    r = subprocess.run([sys.executable, "-m", "floatip.cli", "trace", "--to", dest, "--port",
                        "80", "--url", d.url, "--ovn-nb", lab.nb, "--ovn-sb", lab.sb,
                        "--chassis-db", gw.db, "--chassis-ctl", f"{gw.run}/ovs-vswitchd.ctl",
                        "--chassis-netns", gw.ns, "--probe", "--json"], capture_output=True, text=True, timeout=60)
    assert r.stdout, r.stderr
    return r.returncode, json.loads(r.stdout)


def test_ovn_trace_three_cases(ovn):
    d = ovn
    lab, _ = d.extra
    c = Client(d.url)
    ext = c.create("network", name="fo-ext", **{"router:external": True,
                                                "provider:network_type": "flat",
                                                "provider:physical_network": "physnet1"})
    c.create("subnet", network_id=ext["id"], cidr="203.0.113.0/24", ip_version=4,
             gateway_ip="203.0.113.1", enable_dhcp=False,
             allocation_pools=[{"start": "203.0.113.10", "end": "203.0.113.99"}])
    net = c.create("network", name="fo-net")
    sub = c.create("subnet", network_id=net["id"], cidr="198.51.100.0/24", ip_version=4,
                   enable_dhcp=False)
    router = c.create("router", name="fo-r", external_gateway_info={"network_id": ext["id"]})
    c.add_interface(router["id"], subnet_id=sub["id"])
    port = c.create("port", network_id=net["id"], name="fo-vm1",
                    fixed_ips=[{"subnet_id": sub["id"], "ip_address": "198.51.100.10"}])
    d.plug("vm1", port, {sub["id"]: sub})
    fip = c.create("floatingip", floating_network_id=ext["id"], port_id=port["id"])
    address = fip["floating_ip_address"]
    assert d.wait_synced()
    assert L.ping_until(d.upstream, address)
    code, doc = trace(d, address)
    assert code == 0 and doc["delivered"], doc
    assert [h["name"] for h in doc["hops"]] == ["ARP", "gateway chassis",
                                                 "external logical switch", "DNAT",
                                                 "tenant logical switch"]
    assert doc["hops"][3]["matched"].endswith("ct_dnat -> 198.51.100.10")
    assert port["id"] in doc["hops"][4]["matched"] and doc["disagreements"] == []
    assert doc["probe"]["delivered"], doc["probe"]  # the VM answered, from the floating IP
    code, doc = trace(d, "203.0.113.98")
    assert code == 1 and doc["stopped"] == "ARP"
    assert "no NAT row has external_ip 203.0.113.98" in doc["reason"]
    assert doc["probe"]["dropped_at"].startswith("ARP: nobody answered")
    # the backend is down (it would put the row back at once) and the NAT row goes, by
    # hand: the trace names it and the API's ACTIVE status it contradicts
    _, backend = d.extra
    backend.stop()
    L.sh("ovn-nbctl", f"--db={lab.nb}", "lr-nat-del", f"neutron-{router['id']}",
         "dnat_and_snat", address)
    assert c.show("floatingip", fip["id"])["status"] == "ACTIVE"
    code, doc = trace(d, address)
    assert code == 1 and doc["stopped"] == "ARP", doc["hops"]
    assert f"no NAT row has external_ip {address}" in doc["reason"]
    assert len(doc["disagreements"]) == 1 and "ACTIVE" in doc["disagreements"][0] \
        and "no dnat_and_snat NAT row" in doc["disagreements"][0]
    assert doc["probe"]["delivered"] is False and doc["probe"]["dropped_at"].startswith("ARP")
    # back up, the backend repairs it and the trace agrees
    backend.stop_event.clear()
    backend.start()
    assert d.wait_synced()
    code, doc = trace(d, address)
    assert code == 0, doc["hops"]
    c.close()
