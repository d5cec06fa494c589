"""The control plane at scale (issue 8's targets): a real server with its agent on
throw-away bridges and namespaces (prefix ``fp``, removed at the end), SQLite by default.

    .venv/bin/python benchmarks/control_plane.py --routers 1 --fips 10000
    .venv/bin/python benchmarks/control_plane.py --routers 100 --fips 10000   # 100 x 100

Measured, in this order, and printed as a markdown table:
  1. N port + floating IP pairs (port_id set) created by 8 clients; time from the last
     create until every floating IP is ACTIVE;
  2. POST floatingip (allocate only) with the agent running, sequential: p50/p99;
  3. GET /v2.0/floatingips (all N) and ``?limit=10``: p50;
  4. API create (port_id set) -> first TCP connection through the floating IP succeeds,
     from an upstream namespace to a VM namespace listening on 8080: p50/p99;
  5. API writes (PUT floatingip) while a full pass runs: max and p99;
  6. deleting every pair with 8 clients: total time.
Needs root and OVS. ``FP_TRACE=1`` prints each first-TCP sample's timeline (POST, connect
attempts that failed, the agent's pass and its phases, in ms after the POST was sent).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import httpx  # noqa: E402
import api_clients  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from floatip import lab as L, store as S  # noqa: E402
from floatip.agent import binding  # noqa: E402
from floatip.core.layout import AgentConfig  # noqa: E402
from floatip.dataplane.ovs import datapath_type  # noqa: E402
from floatip.server import Server, free_port  # noqa: E402

UPSTREAM = "100.64.0.1"
OUT = Path(__file__).resolve().parent.parent / "bench-out"


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))] if s else float("nan")


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


class Bench:
    def __init__(self, args):
        self.args = args
        sfx = args.prefix + uuid.uuid4().hex[:4]
        self.lab = L.Lab(datapath_type())
        self.int_br, self.ex_br = f"{sfx}bi", f"{sfx}be"
        self.upstream = f"{sfx}bu"
        self.vm_ns = f"{sfx}bv"
        self.config = AgentConfig(self.int_br, {"physnet1": self.ex_br})
        self.lab.bridge(self.int_br)
        self.lab.bridge(self.ex_br)
        self.lab.host(self.upstream, self.ex_br, f"{sfx}bu0", f"{UPSTREAM}/16")
        self.tmp = tempfile.mkdtemp(prefix="fp-bench-")
        db = args.db or f"sqlite:///{self.tmp}/floatip.db"
        # DHCP off: the control plane is measured, not dnsmasq
        self.server = Server(db, f"127.0.0.1:{free_port()}", self.config, prune_scope="known",
                             interval=args.interval, agent_process=args.agent_process,
                             agent_options={"dhcp": False, "metadata": False}).start()
        self.c = httpx.Client(base_url=self.server.url, timeout=120)
        self.results: list[tuple[str, str, str]] = []
        self.key: dict[str, float] = {}  # the target measures, for the table of all sizes

    def post(self, c, kind, body):
        r = c.post(f"/v2.0/{kind}s", json={kind: body})
        r.raise_for_status()
        return r.json()[kind]

    def setup(self):
        c, a = self.c, self.args
        self.ext = self.post(c, "network", {"name": "fp-ext", "router:external": True,
                                            "provider:network_type": "flat",
                                            "provider:physical_network": "physnet1"})
        self.post(c, "subnet", {"network_id": self.ext["id"], "cidr": "100.64.0.0/16",
                                "gateway_ip": UPSTREAM, "enable_dhcp": False,
                                "allocation_pools": [{"start": "100.64.1.0",
                                                      "end": "100.64.255.254"}]})
        self.routers = []
        for i in range(a.routers):
            cidr = "100.80.0.0/16" if a.routers == 1 else f"100.80.{i}.0/24"
            net = self.post(c, "network", {"name": f"fp-n{i}"})
            sub = self.post(c, "subnet", {"network_id": net["id"], "cidr": cidr,
                                          "enable_dhcp": False})
            r = self.post(c, "router", {"name": f"fp-r{i}",
                                        "external_gateway_info": {"network_id": self.ext["id"]}})
            c.put(f"/v2.0/routers/{r['id']}/add_router_interface",
                  json={"subnet_id": sub["id"]}).raise_for_status()
            self.routers.append((r, net, sub))
        r, net, sub = self.routers[0]
        L.sh("ip", "netns", "add", self.vm_ns)
        self.lab.namespaces.append(self.vm_ns)
        self.vm = self.post(c, "port", {"network_id": net["id"], "name": "fp-vm"})
        binding.plug(self.vm, {sub["id"]: {"cidr": sub["cidr"], "gateway_ip": sub["gateway_ip"]}},
                     self.vm_ns, self.int_br)
        self.lab.serve(self.vm_ns, port=8080)
        assert self.server.wait_for_agent(300), "agent did not converge on the routers"

    def count_active(self) -> int:
        with self.server.db.read() as s:
            return s.execute(select(func.count()).select_from(S.FloatingIP)
                             .where(S.FloatingIP.status == "ACTIVE")).scalar_one()

    def pairs(self):
        """1: N port + FIP pairs by 8 clients; until all ACTIVE."""
        n = self.args.fips
        nets = [net["id"] for _, net, _ in self.routers]
        lat: list[float] = []
        self.made = []
        # 8 client processes: the clients do not share the server's interpreter (its GIL)
        done, took = api_clients.run(self.server.url, [
            {"op": "pairs", "ext": self.ext["id"], "nets": nets, "idx": list(range(k, n, 8))}
            for k in range(8)])
        for res in done:
            self.made += [tuple(p) for p in res["pairs"]]
            lat += res["lat"]
        last = time.perf_counter()
        t0 = last - took
        while self.count_active() < n:
            if time.perf_counter() - last > 600:
                break
            time.sleep(0.05)
        active = time.perf_counter() - last
        self.results += [
            (f"{n} port+FIP pairs by 8 clients: create wall time", f"{last - t0:.1f} s", ""),
            ("  POST floatingip (port_id set) under that load, p50 / p99",
             f"{ms(pct(lat, 50))} / {ms(pct(lat, 99))} ms", ""),
            ("  all ACTIVE after the last create", f"{active:.2f} s", "≤ 5 s")]
        self.key["active"] = active

    def bulk_pairs(self):
        """For quick runs (``--steps``): the pairs made by bulk requests, not measured."""
        n, nets = self.args.fips, [net["id"] for _, net, _ in self.routers]
        self.made = []
        for first in range(0, n, 500):
            idx = range(first, min(n, first + 500))
            r = self.c.post("/v2.0/ports", json={"ports": [{"network_id": nets[i % len(nets)]}
                                                           for i in idx]})
            r.raise_for_status()
            pids = [p["id"] for p in r.json()["ports"]]
            r = self.c.post("/v2.0/floatingips", json={"floatingips": [
                {"floating_network_id": self.ext["id"], "port_id": pid} for pid in pids]})
            r.raise_for_status()
            self.made += [(pid, f["id"]) for pid, f in zip(pids, r.json()["floatingips"])]
        assert self.server.wait_for_agent(300), "agent did not converge on the pairs"

    def post_latency(self):
        """2: POST floatingip (allocate only), agent running (a client process)."""
        [res], _ = api_clients.run(self.server.url, [{"op": "post", "ext": self.ext["id"],
                                                      "n": self.args.samples}])
        lat = res["lat"]
        for fid in res["ids"]:
            self.c.delete(f"/v2.0/floatingips/{fid}")
        self.results.append((f"POST floatingip at {self.args.fips} (agent running), p50 / p99",
                             f"{ms(pct(lat, 50))} / {ms(pct(lat, 99))} ms", "p50 ≤ 20 ms"))
        self.key["post_p50"] = pct(lat, 50) * 1000

    def list_latency(self):
        """3: GET list all / limit=10 (a client process)."""
        [res], _ = api_clients.run(self.server.url, [{"op": "list", "n": self.args.samples}])
        full, page = res["full"], res["page"]
        self.results += [(f"GET /v2.0/floatingips ({self.args.fips}), p50",
                          f"{ms(pct(full, 50))} ms", "≤ 1 s"),
                         ("GET /v2.0/floatingips?limit=10, p50", f"{ms(pct(page, 50))} ms",
                          "≤ 20 ms")]
        self.key["list_all"] = pct(full, 50) * 1000
        self.key["list_10"] = pct(page, 50) * 1000

    def first_tcp(self):
        """4: API create (port_id) -> first TCP connection through the FIP, measured by a
        client process (POST, then connect from the upstream namespace until it works)."""
        probe = api_clients.Probe(self.server.url, {
            "op": "first_tcp", "ext": self.ext["id"], "port": self.vm["id"],
            "ns": self.upstream, "tcp_port": 8080})
        lat, api, agent_done, phases = [], [], [], {}
        try:
            for _ in range(self.args.tcp_samples):
                x = probe.sample()
                api.append(x["api"])
                if x["tcp"] is not None:
                    lat.append(x["tcp"])
                self.server.wait_for_agent(30)
                st = self.server.agent.stats  # the pass that programmed it: when it ended
                if os.environ.get("FP_TRACE"):
                    print(f"# api {x['api'] * 1e3:.1f} tcp {(x['tcp'] or 0) * 1e3:.1f} "
                          f"failed {[(round(t * 1e3, 1), e) for t, e in x['failed']]} pass "
                          f"{(st.last_pass_at - st.last_seconds - x['sent']) * 1e3:.1f}-"
                          f"{(st.last_pass_at - x['sent']) * 1e3:.1f} "
                          f"{ {k: round(v * 1e3, 1) for k, v in st.last_phases.items()} }",
                          file=sys.stderr)
                if st.last_generation >= 0 and st.last_pass_at > x["sent"]:
                    agent_done.append(st.last_pass_at - x["sent"])
                    for k, v in st.last_phases.items():
                        phases.setdefault(k, []).append(v)
                self.c.delete(f"/v2.0/floatingips/{x['id']}").raise_for_status()
                self.server.wait_for_agent(30)
        finally:
            probe.close()
        self.results.append((f"API create (port_id) -> first TCP through the FIP at "
                             f"{self.args.fips}, p50 / p99 (n={len(lat)})",
                             f"{ms(pct(lat, 50))} / {ms(pct(lat, 99))} ms", "p50 ≤ 20 ms"))
        self.results.append(("  of which the POST itself, p50", f"{ms(pct(api, 50))} ms", ""))
        self.results.append(("  the agent's pass ended after the POST was sent, p50",
                             f"{ms(pct(agent_done, 50))} ms", ""))
        self.results.append(("  that pass by phase (" + ", ".join(phases) + "), p50",
                             " / ".join(f"{ms(pct(v, 50))}" for v in phases.values()) + " ms",
                             ""))
        self.key["tcp_p50"] = pct(lat, 50) * 1000

    def writes_during_full_pass(self):
        """5: PUT latency while a full pass runs."""
        _, fid = self.made[0]
        agent = self.server.agent

        def puts(seconds):
            lat, end = [], time.perf_counter() + seconds
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                self.c.put(f"/v2.0/floatingips/{fid}",
                           json={"floatingip": {"description": str(t0)}}).raise_for_status()
                lat.append(time.perf_counter() - t0)
            return lat
        self.server.wait_for_agent(60)
        quiet = puts(2.0)
        during, took = [], []
        for _ in range(3):  # three full passes: the worst write of any of them
            self.server.wait_for_agent(60)
            before = agent.stats.full_passes
            self.c.post("/floatip/v1/sync", params={"full": "true"})
            deadline = time.perf_counter() + 120
            while agent.stats.full_passes == before and time.perf_counter() < deadline:
                during += puts(0.05)
            took.append(agent.stats.last_full_seconds)
        delay = max(during) - pct(quiet, 50) if during else float("nan")
        self.results += [
            ("PUT floatingip, no pass running: p50 / max", f"{ms(pct(quiet, 50))} / "
             f"{ms(max(quiet))} ms", ""),
            (f"PUT floatingip during 3 full passes (max {max(took):.2f} s each, nothing to "
             f"change): p50 / p99 / max (n={len(during)})",
             f"{ms(pct(during, 50))} / {ms(pct(during, 99))} / {ms(max(during))} ms", ""),
            ("  write delayed by a full pass: max minus the quiet p50", f"{ms(delay)} ms",
             "≤ 50 ms")]
        self.key["write_delay"] = delay * 1000

    def delete_all(self):
        """6: delete every pair with 8 clients."""
        _, took = api_clients.run(self.server.url, [{"op": "delete", "pairs": self.made[k::8]}
                                                    for k in range(8)])
        t0 = time.perf_counter()
        self.server.wait_for_agent(600)
        took += time.perf_counter() - t0
        self.results.append((f"delete all {len(self.made)} pairs by 8 clients (agent caught up)",
                             f"{took:.1f} s", "≤ 120 s"))
        self.key["delete_all"] = took

    def close(self):
        """The database is thrown away: stop the server, then remove the routers through
        floatip and the VM's tap, then the lab (bridges, namespaces)."""
        from floatip.agent.reconciler import reconcile
        from floatip.core.model import State
        from floatip.dataplane.kernel import Dataplane
        rids = {r["id"] for r, _, _ in getattr(self, "routers", [])}
        try:
            self.c.close()
            try:
                self.server.close()
            except BaseException:  # noqa: BLE001 - the routers still go
                pass
            dp = Dataplane(self.config.nat_driver, instance=self.server.instance)
            try:
                reconcile(dp, State(), self.config, remove=rids)
            finally:
                dp.close()
            if getattr(self, "vm", None):
                binding.unplug(self.vm["id"], self.int_br)
        finally:
            self.lab.cleanup()
            shutil.rmtree(self.tmp, ignore_errors=True)  # its database

    def run(self):
        steps = [self.setup, self.pairs, self.post_latency, self.list_latency, self.first_tcp,
                 self.writes_during_full_pass, self.delete_all]
        if self.args.steps:  # a quick run of some steps: the pairs made in bulk
            names = self.args.steps.split(",")
            steps = [self.setup, self.pairs if "pairs" in names else self.bulk_pairs] + \
                [getattr(self, n) for n in names if n != "pairs"]
        try:
            for step in steps:
                t0 = time.perf_counter()
                done = len(self.results)
                step()
                print(f"# {step.__name__}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
                for name, value, target in self.results[done:]:
                    print(f"#   {name}: {value}  (target {target or '-'})", file=sys.stderr)
        finally:
            self.close()
        a = self.args
        print(f"\n### {a.routers} router(s) x {a.fips // a.routers} FIPs "
              f"({a.fips} in all), {'SQLite' if not a.db else a.db.split(':')[0]}\n")
        print("| measure | value | target |\n|---|---|---|")
        for name, value, target in self.results:
            print(f"| {name} | {value} | {target} |")
        if not a.steps:  # a whole run: kept for the table of every size
            OUT.mkdir(exist_ok=True)
            (OUT / f"control_plane-{a.routers}x{a.fips // a.routers}.json").write_text(
                json.dumps({"routers": a.routers, "fips": a.fips, "load": os.getloadavg(),
                            "at": time.strftime("%Y-%m-%d %H:%M"), **self.key}))
        table()


# (key, measure, unit, target, compare): every target of issue 8
TARGETS = [("active", "N port+FIP pairs by 8 clients: all ACTIVE after the last create",
            "s", 5, "le"),
           ("post_p50", "POST floatingip (agent running), p50", "ms", 20, "le"),
           ("list_all", "GET /v2.0/floatingips (all), p50", "ms", 1000, "le"),
           ("list_10", "GET /v2.0/floatingips?limit=10, p50", "ms", 20, "le"),
           ("tcp_p50", "API create (port_id) -> first TCP through the FIP, p50", "ms", 20, "le"),
           ("tcp_ratio", "  the same, ratio to 100 FIPs on as many routers (1x100, 100x1)", "x",
            1.5, "le"),
           ("tcp_ratio_1x100", "  the same, ratio to 1x100", "x", None, "le"),
           ("write_delay", "API write delayed by a full pass (nothing to change), max", "ms",
            50, "le"),
           ("delete_all", "deleting every pair, 8 clients (agent caught up)", "s", 120, "le")]
SIZES = [(1, 100), (100, 1), (1, 10000), (100, 100)]
# the sizes with 100 FIPs: each 10,000 size is compared with the one on as many routers
BASE = {(1, 10000): (1, 100), (100, 100): (100, 1)}


def table() -> None:
    """Every target at each size (routers x FIPs per router), from the last whole run of
    each (bench-out/control_plane-RxF.json). The first-TCP ratio: a 10,000 size against
    100 FIPs on as many routers (the FIP count is what changes; 100 routers' 200 OVS ports
    cost every packet through OVS' userspace datapath, with any number of FIPs), and
    against 1x100."""
    runs = {}
    for r, f in SIZES:
        path = OUT / f"control_plane-{r}x{f}.json"
        if path.exists():
            runs[(r, f)] = json.loads(path.read_text())
    if not runs:
        return
    one = runs.get((1, 100), {}).get("tcp_p50")
    for size, run in runs.items():
        base = runs.get(BASE.get(size, size), {}).get("tcp_p50")
        if base and run.get("tcp_p50"):
            run["tcp_ratio"] = run["tcp_p50"] / base
        if one and run.get("tcp_p50"):
            run["tcp_ratio_1x100"] = run["tcp_p50"] / one
    head = [f"{r}x{f:,}" for r, f in SIZES]
    print("\n### Issue 8's targets, every size (SQLite)\n")
    print("| measure | " + " | ".join(head) + " | target | met at 10,000 |")
    print("|---|" + "---:|" * len(head) + "---|---|")
    for key, name, unit, target, _ in TARGETS:
        cells, met = [], []
        for size in SIZES:
            v = runs.get(size, {}).get(key)
            cells.append("–" if v is None else f"{v:,.2f} {unit}" if unit in ("s", "x")
                         else f"{v:,.1f} {unit}")
            if size in BASE and v is not None and target is not None:
                met.append(v <= target)
        verdict = "–" if not met else "yes" if all(met) else "no"
        limit = "–" if target is None else f"≤ {target} {unit}"
        print(f"| {name} | " + " | ".join(cells) + f" | {limit} | {verdict} |")
    print("\nruns: " + "; ".join(f"{r}x{f}: {run['at']}, load {run['load'][0]:.1f}"
                                  for (r, f), run in runs.items()))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--routers", type=int, default=1)
    p.add_argument("--fips", type=int, default=10000)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--tcp-samples", type=int, default=100)
    p.add_argument("--interval", type=float, default=30.0)
    p.add_argument("--db", default=None)
    p.add_argument("--agent-thread", dest="agent_process", action="store_false",
                   help="the agent as a thread of the API's process (default: its own process, "
                        "as `floatip serve --agent-process`)")
    p.add_argument("--steps", default="", help="only these steps (comma-separated method "
                   "names, e.g. list_latency,first_tcp); the pairs are then made in bulk")
    p.add_argument("--table", action="store_true", help="only print the table of every size "
                   "from the last whole runs")
    p.add_argument("--prefix", default="fp", help="names of bridges and namespaces (≤ 5 chars)")
    args = p.parse_args()
    if args.table:
        table()
    else:
        Bench(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
