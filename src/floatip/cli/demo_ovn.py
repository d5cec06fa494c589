"""``floatip demo --backend ovn``: the seed's scenario on two OVN chassis on this machine.

A throw-away OvnLab (central NB/SB + northd, a gateway chassis with the upstream host, a
second chassis holding vm4 and vm5), the API server with the OVN backend in this process,
the seed built through the API, vm4 and vm5 configured by OVN's native DHCP (a real
``dhclient``), ``floatip ovn-metadata`` beside each chassis' ovn-controller (in this
process), then the same checks (a)-(g) as the kernel demo. With
``keep`` the lab stays up under fixed names (the OVN databases keep the routers; the API
server does not need to run), and ``teardown()`` removes it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time

from .. import lab as L
from ..backends.local import LocalSource
from ..backends.ovn import OvnBackend, OvnConfig
from ..backends.ovn.metadata import OvnMetadataAgent
from ..backends.remote import RemoteSource
from ..client import Client
from ..ovnlab import OvnLab
from ..server import Server, free_port
from . import demo as D
from .apply_api import apply_document
from .demo_api import DemoResult, _wait_active, _wait_fips, remove_all

NAME = "fodemo"                # namespaces fodemo-c, -up, -ch1, -ch2, -vm4, -vm5
BASE = "/run"                  # the kept lab's run directory: /run/fodemo
UPSTREAM_CIDR = "10.255.253.1/24"


def _lab(keep: bool) -> OvnLab:
    if keep:
        return OvnLab(name=NAME, base=BASE, upstream_cidr=UPSTREAM_CIDR)
    return OvnLab("fo", upstream_cidr=UPSTREAM_CIDR)


def run(keep: bool = False, log=print, distributed: bool = False) -> tuple[DemoResult, dict]:
    """The demo; returns the result and the names (for ``--json``)."""
    if keep and os.path.exists(os.path.join(BASE, NAME)):
        left = teardown()
        if left:
            raise RuntimeError(f"a kept OVN demo is in the way: {left}")
    lab = _lab(keep)
    dbdir = tempfile.mkdtemp(prefix="floatip-demo-ovn-")
    res = DemoResult(db=os.path.join(dbdir, "demo.db"))
    srv = None
    agents: list[OvnMetadataAgent] = []
    names: dict = {}
    t0 = time.perf_counter()
    try:
        lab.start()
        res.timings["lab"] = time.perf_counter() - t0
        log(f"OVN: central + {len(lab.chassis)} chassis up in {res.timings['lab']:.2f} s "
            f"({lab.dir})")
        srv = Server(f"sqlite:///{res.db}", f"127.0.0.1:{free_port()}", agent=False)
        srv.backend = OvnBackend(LocalSource(srv.db), OvnConfig(
            lab.nb, lab.sb, owner=f"floatip-demo@{lab.tag}", distributed_fip=distributed,
            firewall=True))   # as `floatip serve`
        srv.db.resync_listeners.append(srv.backend.request_full)
        srv.start()
        res.url = srv.url
        # the metadata agent of each chassis, following the API as on a real chassis
        agents = [OvnMetadataAgent(RemoteSource(srv.url), lab.sb, os.path.join(lab.dir, "meta"),
                                   ovs=ch.db, ovs_netns=ch.ns, chassis=ch.name,
                                   ns_prefix=f"{ch.ns}-meta-").start() for ch in lab.chassis]
        c = Client(srv.url)
        t = time.perf_counter()
        applied = apply_document(c, D.SEED)
        res.timings["api_build"] = time.perf_counter() - t
        log(f"built the seed through the API: {len(applied.created)} resources in "
            f"{res.timings['api_build'] * 1000:.0f} ms")
        res.router_id = applied.ids["router"]["router02"]
        subnets = {s["id"]: s for s in c.list("subnet")}
        vms, ports = {}, []
        use_dhcp = shutil.which("dhclient") is not None
        for name in ("vm4", "vm5"):   # both on the chassis that is not the gateway
            port = c.find("port", name)
            ip = port["fixed_ips"][0]
            sub = subnets[ip["subnet_id"]]
            prefix = sub["cidr"].split("/")[1]
            vms[name] = lab.vm(name, 1, port["id"], port["mac_address"],
                               None if use_dhcp else f"{ip['ip_address']}/{prefix}",
                               None if use_dhcp else sub["gateway_ip"])
            ports.append(port["id"])
            if not use_dhcp:   # what DHCP's classless routes would give: metadata's route
                dport = c.list("port", network_id=port["network_id"],
                               device_owner="network:dhcp")
                hop = next((a["ip_address"] for p in dport for a in p["fixed_ips"]
                            if a["subnet_id"] == sub["id"]), None)
                if hop:
                    L.sh("ip", "netns", "exec", vms[name], "ip", "route", "add",
                         "169.254.169.254/32", "via", hop)
        ok = _wait_active(c, ports) and _wait_fips(c) and srv.wait_for_agent(15)
        res.timings["converged"] = time.perf_counter() - t
        log(f"chassis bound the VM ports, NB programmed, chassis caught up: "
            f"{'ok' if ok else 'NOT converged'} after {res.timings['converged'] * 1000:.0f} ms")
        if use_dhcp:
            t = time.perf_counter()
            got = {name: lab.dhcp(ns) for name, ns in vms.items()}
            res.timings["dhcp"] = time.perf_counter() - t
            log("vm4 and vm5 configured by OVN's native DHCP: " + ", ".join(
                f"{name} {g['new_ip_address'] if g else 'NO LEASE'}" for name, g in got.items())
                + f" in {res.timings['dhcp'] * 1000:.0f} ms")
        else:
            log("dhclient not installed: vm4 and vm5 configured statically")
        n = D.names()["addresses"]
        res.checks = D.run_checks(lab.upstream, vms["vm4"], vms["vm5"], n["floating_ip"],
                                  n["router_gateway"], n["no_floating_ip"], n["upstream"], lab)
        res.checks.append(metadata_check(vms["vm4"], n["floating_ip"]))
        res.checks.append(D.closed_port_check(lab.upstream, vms["vm4"], n["floating_ip"], lab))
        names = {"backend": "ovn", "router_id": res.router_id, "upstream": lab.upstream,
                 "vms": vms, "addresses": n, **{k: v for k, v in lab.describe().items()
                                                if k not in ("upstream", "vms")}}
    finally:
        for a in agents:
            try:
                a.stop()
            except Exception as e:  # noqa: BLE001
                log(f"stopping the metadata agent of {a.chassis} failed: {e}")
        try:
            if srv is not None:
                if not keep:
                    try:
                        remove_all(Client(srv.url))
                        srv.wait_for_agent(15)
                    except Exception as e:  # noqa: BLE001
                        log(f"cleanup through the API failed: {e}")
                srv.close()
        finally:
            shutil.rmtree(dbdir, ignore_errors=True)
            if not keep:
                lab.close()
    res.timings["total"] = time.perf_counter() - t0
    return res, names


def metadata_check(vm: str, fip: str, timeout: float = 30.0) -> D.Check:
    """(f) vm4, on the chassis that is not the gateway, reads its floating IP from
    169.254.169.254 (its chassis' metadata namespace of its network, through the route DHCP
    gave it); the agent makes the namespace once the port is bound: polled."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = L.http_get(vm, "169.254.169.254", "/latest/meta-data/public-ipv4")
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return D.Check("f", f"vm4 reads public-ipv4 = {fip} from 169.254.169.254",
                   (status, body.strip()) == (200, fip), f"HTTP {status}: {body.strip()[:60]}")


def teardown() -> list[str]:
    """Remove a kept OVN demo: processes (ovn-controller first), namespaces, run directory."""
    return OvnLab.reattach(NAME, BASE).close()
