"""A persistent OpenFlow 1.4 connection to one bridge's management socket
(``<rundir>/<bridge>.mgmt``, as ``ovs-ofctl`` uses it), for the firewall's flow mods.

Why: an ``ovs-ofctl`` run per change costs ~20 ms before it sends anything (the process
and its libraries: ``ovs-ofctl --version`` alone takes that on this machine), which was
most of a member add (benchmarks/firewall_bench.py). Here the agent keeps the socket: a
change is its flow mods (in a bundle when asked) and one barrier, well under 1 ms.

The messages are encoded here, for the match fields and actions ``core.firewall`` writes
(in ovs-ofctl's text syntax, which stays what operators read); anything else is refused and
the flow's owner fails with the reason. tests/test_firewall_openflow.py checks that every
kind of flow lands exactly as ``ovs-ofctl`` installs the same text. os-ken (Neutron's
OpenFlow library) was measured for this and not kept: importing its parser takes ~1 s,
it encodes ~0.4 ms per flow (a full pass of 100,000 flows would take a minute), and it
brings eventlet, which the ``ovs`` library then imports (with warnings) in every process
that uses ovsdbapp. The connection is opened on first use and again after an error
(vswitchd restarted, the bridge recreated).
"""
from __future__ import annotations

import functools
import os
import socket
import struct

OFP_VERSION = 5          # OpenFlow 1.4: the first with bundles
T_HELLO, T_ERROR, T_ECHO_REQ, T_ECHO_REP, T_FLOW_MOD = 0, 1, 2, 3, 14
T_BARRIER_REQ, T_BARRIER_REP, T_BUNDLE_CTRL, T_BUNDLE_ADD = 20, 21, 33, 34
BUNDLE_OPEN, BUNDLE_COMMIT, BUNDLE_DISCARD = 0, 4, 6
BUNDLE_FLAGS = 1 | 2     # atomic, ordered (as ovs-ofctl --bundle)
ADD, DELETE = 0, 3
ANY, NO_BUFFER, TABLE_ALL = 0xFFFFFFFF, 0xFFFFFFFF, 0xFF
TIMEOUT = 10.0
ERRORS = {0: "HELLO_FAILED", 1: "BAD_REQUEST", 2: "BAD_ACTION", 3: "BAD_INSTRUCTION",
          4: "BAD_MATCH", 5: "FLOW_MOD_FAILED", 6: "GROUP_MOD_FAILED", 7: "PORT_MOD_FAILED",
          8: "TABLE_MOD_FAILED", 9: "QUEUE_OP_FAILED", 10: "SWITCH_CONFIG_FAILED",
          11: "ROLE_REQUEST_FAILED", 12: "METER_MOD_FAILED", 13: "TABLE_FEATURES_FAILED",
          14: "BAD_PROPERTY", 15: "ASYNC_CONFIG_FAILED", 16: "FLOW_MONITOR_FAILED",
          17: "BUNDLE_FAILED", 0xFFFF: "EXPERIMENTER"}
CT_BITS = {"new": 0x01, "est": 0x02, "rel": 0x04, "rpl": 0x08, "inv": 0x10, "trk": 0x20,
           "snat": 0x40, "dnat": 0x80}
# ovs-ofctl's protocol shorthands: (eth_type, ip_proto)
SHORT = {"ip": (0x0800, None), "ipv6": (0x86DD, None), "arp": (0x0806, None),
         "tcp": (0x0800, 6), "udp": (0x0800, 17), "sctp": (0x0800, 132), "icmp": (0x0800, 1),
         "tcp6": (0x86DD, 6), "udp6": (0x86DD, 17), "sctp6": (0x86DD, 132),
         "icmp6": (0x86DD, 58)}
