#!/usr/bin/env python3
"""How fast a new VM configures itself: port create (API) -> DHCP lease (ISC dhclient in the
VM's namespace, answered by the agent's dnsmasq) -> first metadata answer (169.254.169.254
through the router's proxy).

One throw-away server (API + agent, SQLite) with a router, then N VMs one after the other:
create the port and a floating IP, plug the namespace by iface-id (as libvirt does), run
dhclient, then GET /latest/meta-data/instance-id until it answers 200. Prints a markdown
table (p50, p90, max in ms). Everything is named fd<random> and removed at the end.

    sudo .venv/bin/python benchmarks/dhcp_boot.py [-n 10]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import os
import shutil
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from floatip import lab as L  # noqa: E402
from floatip.agent import binding  # noqa: E402
from floatip.client import Client  # noqa: E402
from floatip.cli.demo_api import remove_all  # noqa: E402
from floatip.core.layout import AgentConfig  # noqa: E402
from floatip.dataplane.ovs import datapath_type  # noqa: E402
from floatip.server import Server, free_port  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10, help="VMs booted one after the other")
    args = ap.parse_args()
    s = uuid.uuid4().hex[:5]
    lab = L.Lab(datapath_type())
    tmp = f"/run/fd-bench-{s}"  # dnsmasq reads its files as nobody: not a 0700 temp dir
    os.makedirs(tmp, mode=0o755)
    int_br, ex_br = lab.bridge(f"fd{s}i"), lab.bridge(f"fd{s}e")
    srv = Server(f"sqlite:///{tmp}/floatip.db", f"127.0.0.1:{free_port()}",
                 AgentConfig(int_br, {"physnet1": ex_br}), prune_scope="known",
                 agent_options={"run_dir": tmp}).start()
    c = Client(srv.url)
    times: dict[str, list[float]] = {"create -> lease": [], "plug -> lease": [],
                                     "create -> metadata": []}
    try:
        ext = c.create("network", **{"name": f"fd{s}-ext", "router:external": True,
                                   "provider:network_type": "flat",
                                   "provider:physical_network": "physnet1"})
        c.create("subnet", **{"network_id": ext["id"], "cidr": "203.0.113.0/24",
                            "gateway_ip": "203.0.113.1", "enable_dhcp": False})
        net = c.create("network", **{"name": f"fd{s}-ten"})
        sub = c.create("subnet", **{"network_id": net["id"], "cidr": "198.51.100.0/24"})
        router = c.create("router", **{"name": f"fd{s}-r",
                                     "external_gateway_info": {"network_id": ext["id"]}})
        c.add_interface(router["id"], subnet_id=sub["id"])
        srv.wait_for_agent(60)
        subnets = {sub["id"]: sub}
        for i in range(args.n):
            ns = f"fd{s}v{i}"
            L.sh("ip", "netns", "add", ns)
            lab.namespaces.append(ns)
            t0 = time.monotonic()
            port = c.create("port", **{"network_id": net["id"], "name": f"vm{i}",
                                     "device_id": str(uuid.uuid4())})
            c.create("floatingip", **{"floating_network_id": ext["id"], "port_id": port["id"]})
            binding.plug(port, subnets, ns, int_br, addresses=False)
            t_plug = time.monotonic()
            ip = lab.dhcp(ns)
            t_lease = time.monotonic()
            if ip != port["fixed_ips"][0]["ip_address"]:
                print(f"vm{i}: got {ip}, wanted {port['fixed_ips'][0]['ip_address']}")
                return 1
            while L.http_get(ns, "169.254.169.254", "/latest/meta-data/instance-id",
                             timeout=1)[0] != 200:
                if time.monotonic() - t_lease > 30:
                    print(f"vm{i}: no metadata answer")
                    return 1
                time.sleep(0.01)
            t_meta = time.monotonic()
            times["create -> lease"].append(t_lease - t0)
            times["plug -> lease"].append(t_lease - t_plug)
            times["create -> metadata"].append(t_meta - t0)
        print(f"{args.n} VMs booted one after the other ({datapath_type()} datapath)\n")
        print("| measurement | p50 ms | p90 ms | max ms |")
        print("|---|---|---|---|")
        for k, v in times.items():
            print(f"| {k} | {statistics.median(v) * 1000:.0f} | {pct(v, 0.9) * 1000:.0f} "
                  f"| {max(v) * 1000:.0f} |")
        return 0
    finally:
        try:
            for p in c.list("port", device_owner=""):
                binding.unplug(p["id"], int_br)
            remove_all(c)
            srv.wait_for_agent(60)
        finally:
            srv.close()
            left = lab.cleanup()
            if left:
                print("could not remove:", left)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
