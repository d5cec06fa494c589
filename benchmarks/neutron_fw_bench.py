#!/usr/bin/env python3
"""``make bench-neutron``: Neutron's own ``openvswitch`` firewall driver on this machine's OVS,
against the workload of benchmarks/firewall_bench.py, for the figures beside floatip's.

Neutron 29's ``OVSFirewallDriver`` (neutron/agent/linux/openvswitch_firewall/firewall.py,
the ``neutron`` package in its own venv, .venv-neutron) is driven directly, as the OVS
agent's SecurityGroupAgentRpc drives it (``defer_apply`` around update_security_group_rules
/ update_security_group_members and prepare_port_filter / update_port_filter), with a
minimal oslo.config and no RabbitMQ, neutron-server or agent loop. Its bridge is an
``ovs_lib.OVSBridge``: the driver writes every flow through ``ovs-ofctl`` (privsep, one
``--bundle`` per deferred apply) whichever OpenFlow interface the agent has, so this is the
agent's path minus the RPC round trip.

On a bridge of its own (nfw<random>, datapath_type netdev, fail_mode secure, Neutron's
br-int pipeline into the firewall's tables: table 0 -> 60, 60 NORMAL at priority 1):
  - two VM namespaces (veths; a server and a client on one network), as the agent tags them
    (Port other_config tag/net_uuid/segmentation_id, Interface external_ids iface-id and
    attached-mac);
  - N synthetic filtered ports (patch ports without a peer: an ofport each, no device) in
    100 groups holding R rules in all, and a remote group "big" of M members (addresses
    only), the shape of firewall_bench.py's synthetic ports.
Measures:
  initial programming   the agent's first prepare_devices_filter: every group's rules,
                        then prepare_port_filter of every port, in one deferred apply
  rule add              a rule opening a new TCP port on the server: from the refresh
                        (rules of the server's groups, update_port_filter of its port) until
                        its flows are installed (ovs-ofctl returned) and until the client's
                        first connection succeeds; the flow mods sent
  member add            the client joins the remote group "big" (M members) that a server
                        rule names: the refresh the agent does for the member update (the
                        server's port) and the port update (the client's port), until the
                        client connects; flow mods sent and the net change of the bridge's
                        flows
Unlike firewall_bench.py the connection is VM to VM on the bridge (no router, no floating
IP): the firewall's part is the same, the router's forwarding is not in it.

Prints a markdown table; with --floatip (the default) it first runs firewall_bench.py with
the project's venv, same sizes, and prints floatip's figures beside Neutron's.
Everything is named nfw<random> and removed at the end.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NVENV = ROOT / ".venv-neutron"

try:
    import neutron  # noqa: F401
except ImportError:
    if (NVENV / "bin" / "python").exists() and not os.environ.get("NFW_REEXEC"):
        os.environ["NFW_REEXEC"] = "1"
        os.execv(str(NVENV / "bin" / "python"), [str(NVENV / "bin" / "python"), *sys.argv])
    sys.exit("neutron is not installed: `make bench-neutron` builds .venv-neutron")

sys.path.insert(0, str(ROOT / "src"))

import warnings  # noqa: E402

warnings.simplefilter("ignore")

from oslo_config import cfg  # noqa: E402
from oslo_log import log as logging  # noqa: E402

from floatip import lab as L  # noqa: E402  (namespaces, veths, TCP probes: firewall_bench's)

NET = "6f2c0f6e-6b1a-4c1e-9a53-7e0c2b7f0a11"
SRV_IP, CLI_IP = "192.0.2.10", "192.0.2.11"
SRV_MAC, CLI_MAC = "fa:16:3e:00:0a:01", "fa:16:3e:00:0a:02"
EGRESS = [{"direction": "egress", "ethertype": "IPv4"},
          {"direction": "egress", "ethertype": "IPv6"}]


def configure() -> None:
    """The options the driver and ovs_lib read, at Neutron's defaults, except the OVSDB
    connection: the local socket (Neutron's default, tcp:127.0.0.1:6640, would make ovs_lib
    add a manager to this machine's OVS)."""
    from neutron.conf.agent import common as agent_conf
    from neutron.conf.agent import ovs_conf, ovsdb_api
    from neutron.conf.agent import securitygroups_rpc as sg_conf
    from neutron.conf.plugins.ml2.drivers import ovs_conf as ml2_ovs_conf
    agent_conf.register_agent_state_opts_helper(cfg.CONF)
    agent_conf.register_root_helper(cfg.CONF)
    sg_conf.register_securitygroups_opts()
    ovs_conf.register_ovs_agent_opts()
    ovsdb_api.register_ovsdb_api_opts()
    ml2_ovs_conf.register_ovs_agent_opts()
    logging.register_options(cfg.CONF)
    cfg.CONF([], project="neutron")
    cfg.CONF.set_override("ovsdb_connection", "unix:/var/run/openvswitch/db.sock", "OVS")
    import neutron.privileged  # noqa: F401  (registers [privsep])
    # root already: the helper without sudo (whose secure_path does not hold the venv)
    cfg.CONF.set_override("helper_command", f"{Path(sys.executable).parent}/privsep-helper",
                          "privsep")
    cfg.CONF.set_override("firewall_driver", "openvswitch", "SECURITYGROUP")
    logging.setup(cfg.CONF, "nfw")


def port_dict(pid: str, ip: str, mac: str, groups: list[str]) -> dict:
    """A device as the agent gets it from security_group_info_for_devices."""
    return {"device": pid, "device_owner": "compute:nova", "admin_state_up": True,
            "fixed_ips": [ip], "mac_address": mac, "port_security_enabled": True,
            "security_groups": list(groups), "allowed_address_pairs": [],
            "network_id": NET, "status": "ACTIVE"}


def agent_tags(br: str, name: str, pid: str, mac: str, tag: int, seg: int) -> list[str]:
    """ovs-vsctl arguments that mark ``name`` as the agent marks a bound VIF."""
    return ["--", "set", "Interface", name, f"external_ids:iface-id={pid}",
            f"external_ids:attached-mac={mac}", "external_ids:iface-status=active",
            "--", "set", "Port", name, f"tag={tag}", f"other_config:tag={tag}",
            f"other_config:net_uuid={NET}", "other_config:network_type=vxlan",
            f"other_config:segmentation_id={seg}"]


def flows(br: str) -> set[str]:
    """The bridge's flows without cookie and counters (the driver rewrites a port's flows
    under a temporary cookie and back)."""
    out = L.sh("ovs-ofctl", "-O", "OpenFlow14", "dump-flows", "--no-stats", br).stdout
    return {re.sub(r"cookie=0x[0-9a-f]+, ?", "", f.strip()) for f in out.splitlines()
            if f.strip() and "reply" not in f}


class Counter:
    """Counts the flow mods ovs_lib sends and the time spent in ``ovs-ofctl`` (through
    privsep), apart from the driver's Python."""

    def __init__(self):
        from neutron.agent.common import ovs_lib
        self.mods, self.secs, self.runs, self.by = 0, 0.0, 0, {}
        orig = ovs_lib.OVSBridge.do_action_flows
        counter = self

        def do_action_flows(br, action, kwargs_list, use_bundle=False):
            counter.mods += len(kwargs_list)
            counter.runs += 1
            t0 = time.perf_counter()
            try:
                return orig(br, action, kwargs_list, use_bundle)
            finally:
                dt = time.perf_counter() - t0
                counter.secs += dt
                counter.by[action] = counter.by.get(action, 0.0) + dt
        ovs_lib.OVSBridge.do_action_flows = do_action_flows

    def reset(self):
        self.mods, self.secs, self.runs, self.by = 0, 0.0, 0, {}


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def ms(xs) -> str:
    return f"p50 {pct(xs, .5) * 1000:.1f} ms, p99 {pct(xs, .99) * 1000:.1f} ms"


def breakdown(name, setting, key, total, driver, ofctl, runs, bys) -> list[tuple]:
    """A change's rows: until the first connection, the driver's call (flows installed),
    its Python and its ``ovs-ofctl`` runs; the last element names floatip's row beside."""
    py = [d - o for d, o in zip(driver, ofctl)]
    return [(name, setting, ms(total), key),
            ("  of which the driver (flows installed)", "", ms(driver), None),
            ("  of which the driver's Python", "", ms(py), "  of which the agent's Python"),
            ("  of which ovs-ofctl (through privsep)", f"{statistics.median(runs):.0f} runs",
             ms(ofctl), "  of which the flow mods"),
            ("    by action", "", ", ".join(
                f"{act}-flows p50 {pct([b.get(act, 0.0) for b in bys], .5) * 1000:.1f} ms"
                for act in sorted({a for b in bys for a in b})), None)]


def until(cond, deadline: float = 10.0) -> float:
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > deadline:
            raise RuntimeError("not enforced within the deadline")
    return time.perf_counter() - t0


def connects(ns: str, port: int, timeout: float = 0.2) -> bool:
    return L.tcp_source(ns, SRV_IP, port, timeout) is not None


def floatip_figures(a) -> dict[str, str]:
    """floatip's table from firewall_bench.py (the project's venv), by measure."""
    r = subprocess.run([a.python, str(ROOT / "benchmarks" / "firewall_bench.py"), "--ports",
                        str(a.ports), "--rules", str(a.rules), "--group", str(a.group),
                        "--samples", str(a.samples), "--rounds", "1", "--seconds", "1"],
                       capture_output=True, text=True)
    if r.returncode:
        print(r.stdout[-2000:], r.stderr[-2000:], file=sys.stderr)
        return {}
    print(r.stdout)
    rows = {}
    for line in r.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4:
            rows[cells[0]] = f"{cells[2]} ({cells[1]})" if cells[1] else cells[2]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=1000)
    ap.add_argument("--rules", type=int, default=10000)
    ap.add_argument("--group", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--datapath", default="netdev")
    ap.add_argument("--floatip", action=argparse.BooleanOptionalAction, default=True,
                    help="run firewall_bench.py first and print its figures beside")
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"),
                    help="floatip's interpreter for firewall_bench.py")
    a = ap.parse_args()
    ours = floatip_figures(a) if a.floatip else {}

    configure()
    from neutron.agent.common import ovs_lib
    from neutron.agent.linux.openvswitch_firewall import firewall as ovsfw
    from neutron.plugins.ml2.drivers.openvswitch.agent.openflow import br_cookie

    class Bridge(br_cookie.OVSBridgeCookieMixin, ovs_lib.OVSBridge):
        """The agent's OVSAgentBridge less its os-ken mixin (not on the firewall's path)."""
    counter = Counter()

    tag_ = "%05x" % random.randrange(16 ** 5)
    br = f"nfw{tag_}"
    tag, seg = random.randrange(3000, 4000), random.randrange(5000, 6000)
    lab = L.Lab(a.datapath)
    fw, rows = None, []
    try:
        lab.bridge(br)
        L.sh("ovs-vsctl", "set", "Bridge", br, "fail_mode=secure")
        # Neutron's br-int default pipeline, as far as the firewall sees it
        for f in ("table=0,priority=0,actions=resubmit(,60)",
                  "table=60,priority=1,actions=normal"):
            L.sh("ovs-ofctl", "add-flow", br, f)
        srv_ns, cli_ns = f"nfw{tag_}s", f"nfw{tag_}c"
        lab.host(srv_ns, br, f"{br}s", f"{SRV_IP}/24", tag=tag, mac=SRV_MAC)
        lab.host(cli_ns, br, f"{br}c", f"{CLI_IP}/24", tag=tag, mac=CLI_MAC)
        L.sh("ovs-vsctl", *agent_tags(br, f"{br}s", "vm-srv", SRV_MAC, tag, seg)[1:],
             *agent_tags(br, f"{br}c", "vm-cli", CLI_MAC, tag, seg))
        # the synthetic ports and groups (firewall_bench.synthetic's shape)
        per = max(0, a.rules // 100 - 2)
        rules = {f"g{g}": EGRESS + [
            {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
             "port_range_min": 1000 + j, "port_range_max": 1000 + j,
             "source_ip_prefix": f"10.{g}.{j % 250}.0/24"} for j in range(per)]
            for g in range(100)}
        rules["big"] = list(EGRESS)
        srv_rules = list(EGRESS)
        rules["srv"], rules["cli"] = srv_rules, list(EGRESS)
        ports = {}
        args = []
        for i in range(a.ports):
            pid, name = f"synth-{i}", f"{br}-{i}"
            mac = "fa:16:3f:%02x:%02x:%02x" % (i >> 16, (i >> 8) & 255, i & 255)
            ports[pid] = port_dict(pid, f"10.200.{i // 250}.{i % 250 + 1}", mac,
                                   [f"g{i % 100}"])
            args += ["--", "add-port", br, name, "--", "set", "Interface", name,
                     "type=patch", f"options:peer={br}-none"]
            args += agent_tags(br, name, pid, mac, tag, seg)
            if len(args) > 20000:
                L.sh("ovs-vsctl", *args[1:])
                args = []
        if args:
            L.sh("ovs-vsctl", *args[1:])
        members = [(f"10.201.{i // 250}.{i % 250 + 1}", "fa:16:3e:%02x:%02x:%02x" % (
            0x80 | (i >> 16), (i >> 8) & 255, i & 255)) for i in range(a.group)]
        srv = port_dict("vm-srv", SRV_IP, SRV_MAC, ["srv"])
        cli = port_dict("vm-cli", CLI_IP, CLI_MAC, ["cli"])
        ports["vm-srv"], ports["vm-cli"] = srv, cli

        bridge = Bridge(br, datapath_type=a.datapath)
        until(lambda: len(bridge.get_vifs_by_ids(list(ports))) == len(ports), 60)
        fw = ovsfw.OVSFirewallDriver(bridge)
        # conntrack entries of removed rules are cleaned by a queue thread of the agent's
        # host conntrack (not in the latency path); not run here: it would act on this
        # machine's root conntrack table
        fw._schedule_invalid_conntrack_entries_cleanup = lambda port: None

        def refresh(devices, groups, new=False):
            """SecurityGroupAgentRpc.prepare_devices_filter / refresh_firewall: the rules
            and members of the devices' groups, then each device, in one deferred apply."""
            with fw.defer_apply():
                for sg in groups:
                    fw.update_security_group_rules(sg, rules[sg])
                fw.update_security_group_members("big", {"IPv4": list(members), "IPv6": []})
                for d in devices:
                    (fw.prepare_port_filter if new else fw.update_port_filter)(dict(d))

        counter.reset()
        t0 = time.perf_counter()
        refresh(list(ports.values()), list(rules), new=True)
        first = time.perf_counter() - t0
        L.sh("ovs-appctl", "revalidator/wait", check=False)
        n_flows = len(flows(br))
        n_rules = sum(len(r) for r in rules.values())
        rows.append(("first full pass", f"{a.ports} ports, {n_rules} rules",
                     f"{first:.1f} s: {n_flows} flows, {counter.mods} flow mods, "
                     f"ovs-ofctl {counter.secs:.1f} s", "first full pass"))
        # rule add -> flows installed -> first connection
        enforced, driver, ofctl, mods, runs, bys = [], [], [], [], [], []
        for k in range(a.samples):
            port = 20000 + k
            lab.serve(srv_ns, port=port)
            srv_rules.append({"direction": "ingress", "ethertype": "IPv4",
                              "protocol": "tcp", "port_range_min": port,
                              "port_range_max": port, "source_ip_prefix": "0.0.0.0/0"})
            counter.reset()
            t0 = time.perf_counter()
            refresh([srv], ["srv"])
            driver.append(time.perf_counter() - t0)
            mods.append(counter.mods)
            ofctl.append(counter.secs)
            runs.append(counter.runs)
            bys.append(dict(counter.by))
            until(lambda: connects(cli_ns, port))
            enforced.append(time.perf_counter() - t0)
        rows += breakdown("rule create -> first connection", f"{a.ports} ports, "
                          f"{n_rules} rules", "rule create -> enforced (FIP, first conn.)",
                          enforced, driver, ofctl, runs, bys)
        # floatip's bench splits this one into its pass only
        rows[-4:] = [rows[-4][:3] + ("of which the firewall pass",), rows[-3][:3] + (None,),
                     rows[-2][:3] + (None,), rows[-1]]
        rows.append(("  flow mods per rule add", "", f"{statistics.median(mods):.0f}: the "
                     "port's flows under a new cookie, its old ones deleted, then again "
                     "under the default cookie", None))
        # member add on a remote group
        lab.serve(srv_ns, port=9000)
        srv_rules.append({"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                          "port_range_min": 9000, "port_range_max": 9000,
                          "remote_group_id": "big"})
        refresh([srv], ["srv", "big"])
        adds, driver, ofctl, mods, runs, net, bys = [], [], [], [], [], [], []
        for k in range(max(5, a.samples)):
            before = flows(br) if k < 3 else None
            members.append((CLI_IP, CLI_MAC))
            cli["security_groups"] = ["cli", "big"]
            counter.reset()
            t0 = time.perf_counter()
            # the member update refreshes the ports whose rules name the group, the port
            # update the client's own port: one deferred apply (the agent's best case)
            refresh([srv, cli], ["srv", "cli", "big"])
            driver.append(time.perf_counter() - t0)
            mods.append(counter.mods)
            ofctl.append(counter.secs)
            runs.append(counter.runs)
            bys.append(dict(counter.by))
            until(lambda: connects(cli_ns, 9000))
            adds.append(time.perf_counter() - t0)
            if before is not None:
                net.append(len(before ^ flows(br)))
            members.pop()
            cli["security_groups"] = ["cli"]
            refresh([srv, cli], ["srv", "cli", "big"])
            until(lambda: not connects(cli_ns, 9000, 0.3))
        rows += breakdown(f"member add -> client connects (group of {a.group})",
                          "client joins", f"member add -> enforced (group of {a.group})",
                          adds, driver, ofctl, runs, bys)
        rows.append(("  flows changed per member add", "net change of the bridge's flows",
                     f"{max(net)} ({statistics.median(mods):.0f} flow mods sent)",
                     "  flows changed per member add"))
    finally:
        lab.cleanup()
        L.sh("ovs-vsctl", "--if-exists", "del-br", br, check=False)
    ovs = subprocess.run(["ovs-vsctl", "--version"], capture_output=True, text=True).stdout
    ver = getattr(neutron, "__version__", None) or subprocess.run(
        [sys.executable, "-m", "pip", "show", "neutron"], capture_output=True,
        text=True).stdout.split("Version:")[-1].split()[0]
    print(f"\n### Neutron {ver} `openvswitch` firewall driver ({a.datapath} datapath, "
          f"OVS {ovs.split()[3]})\n")
    load = open("/proc/loadavg").read().split()[:3]
    print(f"machine load (1/5/15 min) at the end: {' '.join(load)}\n")
    print("| measure | setting | Neutron | floatip |\n|---|---|---|---|")
    for name, setting, result, key in rows:
        print(f"| {name} | {setting} | {result} | {ours.get(key.strip(), '') if key else ''} |")


if __name__ == "__main__":
    rc = 0
    try:
        main()
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        rc = 1
    sys.stdout.flush()
    # the driver's conntrack manager starts a thread that never ends (ip_conntrack.py)
    os._exit(rc)