L4 = {6: "tcp", 17: "udp", 132: "sctp"}
# match fields: name -> (OXM class, field, value kind); kinds: int bytes, mac, ip4, ip6.
# 0x8000 is OpenFlow's basic class, 0x0001 Nicira's (registers, conntrack, conjunction).
FIELDS = {"eth_type": (0x8000, 5, 2), "ip_proto": (0x8000, 10, 1), "in_port": (0x8000, 0, 4),
          "eth_dst": (0x8000, 3, "mac"), "eth_src": (0x8000, 4, "mac"),
          "ipv4_src": (0x8000, 11, "ip4"), "ipv4_dst": (0x8000, 12, "ip4"),
          "tcp_src": (0x8000, 13, 2), "tcp_dst": (0x8000, 14, 2),
          "udp_src": (0x8000, 15, 2), "udp_dst": (0x8000, 16, 2),
          "sctp_src": (0x8000, 17, 2), "sctp_dst": (0x8000, 18, 2),
          "icmpv4_type": (0x8000, 19, 1), "icmpv4_code": (0x8000, 20, 1),
          "arp_spa": (0x8000, 22, "ip4"), "arp_tpa": (0x8000, 23, "ip4"),
          "arp_sha": (0x8000, 24, "mac"), "arp_tha": (0x8000, 25, "mac"),
          "ipv6_src": (0x8000, 26, "ip6"), "ipv6_dst": (0x8000, 27, "ip6"),
          "icmpv6_type": (0x8000, 29, 1), "icmpv6_code": (0x8000, 30, 1),
          "ipv6_nd_target": (0x8000, 31, "ip6"),
          **{f"reg{i}": (0x0001, i, 4) for i in range(8)},
          "conj_id": (0x0001, 37, 4), "ct_state": (0x0001, 105, 4), "ct_zone": (0x0001, 106, 2),
          "ct_mark": (0x0001, 107, 4)}
RANK = {k: i for i, k in enumerate(FIELDS)}
NX_VENDOR = 0x00002320
NX_RESUBMIT_TABLE, NX_CONJUNCTION, NX_CT = 14, 34, 35
OFPP_IN_PORT16, OFPP_NORMAL = 0xFFF8, 0xFFFFFFFA


class OpenFlowError(RuntimeError):
    pass


def rundir() -> str:
    return os.environ.get("OVS_RUNDIR", "/var/run/openvswitch")


def _int(v: str) -> int:
    return int(v, 0)


def _masked(v: str, conv=_int):
    if "/" in v:
        a, m = v.split("/", 1)
        return conv(a), conv(m)
    return conv(v)


def _net(v: str, version: int):
    """An address or prefix as bytes, or (address, mask) bytes (ipaddress is ~10x slower)."""
    addr, _, plen = v.partition("/")
    try:
        raw = socket.inet_pton(socket.AF_INET if version == 4 else socket.AF_INET6, addr)
        n = int(plen) if plen else len(raw) * 8
    except (OSError, ValueError) as e:
        raise OpenFlowError(f"{v} is not an IPv{version} address or prefix") from e
    bits = len(raw) * 8
    if not 0 <= n <= bits:
        raise OpenFlowError(f"{v}: bad prefix length")
    if n == bits:
        return raw
    mask = (1 << bits) - (1 << (bits - n))
    return ((int.from_bytes(raw, "big") & mask).to_bytes(len(raw), "big"),
            mask.to_bytes(len(raw), "big"))


def _ct_state(v: str):
    value = mask = i = 0
    while i < len(v):
        sign = v[i]
        j = i + 1
        while j < len(v) and v[j] not in "+-":
            j += 1
        bit = CT_BITS.get(v[i + 1:j])
        if sign not in "+-" or bit is None:
            raise OpenFlowError(f"ct_state {v!r}")
        mask |= bit
        value |= bit if sign == "+" else 0
        i = j
    return value, mask


