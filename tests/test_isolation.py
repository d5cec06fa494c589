"""One bad object stops nobody, and status is the truth (issue 8, items 2-4): real server,
agent, namespaces, OVS and netfilter. Each test reproduces a failure of the issue's "Why"."""
from __future__ import annotations

import threading
import time

import pytest

from floatip import lab as L
from cloud import Cloud, ok, wait_for

pytestmark = pytest.mark.kernel


@pytest.fixture
def cloud(tmp_path, request):
    from floatip.dataplane.ovs import datapath_type
    lab = L.Lab(datapath_type())
    c = None
    try:
        c = Cloud(lab, tmp_path, interval=30, remote=getattr(request, "param", "") == "remote")
        yield c
    finally:
        try:
            if c is not None:
                c.close()
        finally:
            left = lab.cleanup()
        assert not left, f"could not clean up: {left}"


def _set_routes(cloud: Cloud, rid: str, routes: list[dict]) -> None:
    """Through the API; if the API refuses the route, straight into the database (the agent
    must cope with whatever is stored)."""
    r = cloud.put("router", rid, {"routes": routes})
    if r.status_code == 200:
        return
    from floatip import store as S
    with cloud.server.db.tx() as s:
        row = S.get(s, S.Router, rid)
        row.routes = routes
        S.touch(row)


def test_invalid_router_is_error_with_reason_and_others_are_applied(cloud):
    a, b = cloud.router("198.51.100.0/24"), cloud.router("100.64.1.0/24")
    pa, _ = cloud.vm(a)
    fa = cloud.fip(pa)
    cloud.status("floatingip", fa["id"], "ACTIVE")
    cloud.reachable(fa["floating_ip_address"])
    # a route with an IPv6 destination on router a (the issue: accepted, then every router
    # and floating IP went ERROR and nothing was applied)
    _set_routes(cloud, a["id"], [{"destination": "2001:db8::/32", "nexthop": "198.51.100.5"}])
    ra = cloud.status("router", a["id"], "ERROR")
    assert "2001:db8::/32" in ra["status_reason"]
    fa_now = cloud.status("floatingip", fa["id"], "ERROR")
    assert a["id"] in fa_now["status_reason"]
    # router b, and a floating IP created on it now, are applied and ACTIVE
    pb, _ = cloud.vm(b)
    fb = cloud.fip(pb)
    cloud.status("floatingip", fb["id"], "ACTIVE")
    cloud.reachable(fb["floating_ip_address"])
    assert cloud.get("router", b["id"])["status"] == "ACTIVE"
    assert cloud.get("router", b["id"])["status_reason"] is None
    # the invalid router is left as it was, not torn down
    assert L.ping(cloud.upstream, fa["floating_ip_address"], timeout=1)
    # the reason's attribute is an extension users can discover
    aliases = {e["alias"] for e in ok(cloud.api.get("/v2.0/extensions"))["extensions"]}
    assert "floatip-status-reason" in aliases
    # fixed: ACTIVE again, reason gone
    _set_routes(cloud, a["id"], [])
    assert cloud.status("router", a["id"], "ACTIVE")["status_reason"] is None
    cloud.status("floatingip", fa["id"], "ACTIVE")


def test_router_and_fip_ports_cannot_be_relabelled_or_deleted(cloud):
    """device_owner/device_id of router and FIP ports are not writable, no port becomes one
    by a label, and a port backing a router or FIP cannot be deleted via DELETE /ports."""
    a = cloud.router("198.51.100.0/24")
    vm, _ = cloud.vm(a)
    fip = cloud.fip(vm)
    ports = ok(cloud.api.get("/v2.0/ports", params={"device_id": a["id"]}))["ports"]
    itf = next(p for p in ports if p["device_owner"] == "network:router_interface")
    gw = next(p for p in ports if p["device_owner"] == "network:router_gateway")
    fport = ok(cloud.api.get("/v2.0/ports", params={"device_owner": "network:floatingip",
                                                    "device_id": fip["id"]}))["ports"][0]
    for port in (itf, gw, fport):
        for body in ({"device_owner": "compute:nova"}, {"device_owner": ""},
                     {"device_id": "something-else"}):
            r = cloud.put("port", port["id"], body)
            assert r.status_code == 409, (port["device_owner"], body, r.text)
        r = cloud.api.delete(f"/v2.0/ports/{port['id']}")
        assert r.status_code == 409 and r.json()["NeutronError"]["type"] == "L3PortInUse"
    r = cloud.put("port", vm["id"], {"device_owner": "network:floatingip"})
    assert r.status_code == 400, r.text
    assert cloud.put("port", vm["id"], {"device_owner": "compute:nova"}).status_code == 200
    # nothing changed for the router and the floating IP
    cloud.status("floatingip", fip["id"], "ACTIVE")
    assert cloud.get("router", a["id"])["status"] == "ACTIVE"
    cloud.reachable(fip["floating_ip_address"])


