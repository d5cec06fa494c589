"""``floatip trace --probe``: one real packet along the traced path, and where it got.

The packet enters the external bridge as if it came in by the uplink (``ovs-ofctl
packet-out ... actions=TABLE``: the bridge's own flow table decides, as for a real packet),
after an ARP request for the destination (no answer: a real upstream could not send either).
Evidence: packet captures (read only) on the uplink and the VM's port, nftables'
``meta nftrace`` in the router namespace (a table ``ip floatip_trace`` of its own, removed
after; it also shows iptables-nft's rules), and the conntrack entry the packet made
(removed after). Nothing else is changed.
"""
from __future__ import annotations

import os
import random
import select
import socket
import subprocess
import threading
import time

from ..core.packet import PROTO_NUM, arp_request, ipv4_frame, read
from ..core.trace import Facts
from ..core.trace_out import snat_source
from .netns import NETNS_DIR, nsexec, run_in_netns

TRACE_TABLE = "floatip_trace"
ETH_P_ALL = 0x0003
PROBE_MAC = "02:66:6c:74:70:01"  # locally administered: the source when upstream's is unknown


class Capture:
    """Frames seen on an interface (both directions; of ``netns``, else this namespace),
    read by a thread."""

    def __init__(self, ifname: str, netns: str | None = None):
        self.frames: list[dict] = []

        def open_socket():
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((ifname, 0))
            return s
        # a socket opened in a namespace stays bound to that namespace's device
        self.sock = run_in_netns(netns, open_socket) if netns else open_socket()
        self._stop = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self._stop:
            if not select.select([self.sock], [], [], 0.05)[0]:
                continue
            try:
                got = read(self.sock.recv(65535))
            except OSError:
                return
            if got is not None:
                self.frames.append(got)

    def wait(self, pred, deadline: float) -> dict | None:
        while True:
            hit = next((fr for fr in list(self.frames) if pred(fr)), None)
            if hit is not None or time.monotonic() > deadline:
                return hit
            time.sleep(0.01)

    def close(self) -> None:
        self._stop = True
        self.thread.join(1)
        self.sock.close()


def _capture(ifname: str | None) -> Capture | None:
    if not ifname or not os.path.exists(f"/sys/class/net/{ifname}"):
        return None  # not in this namespace (e.g. a VM port moved into a container's)
    return Capture(ifname)


def _inject(bridge: str, in_port: str, frame: bytes) -> None:
    subprocess.run(["ovs-ofctl", "packet-out", bridge,
                    f"in_port={in_port},packet={frame.hex()},actions=TABLE"],
                   capture_output=True, text=True, check=True)


def _trace_script(src: str, sport: int, proto: str) -> str:
    l4 = f"{proto} sport {sport}" if proto in ("tcp", "udp") else f"icmp id {sport}"
    back = f"{proto} dport {sport}" if proto in ("tcp", "udp") else f"icmp id {sport}"
    return (f"table ip {TRACE_TABLE} {{\n"
            f"  chain pre {{ type filter hook prerouting priority -350; policy accept;\n"
            f"    ip saddr {src} {l4} meta nftrace set 1\n"
            f"    ip daddr {src} {back} meta nftrace set 1\n  }}\n}}\n")


