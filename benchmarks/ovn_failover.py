#!/usr/bin/env python3
"""OVN: gateway failover under traffic, and how fast a new VM boots (issue 23).

One OvnLab with three chassis, the first two gateways (the router's gateway port scheduled
on both with priorities: OVN runs BFD between them and the other chassis), the VM on the
third. The API server with the OVN backend in this process.

Failover, per BFD setting (OVN's defaults, then ``NB_Global options:bfd-min-rx/-min-tx``
lowered): the upstream host pings the floating IP every 10 ms and holds a TCP connection
through it; the active gateway chassis is killed (ovs-vswitchd and ovn-controller stop, its
BFD goes silent). Measured: the longest gap between answers (the loss in seconds), whether
the TCP connection still echoes afterwards; then the chassis comes back: the gap while OVN
moves the port back to the higher priority, and how often the gateway port changed chassis
in the 10 s after it settled (0: nothing flaps).

Boot: N VMs one after the other on the non-gateway chassis: port create (API) -> DHCP lease
(ISC dhclient, OVN's native DHCP) -> first metadata answer (169.254.169.254 through the
chassis' ``floatip ovn-metadata`` namespace); beside it the kernel backend's figure from
dhcp_boot.py in the same run.

Beside the failover table, the kernel backend's restart figure measured in the same run
(run.py's ``restart``: a new agent process facing R routers x F floating IPs already in
place, nothing to change; about 10 s): what the kernel backend's "failover" of its agent
costs. Prints markdown tables. Everything is named ovx<random> (the kernel's fb<random>).

    sudo .venv/bin/python benchmarks/ovn_failover.py [-n 10] [--no-kernel] [--restart R F]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from floatip import lab as L  # noqa: E402
from floatip.backends.ovn import OvnConfig  # noqa: E402
from floatip.backends.ovn.metadata import OvnMetadataAgent  # noqa: E402
from floatip.backends.remote import RemoteSource  # noqa: E402
from floatip.cli.demo_api import remove_all  # noqa: E402
from floatip.client import Client  # noqa: E402
from floatip.ovnlab import GatewayWatch, OvnLab, Pinger  # noqa: E402
from floatip.server import Server, free_port  # noqa: E402

PORT = 8080
TUNED = {"bfd-min-rx": "100", "bfd-min-tx": "100", "bfd-mult": "3"}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p * (len(values) - 1))))]


def wait(fn, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {what}")
        time.sleep(0.05)


def failover(lab: OvnLab, upstream_fip: str, vm: str, binding: GatewayWatch,
             bfd: dict) -> dict:
    nb = f"--db={lab.nb}"
    if bfd:
        L.sh("ovn-nbctl", nb, "set", "NB_Global", ".",
             *[f"options:{k}={v}" for k, v in bfd.items()])
    else:
        L.sh("ovn-nbctl", nb, "remove", "NB_Global", ".", "options", *TUNED)
    time.sleep(3)   # ovn-controller applies the BFD settings to its tunnels
    active = binding.now()
    ch = next(c for c in lab.chassis if c.name == active)
    srv = L.TcpServer(vm, "0.0.0.0", PORT)
    client = L.TcpClient(lab.upstream, upstream_fip, PORT, timeout=5)
    client.sock.settimeout(15)
    ping = Pinger(lab.upstream, upstream_fip)
    out: dict = {}
    try:
        wait(lambda: len(ping.times) > 50, 10, "pings answered before the kill")
        t_kill = time.time()
        lab.stop_chassis(ch)
        wait(lambda: ping.times and ping.times[-1] > t_kill + 0.5, 60, "answers again")
        time.sleep(1)
        out["loss"] = ping.gap(t_kill)
        out["moved"] = next((t - t_kill for t, c in binding.changes
                             if t > t_kill and c and c != active), None)
        out["tcp"] = client.echo("after-failover")
        # the chassis comes back: OVN moves the port back to the higher priority
        t_back = time.time()
        lab.restart_chassis(ch)
        wait(lambda: binding.now() == active, 60, "the port back on the first chassis")
        t_home = time.time()
        time.sleep(10)
        out["return_loss"] = ping.gap(t_back)
        out["flaps"] = sum(1 for t, _ in binding.changes if t > t_home + 0.1)
        out["tcp_after_return"] = client.echo("after-return")
    finally:
        ping.stop()
        client.close()
        srv.close()
    return out


def boot(c: Client, lab: OvnLab, net: dict, n: int, tag: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"create -> lease": [], "create -> metadata": []}
    for i in range(n):
        t0 = time.monotonic()
        port = c.create("port", network_id=net["id"], name=f"boot{i}",
                        device_id=str(uuid.uuid4()))
        ns = lab.vm(f"b{i}", -1, port["id"], port["mac_address"])
        got = lab.dhcp(ns)
        t_lease = time.monotonic()
        if got is None or got["new_ip_address"] != port["fixed_ips"][0]["ip_address"]:
            raise RuntimeError(f"boot{i}: no lease ({lab.dhcp_error})")
        while L.http_get(ns, "169.254.169.254", "/latest/meta-data/instance-id",
                         timeout=1)[0] != 200:
            if time.monotonic() - t_lease > 30:
                raise RuntimeError(f"boot{i}: no metadata answer")
            time.sleep(0.01)
        times["create -> lease"].append(t_lease - t0)
        times["create -> metadata"].append(time.monotonic() - t0)
    return times


def kernel_restart(routers: int, fips: int) -> dict:
    """run.py's restart measurement (nftables, the default driver), the same code as in
    its table."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run import OUT, Bench   # benchmarks/run.py
    OUT.mkdir(exist_ok=True)   # its child process reads the state from a file there
    return Bench(argparse.Namespace(restart=[routers, fips])).restart("nftables")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=10, help="VMs booted one after the other")
    ap.add_argument("--no-kernel", action="store_true",
                    help="skip the kernel figures (restart, dhcp_boot.py)")
    ap.add_argument("--restart", nargs=2, type=int, default=[100, 100], metavar=("R", "F"),
                    help="the kernel restart measurement's routers and floating IPs each")
    args = ap.parse_args()
    # before the OVN lab: the kernel agent alone on the machine, as in run.py
    restart = None if args.no_kernel else kernel_restart(*args.restart)
    lab = OvnLab("ovx", chassis=3, gateways=2)
    tmp = tempfile.mkdtemp(prefix="ovx-")
    lab.start()
    srv = agent = None
    try:
        srv = Server(f"sqlite:///{tmp}/floatip.db", f"127.0.0.1:{free_port()}", backend="ovn",
                     ovn=OvnConfig(lab.nb, lab.sb, owner=f"floatip@{lab.tag}")).start()
        agent = OvnMetadataAgent(RemoteSource(srv.url), lab.sb, os.path.join(lab.dir, "meta"),
                                 ovs=lab.chassis[-1].db, ovs_netns=lab.chassis[-1].ns,
                                 chassis=lab.chassis[-1].name,
                                 ns_prefix=f"{lab.chassis[-1].ns}-meta-").start()
        c = Client(srv.url)
        ext = c.create("network", **{"name": "ext", "router:external": True,
                                     "provider:network_type": "flat",
                                     "provider:physical_network": "physnet1"})
        c.create("subnet", network_id=ext["id"], cidr="203.0.113.0/24",
                 gateway_ip="203.0.113.1", enable_dhcp=False)
        net = c.create("network", name="ten")
        sub = c.create("subnet", network_id=net["id"], cidr="198.51.100.0/24")
        router = c.create("router", name="r", external_gateway_info={"network_id": ext["id"]})
        c.add_interface(router["id"], subnet_id=sub["id"])
        port = c.create("port", network_id=net["id"], name="vm")
        fip = c.create("floatingip", floating_network_id=ext["id"], port_id=port["id"])
        ip = port["fixed_ips"][0]["ip_address"]
        vm = lab.vm("vm", -1, port["id"], port["mac_address"], f"{ip}/24", "198.51.100.1")
        assert srv.wait_for_agent(60)
        gw = c.list("port", device_owner="network:router_gateway")[0]["id"]
        binding = GatewayWatch(lab, f"lrp-{gw}")
        wait(lambda: L.ping(lab.upstream, fip["floating_ip_address"], timeout=0.5), 60,
             "the floating IP answers")
        results = {}
        for name, bfd in (("OVN's BFD defaults (1 s x 3)", {}),
                          ("BFD 100 ms x 3 (NB_Global options)", TUNED)):
            results[name] = failover(lab, fip["floating_ip_address"], vm, binding, bfd)
        binding.close()
        times = boot(c, lab, net, args.n, lab.tag)
        print("\nGateway failover, two gateway chassis, ping every 10 ms through the "
              "floating IP (OVN " + L.sh("ovn-northd", "--version").stdout.split()[1] + ")\n")
        print("| BFD | loss on failover s | port moved after s | TCP survives | "
              "loss when it comes back s | flaps in 10 s after | TCP after |")
        print("|---|---|---|---|---|---|---|")
        for name, r in results.items():
            moved = f"{r['moved']:.2f}" if r["moved"] is not None else "-"
            print(f"| {name} | {r['loss']:.2f} | {moved} | {'yes' if r['tcp'] else 'no'} | "
                  f"{r['return_loss']:.2f} | {r['flaps']} | "
                  f"{'yes' if r['tcp_after_return'] else 'no'} |")
        if restart is not None:
            print(f"\nKernel backend, same run (benchmarks/run.py's restart, nftables): a new "
                  f"agent facing {restart['routers']} routers x {restart['fips_each']} floating "
                  f"IPs, nothing to change: {restart['restart_s']:.2f} s "
                  f"({restart['restart_process_s']:.2f} s with process start and imports), "
                  f"{restart['restart_writes']} writes")
        print(f"\n{args.n} VMs booted one after the other on OVN (the non-gateway chassis)\n")
        print("| measurement | p50 ms | p90 ms | max ms |")
        print("|---|---|---|---|")
        for k, v in times.items():
            print(f"| OVN {k} | {statistics.median(v) * 1000:.0f} | {pct(v, 0.9) * 1000:.0f} "
                  f"| {max(v) * 1000:.0f} |")
        sys.stdout.flush()
    finally:
        try:
            if agent is not None:
                agent.stop()
            if srv is not None:
                try:
                    remove_all(Client(srv.url))
                    srv.wait_for_agent(30)
                finally:
                    srv.close()
        finally:
            left = lab.close()
            shutil.rmtree(tmp, ignore_errors=True)
            if left:
                print("could not remove:", left)
    if not args.no_kernel:   # the kernel backend's figure, same run
        print("\nThe kernel backend, same run (benchmarks/dhcp_boot.py):\n", flush=True)
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dhcp_boot.py"),
                               "-n", str(args.n)]).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