def test_relabelled_ports_in_the_database_break_nobody(cloud):
    """Labels written behind the API's back (an older floatip accepted them): the agent
    knows router and FIP ports by what they back, not by their device_owner."""
    from floatip import store as S
    a = cloud.router("198.51.100.0/24")
    vm, _ = cloud.vm(a)
    fip = cloud.fip(vm)
    cloud.status("floatingip", fip["id"], "ACTIVE")
    labels = {}
    with cloud.server.db.tx() as s:
        for p in S.list_all(s, S.Port, {"device_id": [a["id"]]}):
            labels[p.id] = p.device_owner
            p.device_owner = "compute:nova" if p.device_owner.endswith("interface") else ""
        labels[vm["id"]] = S.get(s, S.Port, vm["id"]).device_owner
        S.get(s, S.Port, vm["id"]).device_owner = "network:floatingip"
    assert cloud.server.wait_for_agent()
    assert cloud.get("router", a["id"])["status"] == "ACTIVE"
    assert cloud.get("floatingip", fip["id"])["status"] == "ACTIVE"
    cloud.reachable(fip["floating_ip_address"])
    with cloud.server.db.tx() as s:  # labels back, so the API can tear the router down
        for pid, owner in labels.items():
            S.get(s, S.Port, pid).device_owner = owner


def test_full_pass_runs_every_interval_whatever_wakes_the_agent(cloud):
    cloud.agent.interval = 1.0
    cloud.agent.wake.set()
    stop = threading.Event()

    def churn():  # an API write every 0.1 s: each wakes the agent
        i = 0
        while not stop.is_set():
            cloud.post("network", {"name": f"fp-churn-{i}"})
            i += 1
            time.sleep(0.1)
    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        start = cloud.agent.stats.full_passes
        time.sleep(6)  # interval 1 s: without the fix, no full pass at all under the churn
        assert cloud.agent.stats.full_passes - start >= 3
    finally:
        stop.set()
        t.join()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_router_namespace_deleted_or_replaced_by_hand_is_rebuilt(cloud, how):
    a = cloud.router("198.51.100.0/24")
    vm, _ = cloud.vm(a)
    fip = cloud.fip(vm)
    cloud.status("floatingip", fip["id"], "ACTIVE")
    cloud.reachable(fip["floating_ip_address"])
    ns = f"qrouter-{a['id']}"
    L.sh("ip", "netns", "delete", ns)
    if how == "replaced":
        L.sh("ip", "netns", "add", ns)
    L.sh("ip", "netns", "exec", cloud.upstream, "ip", "neigh", "flush", "dev", "eth0")
    # any pass notices the namespace's identity changed: a plain wake-up is enough
    from floatip.client import Client
    with Client(cloud.server.url) as c:
        c.sync()

    def links():
        r = L.sh("ip", "netns", "exec", ns, "ip", "-o", "link", check=False).stdout
        return "qg-" in r and "qr-" in r and "floatip router=" in r and r
    wait_for(links, 20, "the router rebuilt in its namespace")
    cloud.reachable(fip["floating_ip_address"])
    ovs = L.sh("ovs-vsctl", "list-ports", cloud.int_br).stdout.split()
    assert any(p.startswith("qr-") for p in ovs)
    assert cloud.agent.stats.repairs.get("namespace", 0) >= 1
    assert cloud.get("router", a["id"])["status"] == "ACTIVE"
    assert cloud.get("floatingip", fip["id"])["status"] == "ACTIVE"


def test_ovs_churn_on_other_bridges_does_not_wake_the_agent(cloud):
    from floatip.agent.binding import Binder
    woken = []
    b = Binder(cloud.int_br, "fp-host", lambda: woken.append(1))
    try:
        b.sync({})  # connects
        time.sleep(0.5)
        woken.clear()
        other = f"fp{cloud.sfx}o"
        cloud.lab.bridge(other)
        for i in range(3):
            L.sh("ovs-vsctl", "add-port", other, f"fp{cloud.sfx}x{i}", "--", "set", "Interface",
                 f"fp{cloud.sfx}x{i}", "type=internal", f"external_ids:iface-id=fp-x{i}")
        time.sleep(1.0)
        assert not woken, "a port on another bridge woke the agent"
        L.sh("ovs-vsctl", "add-port", cloud.int_br, f"fp{cloud.sfx}y", "--", "set",
             "Interface", f"fp{cloud.sfx}y", "type=internal", "external_ids:iface-id=fp-y")
        try:
            wait_for(lambda: woken, 5, "a VM port on the integration bridge wakes the agent")
        finally:
            L.sh("ovs-vsctl", "--if-exists", "del-port", f"fp{cloud.sfx}y")
    finally:
        b.close()