class NfTrace:
    """``meta nftrace`` for one flow (``src`` and its port, both ways) in ``ns``, read from
    ``nft monitor`` (started and ended by pid); the table goes when it ends."""

    def __init__(self, ns: str, src: str, sport: int, proto: str, timeout: float = 2.0):
        self.ns = ns
        self.proc = subprocess.Popen(["nsenter", f"--net={NETNS_DIR}/{ns}", "--", "nft",
                                      "monitor"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")),
                         daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:  # the monitor listens once it reports our table being added
            nsexec(ns, ["nft", "-f", "-"], input=_trace_script(src, sport, proto))
            if self._wait(f"add table ip {TRACE_TABLE}", time.monotonic() + 0.5) \
                    or time.monotonic() > deadline:
                break
            nsexec(ns, ["nft", "delete", "table", "ip", TRACE_TABLE], check=False)

    def _wait(self, needle: str, deadline: float) -> bool:
        while not any(needle in ln for ln in list(self.lines)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def rules(self) -> list[str]:
        """The chains' rules and policies the packets met (floatip's and iptables-nft's)."""
        return [ln.strip().split(" ", 3)[3] for ln in list(self.lines)
                if ln.startswith("trace id") and " packet: " not in ln
                and TRACE_TABLE not in ln]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(2)
        nsexec(self.ns, ["nft", "delete", "table", "ip", TRACE_TABLE], check=False)


def _evidence(rules: list[str]) -> list[str]:
    return [f"nftables: {ln}" for ln in dict.fromkeys(rules)
            if " rule " in ln and "verdict jump" not in ln]


def _ct(ns: str, op: str, src: str, proto: str, sport: int) -> str:
    return nsexec(ns, ["conntrack", op, "-s", src, "-p", proto]
                  + (["--sport", str(sport)] if proto != "icmp" else ["--icmp-id", str(sport)]),
                  check=False).stdout.strip()


def probe(f: Facts, timeout: float = 2.0) -> dict:
    q, r = f.query, f.router
    ev: list[str] = []
    res = {"delivered": False, "dropped_at": None, "evidence": ev, "nftrace": [],
           "conntrack": ""}
    if r is None or r.gateway is None or f.uplink is None or f.gateway_port is None:
        res["dropped_at"] = f"no floatip router with an uplink holds {q.dest}: nothing sent"
        return res
    bridge, ns = f.gateway_port.bridge, r.namespace
    mac = f.upstream_mac or PROBE_MAC
    sport = random.randint(40000, 60000)
    up = _capture(f.uplink.name)
    vm = _capture(f.vm_port.name if f.vm_port else None)
    mon = None
    try:
        # ARP first: a real upstream sends nothing to an address nobody answers for
        _inject(bridge, f.uplink.name, arp_request(mac, f.source_ip, q.dest))
        if up is not None:
            got = up.wait(lambda fr: fr["kind"] == "arp" and fr["op"] == 2
                          and fr["src"] == q.dest, time.monotonic() + 1.0)
            if got is None:
                res["dropped_at"] = f"ARP: nobody answered who-has {q.dest} on {bridge}"
                return res
            ev.append(f"ARP: {q.dest} is-at {got['src_mac']} (seen on {f.uplink.name})")
            mac_dst = got["src_mac"]
        else:
            mac_dst = r.gateway.mac
            ev.append(f"no capture on {f.uplink.name} here: ARP not checked")
        mon = NfTrace(ns, f.source_ip, sport, q.proto, timeout)
        _inject(bridge, f.uplink.name, ipv4_frame(mac, mac_dst, f.source_ip, q.dest, q.proto,
                                                  sport, q.port))
        deadline = time.monotonic() + timeout
        fixed = r.dnat.get(q.dest)
        seen_vm = vm.wait(lambda fr: fr["kind"] == "ip" and fr["src"] == f.source_ip
                          and fr["sport"] == sport, deadline) if vm else None
        reply = up.wait(lambda fr: fr["kind"] == "ip" and fr["dst"] == f.source_ip
                        and fr["src"] == q.dest and sport in (fr["dport"], fr["sport"]),
                        deadline) if up else None
        ct = res["conntrack"] = _ct(ns, "-L", f.source_ip, q.proto, sport)
        res["nftrace"] = mon.rules()
        ev += _evidence(res["nftrace"])
        dnat_to = next((w.split("=")[1] for w in ct.split() if w.startswith("src=")
                        and w != f"src={f.source_ip}"), None)
        if ct:
            ev.append(f"conntrack in {ns}: {ct.splitlines()[0]}")
        if seen_vm:
            ev.append(f"seen on {f.vm_port.name}: {f.source_ip}:{sport} -> "
                      f"{seen_vm['dst']}:{seen_vm['dport']}")
        if reply:
            ev.append(f"reply seen leaving by {f.uplink.name}: {reply['src']} -> {reply['dst']}")
        drops = [ln for ln in res["nftrace"] if "verdict drop" in ln or "policy drop" in ln]
        # DNATed: the VM's port saw it, or conntrack / nftrace say the DNAT rule took it
        dnat = seen_vm is not None or (fixed is not None and dnat_to == fixed) or any(
            " dnat to " in ln and "verdict accept" in ln for ln in res["nftrace"])
        if drops:
            res["dropped_at"] = f"nftables: {drops[0]}"
        elif fixed is None or not dnat:
            res["dropped_at"] = (f"DNAT: not DNATed in {ns} (the router took it itself)"
                                 if dnat_to in (None, q.dest) else f"DNAT: went to {dnat_to}")
        elif vm is not None and seen_vm is None:
            res["dropped_at"] = f"integration bridge: never reached {f.vm_port.name}"
        elif up is not None and reply is None:
            res["dropped_at"] = f"reply: nothing came back out of {f.uplink.name}"
        res["delivered"] = res["dropped_at"] is None
        return res
    finally:
        if mon is not None:
            mon.close()
        _ct(ns, "-D", f.source_ip, q.proto, sport)
        for c in (up, vm):
            if c is not None:
                c.close()


def probe_out(f: Facts, timeout: float = 2.0) -> dict:
    """A packet from the VM's port (put on the integration bridge as if the VM sent it):
    does it leave by the uplink with the SNATed source, and does the answer (if the far end
    gives one) come back to the VM's port?"""
    q, r, vm = f.query, f.router, f.vm_port
    ev: list[str] = []
    res = {"delivered": False, "dropped_at": None, "evidence": ev, "nftrace": [],
           "conntrack": ""}
    if r is None or vm is None or f.vm_mac is None or f.router_port is None:
        res["dropped_at"] = f"no router serves port {q.source} here: nothing sent"
        return res
    ns, src = r.namespace, snat_source(f)[0]
    sport = random.randint(40000, 60000)
    up = _capture(f.uplink.name if f.uplink else None)
    back = _capture(vm.name)
    mon = NfTrace(ns, f.source_ip, sport, q.proto, timeout)
    try:
        _inject(vm.bridge, vm.name, ipv4_frame(f.vm_mac, r.links[f.router_port.name].mac,
                                               f.source_ip, q.dest, q.proto, sport, q.port))
        deadline = time.monotonic() + timeout
        num = PROTO_NUM[q.proto]  # SNAT may change the source port: matched without it
        left = up.wait(lambda fr: fr["kind"] == "ip" and fr["proto"] == num
                       and fr["dst"] == q.dest and fr["src"] in (src, f.source_ip)
                       and (q.port is None or fr["dport"] == q.port), deadline) if up else None
        reply = back.wait(lambda fr: fr["kind"] == "ip" and fr["src"] == q.dest
                          and fr["dst"] == f.source_ip
                          and (q.proto == "icmp" or fr["dport"] == sport),
                          deadline) if back else None
        res["conntrack"] = _ct(ns, "-L", f.source_ip, q.proto, sport)
        res["nftrace"] = mon.rules()
        ev += _evidence(res["nftrace"])
        if res["conntrack"]:
            ev.append(f"conntrack in {ns}: {res['conntrack'].splitlines()[0]}")
        if left:
            ev.append(f"seen leaving by {f.uplink.name}: {left['src']} -> {left['dst']}")
        if reply:
            ev.append(f"answer seen on {vm.name}: {reply['src']} -> {reply['dst']}")
        drops = [ln for ln in res["nftrace"] if "verdict drop" in ln or "policy drop" in ln]
        if drops:
            res["dropped_at"] = f"nftables: {drops[0]}"
        elif up is not None and left is None:
            res["dropped_at"] = f"never left by {f.uplink.name}"
        elif up is not None and left["src"] != src:
            res["dropped_at"] = f"SNAT: left with source {left['src']}, not {src}"
        res["delivered"] = res["dropped_at"] is None
        if res["delivered"] and reply is None:
            ev.append(f"no answer came back to {vm.name} (the far end may not answer)")
        return res
    finally:
        mon.close()
        _ct(ns, "-D", f.source_ip, q.proto, sport)
        for c in (up, back):
            if c is not None:
                c.close()
