#!/usr/bin/env python3
"""Hand-written netlink code against pyroute2, at floatip's hot paths (issue 7, item 6).

    sudo .venv/bin/python benchmarks/netlink_libs.py [--n 10000] [--one-by-one 1000] [--repeat 3]

Addresses: N /32 addresses added to, then deleted from, a veth in a throw-away namespace:
  hand      RtBatch.addresses: raw rtnetlink, 512 requests per send, acks read back
  IPBatch   pyroute2 IPBatch compiles the same requests (512 per chunk, as the acks of more
            overflow the receive buffer), sent through an IPRoute socket in the namespace,
            acks read with IPRoute.get()
  batch     IPRoute.nlm_request_batch with ifaddrmsg objects (pyroute2's own send-many,
            read-acks path; no IPBatch)
  addr      IPRoute.addr one request at a time (at --one-by-one only: one round trip each)
and the address dump observe() reads (RtBatch.addrs against IPRoute.addr("dump")).
Conntrack: N UDP entries created through ctnetlink in the namespace (pyroute2, untimed), half
inbound to a floating IP (original destination), half SNATed outbound (reply destination);
then what Dataplane's flush_conntrack does: dump, select entries whose original or reply
destination is in a set of addresses, delete them by tuple:
  hand      CtNetlink.delete_by_address
  pyroute2  Conntrack.dump_entries + Conntrack.entry("del") per match
Times are the median of --repeat runs (conntrack deletes: one run, the table is rebuilt
between contenders). Prints a markdown table. Everything lives in one namespace fn-nl<random>
(both veth ends inside it), removed at the end whatever happens.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from pyroute2 import Conntrack, IPBatch, IPRoute, netns as pnetns  # noqa: E402
from pyroute2.conntrack import NFCTAttrTuple  # noqa: E402
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402
from pyroute2.netlink.rtnl import RTM_DELADDR, RTM_NEWADDR  # noqa: E402
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg  # noqa: E402

from floatip.dataplane.conntrack import CtNetlink  # noqa: E402
from floatip.dataplane.netlink import RtBatch  # noqa: E402

CHUNK = RtBatch.CHUNK
FIPS = ipaddress.ip_network("100.64.0.0/12")      # floating IPs
REMOTES = ipaddress.ip_network("198.51.100.0/24")  # peers on the outside
FIXED = ipaddress.ip_network("192.0.2.0/24")       # fixed IPs behind the router


def addresses(n: int) -> list[str]:
    return [str(FIPS[i + 1]) for i in range(n)]


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


# -- pyroute2 address paths ------------------------------------------------------------------
def ipbatch_addresses(ipr: IPRoute, ipb: IPBatch, add: bool, index: int, ips) -> None:
    """IPBatch compiles; the IPRoute socket (in the namespace) sends; IPRoute.get() reads one
    ack per request. EEXIST on add / EADDRNOTAVAIL on delete are fine, like RtBatch."""
    ok = 17 if add else 99
    for i in range(0, len(ips), CHUNK):
        chunk = ips[i:i + CHUNK]
        for ip in chunk:
            ipb.addr("add" if add else "del", index=index, address=ip, prefixlen=32)
        data = bytes(ipb.batch)
        ipb.reset()
        ipr.asyncore.socket.send(data)
        for _ in chunk:
            try:
                ipr.get()
            except NetlinkError as e:
                if e.code != ok:
                    raise


def request_batch_addresses(ipr: IPRoute, add: bool, index: int, ips) -> None:
    """IPRoute.nlm_request_batch: pyroute2 sends the chunk in one send and collects the acks."""
    flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE | NLM_F_EXCL if add else 0)
    for i in range(0, len(ips), CHUNK):
        msgs = []
        for ip in ips[i:i + CHUNK]:
            m = ifaddrmsg()
            m["header"]["type"] = RTM_NEWADDR if add else RTM_DELADDR
            m["header"]["flags"] = flags
            m["family"], m["prefixlen"], m["index"] = socket.AF_INET, 32, index
            m["attrs"] = [("IFA_LOCAL", ip), ("IFA_ADDRESS", ip)]
            msgs.append(m)
        ipr.nlm_request_batch(msgs)


def one_by_one_addresses(ipr: IPRoute, add: bool, index: int, ips) -> None:
    for ip in ips:
        ipr.addr("add" if add else "del", index=index, address=ip, prefixlen=32)


# -- pyroute2 conntrack path -----------------------------------------------------------------
def pyroute2_delete_by_address(ct: Conntrack, ips) -> int:
    """What CtNetlink.delete_by_address does, with pyroute2's Conntrack."""
    want = set(ips)
    victims = [e for e in ct.dump_entries()
               if e.tuple_orig.daddr in want or e.tuple_reply.daddr in want]
    for e in victims:
        try:
            ct.entry("del", tuple_orig=e.tuple_orig, zone=e.zone)
        except NetlinkError as err:
            if err.code != 2:  # ENOENT: gone on its own
                raise
    return len(victims)


