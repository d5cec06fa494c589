"""The OVN backend on two chassis: API create -> first TCP connection through the new floating
IP, with N floating IPs already in place; and N floating IPs created through the API one
after the other -> every chassis caught up. Prints a markdown table.

    .venv/bin/python benchmarks/ovn_bench.py [--fips 100] [--samples 10]

Root, OVS and OVN binaries (``make install``). Everything lives in an OvnLab (namespaces and
run directories prefixed ``fo``), removed at the end. The VM sits on the chassis that is not
the gateway; the other N floating IPs point at ports bound nowhere (NAT rows all the same).
The probe: from the upstream namespace, a fresh TCP connect every ~2 ms (50 ms timeout each)
to the floating IP, in a process of its own started the moment the POST returns.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from floatip import lab as L  # noqa: E402
from floatip.backends.local import LocalSource  # noqa: E402
from floatip.backends.ovn import OvnBackend, OvnConfig  # noqa: E402
from floatip.client import Client  # noqa: E402
from floatip.ovnlab import OvnLab  # noqa: E402
from floatip.server import Server, free_port  # noqa: E402

PORT = 8080


# The probe runs in a process of its own inside the upstream namespace, started before the
# POST and told the address on stdin once it returns, so that it neither competes for the GIL
# with the backend it measures nor pays its start-up in the figure; it prints
# CLOCK_MONOTONIC (system-wide) at success.
PROBE = """
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
ip = sys.stdin.readline().strip()
t_end = time.monotonic() + limit
while time.monotonic() < t_end:
    s = socket.socket()
    s.settimeout(0.05)
    try:
        s.connect((ip, port))
        print(time.monotonic())
        sys.exit(0)
    except OSError:
        time.sleep(0.002)
    finally:
        s.close()
sys.exit(1)
"""


def start_probe(ns: str, deadline_s: float = 20.0) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", PROBE,
                             str(PORT), str(deadline_s)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def first_tcp(probe: subprocess.Popen, address: str, t0: float) -> float:
    out, _ = probe.communicate(address + "\n", timeout=30)
    if probe.returncode:
        raise RuntimeError("no TCP connection through the floating IP")
    return float(out) - t0


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fips", type=int, default=100)
    ap.add_argument("--samples", type=int, default=10)
    args = ap.parse_args()
    n = args.fips
    ext_net = ipaddress.ip_network("100.72.0.0/16" if n > 200 else "203.0.113.0/24")
    up_ip = str(ext_net.network_address + 1)
    lab = OvnLab("fo", upstream_cidr=f"{up_ip}/{ext_net.prefixlen}").start()
    tmp = tempfile.mkdtemp(prefix="fo-bench-")
    srv = Server(f"sqlite:///{tmp}/floatip.db", f"127.0.0.1:{free_port()}", agent=False)
    backend = srv.backend = OvnBackend(LocalSource(srv.db), OvnConfig(
        lab.nb, lab.sb, owner=f"floatip@{lab.tag}"))
    srv.db.resync_listeners.append(backend.request_full)
    srv.start()
    rows = []
    try:
        with Client(srv.url) as c:
            ext = c.create("network", name="ext", **{"router:external": True,
                                                     "provider:network_type": "flat",
                                                     "provider:physical_network": "physnet1"})
            hosts = list(ext_net.hosts())
            c.create("subnet", network_id=ext["id"], cidr=str(ext_net), gateway_ip=up_ip,
                     allocation_pools=[{"start": str(hosts[9]), "end": str(hosts[-1])}])
            net = c.create("network", name="ten")
            sub = c.create("subnet", network_id=net["id"], cidr="10.0.0.0/16")
            router = c.create("router", name="r", external_gateway_info={"network_id": ext["id"]})
            c.add_interface(router["id"], subnet_id=sub["id"])
            vm_port = c.create("port", network_id=net["id"], name="vm")
            vm_ip = vm_port["fixed_ips"][0]["ip_address"]
            vm = lab.vm("vm", 1, vm_port["id"], vm_port["mac_address"], f"{vm_ip}/16",
                        sub["gateway_ip"])
            lab.serve(vm, port=PORT)
            # the upstream retries ARP every 10 ms rather than every second, so the figure
            # is OVN's rather than the neighbour table's retransmit timer
            L.sh("ip", "netns", "exec", lab.upstream, "sysctl", "-qw",
                 "net.ipv4.neigh.br0.retrans_time_ms=10")
            # N floating IPs, one POST each, then wait for every chassis
            others = [c.create("port", network_id=net["id"], name=f"p{i}") for i in range(n)]
            t0 = time.perf_counter()
            for p in others:
                c.create("floatingip", floating_network_id=ext["id"], port_id=p["id"])
            posted = time.perf_counter() - t0
            assert srv.wait_for_agent(300)
            bulk = time.perf_counter() - t0
            rows.append(f"| {n} FIPs, one POST each, until every chassis caught up | "
                        f"{bulk:.2f} s (POSTs alone {posted:.2f} s) |")
            # create + associate one more: time to the first TCP connection through it
            samples, timings, ovn_part = [], [], []
            for i in range(args.samples):
                address = str(hosts[-1 - i])   # a fresh address each time: no cached ARP
                probe = start_probe(lab.upstream)
                time.sleep(0.3)                 # its start-up is over before the POST
                t0 = time.perf_counter()
                f = c.create("floatingip", floating_network_id=ext["id"], port_id=vm_port["id"],
                             floating_ip_address=address)
                api = time.perf_counter() - t0
                samples.append((api, first_tcp(probe, address, time.monotonic())))
                # OVN's share: from floatip's NB commit to the first connection
                ovn_part.append(time.monotonic() - backend.stats.last_write_at)
                timings.append(dict(backend.stats.write_timing))
                c.delete("floatingip", f["id"])
                assert srv.wait_for_agent(60)
            tcp = [s[1] * 1000 for s in samples]
            api = [s[0] * 1000 for s in samples]
            rows.append(f"| POST /floatingips (with port) at {n} FIPs, p50 / max | "
                        f"{pct(api, 50):.1f} / {max(api):.1f} ms |")
            rows.append(f"| POST returned -> first TCP connection through the FIP at {n} FIPs,"
                        f" p50 / max over {len(tcp)} | {pct(tcp, 50):.0f} / {max(tcp):.0f} ms |")
            st = backend.stats
            ovn = [x * 1000 for x in ovn_part]
            rows.append(f"| of which NB commit -> first TCP (northd, ovn-controller, ARP), "
                        f"p50 / max | {pct(ovn, 50):.0f} / {max(ovn):.0f} ms |")
            rows.append(f"| OVN backend passes / NB writes / last pass | {st.passes} / "
                        f"{st.writes} / {st.last_seconds * 1000:.1f} ms |")
            rows.append(f"| mean first TCP | {statistics.mean(tcp):.0f} ms |")
            steps = sorted({k for t in timings for k in t})
            rows.append("| pass steps after the POST (ms, p50) | " + ", ".join(
                f"{k} {statistics.median([t.get(k, 0) for t in timings]):.1f}" for k in steps)
                + " |")
            from floatip.cli.demo_api import remove_all
            remove_all(c)
            srv.wait_for_agent(120)
    finally:
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)
        left = lab.close()
        if left:
            print("could not clean up:", left, file=sys.stderr)
    print("| OVN backend, 2 chassis (netdev datapath), VM on the non-gateway chassis | |")
    print("|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