def test_status_report_for_a_deleted_floating_ip_is_harmless(cloud):
    from floatip.service import agent_view
    a = cloud.router("198.51.100.0/24")
    fip = cloud.fip(None)
    ok(cloud.api.delete(f"/v2.0/floatingips/{fip['id']}"), 204)
    with cloud.server.db.tx(notify=False) as s:
        assert agent_view.report_status(
            s, {fip["id"]: {"status": "ACTIVE", "revision": 0, "reason": None}},
            {a["id"]: {"status": "ACTIVE", "reason": None}}) == 0



@pytest.mark.parametrize("cloud", ["local", "remote"], indirect=True)
def test_agent_applies_only_the_changes(cloud):
    """After its first (full) read the agent reads deltas: in process from the change feed,
    on another host from the long poll's changed objects; ACTIVE means programmed."""
    a = cloud.router("198.51.100.0/24")
    vm, _ = cloud.vm(a)
    cloud.status("router", a["id"], "ACTIVE")
    assert cloud.wait_for_agent()
    full = cloud.agent.stats.full_passes
    fip = cloud.fip(vm)
    cloud.status("floatingip", fip["id"], "ACTIVE")
    cloud.reachable(fip["floating_ip_address"])
    assert cloud.agent.stats.last_read == "delta"
    assert cloud.agent.stats.full_passes == full
    # deleted and re-created with the same address: programmed at the end
    addr = fip["floating_ip_address"]
    assert cloud.api.delete(f"/v2.0/floatingips/{fip['id']}").status_code == 204
    again = cloud.fip(vm, addr)
    cloud.status("floatingip", again["id"], "ACTIVE")
    assert cloud.wait_for_agent()
    cloud.reachable(addr)
    assert cloud.agent.stats.full_passes == full


def test_metrics(cloud):
    """/metrics in Prometheus' format: pass durations by kind, objects programmed, repairs,
    generations behind, API latency per route template."""
    a = cloud.router("198.51.100.0/24")
    vm, _ = cloud.vm(a)
    fip = cloud.fip(vm)
    cloud.status("floatingip", fip["id"], "ACTIVE")
    assert cloud.wait_for_agent()
    text = cloud.api.get("/metrics").text
    assert 'floatip_agent_pass_seconds_count{kind="full"}' in text
    assert 'floatip_agent_pass_seconds_count{kind="incremental"}' in text
    assert "floatip_floatingips_programmed 1.0" in text
    assert "floatip_generations_behind 0.0" in text
    assert 'floatip_api_request_seconds_count{method="POST",route="/v2.0/floatingips"} 1.0' \
        in text
    assert 'route="/v2.0/floatingips/{rid}"' in text  # ids stay out of the labels


def test_floatip_status_per_router(cloud):
    import json
    from typer.testing import CliRunner
    from floatip.cli.main import app
    a, b = cloud.router("198.51.100.0/24"), cloud.router("100.64.1.0/24")
    vm, _ = cloud.vm(a)
    cloud.fip(vm)
    _set_routes(cloud, b["id"], [{"destination": "2001:db8::/32", "nexthop": "100.64.1.5"}])
    cloud.status("router", b["id"], "ERROR")
    assert cloud.wait_for_agent()
    r = CliRunner().invoke(app, ["status", "--url", cloud.server.url, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["instance"] == cloud.server.instance
    routers = doc["agent"]["routers"]
    assert routers[a["id"]]["in_sync"] and routers[a["id"]]["floating_ips"] == 1
    assert not routers[b["id"]]["in_sync"] and "2001:db8::/32" in routers[b["id"]]["reason"]
    assert doc["agent"]["last_pass_at"] > 0 and doc["agent"]["passes"] >= 1
    r = CliRunner().invoke(app, ["status", "--url", cloud.server.url])
    assert r.exit_code == 0 and "2001:db8::/32" in r.output
    _set_routes(cloud, b["id"], [])  # so the API can tear the router down
