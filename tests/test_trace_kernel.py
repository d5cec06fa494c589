"""``floatip trace`` on the seed's topology (real namespaces, OVS, both NAT drivers): the hops
of a packet from upstream to the floating IP, to an address that is no floating IP, and after
the floating IP's DNAT was deleted by hand; ``--probe`` sends a real packet each time and must
agree. The command line's exit status and JSON too."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from floatip import lab as L
from floatip.core.trace import ApiFip, Query, build
from floatip.dataplane.netns import nsexec
from floatip.dataplane.probe import TRACE_TABLE, probe
from floatip.dataplane.trace import gather

pytestmark = pytest.mark.kernel
FIP, NOT_FIP, VM_IP = "203.0.113.84", "203.0.113.85", "198.51.100.84"


@pytest.fixture
def seed(topo, lab):
    topo.vm("vm4", VM_IP)
    topo.vm("vm5", "198.51.100.85")
    topo.fip(FIP, "vm4")
    topo.apply()
    lab.serve(topo.vms["vm4"], port=80)
    assert L.ping_until(topo.upstream, FIP)  # the neighbours the trace reads are learned
    return topo


def run(topo, dest: str, api: ApiFip | None = None):
    f = gather(Query("upstream", dest, "tcp", 80), router_id=topo.router_id, api=api)
    t = build(f)
    t.probe = probe(f)
    return t


def names(t) -> list[str]:
    return [f"{h.direction}:{h.name.split(' ')[0]}" for h in t.hops]


def test_trace_to_a_floating_ip_shows_every_hop_and_the_dnat(seed, nat_driver):
    t = run(seed, FIP)
    assert t.delivered, (t.stopped, t.reason)
    assert names(t) == ["forward:external", "forward:gateway", "forward:DNAT", "forward:route",
                        "forward:router", "forward:integration", "forward:VM",
                        "reply:integration", "reply:NAT", "reply:route", "reply:external"]
    hop = {h.name: h for h in t.hops if h.direction == "forward"}
    assert f"destination becomes {VM_IP}" in hop["DNAT"].matched
    assert hop["DNAT"].command.startswith(f"ip netns exec {seed.ns} ")
    assert f"tu{seed.sid}" in t.hops[-1].matched  # the reply leaves by the uplink
    vm_hop = hop["VM port"]
    assert f"tpvm4{seed.sid}" in vm_hop.matched and VM_IP in vm_hop.matched
    assert "VLAN tag 3" in next(h for h in t.hops if h.name.startswith("router port")).matched
    assert "float-SNAT" in t.hops[8].matched and FIP in t.hops[8].matched
    assert all(h.command for h in t.hops)
    # the real packet agrees: DNATed to the VM, seen on its port, the reply left by the uplink
    p = t.probe
    assert p["delivered"], p
    assert any(f"seen on tpvm4{seed.sid}" in e for e in p["evidence"])
    assert f"src={VM_IP}" in p["conntrack"]
    # the probe left nothing behind: no trace table, no conntrack entry of its own
    assert TRACE_TABLE not in nsexec(seed.ns, ["nft", "list", "tables"]).stdout


def test_trace_to_an_address_that_is_no_floating_ip_stops_at_the_gateway_port(seed):
    t = run(seed, NOT_FIP)
    assert not t.delivered
    assert t.stopped.startswith("gateway port qg-")
    assert "nobody answers ARP" in t.reason
    assert t.probe["delivered"] is False
    assert t.probe["dropped_at"].startswith("ARP: nobody answered")


def test_missing_map_element_is_named_and_the_api_disagreement_said(seed, nat_driver):
    if nat_driver == "nftables":
        nsexec(seed.ns, ["nft", "delete", "element", "ip", "floatip", "fip_dnat", f"{{ {FIP} }}"])
    else:
        nsexec(seed.ns, ["iptables", "-t", "nat", "-D", "floatip-l3-PREROUTING", "-d",
                         f"{FIP}/32", "-j", "DNAT", "--to-destination", VM_IP])
    # what the API says of it (its status is the agent's last report: ACTIVE)
    api = ApiFip("fip-id", "ACTIVE", VM_IP, seed.router_id, "port-id")
    t = run(seed, FIP, api)
    assert not t.delivered and t.stopped == "DNAT"
    missing = ("has no element in map fip_dnat" if nat_driver == "nftables"
               else "has no DNAT rule in floatip-l3-PREROUTING")
    assert f"{FIP} {missing}" in t.reason
    assert len(t.disagreements) == 1 and "ACTIVE" in t.disagreements[0] \
        and FIP in t.disagreements[0] and seed.ns in t.disagreements[0]
    assert t.probe["delivered"] is False
    assert t.probe["dropped_at"].startswith("DNAT: not DNATed")


@pytest.mark.parametrize("nat_driver", ["nftables"], indirect=True)  # the CLI is the same
def test_cli_exit_status_and_json(seed):
    cmd = [sys.executable, "-m", "floatip.cli", "trace", "--to", FIP, "--port", "80",
           "--router", seed.router_id, "--no-api", "--json"]
    r = subprocess.run(cmd + ["--probe"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["delivered"] and doc["probe"]["delivered"] and len(doc["hops"]) == 11
    r = subprocess.run(cmd[:5] + [NOT_FIP] + cmd[6:], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and not json.loads(r.stdout)["delivered"]
    text = subprocess.run(cmd[:-1], capture_output=True, text=True, timeout=60)
    assert text.returncode == 0
    assert "DNAT: element" in text.stdout or "DNAT: rule" in text.stdout
    out = subprocess.run(cmd[:4] + ["--from", f"tpvm4{seed.sid}", "--to", "203.0.113.1",
                                    "--port", "22", "--no-api", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["hops"][4]["name"] == "SNAT"
    bad = subprocess.run(cmd[:5] + ["x; reboot"] + cmd[6:], capture_output=True, text=True)
    assert bad.returncode == 2 and "is not an IPv4 address" in bad.stderr


def test_trace_from_a_vm_port_shows_its_snat_both_ways(seed, lab):
    from floatip.core.trace_out import build_out
    from floatip.dataplane.probe import probe_out
    from floatip.dataplane.trace import gather_out
    lab.serve(seed.upstream, port=8080)
    assert L.ping_until(seed.vms["vm5"], "203.0.113.1")
    for vm, src, how in (("vm4", FIP, "float-SNAT"),
                         ("vm5", "203.0.113.11", "the router's SNAT of 198.51.100.0/24")):
        f = gather_out(Query(f"tp{vm}{seed.sid}", "203.0.113.1", "tcp", 8080),
                       router_id=seed.router_id)
        t = build_out(f)
        assert t.delivered, (vm, t.stopped, t.reason)
        snat = next(h for h in t.hops if h.name == "SNAT")
        assert snat.matched.endswith(f"-> {src}") and how in snat.matched
        p = probe_out(f)
        assert p["delivered"], p
        assert any(e.startswith(f"seen leaving by tu{seed.sid}: {src} -> ") for e in
                   p["evidence"]), p["evidence"]
        assert any(e.startswith(f"answer seen on tp{vm}{seed.sid}") for e in p["evidence"])
    # the VM's port moved to another VLAN by hand: no router serves it any more
    L.sh("ovs-vsctl", "set", "Port", f"tpvm5{seed.sid}", "tag=99")
    t = build_out(gather_out(Query(f"tpvm5{seed.sid}", "203.0.113.1", "tcp", 8080),
                             router_id=seed.router_id))
    assert not t.delivered and t.stopped in ("router", "VM port"), t.reason