@functools.lru_cache(maxsize=4096)
def match_fields(match: str) -> tuple:
    """ovs-ofctl match text -> (field, value or (value, mask)) pairs."""
    f: dict = {}
    pending: list[tuple[str, str]] = []
    for part in filter(None, match.split(",")):
        k, eq, v = part.partition("=")
        if not eq:
            if k not in SHORT:
                raise OpenFlowError(f"unknown match {k!r}")
            f["eth_type"], proto = SHORT[k]
            if proto is not None:
                f["ip_proto"] = proto
        else:
            pending.append((k, v))
    for k, v in pending:   # after the shorthands: some fields depend on eth_type/ip_proto
        v4 = f.get("eth_type") == 0x0800
        if k == "in_port":
            f["in_port"] = _int(v)
        elif k in ("dl_src", "dl_dst", "arp_sha", "arp_tha"):
            f[{"dl_src": "eth_src", "dl_dst": "eth_dst"}.get(k, k)] = _masked(v, str)
        elif k == "dl_type":
            f["eth_type"] = _int(v)
        elif k == "nw_proto":
            f["ip_proto"] = _int(v)
        elif k in ("nw_src", "nw_dst"):
            f["ipv4_" + k[3:]] = _net(v, 4)
        elif k in ("ipv6_src", "ipv6_dst"):
            f[k] = _net(v, 6)
        elif k in ("arp_spa", "arp_tpa"):
            f[k] = _net(v, 4)
        elif k == "nd_target":
            f["ipv6_nd_target"] = _net(v, 6)
        elif k in ("tp_src", "tp_dst"):
            proto = L4.get(f.get("ip_proto"))
            if proto is None:
                raise OpenFlowError(f"{k} without tcp, udp or sctp")
            f[f"{proto}_{k[3:]}"] = _masked(v)
        elif k in ("icmp_type", "icmp_code", "icmpv6_type", "icmpv6_code"):
            kind = "icmpv4" if v4 and not k.startswith("icmpv6") else "icmpv6"
            f[f"{kind}_{k.rpartition('_')[2]}"] = _int(v)
        elif k.startswith("reg") and k[3:].isdigit() or k in ("ct_mark", "conj_id", "ct_zone"):
            f[k] = _masked(v)
        elif k == "ct_state":
            f[k] = _ct_state(v)
        else:
            raise OpenFlowError(f"unknown match field {k!r}")
    return tuple(sorted(f.items()))


def _value(kind, v) -> bytes:
    if isinstance(v, bytes):    # an address (_net)
        return v
    if kind == "mac":
        return bytes.fromhex(v.replace(":", ""))
    return int(v).to_bytes(kind, "big")


def _oxm(name: str, value) -> bytes:
    cls, field, kind = FIELDS[name]
    masked = isinstance(value, tuple)
    body = b"".join(_value(kind, v) for v in value) if masked else _value(kind, value)
    return struct.pack("!HBB", cls, field << 1 | masked, len(body)) + body


def _pad8(b: bytes) -> bytes:
    return b + bytes(-len(b) % 8)


@functools.lru_cache(maxsize=8192)
def encode_match(match: str) -> bytes:
    """An OXM match; fields in FIELDS' order (OVS checks each field's prerequisites, such as
    eth_type before an address, as it reads them)."""
    oxms = b"".join(_oxm(k, v) for k, v in sorted(match_fields(match),
                                                  key=lambda kv: RANK[kv[0]]))
    return _pad8(struct.pack("!HH", 1, 4 + len(oxms)) + oxms)


def _split(text: str) -> list[str]:
    """Top-level comma-separated items (commas inside parentheses stay)."""
    out, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += (c == "(") - (c == ")")
        if c == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return out


def _nx(subtype: int, fmt: str, *args) -> bytes:
    body = struct.pack("!IH" + fmt, NX_VENDOR, subtype, *args)
    return struct.pack("!HH", 0xFFFF, 4 + len(body)) + body


