"""The shell: the only code that reads or changes the kernel and OVS.

- netlink through pyroute2, one session per namespace kept open (no process per change);
  the two hot paths, floating IP /32 addresses and conntrack deletes, use raw rtnetlink and
  ctnetlink sockets opened in the namespace (RtBatch, CtNetlink): hundreds of requests per
  system call where pyroute2 makes a round trip each;
- OVSDB through ovsdbapp, consecutive OVS steps committed as one transaction;
- NAT through a driver (``nftables`` or ``iptables``): one transaction per router per apply;
- sysctls and raw sockets (gratuitous ARP) from a thread that entered the namespace.

Ownership: a router namespace is floatip's when its ``lo`` carries the alias
``floatip router=<id>`` (the mark lives and dies with the namespace); an OVS port is floatip's
when its interface has ``external_ids:floatip-router``; rules live in floatip's own chains
(iptables) or its own ``ip floatip`` table (nftables).
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


def idl_rows(table) -> list:
    """The rows of an OVSDB IDL table; the IDL thread may change the dict while we copy it."""
    for _ in range(50):
        try:
            return list(table.rows.values())
        except RuntimeError:  # "dictionary changed size during iteration": copy again
            continue
    return list(table.rows.values())


def read_dump(sock: socket.socket, seq: int, bufsize: int):
    """Yield (message type, message bytes) of the netlink dump answering request ``seq``,
    up to NLMSG_DONE; an NLMSG_ERROR with a non-zero code raises NetlinkError."""
    while True:
        data = sock.recv(bufsize)
        off = 0
        while off + 16 <= len(data):
            length, t, _, mseq, _ = struct.unpack_from("=IHHII", data, off)
            if length < 16:
                break
            if mseq == seq:
                if t == 3:  # NLMSG_DONE
                    return
                if t == 2:  # NLMSG_ERROR
                    error = -struct.unpack_from("=i", data, off + 16)[0]
                    if error:
                        raise NetlinkError(error, os.strerror(error))
                    return
                yield t, data[off:off + length]
            off += (length + 3) & ~3


def datapath_type() -> str:
    """``system`` where the kernel has the openvswitch module, ``netdev`` (userspace) where not."""
    if os.path.exists("/sys/module/openvswitch"):
        return "system"
    if subprocess.run(["modprobe", "-q", "openvswitch"], capture_output=True).returncode == 0 \
            and os.path.exists("/sys/module/openvswitch"):
        return "system"
    return "netdev"


_libc = None


def _setns_fd(fd: int, what: str = "") -> None:
    global _libc
    if _libc is None:
        import ctypes
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        import ctypes
        e = ctypes.get_errno()
        raise OSError(e, f"setns {what}: {os.strerror(e)}")


def _setns(ns: str) -> None:
    """Move the calling thread into the named network namespace."""
    fd = os.open(os.path.join(NETNS_DIR, ns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns_fd(fd, ns)
    finally:
        os.close(fd)


class _NetnsWorker:
    """One long-lived thread that enters namespaces on request: opening a socket or reading
    /proc/sys inside a namespace costs a setns, not a thread start (100 routers: 300 fewer
    threads on a restart). It runs short calls only, one at a time."""

    def __init__(self):
        self.q: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def run(self, ns: str, fn, args):
        if threading.current_thread() is self.thread:  # nested: we are already the worker
            back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(ns)
                return fn(*args)
            finally:
                _setns_fd(back, "back")
                os.close(back)
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="netns-worker",
                                               daemon=True)
                self.thread.start()
        done = threading.Event()
        box: list = []
        self.q.put((ns, fn, args, box, done))
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def _loop(self) -> None:
        # Back home after every call: a thread left in a namespace would keep it (and the
        # devices in it) alive after ``ip netns delete``.
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        while True:
            ns, fn, args, box, done = self.q.get()
            try:
                _setns(ns)
                box.append((True, fn(*args)))
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                box.append((False, e))
            finally:
                _setns_fd(home, "home")
            done.set()


_worker = _NetnsWorker()


def run_in_netns(ns: str, fn, *args):
    """Run ``fn`` in a thread that entered ``ns``: sockets it opens and /proc/sys it reads
    belong to that namespace; the rest of the process stays put."""
    return _worker.run(ns, fn, args)


def _open_sysctls() -> dict[str, int]:
    out = {}
    for k, _ in ROUTER_SYSCTLS:
        try:
            out[k] = os.open("/proc/sys/" + k.replace(".", "/"), os.O_RDONLY | os.O_CLOEXEC)
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
        self._known: dict[str, iptables.Ruleset] = {}  # ns -> rules as last read or applied

    @staticmethod
    def _supports_random_fully() -> bool:
        try:
            out = subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout
            ver = tuple(int(x) for x in out.split()[1].lstrip("v").split("."))
            return ver >= (1, 6, 2)
        except (OSError, ValueError, IndexError):
            return False

    def observe(self, ns: str) -> iptables.Ruleset:
        rs = iptables.parse_save(nsexec(ns, ["iptables-save"]).stdout)
        self._known[ns] = rs
        return rs

    def known(self, ns: str) -> iptables.Ruleset | None:
        return self._known.get(ns)

    def forget(self, ns: str) -> None:
        self._known.pop(ns, None)

    def plan(self, ns: str, spec: NatSpec, facts: iptables.Ruleset | None) -> Step | None:
        want = iptables.render(spec, self.random_fully)
        text = iptables.restore_input(want, facts or iptables.Ruleset())
        if text is None:
            return None
        return Step("nat", "iptables_restore", ns, (text, ("ruleset", want)), "rules differ")

    def plan_fips(self, ns: str, facts: iptables.Ruleset, add: dict[str, str], remove,
                  have: dict[str, str]) -> Step | None:
        """Floating IPs added/moved and removed as rule deletes and appends: one restore."""
        dels = [r for f in sorted(set(remove) | {f for f in add if f in have})
                for r in iptables.fip_rules(f, have[f])]
        adds = [r for f, x in add.items() for r in iptables.fip_rules(f, x)]
        if not dels and not adds:
            return None
        lines = ["*nat"] + ["-D" + r[2:] for _, r in dels] + [r for _, r in adds] + ["COMMIT"]
        return Step("nat", "iptables_restore", ns, ("\n".join(lines) + "\n", ("rules", (dels, adds))),
                    "floating IPs changed")

    @staticmethod
    def fip_map(facts: iptables.Ruleset) -> dict[str, str]:
        return facts.fip_map()

    def execute(self, step: Step) -> None:
        ns = step.target
        try:
            nsexec(ns, ["iptables-restore", "-n", "-w", "5"], input=step.args[0])
        except Exception:
            self._known.pop(ns, None)
            raise
        extra = step.args[1] if len(step.args) > 1 else None
        rs = self._known.get(ns)
        if extra is None:
            self._known.pop(ns, None)
        elif extra[0] == "ruleset":
            want = extra[1]
            self._known[ns] = iptables.Ruleset({k: list(v) for k, v in want.chains.items()},
                                               {k: list(v) for k, v in want.jumps.items()})
            if rs is not None:  # callers holding the old object see the new rules too
                rs.chains, rs.jumps = self._known[ns].chains, self._known[ns].jumps
                self._known[ns] = rs
        elif rs is not None:
            dels, adds = extra[1]
            for ch, r in dels:
                lst = rs.chains.get(("nat", ch), [])
                if r in lst:
                    lst.remove(r)
            for ch, r in adds:
                rs.chains.setdefault(("nat", ch), []).append(r)


def nat_driver(name: str):
    if name == "iptables":
        return IptablesDriver()
    if name == "nftables":
        from .nftables import NftablesDriver
        return NftablesDriver()
    raise DataplaneError(f"unknown NAT driver {name!r} (iptables, nftables)")


class RtBatch:
    """A raw rtnetlink socket opened inside a namespace, for many address changes in few
    system calls: requests are sent in chunks of hundreds and their acks read back, where
    pyroute2 makes one round trip (and Neutron one ``ip`` process) per address."""

    CHUNK = 512

    def __init__(self, ns: str):
        self.sock, self._fds = run_in_netns(ns, lambda: (
            socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0), _open_sysctls()))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, 0))
        self.seq = int(time.monotonic() * 1000) & 0xffffff

    def close(self) -> None:
        self.sock.close()
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    @property
    def sysctls(self) -> dict[str, str]:
        """The router sysctls, read now through files opened inside the namespace (an open
        /proc/sys file keeps the namespace it was opened in)."""
        return {k: os.pread(fd, 64, 0).decode().strip() for k, fd in self._fds.items()}

    def _dump(self, mtype: int, payload: bytes) -> list[tuple[int, bytes]]:
        """One netlink dump, read to its end: [(message type, message bytes)]."""
        self.seq += 1
        self.sock.send(struct.pack("=IHHII", 16 + len(payload), mtype, 0x301, self.seq, 0) + payload)
        return list(read_dump(self.sock, self.seq, 1 << 20))

    @staticmethod
    def _attrs(msg: bytes, off: int) -> dict[int, bytes]:
        out = {}
        while off + 4 <= len(msg):
            alen, atype = struct.unpack_from("=HH", msg, off)
            if alen < 4:
                break
            out[atype & 0x3fff] = msg[off + 4:off + alen]
            off += (alen + 3) & ~3
        return out

    def links(self) -> list[dict]:
        out = []
        for _, m in self._dump(18, struct.pack("=BBHiII", 0, 0, 0, 0, 0, 0)):  # RTM_GETLINK
            _, _, _, index, flags, _ = struct.unpack_from("=BBHiII", m, 16)
            a = self._attrs(m, 32)
            mac = a.get(1, b"")
            out.append({"index": index, "flags": flags,
                        "ifname": a.get(3, b"").rstrip(b"\0").decode(),
                        "mac": ":".join(f"{b:02x}" for b in mac) if mac else None,
                        "mtu": struct.unpack("=I", a[4])[0] if 4 in a else None,
                        "alias": a[20].rstrip(b"\0").decode() if 20 in a else None})
        return out

    def addrs(self) -> list[tuple[int, str]]:
        out = []
        for _, m in self._dump(22, struct.pack("=BBBBI", socket.AF_INET, 0, 0, 0, 0)):
            _, plen, _, _, index = struct.unpack_from("=BBBBI", m, 16)
            a = self._attrs(m, 24)
            addr = a.get(1) or a.get(2)
            if addr:
                out.append((index, f"{socket.inet_ntoa(addr)}/{plen}"))
        return out

    def routes(self) -> list[tuple[str, str | None, int | None]]:
        """Unicast routes of the main table: (destination CIDR, gateway, output index)."""
        out = []
        for _, m in self._dump(26, struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)):
            _, dst_len, _, _, table, _, _, rtype, _ = struct.unpack_from("=BBBBBBBBI", m, 16)
            if rtype != 1:
                continue
            a = self._attrs(m, 28)
            if 15 in a:
                table = struct.unpack("=I", a[15])[0]
            if table != 254:
                continue
            dst = socket.inet_ntoa(a[1]) if 1 in a else "0.0.0.0"
            gw = socket.inet_ntoa(a[5]) if 5 in a else None
            oif = struct.unpack("=I", a[4])[0] if 4 in a else None
            out.append((f"{dst}/{dst_len}", gw, oif))
        return out

    def addresses(self, add: bool, index: int, ips) -> None:
        """Add (or delete) each ip as a /32 on ``index``; an address already there (or
        already gone) is fine. Raises on the first other error."""
        mtype = 20 if add else 21  # RTM_NEWADDR / RTM_DELADDR
        flags = 0x1 | 0x4 | (0x400 | 0x200 if add else 0)  # REQUEST|ACK [|CREATE|EXCL]
        ok = 17 if add else 99  # EEXIST / EADDRNOTAVAIL
        ips = list(ips)
        for i in range(0, len(ips), self.CHUNK):
            chunk = ips[i:i + self.CHUNK]
            parts = []
            first = self.seq + 1
            for ip in chunk:
                self.seq += 1
                a = socket.inet_aton(ip)
                parts.append(struct.pack("=IHHII", 48, mtype, flags, self.seq, 0)
                             + struct.pack("=BBBBI", socket.AF_INET, 32, 0, 0, index)
                             + struct.pack("=HH4sHH4sHH4s", 8, 2, a, 8, 1, a, 8, 4, a))
            self.sock.send(b"".join(parts))
            pending = set(range(first, self.seq + 1))
            error = None
            while pending:
                data = self.sock.recv(1 << 20)
                off = 0
                while off + 16 <= len(data):
                    length, t, _, seq, _ = struct.unpack_from("=IHHII", data, off)
                    if t == 2:  # NLMSG_ERROR: 0 is the ack
                        code = -struct.unpack_from("=i", data, off + 16)[0]
                        if code not in (0, ok) and error is None:
                            error = (code, chunk[seq - first] if 0 <= seq - first < len(chunk) else "?")
                        pending.discard(seq)
                    off += (length + 3) & ~3 if length else len(data)
            if error is not None:
                raise NetlinkError(error[0], f"address {error[1]}: {os.strerror(error[0])}")


class CtNetlink:
    """conntrack through ctnetlink on a socket opened inside the namespace: one dump, then a
    delete per matching entry (what ``conntrack -D -d IP`` and ``-D -q IP`` do, without two
    processes per address)."""

    def __init__(self, ns: str | None):
        """``ns`` None: the calling thread's own namespace."""
        self.sock = run_in_netns(ns, socket.socket, socket.AF_NETLINK, socket.SOCK_RAW, 12) \
            if ns is not None else socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    @staticmethod
    def _attrs(msg: bytes, off: int, end: int) -> dict[int, tuple[int, int]]:
        out = {}
        while off + 4 <= end:
            alen, atype = struct.unpack_from("=HH", msg, off)
            if alen < 4:
                break
            out[atype & 0x3fff] = (off, off + alen)
            off += (alen + 3) & ~3
        return out

    def _dst(self, msg: bytes, span) -> bytes | None:
        tup = self._attrs(msg, span[0] + 4, span[1])
        if 1 not in tup:
            return None
        ipa = self._attrs(msg, tup[1][0] + 4, tup[1][1])
        if 2 not in ipa:
            return None
        a, b = ipa[2]
        return msg[a + 4:b]

    def delete_by_address(self, ips, stale_only: bool = False) -> int:
        """Delete entries whose original or reply destination is one of ``ips``; with
        ``stale_only``, only entries to one of ``ips`` that were not DNATed (opened by packets
        that came before the floating IP's DNAT: they would keep the flow un-NATed)."""
        want = {socket.inet_aton(ip) for ip in ips}
        self.seq += 1
        seq = self.seq
        self.sock.send(struct.pack("=IHHII", 20, 0x101, 0x301, seq, 0) + struct.pack("=BBH", 2, 0, 0))
        victims = []
        for _, msg in read_dump(self.sock, seq, 1 << 22):
            top = self._attrs(msg, 20, len(msg))
            if stale_only:
                st = top.get(3)  # CTA_STATUS, IPS_DST_NAT is 0x20
                hit = 1 in top and self._dst(msg, top[1]) in want and st is not None \
                    and not struct.unpack_from("!I", msg, st[0] + 4)[0] & 0x20
            else:
                hit = (1 in top and self._dst(msg, top[1]) in want) or \
                    (2 in top and self._dst(msg, top[2]) in want)
            if hit:
                a, b = top[1]
                extra = b""
                if 18 in top:  # CTA_ZONE
                    za, zb = top[18]
                    extra = msg[za:zb] + b"\0" * ((4 - (zb - za) % 4) % 4)
                victims.append(msg[a:b] + b"\0" * ((4 - (b - a) % 4) % 4) + extra)
        for tuple_attr in victims:
            self.seq += 1
            body = struct.pack("=BBH", 2, 0, 0) + tuple_attr
            self.sock.send(struct.pack("=IHHII", 16 + len(body), 0x102, 0x5, self.seq, 0) + body)
            while True:
                data = self.sock.recv(65536)
                length, t, _, mseq, _ = struct.unpack_from("=IHHII", data, 0)
                if mseq == self.seq:
                    break
        return len(victims)