def ct_entries(n: int, fips: list[str]) -> list[tuple[NFCTAttrTuple, NFCTAttrTuple]]:
    """n UDP flows spread over ``fips``: even ones inbound to the floating IP (original
    destination), odd ones from a fixed IP SNATed to it (reply destination)."""
    out = []
    for i in range(n):
        fip = fips[i % len(fips)]
        remote = str(REMOTES[1 + i % 250])
        port = 1024 + i // 2 % 60000
        if i % 2 == 0:
            orig = NFCTAttrTuple(saddr=remote, daddr=fip, proto=17, sport=port, dport=53)
            reply = NFCTAttrTuple(saddr=fip, daddr=remote, proto=17, sport=53, dport=port)
        else:
            fixed = str(FIXED[1 + i % 250])
            orig = NFCTAttrTuple(saddr=fixed, daddr=remote, proto=17, sport=port, dport=53)
            reply = NFCTAttrTuple(saddr=remote, daddr=fip, proto=17, sport=53, dport=port)
        out.append((orig, reply))
    return out


def ct_fill(ct: Conntrack, entries) -> None:
    for orig, reply in entries:
        try:
            ct.entry("add", timeout=3600, tuple_orig=orig, tuple_reply=reply)
        except NetlinkError as e:
            if e.code != 17:  # EEXIST: still there from the last round
                raise


def ct_count(ct: Conntrack) -> int:
    return sum(1 for _ in ct.dump_entries())


