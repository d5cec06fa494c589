#!/usr/bin/env python3
"""``make bench``: security groups on the OVN backend (port groups and ACLs), the OVN column
of ``firewall_bench.py``.

The OVN lab (two chassis), the API server with the OVN backend (``firewall``), a server VM
with a floating IP and a client VM on the non-gateway chassis, plus N other ports with port
security in 100 groups holding R rules in all (made by the API's bulk create; their LSPs
are not bound), all of them also members of a remote group "big". Measures:
  rule -> enforced   POST /v2.0/security-group-rules opening a new TCP port on the server,
                     until the first connection through the floating IP succeeds (p50/p99;
                     a connection started every 10 ms, ``first_connect``);
                     of it, the backend's pass that wrote the ACL
  member add         the client's port joins "big", which the server's rule names (PUT
                     /v2.0/ports), until the client connects; and the NB rows written
Where the rule's time goes: floatip's pass (written to the NB), ovn-northd (its
``ovnnb_db_run`` stopwatch: the NB change into logical flows, and which of its incremental
engine nodes recomputed everything) and the VMs' chassis' ovn-controller (its
``flow-generation`` stopwatch); once with northd single-threaded (23.03's default), once
with ``parallel-build/set-n-threads 2`` (``--threads``), and once more with that and every
chassis' ovn-controller monitoring the whole Southbound (``ovn-monitor-all=true``, no
conditional monitoring for the SB server to evaluate). The logical flows counted by stage
tell how many of them the ACLs are (what northd rebuilds on each change).
Prints a markdown table. Everything is named osg<random> and removed at the end.
"""
from __future__ import annotations

import argparse
import select
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from floatip import lab as L  # noqa: E402
from floatip.backends.local import LocalSource  # noqa: E402
from floatip.backends.ovn import OvnBackend, OvnConfig  # noqa: E402
from floatip.dataplane.netns import run_in_netns  # noqa: E402
from floatip.ovnlab import OvnLab  # noqa: E402
from floatip.server import Server, free_port  # noqa: E402
from ovn_bench import Daemons  # noqa: E402

PROJECT = "osgbench"


def until(cond, deadline: float = 60.0) -> float:
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > deadline:
            raise RuntimeError("not enforced within the deadline")
    return time.perf_counter() - t0


def connects(ns: str, ip: str, port: int, timeout: float = 0.2) -> bool:
    return L.tcp_source(ns, ip, port, timeout) is not None


