"""Gateway failover with traffic (issue 23): the upstream host pings a floating IP every
10 ms and holds a TCP connection through it; the active gateway chassis dies. The pings
come back within a bound and the connection still echoes; when the chassis returns, OVN
moves the gateway port back to it once and it stays there (nothing flaps). The figures
themselves are benchmarks/ovn_failover.py's (docs/ovn.md)."""
from __future__ import annotations

import time

import pytest

from floatip import lab as L
from floatip.ovnlab import GatewayWatch, Pinger
from test_e2e_backends import FIP, ovn_deployment, wait_for
from test_ovn_backend import ready_with_fip

pytestmark = [pytest.mark.kernel, pytest.mark.ovn,
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore:.*influxdb:DeprecationWarning")]
PORT = 8089
# OVN's own BFD defaults: 1 s x 3 to notice, then the standby's takeover (~1 s here); the
# bound leaves room for a busy 2-core machine
LOSS_BOUND = 15.0


@pytest.fixture
def ovn_two_gateways(tmp_path):
    yield from ovn_deployment(tmp_path, chassis=3, gateways=2, prefix="im")


def test_failover_under_traffic_keeps_tcp_and_nothing_flaps_on_return(ovn_two_gateways):
    d = ovn_two_gateways
    lab, backend = d.extra
    sc = ready_with_fip(d)
    gw_port = backend.desired.state.routers[sc.router.id].gateway.port_id
    watch = GatewayWatch(lab, f"lrp-{gw_port}")
    srv = L.TcpServer(sc.ns["vm1"], "0.0.0.0", PORT)
    client = ping = None
    try:
        wait_for(lambda: watch.now() != "", what="gateway port bound")
        active = watch.now()
        dead = next(c for c in lab.chassis if c.name == active)
        client = L.TcpClient(d.upstream, FIP, PORT, timeout=5)
        client.sock.settimeout(20)
        assert client.echo("before")
        ping = Pinger(d.upstream, FIP)
        wait_for(lambda: len(ping.times) > 20, what="pings answered")
        t_kill = time.time()
        lab.stop_chassis(dead)
        wait_for(lambda: ping.times and ping.times[-1] > t_kill + 0.5, timeout=60,
                 what="pings answered after the failover")
        loss = ping.gap(t_kill)
        assert 0.02 < loss < LOSS_BOUND, loss
        assert watch.now() not in ("", active)
        assert client.echo("after the failover")

        lab.restart_chassis(dead)
        wait_for(lambda: watch.now() == active, timeout=60, what="the port back")
        t_home = time.time()
        wait_for(lambda: ping.times and ping.times[-1] > t_home + 0.5, timeout=30,
                 what="pings answered after the return")
        time.sleep(5)   # watched: the port must stay where it is
        assert [c for t, c in watch.changes if t > t_home + 0.1] == []
        assert ping.gap(t_home + 1) < 2.0      # steady again: no further outage
        assert client.echo("after the return")
    finally:
        watch.close()
        if ping is not None:
            ping.stop()
        if client is not None:
            client.close()
        srv.close()