# -- the run -----------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--one-by-one", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (a network namespace)")
    tag = uuid.uuid4().hex[:6]
    ns = f"fn-nl{tag}"
    rows: list[tuple[str, int, float, float]] = []
    fill = 0.0
    opened = []
    pnetns.create(ns)
    try:
        ipr = IPRoute(netns=ns, flags=0)
        opened.append(ipr)
        ipr.link("add", ifname=f"fn{tag}a", kind="veth", peer=f"fn{tag}b")  # both ends in ns
        index = ipr.link_lookup(ifname=f"fn{tag}a")[0]
        ipr.link("set", index=index, state="up")
        rt = RtBatch(ns)
        opened.append(rt)
        ipb = IPBatch()
        opened.append(ipb)

        def count() -> int:
            return sum(1 for i, a in rt.addrs() if i == index)

        def add_del(fn, ips) -> tuple[float, float]:
            """(add seconds, delete seconds), checking the kernel after each."""
            t_add, t_del = [], []
            for _ in range(args.repeat):
                t_add.append(timed(fn, True, index, ips))
                assert count() == len(ips), f"{fn}: {count()} of {len(ips)} added"
                t_del.append(timed(fn, False, index, ips))
                assert count() == 0, f"{fn}: {count()} left after delete"
            return statistics.median(t_add), statistics.median(t_del)

        n = args.n
        ips = addresses(n)
        hand = add_del(rt.addresses, ips)
        lib = add_del(lambda add, idx, x: ipbatch_addresses(ipr, ipb, add, idx, x), ips)
        req = add_del(lambda add, idx, x: request_batch_addresses(ipr, add, idx, x), ips)
        rows += [("add /32 addresses: RtBatch vs IPBatch + IPRoute socket", n, hand[0], lib[0]),
                 ("delete /32 addresses: RtBatch vs IPBatch + IPRoute socket", n, hand[1], lib[1]),
                 ("add /32 addresses: RtBatch vs IPRoute.nlm_request_batch", n, hand[0], req[0]),
                 ("delete /32 addresses: RtBatch vs IPRoute.nlm_request_batch", n, hand[1], req[1])]
        # what observe() reads: the addresses of a device that carries N of them
        rt.addresses(True, index, ips)
        t_hand = statistics.median(timed(rt.addrs) for _ in range(args.repeat))
        t_lib = statistics.median(timed(lambda: list(ipr.addr("dump", index=index)))
                                  for _ in range(args.repeat))
        assert len(list(ipr.addr("dump", index=index))) == count() == n
        rt.addresses(False, index, ips)
        rows.append(("dump addresses: RtBatch.addrs vs IPRoute.addr('dump')", n, t_hand, t_lib))
        if args.one_by_one:
            m = args.one_by_one
            few = ips[:m]
            hand_m = add_del(rt.addresses, few)
            one = add_del(lambda add, idx, x: one_by_one_addresses(ipr, add, idx, x), few)
            rows += [("add /32 addresses: RtBatch vs IPRoute.addr one by one", m, hand_m[0], one[0]),
                     ("delete /32 addresses: RtBatch vs IPRoute.addr one by one", m, hand_m[1], one[1])]

        # conntrack: N entries over N/5 floating IPs; delete those of half the floating IPs
        ct = Conntrack(netns=ns, flags=0)
        opened.append(ct)
        cn = CtNetlink(ns)
        opened.append(cn)
        fips = addresses(max(2, n // 5))
        gone = fips[:len(fips) // 2]
        entries = ct_entries(n, fips)
        t0 = time.perf_counter()
        ct_fill(ct, entries)
        fill = time.perf_counter() - t0
        assert ct_count(ct) == n, f"{ct_count(ct)} of {n} conntrack entries created"
        nomatch = ["203.0.113.1"]
        d_hand = statistics.median(timed(cn.delete_by_address, nomatch) for _ in range(args.repeat))
        d_lib = statistics.median(timed(pyroute2_delete_by_address, ct, nomatch)
                                  for _ in range(args.repeat))
        rows.append(("conntrack dump + select (no match): CtNetlink vs Conntrack.dump_entries",
                     n, d_hand, d_lib))
        want = sum(1 for o, r in entries if o.daddr in set(gone) or r.daddr in set(gone))
        t0 = time.perf_counter()
        deleted = cn.delete_by_address(gone)
        x_hand = time.perf_counter() - t0
        assert deleted == want and ct_count(ct) == n - want, (deleted, want, ct_count(ct))
        ct_fill(ct, entries)
        assert ct_count(ct) == n
        t0 = time.perf_counter()
        deleted = pyroute2_delete_by_address(ct, gone)
        x_lib = time.perf_counter() - t0
        assert deleted == want and ct_count(ct) == n - want, (deleted, want, ct_count(ct))
        rows.append((f"conntrack dump + delete {want} matches: CtNetlink vs Conntrack", n,
                     x_hand, x_lib))
    finally:
        for o in reversed(opened):
            try:
                o.close()
            except Exception:  # noqa: BLE001 - cleanup goes on
                pass
        pnetns.remove(ns)

    print(f"pyroute2 {__import__('pyroute2').__version__}, kernel {os.uname().release}, "
          f"median of {args.repeat}\n")
    print("| operation | N | hand-written s | pyroute2 s | ratio (pyroute2 / hand) |")
    print("|---|---:|---:|---:|---:|")
    for name, count_, h, p in rows:
        print(f"| {name} | {count_} | {h:.3f} | {p:.3f} | {p / h:.1f}x |")
    print(f"\nsetup: {args.n} conntrack entries created with Conntrack.entry('add') "
          f"(one round trip each) in {fill:.2f} s")


if __name__ == "__main__":
    main()
