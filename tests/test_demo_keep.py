"""``floatip demo --keep`` (issue 26): after the command returned, the demo it left up still
passes every check — routing and NAT (a)-(e), DHCP (a new exchange answered with vm4's
address), metadata (f) and the firewall (g) — with no floatip process of the demo's own
still needed for the routing; then ``floatip demo --teardown`` removes its namespaces,
bridges and router. The demo uses the seed's fixed names (fdemo-*): one at a time, under
the lock test_install's demo takes."""
from __future__ import annotations

import fcntl
import json
import subprocess
import sys

import pytest

from floatip import lab as L
from floatip.cli import demo as D
from floatip.dataplane.ovs import datapath_type

pytestmark = pytest.mark.kernel
EXE = f"{sys.prefix}/bin/floatip"


def namespaces() -> set[str]:
    return set(L.sh("ip", "netns", "list").stdout.split())


def bridges() -> set[str]:
    return set(L.sh("ovs-vsctl", "list-br").stdout.split())


def test_a_kept_demo_passes_its_checks_after_the_command_returned_and_teardown_removes_it():
    from conftest import KERNEL_SKIP
    if KERNEL_SKIP:
        pytest.skip(KERNEL_SKIP)
    with open("/run/lock/floatip-demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lab = L.Lab(datapath_type())   # the test's own servers and dhclient, not the demo's
        kept: dict = {}
        try:
            r = subprocess.run([EXE, "demo", "--keep", "--json"], capture_output=True,
                               text=True, timeout=600)
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
            kept = json.loads(r.stdout)
            assert kept["ok"] and {c["key"] for c in kept["checks"]} == set("abcdefg"), kept
            n = kept["addresses"]
            assert {kept["router_namespace"], D.UPSTREAM, D.VM4, D.VM5} <= namespaces()

            # the command has returned: the same checks again, from this process
            checks = D.run_checks(D.UPSTREAM, D.VM4, D.VM5, n["floating_ip"],
                                  n["router_gateway"], n["no_floating_ip"], n["upstream"], lab)
            status, body = L.http_get(D.VM4, "169.254.169.254", "/latest/meta-data/public-ipv4")
            checks.append(D.Check("f", "metadata", (status, body.strip()) ==
                                  (200, n["floating_ip"]), f"HTTP {status}: {body[:60]}"))
            checks.append(D.closed_port_check(D.UPSTREAM, D.VM4, n["floating_ip"], lab))
            failed = [(c.key, c.text, c.detail) for c in checks if not c.ok]
            assert not failed and len(checks) == 7, failed
            # DHCP: a new exchange still gets vm4's address from the kept network's server
            assert lab.dhcp(D.VM4) == n["vm4"]
        finally:
            lab.cleanup()   # its dhclient ends; the namespaces are the demo's
            t = subprocess.run([EXE, "demo", "--teardown"], capture_output=True, text=True,
                               timeout=300)
        assert t.returncode == 0, t.stdout + t.stderr
        left = namespaces() & {D.UPSTREAM, D.VM4, D.VM5, kept.get("router_namespace")}
        assert not left, left
        assert not bridges() & {D.INT_BR, D.EX_BR}
        assert not [ns for ns in namespaces() if kept.get("router_id", "-") in ns]