def _set_field(field: str, value: str) -> bytes:
    if field not in FIELDS:
        raise OpenFlowError(f"set_field to {field!r}")
    body = struct.pack("!HH", 25, 0) + _oxm(field, _int(value))
    body = _pad8(body)
    return body[:2] + struct.pack("!H", len(body)) + body[4:]


def _ct(args: str) -> bytes:
    flags, zone_src, zone, table, nested = 0, 0, 0, 0xFF, b""
    for a in _split(args):
        k, _, v = a.partition("=")
        if a == "commit":
            flags |= 1
        elif k == "table":
            table = _int(v)
        elif k == "zone" and v.startswith("NXM_NX_REG") and v.endswith("]"):
            reg, _, bits = v[len("NXM_NX_REG"):-1].partition("[")
            lo, _, hi = bits.partition("..")
            zone_src = 0x0001 << 16 | int(reg) << 9 | 4
            zone = int(lo) << 6 | (int(hi) - int(lo))
        elif k == "zone":
            zone = _int(v)
        elif a.startswith("exec(") and a.endswith(")"):
            nested = encode_actions(a[5:-1])
        else:
            raise OpenFlowError(f"ct argument {a!r}")
    return _with_len(_nx(NX_CT, "HIHB3xH", flags, zone_src, zone, table, 0) + nested)


def _with_len(action: bytes) -> bytes:
    return action[:2] + struct.pack("!H", len(action)) + action[4:]


@functools.lru_cache(maxsize=1024)
def encode_actions(actions: str) -> bytes:
    """ovs-ofctl action text -> OpenFlow actions (the kinds core.firewall writes)."""
    out = []
    for a in _split(actions):
        if a == "NORMAL":
            out.append(struct.pack("!HHIH6x", 0, 16, OFPP_NORMAL, 0))
        elif a == "drop" and actions == "drop":
            pass
        elif a.startswith("resubmit(,") and a.endswith(")"):
            out.append(_nx(NX_RESUBMIT_TABLE, "HB3x", OFPP_IN_PORT16, _int(a[10:-1])))
        elif a.startswith("set_field:") and "->" in a:
            value, _, field = a[10:].partition("->")
            out.append(_set_field(field, value))
        elif a.startswith("conjunction(") and a.endswith(")"):
            cid, _, clause = a[12:-1].partition(",")
            k, _, n = clause.partition("/")
            out.append(_nx(NX_CONJUNCTION, "BBI", _int(k) - 1, _int(n), _int(cid)))
        elif a.startswith("ct(") and a.endswith(")"):
            out.append(_ct(a[3:-1]))
        else:
            raise OpenFlowError(f"unknown action {a!r}")
    return b"".join(out)


def flow_add(cookie: int, table: int, priority: int, match: str, actions: str) -> tuple:
    """An OFPT_FLOW_MOD adding one flow, as (type, body)."""
    acts = encode_actions(actions)
    inst = struct.pack("!HHI", 4, 8 + len(acts), 0) + acts if acts else b""   # apply
    return T_FLOW_MOD, struct.pack("!QQBBHHHIIIHH", cookie, 0, table, ADD, 0, 0, priority,
                                   NO_BUFFER, ANY, ANY, 0, 0) + encode_match(match) + inst


def flow_delete(cookie: int) -> tuple:
    """An OFPT_FLOW_MOD deleting the flows with exactly this cookie, in every table."""
    return T_FLOW_MOD, struct.pack("!QQBBHHHIIIHH", cookie, (1 << 64) - 1, TABLE_ALL, DELETE,
                                   0, 0, 0, NO_BUFFER, ANY, ANY, 0, 0) + _pad8(
        struct.pack("!HH", 1, 4))


def _error_text(body: bytes) -> str:
    etype, code = struct.unpack("!HH", body[:4])
    return f"OpenFlow error OFPET_{ERRORS.get(etype, etype)} code {code}"


