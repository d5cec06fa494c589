"""``floatip demo`` through the API: a server with a throw-away SQLite database on a free
127.0.0.1 port (API and agent in this process), the seed built with API calls
(``apiapply.apply_document(demo.SEED)``), the VMs plugged as containers (iface-id, the agent
tags and binds them) and configured by DHCP (dhclient, answered by the agent's dnsmasq), then
the five checks (a)-(e) of ``demo.run_checks``, (f): vm4 reads its floating IP from
169.254.169.254, and (g): the firewall (on, as in ``floatip serve``) keeps out a connection to
a port of vm4 that its security group does not open.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from .. import lab as L
from ..agent import binding
from ..client import Client
from ..core.layout import AgentConfig, namespace_name
from ..dataplane.ovs import datapath_type
from ..server import Server, free_port
from . import demo as D
from .apply_api import apply_document

KEEP_DIR = "/run/floatip-demo"  # the database of a kept demo, for --teardown


@dataclass
class DemoResult:
    checks: list = field(default_factory=list)
    router_id: str | None = None
    url: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    db: str | None = None


def _wait_active(c: Client, port_ids: list[str], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(c.show("port", p)["status"] == "ACTIVE" for p in port_ids):
            return True
        time.sleep(0.05)
    return False


def _wait_fips(c: Client, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fips = c.list("floatingip")
        if fips and all(f["status"] == "ACTIVE" for f in fips):
            return True
        time.sleep(0.05)
    return False


def remove_all(c: Client) -> None:
    """Delete everything through the API, in dependency order."""
    for f in c.list("floatingip"):
        path = f"/v2.0/floatingips/{f['id']}/port_forwardings"
        for pf in c.request("GET", path)["port_forwardings"]:  # a FIP with any: 409
            c.request("DELETE", f"{path}/{pf['id']}")
        c.delete("floatingip", f["id"])
    for r in c.list("router"):
        for p in c.list("port", device_id=r["id"], device_owner="network:router_interface"):
            c.remove_interface(r["id"], port_id=p["id"])
        c.delete("router", r["id"])
    for p in c.list("port"):
        c.delete("port", p["id"])
    for n in c.list("network"):
        c.delete("network", n["id"])
    for kind in ("security-groups", "address-groups"):   # the default groups too (admin)
        for g in c.request("GET", f"/v2.0/{kind}")[kind.replace("-", "_")]:
            c.request("DELETE", f"/v2.0/{kind}/{g['id']}")


def run(nat_driver: str = "nftables", keep: bool = False, log=print) -> DemoResult:
    config = AgentConfig(D.INT_BR, {"physnet1": D.EX_BR}, nat_driver)
    if keep:
        os.makedirs(KEEP_DIR, exist_ok=True)
        dbdir = KEEP_DIR
        if os.path.exists(os.path.join(dbdir, "demo.db")):
            os.remove(os.path.join(dbdir, "demo.db"))
    else:
        dbdir = tempfile.mkdtemp(prefix="floatip-demo-")
    res = DemoResult(db=os.path.join(dbdir, "demo.db"))
    lab = L.Lab(datapath_type())
    srv = None
    t0 = time.perf_counter()
    try:
        lab.bridge(D.INT_BR)
        lab.bridge(D.EX_BR)
        srv = Server(f"sqlite:///{res.db}", f"127.0.0.1:{free_port()}", config,
                     prune_scope="known", agent_process=True,
                     agent_options={"firewall": True}).start()  # as `floatip serve`
        res.url = srv.url
        c = Client(srv.url)
        log(f"API and agent (firewall on) on {srv.url} (SQLite {res.db})")
        t = time.perf_counter()
        applied = apply_document(c, D.SEED)
        res.timings["api_build"] = time.perf_counter() - t
        log(f"built the seed through the API: {len(applied.created)} resources in "
            f"{res.timings['api_build'] * 1000:.0f} ms")
        res.router_id = applied.ids["router"]["router02"]
        log(f"security groups: vm4 in seed-web (ping and TCP {D.PORT} in, for checks a and b); "
            "vm5 in seed-out (outbound only); neither answers any other inbound connection")
        lab.host(D.UPSTREAM, D.EX_BR, D.VETHS[D.UPSTREAM], "10.255.253.1/24")
        subnets = {s["id"]: s for s in c.list("subnet")}
        ports = []
        use_dhcp = shutil.which("dhclient") is not None
        for name, ns in (("vm4", D.VM4), ("vm5", D.VM5)):
            L.sh("ip", "netns", "add", ns)
            lab.namespaces.append(ns)
            port = c.find("port", name)
            binding.plug(port, subnets, ns, D.INT_BR, addresses=not use_dhcp)
            ports.append(port["id"])
        c.sync()
        ok = _wait_active(c, ports) and _wait_fips(c)
        res.timings["converged"] = time.perf_counter() - t
        log(f"agent bound the VM ports and programmed the router: "
            f"{'ok' if ok else 'NOT converged'} after {res.timings['converged'] * 1000:.0f} ms")
        n = D.names()["addresses"]
        if use_dhcp:
            t = time.perf_counter()
            got = {ns: lab.dhcp(ns) for ns in (D.VM4, D.VM5)}
            res.timings["dhcp"] = time.perf_counter() - t
            log("vm4 and vm5 configured by DHCP: " + ", ".join(
                f"{ns} {ip or 'NO LEASE'}" for ns, ip in got.items())
                + f" in {res.timings['dhcp'] * 1000:.0f} ms")
        else:
            log("dhclient not installed: vm4 and vm5 configured statically")
        res.checks = D.run_checks(D.UPSTREAM, D.VM4, D.VM5, n["floating_ip"],
                                  n["router_gateway"], n["no_floating_ip"], n["upstream"], lab)
        status, body = L.http_get(D.VM4, "169.254.169.254", "/latest/meta-data/public-ipv4")
        res.checks.append(D.Check("f", f"vm4 reads public-ipv4 = {n['floating_ip']} from "
                                       "169.254.169.254",
                                  (status, body.strip()) == (200, n["floating_ip"]),
                                  f"HTTP {status}: {body.strip()[:60]}"))
        res.checks.append(D.closed_port_check(D.UPSTREAM, D.VM4, n["floating_ip"], lab))
    finally:
        try:
            if srv is not None:
                if not keep:
                    try:
                        remove_all(Client(srv.url))
                        srv.wait_for_agent()
                    except Exception as e:  # noqa: BLE001
                        log(f"cleanup through the API failed: {e}")
                srv.close()
        finally:
            if not keep:
                lab.cleanup()
                shutil.rmtree(dbdir, ignore_errors=True)
    res.timings["total"] = time.perf_counter() - t0
    return res


def teardown(nat_driver: str = "nftables") -> list[str]:
    """Remove a kept demo: its routers through the API (the kept database), then hosts and
    bridges."""
    db = os.path.join(KEEP_DIR, "demo.db")
    if os.path.exists(db):
        config = AgentConfig(D.INT_BR, {"physnet1": D.EX_BR}, nat_driver)
        srv = Server(f"sqlite:///{db}", f"127.0.0.1:{free_port()}", config,
                     prune_scope="known").start()
        try:
            remove_all(Client(srv.url))
            srv.wait_for_agent()
        finally:
            srv.close()
        shutil.rmtree(KEEP_DIR, ignore_errors=True)
    lab = L.Lab()
    existing = set(L.sh("ip", "netns", "list").stdout.split())
    lab.namespaces = [ns for ns in (D.UPSTREAM, D.VM4, D.VM5) if ns in existing]
    lab.veths = [D.VETHS[D.UPSTREAM]]
    lab.bridges = [b for b in (D.INT_BR, D.EX_BR)
                   if L.sh("ovs-vsctl", "br-exists", b, check=False).returncode == 0]
    return lab.cleanup()


def names(router_id: str | None) -> dict:
    n = D.names()
    if router_id:
        n["router_id"], n["router_namespace"] = router_id, namespace_name(router_id)
    return n
