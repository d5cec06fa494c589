"""Gratuitous ARP for new floating IPs, from a background thread."""
from __future__ import annotations

import heapq
import logging
import os
import queue
import socket
import struct
import threading
import time

from .netns import high_socket, run_in_netns, setns, setns_fd

log = logging.getLogger("floatip.dataplane")


class Garp:
    """Gratuitous ARP after a floating IP appears, off the apply path: a worker thread sends
    three rounds one second apart (Neutron: arping -U, 3 rounds) from a raw socket in the
    router namespace.

    A first round goes out before any repeat: an upstream that asked for the address before
    it existed waits for our announcement or for its own next ARP try, a second later. With
    a strict queue, a new floating IP waited behind the repeats of thousands made just
    before it (5 s behind at 200). Work is grouped by namespace: one setns per namespace and
    wake, not per floating IP."""

    def __init__(self, rounds: int = 3, interval: float = 1.0):
        self.rounds, self.interval = rounds, interval
        self.q: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closing: queue.Queue = queue.Queue()
        self._closer: threading.Thread | None = None
        self._socks: dict[str, socket.socket] = {}  # namespace -> packet socket (send_now)

    def send_now(self, ns: str, dev: str, mac: str, ips) -> None:
        """One round from the calling thread, on a packet socket kept per namespace: for a
        new floating IP once its DNAT is in, before its address add (which walks the
        device's address list, ~3 ms at 10,000) and without waiting for the worker's turn
        at the interpreter. ``announce`` still follows with the worker's rounds."""
        try:
            sock = self._socks.get(ns)
            if sock is None:  # sends only: bound to no protocol, it receives nothing
                sock = self._socks[ns] = run_in_netns(ns, high_socket, socket.AF_PACKET,
                                                      socket.SOCK_RAW, 0)
            self._send(sock, dev, mac, ips)
        except OSError as e:  # the worker's rounds follow anyway
            log.debug("garp %s %s: %s", ns, dev, e)

    def forget(self, ns: str) -> None:
        """The namespace goes away: its kept socket is closed (by the closer thread)."""
        sock = self._socks.pop(ns, None)
        if sock is not None:
            self._close_later(sock)

    def close(self) -> None:
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()

    # after ``send_now``, the worker's first round waits this long: its flood of the
    # external network then does not compete with the first packets of the flows just
    # made possible
    AFTER_SEND_NOW = 0.1

    def announce(self, ns: str, dev: str, mac: str, ips, sent: bool = False) -> None:
        """Rounds from the worker; ``sent``: the first went out already (``send_now``)."""
        self.q.put((sent, (ns, dev, mac, tuple(ips))))
        with self._lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="garp", daemon=True)
                self.thread.start()

    def busy(self) -> bool:
        """True while announcements are queued or due (for benchmarks and tests)."""
        return not self.q.empty() or self.pending > 0

    pending = 0
    BATCH = 256  # repeats sent per wake before new first rounds are looked at again

    def _run(self) -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._loop(home)
        finally:
            os.close(home)

    def _loop(self, home: int) -> None:
        later: list = []  # heap of (due, seq, round, ns, dev, mac, ips)
        seq = 0
        while True:
            wait = max(0.0, later[0][0] - time.monotonic()) if later else 5.0
            fresh = []
            try:
                fresh.append(self.q.get(timeout=wait))
            except queue.Empty:
                if not later:
                    self.pending = 0
                    return
            while True:  # everything queued meanwhile: first rounds go out together
                try:
                    fresh.append(self.q.get_nowait())
                except queue.Empty:
                    break
            now = time.monotonic()
            firsts = []
            for sent, item in fresh:
                for r in range(0 if sent else 1, self.rounds):
                    seq += 1
                    at = now + (r * self.interval if r else self.AFTER_SEND_NOW)
                    heapq.heappush(later, (at, seq, r, *item))
                if not sent:
                    firsts.append(item)
            due, late_first = [], []
            while later and later[0][0] <= now and len(due) + len(late_first) < self.BATCH:
                _, _, r, *item = heapq.heappop(later)
                (due if r else late_first).append(tuple(item))
            firsts += late_first
            self.pending = len(later) + len(due) + len(firsts)
            if firsts:
                self._round(firsts)
            if due:
                self._round(due)
            if firsts or due:
                setns_fd(home, "home")  # never keep a router namespace alive
            self.pending = len(later)

    def _round(self, items) -> None:
        by_ns: dict[str, list] = {}
        for ns, dev, mac, ips in items:
            by_ns.setdefault(ns, []).append((dev, mac, ips))
        for ns, sends in by_ns.items():
            try:
                setns(ns)
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # sends only
                try:
                    for dev, mac, ips in sends:
                        try:
                            self._send(sock, dev, mac, ips)
                        except OSError as e:  # this device is gone; others still announce
                            log.debug("garp %s %s: %s", ns, dev, e)
                finally:
                    self._close_later(sock)
            except Exception as e:  # namespace or device gone: nothing to announce
                log.debug("garp %s: %s", ns, e)

    @staticmethod
    def _send(sock: socket.socket, dev: str, mac: str, ips) -> None:
        hw = bytes.fromhex(mac.replace(":", ""))
        for ip in ips:
            pa = socket.inet_aton(ip)
            # ARP request for our own address (arping -U): sender = target = the FIP
            arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, hw, pa, b"\0" * 6, pa)
            sock.sendto(b"\xff" * 6 + hw + b"\x08\x06" + arp, (dev, 0x0806))

    def _close_later(self, sock: socket.socket) -> None:
        """Closing a packet socket waits for an RCU grace period (packet_release calls
        synchronize_net: ~12 ms here), which made each announcement cost that much: 300
        took 3.7 s. Sockets are closed by a thread of their own instead."""
        self._closing.put(sock)
        with self._lock:
            if self._closer is None or not self._closer.is_alive():
                self._closer = threading.Thread(target=self._close_loop, name="garp-close",
                                                daemon=True)
                self._closer.start()

    def _close_loop(self) -> None:
        while True:
            try:
                self._closing.get(timeout=5).close()
            except queue.Empty:
                return
