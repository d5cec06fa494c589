"""The shell: the only code that reads or changes the kernel and OVS.

- netlink through pyroute2, one session per namespace kept open (no process per change);
- OVSDB through ovsdbapp, consecutive OVS steps committed as one transaction;
- NAT through a driver (``iptables`` here): one atomic restore per router per apply;
- sysctls and raw sockets (gratuitous ARP) from a thread that entered the namespace.

Ownership: a router namespace is floatip's when its ``lo`` carries the alias
``floatip router=<id>`` (the mark lives and dies with the namespace); an OVS port is floatip's
when its interface has ``external_ids:floatip-router``; rules live in floatip's own chains.
Anything else is read at most, never changed.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import queue
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field

from pyroute2 import IPRoute, netns as pnetns
from pyroute2.netlink.exceptions import NetlinkError

from . import iptables
from .layout import NS_PREFIX, OWNER_KEY, ROUTER_SYSCTLS, NatSpec
from .plan import Link, NsFacts, Observed, OvsPort, Plan, Step

log = logging.getLogger("floatip.dataplane")
NETNS_DIR = "/run/netns"
OVSDB = os.environ.get("FLOATIP_OVSDB", "unix:/var/run/openvswitch/db.sock")
MARK_PREFIX = "floatip router="
OVS_ACTIONS = {"ensure_bridge", "add_port", "set_tag", "del_port"}


class DataplaneError(Exception):
    pass


def datapath_type() -> str:
    """``system`` where the kernel has the openvswitch module, ``netdev`` (userspace) where not."""
    if os.path.exists("/sys/module/openvswitch"):
        return "system"
    if subprocess.run(["modprobe", "-q", "openvswitch"], capture_output=True).returncode == 0 \
            and os.path.exists("/sys/module/openvswitch"):
        return "system"
    return "netdev"


def run_in_netns(ns: str, fn, *args):
    """Run ``fn`` in a short-lived thread that entered ``ns``: sockets it opens and
    /proc/sys it reads belong to that namespace; the rest of the process stays put."""
    result: list = []

    def target():
        try:
            pnetns.setns(ns, flags=0)
            result.append((True, fn(*args)))
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            result.append((False, e))
    t = threading.Thread(target=target, name=f"netns-{ns}")
    t.start()
    t.join()
    ok, value = result[0]
    if not ok:
        raise value
    return value


def _read_sysctls(keys):
    out = {}
    for k in keys:
        try:
            with open("/proc/sys/" + k.replace(".", "/")) as f:
                out[k] = f.read().strip()
        except OSError:
            pass
    return out


def _write_sysctls(pairs):
    for k, v in pairs:
        with open("/proc/sys/" + k.replace(".", "/"), "w") as f:
            f.write(v)


def nsexec(ns: str, argv: list[str], input: str | None = None, check: bool = True):
    """Run a program in ``ns`` (argv list, never a shell)."""
    cmd = ["nsenter", f"--net={NETNS_DIR}/{ns}", "--", *argv]
    r = subprocess.run(cmd, input=input, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise DataplaneError(f"{' '.join(argv[:2])} in {ns} failed: {r.stderr.strip()}")
    return r


class IptablesDriver:
    name = "iptables"

    def __init__(self):
        self.random_fully = self._supports_random_fully()

    @staticmethod
    def _supports_random_fully() -> bool:
        try:
            out = subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout
            ver = tuple(int(x) for x in out.split()[1].lstrip("v").split("."))
            return ver >= (1, 6, 2)
        except (OSError, ValueError, IndexError):
            return False

    def observe(self, ns: str) -> iptables.Ruleset:
        return iptables.parse_save(nsexec(ns, ["iptables-save"]).stdout)

    def plan(self, ns: str, spec: NatSpec, facts: iptables.Ruleset | None) -> Step | None:
        text = iptables.restore_input(iptables.render(spec, self.random_fully),
                                      facts or iptables.Ruleset())
        if text is None:
            return None
        return Step("nat", "iptables_restore", ns, (text,), "rules differ")

    @staticmethod
    def fip_map(facts: iptables.Ruleset) -> dict[str, str]:
        return facts.fip_map()

    def execute(self, step: Step) -> None:
        nsexec(step.target, ["iptables-restore", "-n", "-w", "5"], input=step.args[0])


def nat_driver(name: str):
    if name == "iptables":
        return IptablesDriver()
    if name == "nftables":
        from .nftables import NftablesDriver
        return NftablesDriver()
    raise DataplaneError(f"unknown NAT driver {name!r} (iptables, nftables)")


class Garp:
    """Gratuitous ARP after a floating IP appears, off the apply path: a worker thread sends
    three rounds one second apart (Neutron: arping -U, 3 rounds) from a raw socket in the
    router namespace."""

    def __init__(self, rounds: int = 3, interval: float = 1.0):
        self.rounds, self.interval = rounds, interval
        self.q: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None

    def announce(self, ns: str, dev: str, mac: str, ips) -> None:
        for r in range(self.rounds):
            self.q.put((time.monotonic() + r * self.interval, ns, dev, mac, tuple(ips)))
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="garp", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        pending: list = []
        while True:
            try:
                pending.append(self.q.get(timeout=0.2 if pending else 5))
            except queue.Empty:
                if not pending:
                    return
            now = time.monotonic()
            due = [p for p in pending if p[0] <= now]
            pending = [p for p in pending if p[0] > now]
            for _, ns, dev, mac, ips in due:
                try:
                    pnetns.setns(ns, flags=0)
                    self._send(dev, mac, ips)
                except Exception as e:  # namespace or device gone: nothing to announce
                    log.debug("garp %s %s: %s", ns, dev, e)

    @staticmethod
    def _send(dev: str, mac: str, ips) -> None:
        hw = bytes.fromhex(mac.replace(":", ""))
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind((dev, 0x0806))
            for ip in ips:
                pa = socket.inet_aton(ip)
                # ARP request for our own address (arping -U): sender = target = the FIP
                arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, hw, pa, b"\0" * 6, pa)
                s.send(b"\xff" * 6 + hw + b"\x08\x06" + arp)


@dataclass
class Result:
    writes: int = 0
    steps: list[Step] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # target -> error


class Dataplane:
    def __init__(self, nat: str = "iptables", ovsdb: str = OVSDB):
        self.nat = nat_driver(nat)
        self.datapath_type = datapath_type()
        log.info("OVS datapath type: %s", self.datapath_type)
        self.ovsdb = ovsdb
        self._ovs = None
        self._root = IPRoute()
        self._sessions: dict[str, IPRoute] = {}
        self.garp = Garp()
        self.writes = 0  # kernel and OVS changes made by this object, for tests and reports

    # -- sessions ---------------------------------------------------------------------
    @property
    def ovs(self):
        if self._ovs is None:
            from ovsdbapp.backend.ovs_idl import connection
            from ovsdbapp.schema.open_vswitch import impl_idl
            idl = connection.OvsdbIdl.from_server(self.ovsdb, "Open_vSwitch")
            self._ovs = impl_idl.OvsdbIdl(connection.Connection(idl=idl, timeout=10))
        return self._ovs

    def ipr(self, ns: str | None) -> IPRoute:
        if ns is None:
            return self._root
        s = self._sessions.get(ns)
        if s is None:
            s = self._sessions[ns] = IPRoute(netns=ns, flags=0)
        return s

    def close(self) -> None:
        if hasattr(self.nat, "close"):
            self.nat.close()
        for s in self._sessions.values():
            s.close()
        self._sessions.clear()
        self._root.close()
        if self._ovs is not None:
            self._ovs.ovsdb_connection.stop()
            self._ovs = None

    def _drop_session(self, ns: str) -> None:
        s = self._sessions.pop(ns, None)
        if s is not None:
            s.close()

    # -- observe ----------------------------------------------------------------------
    def observe(self, routers: set[str] | None = None) -> Observed:
        """Read what floatip owns. ``routers`` limits the namespace reads to those ids."""
        obs = Observed()
        tables = self.ovs.tables
        for br in tables["Bridge"].rows.values():
            obs.bridges.add(br.name)
            for port in br.ports:
                owner = None
                ptype = ""
                for itf in port.interfaces:
                    owner = itf.external_ids.get(OWNER_KEY) or owner
                    ptype = itf.type
                if owner is None:
                    obs.other_ports.add(port.name)
                    continue
                obs.ports[port.name] = OvsPort(port.name, br.name, port.tag[0] if port.tag else None,
                                               ptype, owner)
        obs.root_links = {l.get("ifname") for l in self._root.get_links()}
        names = sorted(n for n in (os.listdir(NETNS_DIR) if os.path.isdir(NETNS_DIR) else [])
                       if n.startswith(NS_PREFIX))
        for ns in names:
            rid = ns[len(NS_PREFIX):]
            if routers is not None and rid not in routers:
                continue
            facts = self._observe_ns(ns)
            if facts is None:
                obs.foreign_namespaces.add(ns)
            else:
                obs.namespaces[ns] = facts
        return obs

    def _observe_ns(self, ns: str) -> NsFacts | None:
        ipr = self.ipr(ns)
        links = ipr.get_links()
        lo = next((l for l in links if l.get("ifname") == "lo"), None)
        mark = lo.get("IFLA_IFALIAS") if lo is not None else None
        if not mark or not mark.startswith(MARK_PREFIX):
            self._drop_session(ns)
            return None
        facts = NsFacts(ns, mark[len(MARK_PREFIX):])
        addrs: dict[int, set[str]] = {}
        for a in ipr.get_addr(family=socket.AF_INET):
            addrs.setdefault(a["index"], set()).add(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
        for l in links:
            name = l.get("ifname")
            if name == "lo":
                continue
            facts.links[name] = Link(name, l.get("IFLA_ADDRESS"), l.get("IFLA_MTU"),
                                     bool(l["flags"] & 1), frozenset(addrs.get(l["index"], ())))
        byidx = {l["index"]: l.get("ifname") for l in links}
        for r in ipr.get_default_routes(family=socket.AF_INET):
            if r.get("table") == 254 or r.get("RTA_TABLE") == 254:
                facts.default_route = (r.get("RTA_GATEWAY"), byidx.get(r.get("RTA_OIF")))
        facts.sysctls = run_in_netns(ns, _read_sysctls, [k for k, _ in ROUTER_SYSCTLS])
        facts.nat = self.nat.observe(ns)
        facts.fip_map = self.nat.fip_map(facts.nat)
        return facts

    # -- apply ------------------------------------------------------------------------
    def apply(self, plan: Plan) -> Result:
        """Run the steps in order; consecutive OVS steps go in one OVSDB transaction.
        A failing step stops the steps of its namespace or bridge, not the others."""
        res = Result()
        failed: set[str] = set()
        steps = plan.steps
        i = 0
        while i < len(steps):
            if steps[i].action in OVS_ACTIONS:
                j = i
                while j < len(steps) and steps[j].action in OVS_ACTIONS:
                    j += 1
                batch = [s for s in steps[i:j] if self._router_of(s) not in failed]
                try:
                    self._ovs_batch(batch)
                    res.steps += batch
                except Exception as e:  # noqa: BLE001
                    for s in batch:
                        res.errors[s.target] = f"{s.action}: {e}"
                        failed.add(self._router_of(s))
                i = j
                continue
            s = steps[i]
            i += 1
            if s.target in failed:
                continue
            try:
                self._execute(s)
                res.steps.append(s)
            except Exception as e:  # noqa: BLE001
                log.error("%s %s failed: %s", s.action, s.target, e)
                res.errors[s.target] = f"{s.action}: {e}"
                failed.add(s.target)
        res.writes = len(res.steps)
        self.writes += res.writes
        return res

    @staticmethod
    def _router_of(step: Step) -> str:
        if step.action == "add_port":
            return NS_PREFIX + dict(step.args[2])[OWNER_KEY]
        return step.target

    def _ovs_batch(self, batch: list[Step]) -> None:
        if not batch:
            return
        api = self.ovs
        with api.transaction(check_error=True) as txn:
            for s in batch:
                if s.action == "ensure_bridge":
                    txn.add(api.add_br(s.target, may_exist=True, datapath_type=self.datapath_type))
                    txn.add(api.db_set("Bridge", s.target,
                                       ("external_ids", {"floatip-owned": "true"})))
                elif s.action == "add_port":
                    name, tag, ids = s.args
                    txn.add(api.add_port(s.target, name, may_exist=True, type="internal",
                                         external_ids=dict(ids)))
                    if tag is not None:
                        txn.add(api.db_set("Port", name, ("tag", tag)))
                elif s.action == "set_tag":
                    name, tag = s.args
                    txn.add(api.db_set("Port", name, ("tag", tag)) if tag is not None
                            else api.db_clear("Port", name, "tag"))
                elif s.action == "del_port":
                    txn.add(api.del_port(s.args[0], if_exists=True))
        # vswitchd creates internal devices after the commit: wait for them, and bring
        # new bridges' own devices up.
        waits = [s.args[0] for s in batch if s.action == "add_port"]
        waits += [s.target for s in batch if s.action == "ensure_bridge"]
        deadline = time.monotonic() + 15
        for name in waits:
            while not self._root.link_lookup(ifname=name):
                if time.monotonic() > deadline:
                    raise DataplaneError(f"OVS did not create device {name} (is ovs-vswitchd up?)")
                time.sleep(0.005)
        for s in batch:
            if s.action == "ensure_bridge":
                self._root.link("set", index=self._root.link_lookup(ifname=s.target)[0], state="up")

    def _index(self, ns: str, name: str) -> int:
        idx = self.ipr(ns).link_lookup(ifname=name)
        if not idx:
            raise DataplaneError(f"no device {name} in {ns}")
        return idx[0]

    def _execute(self, s: Step) -> None:
        ns, a = s.target, s.args
        match s.action:
            case "create_namespace":
                pnetns.create(ns)
                ipr = self.ipr(ns)
                ipr.link("set", index=1, state="up", ifalias=MARK_PREFIX + a[0])
            case "move_link":
                idx = self._root.link_lookup(ifname=a[0])
                if not idx:
                    raise DataplaneError(f"device {a[0]} not found in the root namespace")
                self._root.link("set", index=idx[0], net_ns_fd=ns)
            case "set_link":
                name, mac, mtu = a
                self.ipr(ns).link("set", index=self._index(ns, name), address=mac, mtu=mtu,
                                  state="up")
            case "add_address" | "del_address":
                itf = ipaddress.ip_interface(a[1])
                self.ipr(ns).addr("add" if s.action == "add_address" else "del",
                                  index=self._index(ns, a[0]), address=str(itf.ip),
                                  prefixlen=itf.network.prefixlen,
                                  broadcast=str(itf.network.broadcast_address))
            case "replace_default_route":
                self.ipr(ns).route("replace", dst="0.0.0.0/0", gateway=a[0],
                                   oif=self._index(ns, a[1]))
            case "del_default_route":
                self.ipr(ns).route("del", dst="0.0.0.0/0")
            case "set_sysctls":
                run_in_netns(ns, _write_sysctls, a)
            case "add_fips":
                dev, mac, ips = a
                ipr, idx = self.ipr(ns), self._index(ns, dev)
                for ip in ips:
                    try:
                        ipr.addr("add", index=idx, address=ip, prefixlen=32, broadcast=ip)
                    except NetlinkError as e:
                        if e.code != 17:  # EEXIST: already there is what we want
                            raise
                self.garp.announce(ns, dev, mac, ips)
            case "del_fips":
                dev, ips = a
                ipr, idx = self.ipr(ns), self._index(ns, dev)
                for ip in ips:
                    try:
                        ipr.addr("del", index=idx, address=ip, prefixlen=32)
                    except NetlinkError as e:
                        if e.code != 99:  # EADDRNOTAVAIL: already gone
                            raise
            case "flush_conntrack":
                for ip in a:  # inbound (original destination) and outbound (reply destination)
                    nsexec(ns, ["conntrack", "-D", "-d", ip], check=False)
                    nsexec(ns, ["conntrack", "-D", "-q", ip], check=False)
            case "delete_namespace":
                self._kill_our_processes(ns)
                self._drop_session(ns)
                if hasattr(self.nat, "forget"):
                    self.nat.forget(ns)
                pnetns.remove(ns)
            case "iptables_restore" | "nft":
                self.nat.execute(s)
            case _:
                raise DataplaneError(f"unknown step {s.action}")

    @staticmethod
    def _kill_our_processes(ns: str) -> None:
        """floatip starts no long-lived process in a router namespace today; a process found
        there that floatip started (it carries FLOATIP_ROUTER in its environment) is ended."""
        for pid in pnetns.ns_pids().get(ns, []):
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if b"FLOATIP_ROUTER=" in f.read():
                        os.kill(pid, 15)
            except OSError:
                pass
