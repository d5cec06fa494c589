"""Gratuitous ARP (dataplane/garp.py) on a real veth pair in a namespace of the test's own:
the announcements arrive, three rounds of each, and a new floating IP is announced at once
even while the repeats of hundreds made just before are due."""
from __future__ import annotations

import socket
import struct
import subprocess
import time
import uuid

import pytest

from floatip.dataplane.garp import Garp
from floatip.dataplane.netns import run_in_netns

pytestmark = pytest.mark.kernel


@pytest.fixture
def pair():
    ns = f"fgt-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for argv in (["link", "add", "ga", "type", "veth", "peer", "name", "gb"],
                     ["link", "set", "ga", "up"], ["link", "set", "gb", "up"]):
            subprocess.run(["ip", "-n", ns, *argv], check=True)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def sniffer(ns: str) -> socket.socket:
    """A packet socket on gb that stamps each frame with its arrival (kernel clock) and
    holds thousands of frames: a reader slowed by a busy machine reads late, not less."""
    def make():
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind(("gb", 0))
        return s
    s = run_in_netns(ns, make)
    s.settimeout(0.05)
    return s


def announced(s: socket.socket, until: float) -> list[tuple[float, str]]:
    """(arrival, sender address) of gratuitous ARPs seen on gb until ``until`` (monotonic);
    arrival is the kernel's receive time (wall clock, time.time())."""
    out = []
    while time.monotonic() < until:
        try:
            frame, anc, _, _ = s.recvmsg(128, socket.CMSG_SPACE(16))
        except socket.timeout:
            continue
        at = time.time()
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", data[:16])
                at = sec + nsec / 1e9
        op, spa, tpa = struct.unpack_from("!6x H 6x 4s 6x 4s", frame, 14)
        if op == 1 and spa == tpa:
            out.append((at, socket.inet_ntoa(spa)))
    return out


def test_three_rounds_for_each_address(pair):
    g = Garp(rounds=3, interval=0.3)
    s = sniffer(pair)
    try:
        g.announce(pair, "ga", "fa:16:3e:00:00:01", ["192.0.2.10", "192.0.2.11"])
        seen = announced(s, time.monotonic() + 1.5)
    finally:
        s.close()
    ips = [ip for _, ip in seen]
    assert ips.count("192.0.2.10") == 3 and ips.count("192.0.2.11") == 3, seen


def test_a_new_address_goes_before_the_repeats_of_earlier_ones(pair):
    """300 floating IPs made just before, one announcement each (as 300 agent passes make
    them): their repeats fall due together a second later; a floating IP added then is
    still announced at once, not after the backlog."""
    g = Garp(rounds=3, interval=1.0)
    s = sniffer(pair)
    try:
        for i in range(300):
            g.announce(pair, "ga", "fa:16:3e:00:00:01", [f"198.51.100.{i % 250 + 1}"])
        announced(s, time.monotonic() + 1.0)  # the second rounds are due now
        t0 = time.time()
        g.announce(pair, "ga", "fa:16:3e:00:00:01", ["203.0.113.7"])
        seen = announced(s, time.monotonic() + 0.9)  # before its own second round
    finally:
        s.close()
    new = [t for t, ip in seen if ip == "203.0.113.7"]
    assert new, "the new address was not announced before its own second round"
    assert new[0] - t0 < 0.2, f"announced {new[0] - t0:.3f} s after it was added"


@pytest.fixture
def router_and_upstream():
    """A "router" namespace whose qg- device faces an "upstream" namespace (one veth)."""
    sfx = uuid.uuid4().hex[:6]
    r, u = f"fgr-{sfx}", f"fgu-{sfx}"
    for ns in (r, u):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for argv in (["-n", r, "link", "add", "qg-t", "type", "veth", "peer", "name", "up0",
                      "netns", u],
                     ["-n", r, "addr", "add", "203.0.113.1/24", "dev", "qg-t"],
                     ["-n", u, "addr", "add", "203.0.113.2/24", "dev", "up0"],
                     ["-n", r, "link", "set", "qg-t", "up"], ["-n", u, "link", "set", "up0", "up"]):
            subprocess.run(["ip", *argv], check=True)
        yield r, u
    finally:
        for ns in (r, u):
            subprocess.run(["ip", "netns", "del", ns], check=False)


def test_an_arp_request_met_before_the_address_add_is_answered_at_once(router_and_upstream):
    """The first announcement goes before the floating IP's address add. An upstream that
    asks for the address between the two gets no reply (the address is not there yet), and
    its next request is a second away: a second announcement once the address is added
    resolves it at once, not at the worker's next round."""
    from floatip.core.plan import Step
    from floatip.dataplane.kernel import Dataplane
    r, u = router_and_upstream
    fip = "203.0.113.50"
    mac = subprocess.run(["ip", "-n", r, "-br", "link", "show", "qg-t"], capture_output=True,
                         text=True, check=True).stdout.split()[2]
    dp = Dataplane("nftables")
    dp.garp.AFTER_SEND_NOW = 10.0  # the worker's round must not be what resolves it
    add = dp._fip_addresses

    def asked_first(ns, dev, up, ips):
        def ask():  # a datagram to the floating IP: the upstream's kernel asks who has it
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"x", (fip, 9))
        run_in_netns(u, ask)
        time.sleep(0.05)  # the request reached the router, unanswered
        add(ns, dev, up, ips)
    dp._fip_addresses = asked_first
    try:
        dp._execute(Step("fip", "add_fips", r, ("qg-t", mac, [fip]), "test"))
        state, deadline = "", time.monotonic() + 0.5  # the upstream asks again after 1 s
        while time.monotonic() < deadline:
            out = subprocess.run(["ip", "-n", u, "neigh", "show", fip], capture_output=True,
                                 text=True).stdout
            if mac in out and "INCOMPLETE" not in out and "FAILED" not in out:
                state = out
                break
            time.sleep(0.01)
        assert state, f"the upstream has not resolved {fip}: {out!r}"
    finally:
        dp.close()
