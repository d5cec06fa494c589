"""A persistent OpenFlow 1.4 connection to one bridge's management socket
(``<rundir>/<bridge>.mgmt``, as ``ovs-ofctl`` uses it), for the firewall's flow mods.

Why: an ``ovs-ofctl`` run per change costs ~20 ms before it sends anything (the process
and its libraries; ``ovs-ofctl --version`` alone takes that on this machine), which is
most of a member add (benchmarks/firewall_bench.py). Here the agent keeps the socket:
a change is its flow mods (in a bundle when asked) and one barrier, ~1 ms.

os-ken (the OpenStack library behind Neutron's native OpenFlow interface) only encodes
the messages: no controller, no listener, no eventlet hub. Flows keep ovs-ofctl's text
syntax (``core.firewall``); ``flow_mod`` turns the subset floatip writes into os-ken's
match fields and actions and refuses anything else (the flow's owner fails with the reason).
The connection is opened on first use and again after an error (vswitchd restarted).
"""
from __future__ import annotations

import functools
import ipaddress
import os
import socket
import struct

OFP_VERSION = 5          # OpenFlow 1.4: the first with bundles
T_HELLO, T_ERROR, T_ECHO_REQ, T_ECHO_REP = 0, 1, 2, 3
T_BARRIER_REQ, T_BARRIER_REP = 20, 21
TIMEOUT = 10.0
CT_BITS = {"new": 0x01, "est": 0x02, "rel": 0x04, "rpl": 0x08, "inv": 0x10, "trk": 0x20,
           "snat": 0x40, "dnat": 0x80}
# ovs-ofctl's protocol shorthands: (eth_type, ip_proto)
SHORT = {"ip": (0x0800, None), "ipv6": (0x86DD, None), "arp": (0x0806, None),
         "tcp": (0x0800, 6), "udp": (0x0800, 17), "sctp": (0x0800, 132), "icmp": (0x0800, 1),
         "tcp6": (0x86DD, 6), "udp6": (0x86DD, 17), "sctp6": (0x86DD, 132),
         "icmp6": (0x86DD, 58)}
L4 = {6: "tcp", 17: "udp", 132: "sctp"}


class OpenFlowError(RuntimeError):
    pass


@functools.cache
def _ofp():
    """os-ken's OpenFlow 1.4 modules and a stand-in datapath (imported on first use: the
    import costs ~1 s, paid only by an agent with a firewall)."""
    from os_ken.lib import ofctl_string
    from os_ken.ofproto import ofproto_parser, ofproto_v1_4, ofproto_v1_4_parser

    class Datapath:
        ofproto, ofproto_parser = ofproto_v1_4, ofproto_v1_4_parser
    return ofproto_v1_4, ofproto_v1_4_parser, Datapath(), ofctl_string, ofproto_parser


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
    net = ipaddress.ip_network(v, strict=False)
    if net.version != version:
        raise OpenFlowError(f"{v} is not IPv{version}")
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net.network_address), str(net.netmask)


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
    """ovs-ofctl match text -> os-ken OFPMatch keyword arguments (as sorted items)."""
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


@functools.lru_cache(maxsize=1024)
def instructions(actions: str) -> tuple:
    """ovs-ofctl action text -> os-ken instructions (os-ken's own ovs-ofctl action parser;
    ``NORMAL`` spelled as it expects)."""
    ofp, _, dp, ofctl_string, ofproto_parser = _ofp()
    text = ",".join("normal" if a == "NORMAL" else a for a in _split(actions))
    try:
        return tuple(ofproto_parser.ofp_instruction_from_jsondict(
            dp, ofctl_string.ofp_instruction_from_str(ofp, text)))
    except Exception as e:  # noqa: BLE001 - os-ken raises several kinds
        raise OpenFlowError(f"unknown actions {actions!r}: {e}") from e


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


def flow_add(cookie: int, table: int, priority: int, match: str, actions: str):
    ofp, parser, dp, _, _ = _ofp()
    return parser.OFPFlowMod(dp, cookie=cookie, table_id=table, command=ofp.OFPFC_ADD,
                             priority=priority, buffer_id=ofp.OFP_NO_BUFFER,
                             out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY,
                             match=parser.OFPMatch(**dict(match_fields(match))),
                             instructions=list(instructions(actions)))


def flow_delete(cookie: int):
    """Deletes the flows with exactly this cookie, in every table."""
    ofp, parser, dp, _, _ = _ofp()
    return parser.OFPFlowMod(dp, cookie=cookie, cookie_mask=(1 << 64) - 1,
                             table_id=ofp.OFPTT_ALL, command=ofp.OFPFC_DELETE,
                             buffer_id=ofp.OFP_NO_BUFFER, out_port=ofp.OFPP_ANY,
                             out_group=ofp.OFPG_ANY, match=parser.OFPMatch())


def _error_text(body: bytes) -> str:
    etype, code = struct.unpack("!HH", body[:4])
    try:
        from os_ken.ofproto import ofproto_v1_4 as ofp
        names = {v: k for k, v in vars(ofp).items() if k.startswith("OFPET_")}
        name = names.get(etype, str(etype))
    except ImportError:  # pragma: no cover
        name = str(etype)
    return f"OpenFlow error {name} code {code}"


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
        """Sends ``msgs`` (os-ken flow mods), in one atomic bundle when ``bundle``, then a
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
            ofp, parser, dp, _, _ = _ofp()
            bid, flags = self._next(), ofp.OFPBF_ATOMIC | ofp.OFPBF_ORDERED
            adds = []
            for m in msgs:
                m.set_xid(self._next())
                adds.append(parser.OFPBundleAddMsg(dp, bid, flags, m, []))
                adds[-1].set_xid(m.xid)   # OVS wants the inner message's xid outside too
            error = self._send([parser.OFPBundleCtrlMsg(
                dp, bid, ofp.OFPBCT_OPEN_REQUEST, flags, []), *adds])
            end = ofp.OFPBCT_DISCARD_REQUEST if error else ofp.OFPBCT_COMMIT_REQUEST
            error = self._send([parser.OFPBundleCtrlMsg(dp, bid, end, flags, [])]) or error
        if error:
            raise OpenFlowError(error)

    def _send(self, msgs: list) -> str | None:
        """Sends ``msgs`` and a barrier; the first error the switch answered, if any."""
        data = []
        for m in msgs:
            if m.xid is None:
                m.set_xid(self._next())
            m.serialize()
            data.append(bytes(m.buf))
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


def warm_up() -> None:
    """Imports os-ken in the background, so that the first small change does not pay it."""
    import threading
    threading.Thread(target=_ofp, name="os-ken import", daemon=True).start()
