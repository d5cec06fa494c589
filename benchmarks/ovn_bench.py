"""API create -> first TCP connection through a new floating IP, with N floating IPs already
in place, on the OVN backend (two chassis) and, beside it, on the kernel backend. Prints a
markdown table.

    .venv/bin/python benchmarks/ovn_bench.py [--fips 100,10000] [--kernel-fips 100] [--samples 10]

Root, OVS and OVN binaries (``make install``). The OVN side lives in an OvnLab (namespaces
and run directories prefixed ``--prefix``, default ``ovf``), the kernel side in
control_plane.py's bench (prefix ``fp``); both are removed at the end and their databases
thrown away. The first-TCP figure is measured the same way on both, with control_plane.py's
code: a POST floatingip with port_id, then a thread in the upstream namespace connecting to
the address until the VM answers. The N floating IPs already in place are made through the
API's bulk create (500 ports, then their 500 floating IPs, per request) and point at ports
bound nowhere; on OVN the VM sits on the chassis that is not the gateway and each sample
takes a fresh address.

Also on OVN: floatip's NB commit -> first TCP (OVN's own share: northd, ovn-controller,
ARP); the backend's pass times (the incremental pass that wrote the floating IP, and a full
pass); and what OVN's incremental processing did with one floating IP (``inc-engine/
show-stats`` of northd and the gateway's ovn-controller: which nodes recomputed everything
rather than computing the change) with their stopwatches.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(0, os.path.dirname(__file__))

import httpx  # noqa: E402

from api_clients import Connector  # noqa: E402
from control_plane import Bench, pct  # noqa: E402
from floatip import lab as L  # noqa: E402
from floatip.backends.local import LocalSource  # noqa: E402
from floatip.backends.ovn import OvnBackend, OvnConfig  # noqa: E402
from floatip.client import Client  # noqa: E402
from floatip.ovnlab import OvnLab  # noqa: E402
from floatip.server import Server, free_port  # noqa: E402

PORT = 8080
EXT = ipaddress.ip_network("100.72.0.0/16")
TENANT = "100.80.0.0/16"


def bulk_pairs(url: str, ext_id: str, net_id: str, n: int, batch: int = 500) -> float:
    """N port + floating IP pairs through the API's bulk create, ``batch`` per request (one
    change each for the backend to follow); seconds taken."""
    t0 = time.perf_counter()
    with httpx.Client(base_url=url, timeout=600) as c:
        for k in range(0, n, batch):
            size = min(batch, n - k)
            r = c.post("/v2.0/ports", json={"ports": [{"network_id": net_id}] * size})
            r.raise_for_status()
            r = c.post("/v2.0/floatingips", json={"floatingips": [
                {"floating_network_id": ext_id, "port_id": p["id"]} for p in r.json()["ports"]]})
            r.raise_for_status()
    return time.perf_counter() - t0


class Daemons:
    """What OVN's daemons say about their own work, northd and the gateway chassis'
    ovn-controller: which incremental-processing nodes recomputed everything rather than
    computing the change (``inc-engine/show-stats``), and their stopwatches."""

    def __init__(self, lab: OvnLab):
        gw = lab.gateway
        self.targets = {"northd": f"{lab.dir}/c/ovn-northd.ctl",
                        "controller": f"{gw.run}/ovn-controller.{gw.pids['ovn-controller']}.ctl"}

    def _ctl(self, who: str, *cmd: str) -> str:
        return L.sh("ovs-appctl", "-t", self.targets[who], *cmd).stdout

    def reset(self) -> None:
        for who in self.targets:
            self._ctl(who, "inc-engine/clear-stats")
            self._ctl(who, "stopwatch/reset")

    def engine(self) -> dict[str, dict[str, list[str]]]:
        """who -> {"recompute": nodes, "compute": nodes} since ``reset`` (input nodes left
        out: they always "recompute", i.e. read their table)."""
        out = {}
        for who in self.targets:
            nodes = re.findall(r"Node: (\S+)\n- recompute:\s+(\d+)\n- compute:\s+(\d+)",
                               self._ctl(who, "inc-engine/show-stats"))
            inner = [(n, int(r), int(c)) for n, r, c in nodes
                     if not n.startswith(("NB_", "SB_", "OVS_"))]
            out[who] = {"recompute": [n for n, r, _ in inner if r],
                        "compute": [n for n, r, c in inner if c and not r]}
        return out

    def stopwatch(self, who: str, name: str) -> tuple[int, float, int]:
        """(samples, 95th percentile ms, maximum ms) since ``reset``."""
        text = self._ctl(who, "stopwatch/show", name)
        m = re.search(r"Total samples: (\d+)\s+Maximum: (\d+) msec.*?"
                      r"95th percentile: ([\d.]+) msec", text, re.S)
        return (int(m.group(1)), float(m.group(3)), int(m.group(2))) if m else (0, 0.0, 0)


def _hv_watch(backend, t0: float, box: list) -> None:
    """When every chassis caught up with floatip's first NB write after ``t0`` (what
    ``ovn-nbctl --wait=hv`` waits for)."""
    while time.perf_counter() - t0 < 30:
        st = backend.stats
        if st.last_write_at > t0 and backend.nb.cfg()[1] >= st.nb_cfg:
            box.append(time.perf_counter())
            return
        time.sleep(0.002)


def ovn(n: int, samples: int, prefix: str) -> dict:
    lab = OvnLab(prefix, upstream_cidr=f"{EXT.network_address + 1}/{EXT.prefixlen}").start()
    tmp = tempfile.mkdtemp(prefix=f"{prefix}-bench-")
    srv = Server(f"sqlite:///{tmp}/floatip.db", f"127.0.0.1:{free_port()}", agent=False)
    backend = srv.backend = OvnBackend(LocalSource(srv.db), OvnConfig(
        lab.nb, lab.sb, owner=f"floatip@{lab.tag}", interval=3600))
    srv.db.resync_listeners.append(backend.request_full)
    srv.start()
    out: dict = {}
    passes: list[tuple[str, float]] = []
    try:
        with Client(srv.url) as c:
            up = str(EXT.network_address + 1)
            hosts = list(EXT.hosts())
            ext = c.create("network", name="ext", **{"router:external": True,
                                                     "provider:network_type": "flat",
                                                     "provider:physical_network": "physnet1"})
            # the last 1,000 addresses stay out of the pool: the samples' fresh addresses
            c.create("subnet", network_id=ext["id"], cidr=str(EXT), gateway_ip=up,
                     enable_dhcp=False,
                     allocation_pools=[{"start": str(hosts[9]), "end": str(hosts[-1000])}])
            net = c.create("network", name="ten")
            sub = c.create("subnet", network_id=net["id"], cidr=TENANT, enable_dhcp=False)
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
            assert srv.wait_for_agent(120)
            made = bulk_pairs(srv.url, ext["id"], net["id"], n)
            t0 = time.perf_counter()
            assert srv.wait_for_agent(1800), backend.stats
            out["pairs"] = (made, time.perf_counter() - t0)
            conn = Connector(lab.upstream)
            backend.on_pass = lambda kind, s: passes.append((kind, s, dict(backend.stats.timing)))
            daemons = Daemons(lab)
            daemons.reset()
            tcp, share, wrote, hv = [], [], [], []
            for i in range(samples):
                address = str(hosts[-1 - i])   # fresh each time: no ARP cached upstream
                t0 = time.perf_counter()
                caught_up: list[float] = []
                watch = threading.Thread(target=_hv_watch, args=(backend, t0, caught_up))
                watch.start()
                f = c.create("floatingip", floating_network_id=ext["id"],
                             port_id=vm_port["id"], floating_ip_address=address)
                t1 = conn.first_connect(address, PORT, timeout=30)
                watch.join()
                if t1 is not None:
                    tcp.append(t1 - t0)
                    share.append(t1 - backend.stats.last_write_at)
                    wrote.append(dict(backend.stats.write_timing))
                if caught_up:
                    hv.append(caught_up[0] - backend.stats.last_write_at)
                if i == 0:   # what one floating IP made OVN do
                    assert srv.wait_for_agent(120)
                    out["engine"] = daemons.engine()
                c.delete("floatingip", f["id"])
                assert srv.wait_for_agent(120)
            incremental = [(s, t) for k, s, t in passes if k == "incremental"]
            out.update(tcp=tcp, share=share, wrote=wrote, hv=hv,
                       incremental=[s for s, _ in incremental],
                       slowest=max(incremental, key=lambda x: x[0], default=(0, {}))[1],
                       northd=daemons.stopwatch("northd", "ovnnb_db_run"),
                       flows=daemons.stopwatch("controller", "flow-generation"))
            full = backend.stats.full_passes
            backend.request_full()
            while backend.stats.full_passes == full:
                time.sleep(0.05)
            out["full"] = backend.stats.seconds["full"]
            out["full_steps"] = dict(backend.stats.timing)
    finally:
        srv.close()
        shutil.rmtree(tmp, ignore_errors=True)
        left = lab.close()
        if left:
            print("could not clean up:", left, file=sys.stderr)
    return out


def kernel(n: int, samples: int) -> dict:
    """control_plane.py's bench: its set-up and its first-TCP step, the N pairs made as
    on OVN (bulk)."""
    b = Bench(argparse.Namespace(routers=1, fips=n, samples=samples, tcp_samples=samples,
                                 interval=30.0, db=None))
    try:
        b.setup()
        r, net, _ = b.routers[0]
        made = bulk_pairs(b.server.url, b.ext["id"], net["id"], n)
        t0 = time.perf_counter()
        assert b.server.wait_for_agent(1800)
        synced = time.perf_counter() - t0
        b.first_tcp()
    finally:
        b.close()
    tcp = next(v for name, v, _ in b.results if name.startswith("API create (port_id)"))
    return {"pairs": (made, synced), "tcp": tcp}


def _ms(values, p) -> str:
    return f"{pct(values, p) * 1000:.0f}" if values else "-"


def _steps(timings: list[dict]) -> str:
    keys = sorted({k for t in timings for k in t})
    return ", ".join(f"{k} {pct([t.get(k, 0.0) for t in timings], 50):.1f}" for k in keys)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fips", default="100,10000")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--prefix", default="ovf")
    # the kernel at 10,000 is control_plane.py's own run in ``make bench`` (20 min here
    # to build through the API twice is too long for one bench)
    ap.add_argument("--kernel-fips", default="100", help="sizes for the kernel ('' none)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.fips.split(",") if x]
    ksizes = [int(x) for x in args.kernel_fips.split(",") if x]
    res, kres, load = {}, {}, {}
    for n in sizes:
        res[n] = ovn(n, args.samples, args.prefix)
        load[n] = os.getloadavg()[0]
        print(f"# OVN, {n}: {res[n]}", file=sys.stderr)
    for n in ksizes:
        kres[n] = kernel(n, args.samples)
        print(f"# kernel, {n}: {kres[n]}", file=sys.stderr)
    cols = [f"OVN, {n:,} FIPs" for n in sizes] + [f"kernel, {n:,} FIPs" for n in kres]
    print("| | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))

    def row(name, ovn_cell, kernel_cell=lambda k: ""):
        print(f"| {name} | " + " | ".join([ovn_cell(res[n]) for n in sizes] +
                                          [kernel_cell(kres[n]) for n in kres]) + " |")
    row("API create (port_id) → first TCP through the FIP, p50 / max (ms; kernel: p50 / p99)",
        lambda r: f"{_ms(r['tcp'], 50)} / {_ms(r['tcp'], 100)}",
        lambda k: k["tcp"].replace(" ms", ""))
    row("of which floatip's NB commit → first TCP (OVN's share), p50 / max (ms)",
        lambda r: f"{_ms(r['share'], 50)} / {_ms(r['share'], 100)}")
    row("of which NB commit → every chassis caught up (hv_cfg, `--wait=hv`), p50 / max (ms)",
        lambda r: f"{_ms(r['hv'], 50)} / {_ms(r['hv'], 100)}")
    row("the backend pass that wrote the FIP, p50 (ms)",
        lambda r: f"{pct([sum(t.values()) for t in r['wrote']], 50):.1f} ({_steps(r['wrote'])})")
    row("every incremental pass during the samples, p50 / max (ms)",
        lambda r: f"{_ms(r['incremental'], 50)} / {_ms(r['incremental'], 100)}"
        if r["incremental"] else "-")
    row("the slowest incremental pass during the samples (ms per step)",
        lambda r: ", ".join(f"{k} {v:.0f}" for k, v in r["slowest"].items() if v >= 1) or "-")
    row("a full pass, nothing to change (ms)",
        lambda r: f"{r['full'] * 1000:.0f} (" + ", ".join(
            f"{k} {v:.0f}" for k, v in r["full_steps"].items() if v >= 1) + ")")
    row("northd: NB change handled (ovnnb_db_run), runs / p95 / max (ms)",
        lambda r: "{} / {:.0f} / {}".format(*r["northd"]))
    row("gateway ovn-controller: flow-generation, runs / p95 / max (ms)",
        lambda r: "{} / {:.0f} / {}".format(*r["flows"]))
    row("one FIP: northd nodes that recomputed / computed incrementally",
        lambda r: f"{', '.join(r['engine']['northd']['recompute']) or '-'} / "
                  f"{', '.join(r['engine']['northd']['compute']) or '-'}")
    row("one FIP: gateway ovn-controller nodes that recomputed / computed incrementally",
        lambda r: f"{', '.join(r['engine']['controller']['recompute']) or '-'} / "
                  f"{', '.join(r['engine']['controller']['compute']) or '-'}")
    row("N pairs by bulk create (s); then until the backend (and chassis) caught up (s)",
        lambda r: f"{r['pairs'][0]:.1f}; {r['pairs'][1]:.1f}",
        lambda k: f"{k['pairs'][0]:.1f}; {k['pairs'][1]:.1f}")
    print("\nload average (1 min) after each OVN size: " +
          ", ".join(f"{n:,}: {load[n]:.1f}" for n in sizes))


if __name__ == "__main__":
    main()
