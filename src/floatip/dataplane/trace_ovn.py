"""``floatip trace --ovn-sb``: the facts of the OVN backend's path, read (never changed)
from the Northbound and Southbound databases (``ovn-nbctl``/``ovn-sbctl``), ``ovn-trace``
and the gateway chassis' ``ofproto/trace``. Every command is an argv list; the addresses in
them were parsed as IP addresses first, and the rest are names read from the databases."""
from __future__ import annotations

import ipaddress
import json
import os
import random
import subprocess
import time

from ..core.packet import arp_request, ipv4_frame
from ..core.trace import ApiFip, OfTrace, Query
from ..core.trace_ovn import OvnFacts, command, logical_flow, parse_ovn_trace

from .probe import PROBE_MAC, Capture


def _run(argv: list[str]) -> str:
    r = subprocess.run(argv, capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""


def _value(v):
    """An OVSDB JSON value as Python: uuid -> str, set -> list, map -> dict."""
    if isinstance(v, list) and len(v) == 2 and v[0] in ("uuid", "named-uuid"):
        return v[1]
    if isinstance(v, list) and len(v) == 2 and v[0] == "set":
        return [_value(x) for x in v[1]]
    if isinstance(v, list) and len(v) == 2 and v[0] == "map":
        return {k: _value(x) for k, x in v[1]}
    return v


def rows(ctl: str, db: str, table: str, columns: str) -> list[dict]:
    text = _run([ctl, f"--db={db}", "--format=json", f"--columns={columns}", "list", table])
    if not text:
        return []
    doc = json.loads(text)
    return [dict(zip(doc["headings"], map(_value, r))) for r in doc["data"]]


def _listed(v) -> list:
    return v if isinstance(v, list) else [v]


def gather_ovn(q: Query, nb: str, sb: str, source_ip: str | None = None,
               api: ApiFip | None = None, chassis_db: str | None = None,
               chassis_ctl: str | None = None) -> OvnFacts:
    dest = ipaddress.ip_address(q.dest)
    nats = rows("ovn-nbctl", nb, "NAT", "_uuid,type,external_ip,logical_ip")
    nat = {n["external_ip"]: (n["type"], n["logical_ip"]) for n in nats
           if n["type"] in ("dnat_and_snat", "dnat")}
    lrps = rows("ovn-nbctl", nb, "Logical_Router_Port", "_uuid,name,mac,networks")
    gw = next((p for p in lrps if any(dest in ipaddress.ip_interface(n).network
                                      for n in _listed(p["networks"]))), None)
    routers = rows("ovn-nbctl", nb, "Logical_Router", "_uuid,name,ports,static_routes")
    lr = next((r for r in routers if gw and gw["_uuid"] in _listed(r["ports"])), None)
    lsps = rows("ovn-nbctl", nb, "Logical_Switch_Port", "_uuid,name,type,options")
    f = OvnFacts(q, source_ip or "192.0.2.1", nat, lr["name"] if lr else None,
                 [n for p in lrps if lr and p["_uuid"] in _listed(lr["ports"])
                  for n in _listed(p["networks"])],
                 {p["name"] for p in lsps if p["type"] == ""}, api=api,
                 nb_command=command("ovn-nbctl", f"--db={nb}", "lr-nat-list",
                                    lr["name"] if lr else "<router>"))
    if gw is None or lr is None:
        return f
    if source_ip is None:  # the router's default route's next hop: the upstream router
        routes = rows("ovn-nbctl", nb, "Logical_Router_Static_Route", "_uuid,ip_prefix,nexthop")
        f.source_ip = next((r["nexthop"] for r in routes if r["ip_prefix"] == "0.0.0.0/0"
                            and r["_uuid"] in _listed(lr["static_routes"])), f.source_ip)
    macs = rows("ovn-sbctl", sb, "MAC_Binding", "ip,mac")
    src_mac = next((m["mac"] for m in macs if m["ip"] == f.source_ip), PROBE_MAC)
    peer = next((p for p in lsps if p["type"] == "router"
                 and p["options"].get("router-port") == gw["name"]), None)
    switches = rows("ovn-nbctl", nb, "Logical_Switch", "_uuid,name,ports")
    ls = next((s for s in switches if peer and peer["_uuid"] in _listed(s["ports"])), None)
    localnet = next((p for p in lsps if ls and p["_uuid"] in _listed(ls["ports"])
                     and p["type"] == "localnet"), None)
    if ls is None or localnet is None:
        return f
    f.src_mac, f.gw_mac = src_mac, gw["mac"]
    flow = logical_flow(localnet["name"], src_mac, gw["mac"], q, f.source_ip)
    argv = ["ovn-trace", "--no-friendly-names", f"--db={sb}", ls["name"], flow]
    f.logical = parse_ovn_trace(_run(argv), command(*argv))
    if chassis_db is not None or chassis_ctl is not None:
        f.chassis, f.chassis_text = _chassis(q, f.source_ip, src_mac, gw["mac"], chassis_db,
                                             chassis_ctl)
        if f.chassis is not None:
            f.bridge, f.uplink = f.chassis.bridge, f.chassis.flow.split(",")[0][8:]
    return f


def _chassis(q: Query, src: str, src_mac: str, dst_mac: str, db: str | None,
             ctl: str | None) -> tuple[OfTrace | None, str]:
    """``ofproto/trace`` on the gateway chassis: from its uplink on the mapped bridge."""
    vsctl = ["ovs-vsctl", "--timeout=5"] + ([f"--db={db}"] if db else [])
    mappings = _run(vsctl + ["get", "Open_vSwitch", ".", "external_ids:ovn-bridge-mappings"])
    bridge = mappings.strip().strip('"').split(",")[0].partition(":")[2]
    if not bridge:
        return None, ""
    ports = _run(vsctl + ["list-ports", bridge]).split()
    uplink = next((p for p in ports if not p.startswith("patch-")), None)
    if uplink is None:
        return None, ""
    flow = ",".join([f"in_port={uplink}", f"dl_src={src_mac}", f"dl_dst={dst_mac}",
                     "icmp" if q.proto == "icmp" else q.proto, f"nw_src={src}",
                     f"nw_dst={q.dest}", "nw_ttl=64"]
                    + ([f"tp_dst={q.port or 80}"] if q.proto != "icmp" else []))
    appctl = ["ovs-appctl"] + (["-t", ctl] if ctl else [])
    text = _run(appctl + ["ofproto/trace", bridge, flow])
    t = OfTrace(bridge, flow)
    t.actions = next((ln.partition(":")[2].strip() for ln in reversed(text.splitlines())
                      if ln.startswith("Datapath actions:")), "")
    return t, text


def probe_ovn(f: OvnFacts, chassis_netns: str | None = None, chassis_ctl: str | None = None,
              timeout: float = 2.0) -> dict:
    """A real packet into the gateway chassis' external bridge as if from its uplink (ARP
    first), judged by what leaves by the uplink: the ARP answer, then the VM's answer with
    the floating IP as its source (the VM's chassis may be another host: its port is not
    watched here)."""
    q = f.query
    ev: list[str] = []
    res = {"delivered": False, "dropped_at": None, "evidence": ev}
    if f.bridge is None or f.uplink is None or f.gw_mac is None:
        res["dropped_at"] = f"no gateway chassis bridge holds {q.dest} here: nothing sent"
        return res
    # the bridge's OpenFlow socket sits beside ovs-vswitchd's control socket
    target = (f"unix:{os.path.dirname(chassis_ctl)}/{f.bridge}.mgmt" if chassis_ctl
              else f.bridge)
    mac, sport = f.src_mac or PROBE_MAC, random.randint(40000, 60000)
    cap = Capture(f.uplink, chassis_netns)
    try:
        _inject_to(target, f.uplink, arp_request(mac, f.source_ip, q.dest))
        got = cap.wait(lambda fr: fr["kind"] == "arp" and fr["op"] == 2 and fr["src"] == q.dest,
                       time.monotonic() + 1.0)
        if got is None:
            res["dropped_at"] = f"ARP: nobody answered who-has {q.dest} on {f.bridge}"
            return res
        ev.append(f"ARP: {q.dest} is-at {got['src_mac']} (seen on {f.uplink})")
        _inject_to(target, f.uplink, ipv4_frame(mac, got["src_mac"], f.source_ip, q.dest,
                                                q.proto, sport, q.port))
        reply = cap.wait(lambda fr: fr["kind"] == "ip" and fr["src"] == q.dest
                         and fr["dst"] == f.source_ip
                         and (q.proto == "icmp" or fr["dport"] == sport),
                         time.monotonic() + timeout)
        if reply is None:
            res["dropped_at"] = (f"no answer came back by {f.uplink}: lost between the "
                                 f"gateway chassis and the VM, or the VM is silent")
            return res
        ev.append(f"answer seen leaving by {f.uplink}: {reply['src']} -> {reply['dst']}")
        res["delivered"] = True
        return res
    finally:
        cap.close()


def _inject_to(target: str, in_port: str, frame: bytes) -> None:
    subprocess.run(["ovs-ofctl", "packet-out", target,
                    f"in_port={in_port},packet={frame.hex()},actions=TABLE"],
                   capture_output=True, text=True, check=True)
