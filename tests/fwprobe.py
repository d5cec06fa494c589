"""Probes for the firewall's kernel tests: datagrams with a chosen (even forged) source,
hand-made ARP frames and router advertisements, each sent from inside a lab namespace."""
from __future__ import annotations

import socket
import struct
import threading
import time

from floatip import lab as L
from floatip.dataplane.netns import run_in_netns

IP_TRANSPARENT = 19   # bind and send from an address the namespace does not have


def wait_for(cond, timeout: float = 5.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(step)


class UdpSink:
    """A UDP socket in ``ns`` that records (payload, source address) of what arrives."""

    def __init__(self, ns: str, port: int, ip: str = "0.0.0.0"):
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        self.sock = run_in_netns(ns, socket.socket, fam, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.sock.bind((ip, port))
        self.sock.settimeout(0.2)
        self.got: list[tuple[bytes, str]] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                data, addr = self.sock.recvfrom(2048)
            except OSError:
                continue
            self.got.append((data, addr[0]))

    def seen(self, tag: bytes) -> list[str]:
        return [src for data, src in self.got if data == tag]

    def close(self):
        self._stop = True
        self.thread.join(1)
        self.sock.close()


def send_udp(ns: str, src: str, dst: str, port: int, payload: bytes, sport: int = 0,
             count: int = 3) -> None:
    """Datagrams from ``ns`` with source ``src`` (IP_TRANSPARENT: it need not be the
    namespace's own address, as a hostile VM would forge it)."""
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = run_in_netns(ns, socket.socket, fam, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.bind((src, sport))
        for _ in range(count):
            s.sendto(payload, (dst, port))
            time.sleep(0.05)
    finally:
        s.close()


def _mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def send_arp(ns: str, dev: str, src_mac: str, sender_ip: str, target_ip: str,
             dst_mac: str = "ff:ff:ff:ff:ff:ff", op: int = 2, count: int = 3) -> None:
    """Raw ARP frames (reply by default) saying ``sender_ip`` is at ``src_mac``."""
    s = run_in_netns(ns, socket.socket, socket.AF_PACKET, socket.SOCK_RAW)
    try:
        s.bind((dev, 0))
        tha = b"\0" * 6 if dst_mac.startswith("ff:") else _mac(dst_mac)
        frame = _mac(dst_mac) + _mac(src_mac) + b"\x08\x06" + struct.pack(
            "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, _mac(src_mac), socket.inet_aton(sender_ip),
            tha, socket.inet_aton(target_ip))
        for _ in range(count):
            s.send(frame)
            time.sleep(0.05)
    finally:
        s.close()


def _send_icmp6(ns: str, dev: str, dst: str, msg: bytes, count: int) -> None:
    s = run_in_netns(ns, socket.socket, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        idx = run_in_netns(ns, socket.if_nametoindex, dev)
        for _ in range(count):
            s.sendto(msg, (dst, 0, 0, idx))
            time.sleep(0.05)
    finally:
        s.close()


def send_ra(ns: str, dev: str = "eth0", count: int = 3) -> None:
    """An IPv6 router advertisement to all nodes (a VM pretending to be the router)."""
    # type 134, code 0, checksum (kernel), hop limit, flags, lifetime 1800 s, timers
    _send_icmp6(ns, dev, "ff02::1", struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0),
                count)


def send_rs(ns: str, dev: str = "eth0", count: int = 1) -> None:
    """An IPv6 router solicitation to all routers (a router answers it with an RA)."""
    _send_icmp6(ns, dev, "ff02::2", struct.pack("!BBHI", 133, 0, 0, 0), count)


class IcmpV6Sink:
    """Records the ICMPv6 types that arrive in ``ns`` (``types``), with their sources
    (``got``: (type, source address))."""

    def __init__(self, ns: str):
        self.sock = run_in_netns(ns, socket.socket, socket.AF_INET6, socket.SOCK_RAW,
                                 socket.IPPROTO_ICMPV6)
        self.sock.settimeout(0.2)
        self.types: list[int] = []
        self.got: list[tuple[int, str]] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                data, src = self.sock.recvfrom(2048)
            except OSError:
                continue
            if data:
                self.types.append(data[0])
                self.got.append((data[0], src[0].split("%")[0]))

    def close(self):
        self._stop = True
        self.thread.join(1)
        self.sock.close()


def link_local_ready(ns: str, dev: str = "eth0") -> bool:
    out = L.sh("ip", "netns", "exec", ns, "ip", "-6", "-o", "addr", "show", "dev", dev,
               "scope", "link", check=False).stdout
    return "fe80" in out and "tentative" not in out


def neigh_mac(ns: str, ip: str) -> str | None:
    out = L.sh("ip", "netns", "exec", ns, "ip", "neigh", "show", ip, check=False).stdout.split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else None
