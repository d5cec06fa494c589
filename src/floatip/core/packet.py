"""Frames for ``floatip trace --probe`` (built and read here, pure): an ARP request, an IPv4
TCP SYN / UDP datagram / ICMP echo with correct checksums, and the fields a capture needs."""
from __future__ import annotations

import socket
import struct

ETH_IP, ETH_ARP, ETH_VLAN = 0x0800, 0x0806, 0x8100
PROTO_NUM = {"icmp": 1, "tcp": 6, "udp": 17}


def _mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def arp_request(src_mac: str, src_ip: str, target_ip: str) -> bytes:
    eth = b"\xff" * 6 + _mac(src_mac) + struct.pack("!H", ETH_ARP)
    arp = struct.pack("!HHBBH", 1, ETH_IP, 6, 4, 1) + _mac(src_mac) + \
        socket.inet_aton(src_ip) + b"\0" * 6 + socket.inet_aton(target_ip)
    return eth + arp + b"\0" * 18


def ipv4_frame(src_mac: str, dst_mac: str, src: str, dst: str, proto: str, sport: int,
               dport: int | None, ident: int = 0x4654) -> bytes:
    """One packet of ``proto`` from ``src:sport`` to ``dst:dport`` (a TCP SYN, a UDP datagram
    with a short payload, or an ICMP echo request with ``sport`` as its id)."""
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    num = PROTO_NUM[proto]
    if proto == "tcp":
        l4 = struct.pack("!HHIIBBHHH", sport, dport or 80, 0x46495031, 0, 5 << 4, 0x02,
                         64240, 0, 0)
    elif proto == "udp":
        l4 = struct.pack("!HHHH", sport, dport or 53, 8 + 8, 0) + b"floatip!"
    else:
        l4 = struct.pack("!BBHHH", 8, 0, 0, sport, 1) + b"floatip-trace"
    if proto == "icmp":
        csum = checksum(l4)
        l4 = l4[:2] + struct.pack("!H", csum) + l4[4:]
    else:
        pseudo = s + d + struct.pack("!BBH", 0, num, len(l4))
        csum = checksum(pseudo + l4) or 0xFFFF
        at = 16 if proto == "tcp" else 6
        l4 = l4[:at] + struct.pack("!H", csum) + l4[at + 2:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0x4000, 64, num, 0, s, d)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return _mac(dst_mac) + _mac(src_mac) + struct.pack("!H", ETH_IP) + ip + l4


def read(frame: bytes) -> dict | None:
    """The fields of an ARP or IPv4 frame (VLAN tag skipped): kind, src, dst, proto, ports."""
    if len(frame) < 14:
        return None
    etype, off = struct.unpack("!H", frame[12:14])[0], 14
    if etype == ETH_VLAN and len(frame) >= 18:
        etype, off = struct.unpack("!H", frame[16:18])[0], 18
    body = frame[off:]
    if etype == ETH_ARP and len(body) >= 28:
        op = struct.unpack("!H", body[6:8])[0]
        return {"kind": "arp", "op": op, "src": socket.inet_ntoa(body[14:18]),
                "dst": socket.inet_ntoa(body[24:28]), "src_mac": body[8:14].hex(":")}
    if etype != ETH_IP or len(body) < 20:
        return None
    ihl = (body[0] & 0xF) * 4
    out = {"kind": "ip", "proto": body[9], "src": socket.inet_ntoa(body[12:16]),
           "dst": socket.inet_ntoa(body[16:20]), "sport": None, "dport": None}
    l4 = body[ihl:]
    if body[9] in (6, 17) and len(l4) >= 4:
        out["sport"], out["dport"] = struct.unpack("!HH", l4[:4])
    elif body[9] == 1 and len(l4) >= 8:
        out["sport"] = struct.unpack("!H", l4[4:6])[0]  # the echo id
    return out
