"""Trace and event history against a real server with its agent (kernel backend): the seed
built through the API; a map element deleted by hand makes the trace name the missing
element and the API's ACTIVE status it contradicts (``--probe`` agrees); a full pass repairs
it and the repair is in the event history with its reason; a router the agent cannot build
goes ERROR, and that is in the history with its reason too."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from floatip import lab as L
from floatip.agent import binding
from floatip.client import Client
from floatip.cli.demo_api import remove_all
from floatip.dataplane.netns import nsexec
from floatip.server import Server, free_port

from cloud import wait_for
from test_e2e_sdk import env  # noqa: F401 - the fixture

pytestmark = [pytest.mark.kernel,
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
EXT, TEN, VM_IP = "203.0.113.0/24", "198.51.100.0/24", "198.51.100.10"


@pytest.fixture
def server(env, tmp_path):  # noqa: F811
    srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}", env.config,
                 prune_scope="known", interval=300).start()
    try:
        yield srv
    finally:
        try:
            with Client(srv.url) as c:
                env.router_ids |= {r["id"] for r in c.list("router")}
                remove_all(c)
            srv.wait_for_agent()
        finally:
            srv.close()


def trace(url: str, fip: str, rid: str) -> tuple[int, dict]:
    r = subprocess.run([sys.executable, "-m", "floatip.cli", "trace", "--to", fip, "--port",
                        "80", "--router", rid, "--url", url, "--probe", "--json"],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, json.loads(r.stdout)


def events(c: Client, oid: str) -> list[dict]:
    return c.request("GET", "/floatip/v1/events", params={"object": oid})["events"]


def test_trace_names_the_disagreement_and_the_history_keeps_repair_and_error(env, server):  # noqa: F811
    c = Client(server.url)
    ext = c.create("network", name=f"fa-ext-{env.sfx}", **{
        "router:external": True, "provider:network_type": "flat",
        "provider:physical_network": "physnet1"})
    c.create("subnet", network_id=ext["id"], cidr=EXT, ip_version=4, gateway_ip="203.0.113.1",
             enable_dhcp=False, allocation_pools=[{"start": "203.0.113.10",
                                                   "end": "203.0.113.99"}])
    net = c.create("network", name=f"fa-net-{env.sfx}")
    sub = c.create("subnet", network_id=net["id"], cidr=TEN, ip_version=4, enable_dhcp=False)
    router = c.create("router", name=f"fa-r-{env.sfx}",
                      external_gateway_info={"network_id": ext["id"]})
    rid = router["id"]
    env.router_ids.add(rid)
    c.add_interface(rid, subnet_id=sub["id"])
    port = c.create("port", network_id=net["id"], name="fa-vm1",
                    fixed_ips=[{"subnet_id": sub["id"], "ip_address": VM_IP}])
    binding.plug(port, {sub["id"]: sub}, env.vm1, env.int_br)
    fip = c.create("floatingip", floating_network_id=ext["id"], port_id=port["id"])
    address = fip["floating_ip_address"]
    wait_for(lambda: c.show("floatingip", fip["id"])["status"] == "ACTIVE", what="FIP ACTIVE")
    assert L.ping_until(env.upstream, address)
    code, doc = trace(server.url, address, rid)
    assert code == 0 and doc["delivered"] and doc["probe"]["delivered"], json.dumps(doc["probe"], indent=1)
    assert doc["disagreements"] == []
    # drift: the element goes, by hand; the API still says ACTIVE
    ns = f"qrouter-{rid}"
    nsexec(ns, ["nft", "delete", "element", "ip", "floatip", "fip_dnat", f"{{ {address} }}"])
    code, doc = trace(server.url, address, rid)
    assert code == 1 and doc["stopped"] == "DNAT"
    assert f"{address} has no element in map fip_dnat" in doc["reason"]
    assert len(doc["disagreements"]) == 1
    said = doc["disagreements"][0]
    assert "ACTIVE" in said and f"element {address} is missing from map fip_dnat" in said
    assert doc["probe"]["delivered"] is False and doc["probe"]["dropped_at"].startswith("DNAT")
    # a full pass repairs it, and says so in the history
    c.sync(full=True)
    wait_for(lambda: any(e["kind"] == "repair" for e in events(c, rid)), what="repair event")
    rep = next(e for e in events(c, rid) if e["kind"] == "repair")
    assert "fip_dnat" in rep["reason"] or address in rep["reason"], rep
    assert rep["resource"] == "router" and rep["cause"]
    code, doc = trace(server.url, address, rid)
    assert code == 0, doc
    # a router this agent cannot build goes ERROR, with its reason in the history
    odd = c.create("network", name=f"fa-odd-{env.sfx}", **{
        "router:external": True, "provider:network_type": "flat",
        "provider:physical_network": "fa-nomap"})
    c.create("subnet", network_id=odd["id"], cidr="192.0.2.0/24", ip_version=4)
    bad = c.create("router", name=f"fa-odd-{env.sfx}",
                   external_gateway_info={"network_id": odd["id"]})
    env.router_ids.add(bad["id"])
    wait_for(lambda: any(e["status"] == "ERROR" for e in events(c, bad["id"])),
             what="ERROR event")
    err = next(e for e in events(c, bad["id"]) if e["status"] == "ERROR")
    assert "fa-nomap" in err["reason"] and err["old_status"] == "ACTIVE"
    c.close()