class Garp:
    """Gratuitous ARP after a floating IP appears, off the apply path: a worker thread sends
    three rounds one second apart (Neutron: arping -U, 3 rounds) from a raw socket in the
    router namespace. With the first round it also deletes conntrack entries to the new
    floating IPs that were not DNATed (packets that came before the rule, e.g. late packets
    of a floating IP removed and added again), so those flows get the DNAT."""

    def __init__(self, rounds: int = 3, interval: float = 1.0):
        self.rounds, self.interval = rounds, interval
        self.q: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None

    def announce(self, ns: str, dev: str, mac: str, ips) -> None:
        for r in range(self.rounds):
            self.q.put((time.monotonic() + r * self.interval, ns, dev, mac, tuple(ips), r == 0))
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="garp", daemon=True)
            self.thread.start()

    def busy(self) -> bool:
        """True while announcements are queued or due (for benchmarks and tests)."""
        return not self.q.empty() or self.pending > 0

    pending = 0

    def _run(self) -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._loop(home)
        finally:
            os.close(home)

    def _loop(self, home: int) -> None:
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
            self.pending = len(pending) + len(due)
            for _, ns, dev, mac, ips, first in due:
                try:
                    _setns(ns)
                    self._send(dev, mac, ips)
                    if first:  # flows opened before the DNAT existed would stay un-NATed
                        ct = CtNetlink(None)
                        try:
                            ct.delete_by_address(ips, stale_only=True)
                        finally:
                            ct.close()
                except Exception as e:  # namespace or device gone: nothing to announce
                    log.debug("garp %s %s: %s", ns, dev, e)
            if due:
                _setns_fd(home, "home")  # never keep a router namespace alive
            self.pending = len(pending)

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
    def __init__(self, nat: str = "nftables", ovsdb: str = OVSDB):
        self.nat = nat_driver(nat)
        self.datapath_type = datapath_type()
        log.info("OVS datapath type: %s", self.datapath_type)
        self.ovsdb = ovsdb
        self._ovs = None
        self._root = IPRoute()
        try:  # a few descriptors per router namespace are kept open
            import resource
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if soft < hard:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ImportError, ValueError, OSError):
            pass
        self._sessions: dict[str, IPRoute] = {}
        self._batches: dict[str, RtBatch] = {}
        self._ct: dict[str, CtNetlink] = {}
        self._idx: dict[tuple[str, str], int] = {}  # (namespace, device) -> ifindex
        self.garp = Garp()
        self.writes = 0  # kernel and OVS changes made by this object, for tests and reports
        self.seconds: dict[str, float] = {}  # time spent per step action, for benchmarks

    # -- sessions ---------------------------------------------------------------------
    @property
    def ovs(self):
        if self._ovs is None:
            from ovsdbapp.backend.ovs_idl import connection
            from ovsdbapp.schema.open_vswitch import impl_idl
            idl = connection.OvsdbIdl.from_server(self.ovsdb, "Open_vSwitch")
            # ovsdbapp keeps one connection per API class; a class per Dataplane keeps
            # close() of one from stopping the connection of another in the same process.
            api_class = type("DataplaneOvs", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
            self._ovs = api_class(connection.Connection(idl=idl, timeout=10))
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
        for b in self._batches.values():
            b.close()
        self._batches.clear()
        for c in self._ct.values():
            c.close()
        self._ct.clear()
        self._idx.clear()
        self._root.close()
        if self._ovs is not None:
            self._ovs.ovsdb_connection.stop()
            self._ovs = None

    def batch(self, ns: str) -> RtBatch:
        b = self._batches.get(ns)
        if b is None:
            b = self._batches[ns] = RtBatch(ns)
        return b

    def _drop_session(self, ns: str) -> None:
        s = self._sessions.pop(ns, None)
        if s is not None:
            s.close()
        b = self._batches.pop(ns, None)
        if b is not None:
            b.close()
        c = self._ct.pop(ns, None)
        if c is not None:
            c.close()
        self._idx = {k: v for k, v in self._idx.items() if k[0] != ns}

    # -- observe ----------------------------------------------------------------------
    def observe(self, routers: set[str] | None = None) -> Observed:
        """Read what floatip owns. ``routers`` limits the namespace reads to those ids."""
        obs = Observed()
        tables = self.ovs.tables
        for br in idl_rows(tables["Bridge"]):
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
        nl = self.batch(ns)
        links = nl.links()
        lo = next((l for l in links if l["ifname"] == "lo"), None)
        mark = lo["alias"] if lo is not None else None
        if not mark or not mark.startswith(MARK_PREFIX):
            self._drop_session(ns)
            return None
        facts = NsFacts(ns, mark[len(MARK_PREFIX):])
        addrs: dict[int, set[str]] = {}
        for index, addr in nl.addrs():
            addrs.setdefault(index, set()).add(addr)
        byidx = {}
        for l in links:
            name = l["ifname"]
            byidx[l["index"]] = name
            self._idx[(ns, name)] = l["index"]
            if name == "lo":
                continue
            facts.links[name] = Link(name, l["mac"], l["mtu"], bool(l["flags"] & 1),
                                     frozenset(addrs.get(l["index"], ())))
        extra = set()
        for dst, gw, oif in nl.routes():
            if dst == "0.0.0.0/0":
                facts.default_route = (gw, byidx.get(oif))
            elif gw is not None:  # connected routes (no gateway) come with the addresses
                extra.add((dst, gw))
        facts.extra_routes = frozenset(extra)
        facts.sysctls = nl.sysctls
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
                t0 = time.perf_counter()
                self._execute(s)
                self.seconds[s.action] = self.seconds.get(s.action, 0.0) + time.perf_counter() - t0
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

    def _index(self, ns: str, name: str, cached: bool = False) -> int:
        """The device's ifindex; ``cached`` reuses the last lookup (the event path)."""
        if cached and (ns, name) in self._idx:
            return self._idx[(ns, name)]
        idx = self.ipr(ns).link_lookup(ifname=name)
        if not idx:
            raise DataplaneError(f"no device {name} in {ns}")
        self._idx[(ns, name)] = idx[0]
        return idx[0]

    def _fip_addresses(self, ns: str, dev: str, add: bool, ips) -> None:
        try:
            self.batch(ns).addresses(add, self._index(ns, dev, cached=True), ips)
        except NetlinkError as e:
            if e.code != 19:  # ENODEV: the device was replaced; look it up again
                raise
            self.batch(ns).addresses(add, self._index(ns, dev), ips)

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
            case "replace_route" | "del_route":
                self.ipr(ns).route("replace" if s.action == "replace_route" else "del",
                                   dst=a[0], gateway=a[1])
            case "set_sysctls":
                run_in_netns(ns, _write_sysctls, a)

            case "add_fips":
                dev, mac, ips = a
                self._fip_addresses(ns, dev, True, ips)
                self.garp.announce(ns, dev, mac, ips)
            case "del_fips":
                dev, ips = a
                self._fip_addresses(ns, dev, False, ips)
            case "flush_conntrack":
                # Entries whose original or reply destination is the address (inbound flows
                # and the float-SNATed outbound ones): one ctnetlink dump and the deletes, in
                # process; the conntrack tool is the fallback.
                try:
                    ct = self._ct.get(ns) or self._ct.setdefault(ns, CtNetlink(ns))
                    ct.delete_by_address(a)
                except (OSError, NetlinkError) as e:
                    log.info("ctnetlink in %s: %s; using conntrack", ns, e)
                    for ip in a:
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
