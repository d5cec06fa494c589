"""Gratuitous ARP for new floating IPs, from a background thread."""
from __future__ import annotations

import logging
import os
import queue
import socket
import struct
import threading
import time

from .conntrack import CtNetlink
from .netns import setns, setns_fd

log = logging.getLogger("floatip.dataplane")


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
                    setns(ns)
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
                setns_fd(home, "home")  # never keep a router namespace alive
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
