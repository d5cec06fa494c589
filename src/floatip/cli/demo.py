"""The seed's scenario, end to end, in namespaces: ``floatip demo`` (and ``make demo``).

vm4 (10.0.2.84) gets floating IP 10.255.253.84 on router02, whose gateway is 10.255.253.11
on the external network 10.255.253.0/24 (upstream gateway 10.255.253.1); vm5 (10.0.2.85) has
no floating IP. The upstream network stands in for the seed's eth3: a namespace on the
external bridge. The demo uses its own bridge names, never a host's br-int/br-ex.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from .. import lab as L
from ..agent.reconciler import reconcile
from ..core.document import load
from ..core.layout import AgentConfig, namespace_name
from ..core.model import State

INT_BR, EX_BR = "fdemo-int", "fdemo-ex"
UPSTREAM, VM4, VM5 = "fdemo-up", "fdemo-vm4", "fdemo-vm5"
VETHS = {UPSTREAM: "fdemo-up0", VM4: "fdemo-vm4p", VM5: "fdemo-vm5p"}
PORT = 8080

SEED = {
    "networks": [
        {"name": "ext-net", "router:external": True, "provider:network_type": "flat",
         "provider:physical_network": "physnet1"},
        {"name": "tenant-net", "provider:network_type": "vlan", "provider:segmentation_id": 3},
    ],
    "subnets": [
        {"name": "ext-subnet", "network": "ext-net", "cidr": "10.255.253.0/24",
         "gateway_ip": "10.255.253.1",
         "allocation_pools": [{"start": "10.255.253.10", "end": "10.255.253.250"}]},
        {"name": "tenant-subnet", "network": "tenant-net", "cidr": "10.0.2.0/24",
         "gateway_ip": "10.0.2.1"},
    ],
    # the firewall drops what no rule of a port's groups allows: vm4 is opened to what checks
    # (a) and (b) send it; vm5 only goes out. Every new group has Neutron's egress rules. (A
    # port that names no group gets its project's default group; noauth callers have none.)
    "security_groups": [
        {"name": "seed-web", "description": "ping and TCP 8080 from anywhere (the demo's "
                                            "checks a and b)",
         "rules": [{"direction": "ingress", "protocol": "icmp"},
                   {"direction": "ingress", "protocol": "tcp", "port_range_min": PORT,
                    "port_range_max": PORT}]},
        {"name": "seed-out", "description": "outbound only"},
    ],
    "ports": [
        {"name": "vm4", "network": "tenant-net", "fixed_ip": "10.0.2.84",
         "security_groups": ["seed-web"]},
        {"name": "vm5", "network": "tenant-net", "fixed_ip": "10.0.2.85",
         "security_groups": ["seed-out"]},
    ],
    "routers": [
        {"name": "router02",
         "external_gateway_info": {"network": "ext-net", "ip_address": "10.255.253.11",
                                   "enable_snat": True},
         "interfaces": ["tenant-subnet"]},
    ],
    "floatingips": [{"floating_ip_address": "10.255.253.84", "port": "vm4"}],
}
CONFIG = AgentConfig(integration_bridge=INT_BR, bridge_mappings={"physnet1": EX_BR})


@dataclass
class Check:
    key: str
    text: str
    ok: bool
    detail: str = ""


def build_hosts(lab: L.Lab, macs: dict[str, str]) -> None:
    lab.bridge(INT_BR)
    lab.bridge(EX_BR)
    lab.host(UPSTREAM, EX_BR, VETHS[UPSTREAM], "10.255.253.1/24")
    lab.host(VM4, INT_BR, VETHS[VM4], "10.0.2.84/24", "10.0.2.1", tag=3, mac=macs["vm4"])
    lab.host(VM5, INT_BR, VETHS[VM5], "10.0.2.85/24", "10.0.2.1", tag=3, mac=macs["vm5"])


def run_checks(upstream: str, vm_fip: str, vm_plain: str, fip: str, router_ip: str,
               not_fip: str, upstream_ip: str, lab: L.Lab, port: int = PORT) -> list[Check]:
    """The five checks (a)-(e); the same functions serve the tests."""
    checks = []
    srv_vm = lab.serve(vm_fip, port=port)
    srv_up = lab.serve(upstream, port=port)
    ok = L.ping_until(upstream, fip)
    checks.append(Check("a", f"upstream pings {fip} and vm4 answers", ok))
    seen = L.tcp_source(upstream, fip, port)
    checks.append(Check("b", f"TCP upstream -> {fip} served by vm4, which sees {upstream_ip}",
                        seen == upstream_ip and srv_vm.peers[-1:] == [upstream_ip],
                        f"vm4 saw {seen}"))
    seen = L.tcp_source(vm_fip, upstream_ip, port)
    checks.append(Check("c", f"vm4 -> upstream arrives from {fip}", seen == fip,
                        f"upstream saw {seen}"))
    seen = L.tcp_source(vm_plain, upstream_ip, port)
    checks.append(Check("d", f"vm5 -> upstream arrives from {router_ip} (SNAT)", seen == router_ip,
                        f"upstream saw {seen}"))
    answered = L.ping(upstream, not_fip, count=2, timeout=1)
    checks.append(Check("e", f"{not_fip} (no floating IP) gets no answer", not answered))
    srv_vm.close()
    srv_up.close()
    return checks


def closed_port_check(upstream: str, vm_fip: str, fip: str, lab: L.Lab,
                      port: int = PORT + 1) -> Check:
    """(g) the firewall: vm4 listens on a port that no rule of seed-web opens."""
    srv = lab.serve(vm_fip, port=port)
    try:
        seen = L.tcp_source(upstream, fip, port, timeout=1.0)
    finally:
        srv.close()
    return Check("g", f"TCP upstream -> {fip}:{port}, where vm4 listens but no rule opens, "
                      "gets no answer", seen is None, f"vm4 saw {seen}" if seen else "")


def names() -> dict:
    state = load(SEED)
    rid = next(iter(state.routers))
    return {"router_namespace": namespace_name(rid), "router_id": rid,
            "upstream": UPSTREAM, "vms": {"vm4": VM4, "vm5": VM5},
            "bridges": {"integration": INT_BR, "external": EX_BR},
            "addresses": {"floating_ip": "10.255.253.84", "router_gateway": "10.255.253.11",
                          "upstream": "10.255.253.1", "vm4": "10.0.2.84", "vm5": "10.0.2.85",
                          "no_floating_ip": "10.255.253.85"}}


def teardown(dataplane_factory: Callable) -> list[str]:
    """Remove a kept demo: its router (through floatip) and its hosts and bridges."""
    n = names()
    dp = dataplane_factory()
    try:
        reconcile(dp, State(), CONFIG, remove={n["router_id"]})
    finally:
        dp.close()
    lab = L.Lab()
    existing = set(L.sh("ip", "netns", "list").stdout.split())
    lab.namespaces = [ns for ns in (UPSTREAM, VM4, VM5) if ns in existing]
    lab.veths = list(VETHS.values())
    lab.bridges = [b for b in (INT_BR, EX_BR)
                   if L.sh("ovs-vsctl", "br-exists", b, check=False).returncode == 0]
    return lab.cleanup()


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0
