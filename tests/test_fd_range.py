"""A router holds its netlink sockets and sysctl files for as long as it lives; libnftables,
in process, waits on its own socket with select(), which aborts the process on a descriptor
>= FD_SETSIZE. About 100 routers used to fill the low range and a server aborted with
``bit out of range 0 - FD_SETSIZE on fd_set``: what routers hold lives above it now."""
from __future__ import annotations

import os
import uuid

import pytest
from pyroute2 import netns as pnetns

from floatip.dataplane.conntrack import CtNetlink
from floatip.dataplane.nat.nftables import NftContext
from floatip.dataplane.netlink import RtBatch
from floatip.dataplane.netns import FD_SETSIZE, keep_high

pytestmark = pytest.mark.kernel


@pytest.fixture
def namespaces():
    names = [f"fdr-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for n in names:
        pnetns.create(n)
    try:
        yield names
    finally:
        for n in names:
            pnetns.remove(n)


def test_router_sessions_stay_out_of_the_select_range_and_nft_still_works(namespaces):
    sessions = []
    # a busy process: a thousand more long-lived descriptors, which the same rule puts high
    ballast = [keep_high(os.open("/dev/null", os.O_RDONLY)) for _ in range(1100)]
    try:
        assert min(ballast) >= FD_SETSIZE
        for ns in namespaces:
            rt, ct, nft = RtBatch(ns), CtNetlink(ns), NftContext(ns)
            sessions += [rt, ct, nft]
            held = [rt.sock.fileno(), *rt._fds.values(), ct.sock.fileno(), nft.gen.fileno()]
            assert len(rt._fds) >= 5 and min(held) >= FD_SETSIZE, held
            # libnftables' own socket is low, so its select() works: a table round trip
            nft.run("add table ip fdr_probe")
            assert "table ip fdr_probe" in nft.run("list tables")
            assert nft.genid() > 0
            assert rt.sysctls  # the sysctl files still read through their moved descriptors
    finally:
        for s in sessions:
            s.close()
        for fd in ballast:
            os.close(fd)