def first_connect(ns: str, ip: str, port: int, deadline: float = 60.0,
                  step: float = 0.01) -> float:
    """Seconds until the first of the connections started from ``ns`` every ``step`` s
    is established: within ``step`` of when the port opened (one connection at a time
    waits out its timeout, or the SYN's 1 s retransmission, after each dropped SYN)."""
    t0 = time.perf_counter()
    poller, socks = select.poll(), {}
    try:
        while time.perf_counter() - t0 < deadline:
            s = run_in_netns(ns, socket.socket, socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((ip, port))
            socks[s.fileno()] = s
            poller.register(s, select.POLLOUT)
            for fd, _ in poller.poll(step * 1000):
                if socks[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    return time.perf_counter() - t0
                poller.unregister(fd)
                socks.pop(fd).close()
        raise RuntimeError("not enforced within the deadline")
    finally:
        for s in socks.values():
            s.close()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def ms(xs) -> str:
    return f"p50 {pct(xs, .5) * 1000:.0f} ms, p99 {pct(xs, .99) * 1000:.0f} ms"


def cfg_stages(lab, sent_ms: float) -> tuple[float, float]:
    """ms from the API call until the ovn-controller of the gateway chassis and of the VMs'
    chassis finished the change (Chassis_Private.nb_cfg_timestamp, what ``ovn-nbctl
    --wait=hv`` waits for), read once both caught up."""
    out = []
    for ch in (lab.gateway, lab.chassis[-1]):
        ts = L.sh("ovn-sbctl", f"--db={lab.sb}", "get", "Chassis_Private", ch.name,
                  "nb_cfg_timestamp").stdout.strip()
        out.append(int(ts) - sent_ms)
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=1000)
    ap.add_argument("--rules", type=int, default=10000)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="northd threads, second round")
    a = ap.parse_args()
    lab = OvnLab("osg").start()
    tmp = tempfile.mkdtemp(prefix="osg-bench-")
    srv = Server(f"sqlite:///{tmp}/floatip.db", f"127.0.0.1:{free_port()}", agent=False)
    backend = srv.backend = OvnBackend(LocalSource(srv.db), OvnConfig(
        lab.nb, lab.sb, owner=f"floatip@{lab.tag}", interval=3600, firewall=True))
    srv.db.resync_listeners.append(backend.request_full)
    srv.start()
    rows = []
    try:
        c = httpx.Client(base_url=srv.url, timeout=600)

        def post(coll: str, body, code: int = 201):
            key = coll.replace("-", "_")
            many = isinstance(body, list)
            r = c.post(f"/v2.0/{coll}", json={key if many else key[:-1]: body})
            assert r.status_code == code, r.text
            return r.json()[key if many else key[:-1]]
        r = c.put(f"/v2.0/quotas/{PROJECT}", json={"quota": {   # beyond Neutron's defaults
            "port": -1, "security_group": -1, "security_group_rule": -1}})
        assert r.status_code == 200, r.text
        ext = post("networks", {"name": "ext", "router:external": True,
                                "provider:network_type": "flat",
                                "provider:physical_network": "physnet1"})
        post("subnets", {"network_id": ext["id"], "cidr": "203.0.113.0/24",
                         "gateway_ip": "203.0.113.1", "enable_dhcp": False,
                         "allocation_pools": [{"start": "203.0.113.10",
                                               "end": "203.0.113.99"}]})
        net = post("networks", {"name": "ten", "project_id": PROJECT})
        sub = post("subnets", {"network_id": net["id"], "cidr": "100.80.0.0/16",
                               "enable_dhcp": False, "project_id": PROJECT})
        router = post("routers", {"name": "r", "external_gateway_info": {
            "network_id": ext["id"]}})
        r = c.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                  json={"subnet_id": sub["id"]})
        assert r.status_code == 200, r.text
        egress = [{"direction": "egress", "ethertype": e} for e in ("IPv4", "IPv6")]
        web = post("security-groups", {"name": "web", "project_id": PROJECT})
        big = post("security-groups", {"name": "big", "project_id": PROJECT})
        groups = post("security-groups", [{"name": f"g{g}", "project_id": PROJECT}
                                          for g in range(100)])
        per = max(0, a.rules // 100 - 2)
        rules = [{"security_group_id": g["id"], **e} for g in (web, big, *groups)
                 for e in egress]
        rules += [{"security_group_id": g["id"], "direction": "ingress", "protocol": "tcp",
                   "port_range_min": 1000 + j, "port_range_max": 1000 + j,
                   "remote_ip_prefix": f"10.{k}.{j % 250}.0/24"}
                  for k, g in enumerate(groups) for j in range(per)]
        # the rules that egress rules of a new group already hold are refused as duplicates
        have = {(x["security_group_id"], x["direction"], x["ethertype"])
                for x in c.get("/v2.0/security-group-rules").json()["security_group_rules"]
                if x["protocol"] is None and x["remote_ip_prefix"] is None
                and x["remote_group_id"] is None}
        rules = [x for x in rules if "protocol" in x or
                 (x["security_group_id"], x["direction"], x["ethertype"]) not in have]
        for k in range(0, len(rules), 2000):
            post("security-group-rules", rules[k:k + 2000])
        n_rules = len(c.get("/v2.0/security-group-rules").json()["security_group_rules"])
        for k in range(0, a.ports, 500):
            post("ports", [{"network_id": net["id"], "project_id": PROJECT,
                            "security_groups": [groups[i % 100]["id"], big["id"]]}
                           for i in range(k, min(a.ports, k + 500))])
        vms = {}
        for name in ("srv", "cli"):
            p = post("ports", {"network_id": net["id"], "name": name, "project_id": PROJECT,
                               "security_groups": [web["id"]]})
            ip = p["fixed_ips"][0]["ip_address"]
            vms[name] = (p, ip, lab.vm(name, -1, p["id"], p["mac_address"], f"{ip}/16",
                                       sub["gateway_ip"]))
        (sp, sip, sns), (cp, cip, cns) = vms["srv"], vms["cli"]
        fip = post("floatingips", {"floating_network_id": ext["id"], "port_id": sp["id"]})
        addr = fip["floating_ip_address"]
        t0 = time.perf_counter()
        assert srv.wait_for_agent(1800), backend.stats
        rows.append(("first sync", f"{a.ports} ports, {n_rules} rules",
                     f"{time.perf_counter() - t0:.1f} s", ""))
        lflows = L.sh("ovn-sbctl", f"--db={lab.sb}", "lflow-list").stdout.splitlines()
        by_stage: dict[str, int] = {}
        for line in lflows:
            if "table=" in line and "(" in line:
                st = line[line.index("(") + 1:line.index(")")].strip()
                by_stage[st] = by_stage.get(st, 0) + 1
        acl = sum(v for k, v in by_stage.items()
                  if k in ("ls_in_acl", "ls_out_acl", "ls_in_acl_after_lb"))
        top = sorted(by_stage.items(), key=lambda kv: -kv[1])[:4]
        rows.append(("logical flows", f"{sum(by_stage.values())} in all",
                     f"{acl} in the ACL stages",
                     "largest stages: " + ", ".join(f"{k} {v}" for k, v in top)))
        # rule create -> enforced through the floating IP; northd alone, then threaded
        daemons = Daemons(lab)
        vm_chassis = lab.chassis[-1]
        daemons.targets["controller"] = \
            f"{vm_chassis.run}/ovn-controller.{vm_chassis.pids['ovn-controller']}.ctl"
        northd = f"{lab.dir}/c/ovn-northd.ctl"
        port = 20000
        for threads, monitor_all in ((1, False), (a.threads, False), (a.threads, True)):
            L.sh("ovs-appctl", "-t", northd, "parallel-build/set-n-threads", str(threads))
            if monitor_all:
                for ch in lab.chassis:
                    ch.vsctl("set", "Open_vSwitch", ".", "external_ids:ovn-monitor-all=true")
                L.sh("ovn-nbctl", f"--db={lab.nb}", "--timeout=120", "--wait=hv", "sync")
            enforced, wrote, stages = [], [], []
            for i in range(a.samples + 1):   # the first warms up after the change
                if i == 1:
                    daemons.reset()
                    enforced, wrote, stages = [], [], []
                port += 1
                lab.serve(sns, port=port)
                sent = time.time() * 1000
                t0 = time.perf_counter()
                post("security-group-rules", {"security_group_id": web["id"],
                                              "direction": "ingress", "protocol": "tcp",
                                              "port_range_min": port, "port_range_max": port})
                first_connect(lab.upstream, addr, port)
                enforced.append(time.perf_counter() - t0)
                wrote.append(sum(backend.stats.write_timing.values()) / 1000)
                assert srv.wait_for_agent(120)
                stages.append(cfg_stages(lab, sent))
            n, nd95, ndmax = daemons.stopwatch("northd", "ovnnb_db_run")
            _, bl95, blmax = daemons.stopwatch("northd", "build_lflows")
            nl, lp95, lpmax = daemons.stopwatch("northd", "ovn-northd-loop")
            _, fg95, fgmax = daemons.stopwatch("controller", "flow-generation")
            _, fi95, fimax = daemons.stopwatch("controller", "flow-installation")
            engine = daemons.engine()
            rows.append(("rule create -> enforced (FIP, first conn.)",
                         f"{a.ports} ports, {n_rules} rules, northd threads {threads}"
                         + (", ovn-monitor-all" if monitor_all else ""),
                         ms(enforced), "target p50 <= 50 ms"))
            rows.append(("  floatip's pass that wrote the ACL", backend.stats.last_plan,
                         ms(wrote), ""))
            for i, what in enumerate(("API call -> gateway chassis' ovn-controller done",
                                      "API call -> VMs' chassis' ovn-controller done")):
                rows.append((f"  {what}", "", ms([x[i] / 1000 for x in stages]), ""))
            rows.append(("  ovn-northd: its loop / ovnnb_db_run / build_lflows",
                         f"{nl} loops, {n} NB runs",
                         f"p95 {lp95:.0f} / {nd95:.0f} / {bl95:.0f} ms, "
                         f"max {lpmax} / {ndmax} / {blmax} ms",
                         "recomputed: " + (", ".join(engine["northd"]["recompute"]) or "none")))
            rows.append(("  ovn-controller (VMs' chassis): flow-generation / -installation",
                         "", f"p95 {fg95:.0f} / {fi95:.0f} ms, max {fgmax} / {fimax} ms",
                         "recomputed: " + (", ".join(engine["controller"]["recompute"])
                                           or "none")))
        L.sh("ovs-appctl", "-t", northd, "parallel-build/set-n-threads", "1")
        for ch in lab.chassis:
            ch.vsctl("remove", "Open_vSwitch", ".", "external_ids", "ovn-monitor-all")
        L.sh("ovn-nbctl", f"--db={lab.nb}", "--timeout=120", "--wait=hv", "sync")
        # member add to the remote group "big" (a.ports members)
        lab.serve(sns, port=9000)
        post("security-group-rules", {"security_group_id": web["id"], "direction": "ingress",
                                      "protocol": "tcp", "port_range_min": 9000,
                                      "port_range_max": 9000, "remote_group_id": big["id"]})
        assert srv.wait_for_agent(120)
        adds, plans = [], set()
        for _ in range(max(5, a.samples // 2)):
            t0 = time.perf_counter()
            r = c.put(f"/v2.0/ports/{cp['id']}",
                      json={"port": {"security_groups": [web["id"], big["id"]]}})
            assert r.status_code == 200, r.text
            first_connect(cns, sip, 9000)
            adds.append(time.perf_counter() - t0)
            assert srv.wait_for_agent(120)
            plans.add(backend.stats.last_plan)
            r = c.put(f"/v2.0/ports/{cp['id']}", json={"port": {"security_groups": [web["id"]]}})
            assert r.status_code == 200, r.text
            until(lambda: not connects(cns, sip, 9000, 0.3))
            assert srv.wait_for_agent(120)
        rows.append((f"member add -> enforced (group of {a.ports})", "client joins",
                     ms(adds), "target p50 <= 20 ms"))
        rows.append(("  NB rows written per member add", "", "; ".join(sorted(plans)),
                     "the port group's ports: one row"))
    finally:
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)
        left = lab.close()
        if left:
            print("could not clean up:", left, file=sys.stderr)
    ovn = L.sh("ovn-nbctl", "--version").stdout.split()[1]
    print(f"\n### Security groups on OVN (OVN {ovn}, two chassis, netdev datapath)\n")
    print("| measure | setting | result | note |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