class Connection:
    """One bridge's management socket, kept open between changes."""

    def __init__(self, bridge: str):
        self.path = f"{rundir()}/{bridge}.mgmt"
        self.sock: socket.socket | None = None
        self.xid = 0
        self.connects = 0

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _next(self) -> int:
        self.xid = self.xid % 0xFFFFFFF0 + 1
        return self.xid

    def _connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        try:
            s.connect(self.path)
            s.sendall(struct.pack("!BBHI", OFP_VERSION, T_HELLO, 8, self._next()))
            version, typ, body = self._read(s)
        except OSError:
            s.close()
            raise
        if typ != T_HELLO or version < OFP_VERSION:
            s.close()
            raise OpenFlowError(f"{self.path}: the bridge does not speak OpenFlow 1.4 "
                                "(its protocols column)")
        self.sock = s
        self.connects += 1

    @staticmethod
    def _read(s: socket.socket) -> tuple[int, int, bytes]:
        head = _recv(s, 8)
        version, typ, length, xid = struct.unpack("!BBHI", head)
        return version, typ, head + _recv(s, length - 8)

    def transact(self, msgs: list, bundle: bool) -> None:
        """Sends ``msgs`` (flow mods), in one atomic bundle when ``bundle``, then a
        barrier; raises OpenFlowError with the switch's first error (then nothing of a
        bundle was applied). A broken connection is reopened once."""
        try:
            self._transact(msgs, bundle)
        except (OSError, EOFError):
            self.close()           # vswitchd restarted or the bridge was recreated
            try:
                self._transact(msgs, bundle)
            except (OSError, EOFError) as e:
                self.close()
                raise OpenFlowError(f"{self.path}: {e or type(e).__name__}") from e

    def _transact(self, msgs: list, bundle: bool) -> None:
        if self.sock is None:
            self._connect()
        if not bundle:
            error = self._send(msgs)
        else:   # as ovs-ofctl --bundle: a message refused on adding discards the bundle
            bid = self._next()
            adds = []
            for typ, body in msgs:
                x = self._next()   # OVS wants the inner message's xid outside too
                inner = struct.pack("!BBHI", OFP_VERSION, typ, 8 + len(body), x) + body
                adds.append((T_BUNDLE_ADD, struct.pack("!IHH", bid, 0, BUNDLE_FLAGS) + inner, x))
            error = self._send([(T_BUNDLE_CTRL, struct.pack("!IHH", bid, BUNDLE_OPEN,
                                                            BUNDLE_FLAGS)), *adds])
            end = BUNDLE_DISCARD if error else BUNDLE_COMMIT
            error = self._send([(T_BUNDLE_CTRL, struct.pack("!IHH", bid, end, BUNDLE_FLAGS))]
                               ) or error
        if error:
            raise OpenFlowError(error)

    def _send(self, msgs: list) -> str | None:
        """Sends ``msgs`` ((type, body[, xid])) and a barrier; the first error the switch
        answered, if any."""
        data = []
        for m in msgs:
            typ, body = m[0], m[1]
            xid = m[2] if len(m) > 2 else self._next()
            data.append(struct.pack("!BBHI", OFP_VERSION, typ, 8 + len(body), xid) + body)
        barrier = self._next()
        data.append(struct.pack("!BBHI", OFP_VERSION, T_BARRIER_REQ, 8, barrier))
        self.sock.sendall(b"".join(data))
        error = None
        while True:
            _, typ, raw = self._read(self.sock)
            xid = struct.unpack("!I", raw[4:8])[0]
            if typ == T_ERROR and error is None:
                error = _error_text(raw[8:])
            elif typ == T_ECHO_REQ:
                self.sock.sendall(struct.pack("!BBHI", OFP_VERSION, T_ECHO_REP, len(raw), xid)
                                  + raw[8:])
            elif typ == T_BARRIER_REP and xid == barrier:
                return error


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed by the switch")
        buf += chunk
    return buf

