"""Kernel fixtures: real namespaces, veths and OVS bridges with unique names, removed after
each test whether it passed or not. Without root these tests skip, saying why."""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

NAT_DRIVERS = ["iptables", "nftables"]


def _kernel_ready() -> str | None:
    if os.geteuid() != 0:
        return "needs root (namespaces, OVS, netfilter)"
    for tool in ("ovs-vsctl", "ip", "iptables-restore", "nft", "conntrack", "nsenter", "ethtool"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (run `make install`)"
    # A busy machine (parallel workers, other suites) can take seconds to answer: a short
    # timeout here once skipped a whole worker's kernel tests.
    if subprocess.run(["ovs-vsctl", "--timeout=60", "show"], capture_output=True).returncode:
        return "OVS is not running (run `make install`)"
    return None


KERNEL_SKIP = _kernel_ready()


def pytest_collection_modifyitems(config, items):
    if KERNEL_SKIP:
        mark = pytest.mark.skip(reason=f"kernel test skipped: {KERNEL_SKIP}")
        for item in items:
            if "kernel" in item.keywords:
                item.add_marker(mark)
    # Side by side (``-n N --dist loadgroup``): a file's tests stay on one worker, and the
    # tests that use the host's own OVS run one after the other on one worker. Beside each
    # other they broke each other's floating IPs: the netdev datapath has one userspace
    # conntrack for every bridge, so servers' zones and flushes meet. OVN labs run their own
    # OVS and go side by side.
    for item in items:
        host = "kernel" in item.keywords and "ovn" not in item.keywords
        item.add_marker(pytest.mark.xdist_group("host-ovs" if host
                                                else item.nodeid.split("::")[0]))


@pytest.fixture(scope="session")
def pg_url():
    """An admin URL of a PostgreSQL server for this test session: FLOATIP_TEST_PG_URL if set,
    else a throw-away server started here (tests/pgserver.py) and removed at the end."""
    import pgserver
    if os.environ.get("FLOATIP_TEST_PG_URL"):
        yield os.environ["FLOATIP_TEST_PG_URL"]
        return
    why = pgserver.missing()
    if why:
        pytest.fail(f"PostgreSQL tests cannot run: {why}")
    srv = pgserver.PgServer().start()
    try:
        yield srv.url
    finally:
        srv.stop()


@pytest.fixture(params=NAT_DRIVERS)
def nat_driver(request):
    """Every kernel test that takes this runs once per NAT driver."""
    return request.param


@pytest.fixture
def dataplane(nat_driver):
    from floatip.dataplane.kernel import Dataplane
    from topo import TEST_INSTANCE
    dp = Dataplane(nat_driver, instance=TEST_INSTANCE)
    yield dp
    dp.close()


def short_id() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture
def lab():
    from floatip.lab import Lab
    from floatip.dataplane.ovs import datapath_type
    lb = Lab(datapath_type())
    yield lb
    left = lb.cleanup()
    assert not left, f"could not clean up: {left}"


@pytest.fixture
def topo(lab, dataplane, nat_driver):
    """The seed's topology on documentation ranges (tests/topo.py), routers removed after."""
    from topo import Topo
    t = Topo(lab, dataplane, nat_driver)
    yield t
    t.close()


def _ovn_ready() -> str | None:
    for tool in ("ovn-northd", "ovn-controller", "ovsdb-server", "ovs-vswitchd", "ovsdb-tool"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (run `make install`)"
    return None


@pytest.fixture
def ovn_lab(tmp_path_factory):
    """Two OVN chassis (the first a gateway with the upstream host), central NB/SB and
    northd, all in namespaces and run directories of this test (prefix ``fo``)."""
    if KERNEL_SKIP:
        pytest.skip(KERNEL_SKIP)
    why = _ovn_ready()
    if why:
        pytest.skip(why)
    from floatip.ovnlab import OvnLab
    lab = OvnLab("fo").start()
    yield lab
    left = lab.close()
    assert not left, f"could not clean up: {left}"


@pytest.fixture
def ovn_nb(ovn_lab):
    """An ovsdbapp OVN Northbound API on the lab's NB database."""
    from ovsdbapp.backend.ovs_idl import connection
    from ovsdbapp.schema.ovn_northbound import impl_idl
    idl = connection.OvsdbIdl.from_server(ovn_lab.nb, "OVN_Northbound")
    conn = connection.Connection(idl, timeout=10)
    # ovsdbapp keeps the connection per class: a class of this fixture's own
    api = type("LabNbApi", (impl_idl.OvnNbApiIdlImpl,), {})(conn)
    yield api
    conn.stop()
@pytest.fixture(scope="session")
def keystone():
    """A real Keystone for this session (tests/keystoneserver.py: its own virtualenv, SQLite,
    gunicorn on a free loopback port), removed at the end."""
    import keystoneserver
    why = keystoneserver.missing()
    if why:
        pytest.skip(f"Keystone tests skipped: {why}")
    ks = keystoneserver.Keystone().start()
    try:
        yield ks
    finally:
        ks.stop()
