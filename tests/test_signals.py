"""Operational signals (issue 26): the access log, errors with their request id, one line per
router or floating IP change, a router's ERROR said once (and again when its reason changes),
and ``/metrics`` with status codes, agent-alive and last-pass gauges, build info and the
process collector. Real ``floatip serve`` processes; their output and ``/metrics`` are read
as an operator reads them."""
from __future__ import annotations

import logging
import re
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from floatip import lab as L
from floatip.metrics import build_version
from floatip.server import Server, free_port
from served import Served, wait_for

PROJECT = "0123456789abcdef0123456789abcdef"


def metrics(url: str) -> dict[tuple, float]:
    """(name, ((label, value), ...)) -> value, from the text a Prometheus scrape reads."""
    r = httpx.get(url + "/metrics", timeout=10)
    assert r.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def sample(m: dict, name: str, **labels) -> float | None:
    return m.get((name, tuple(sorted(labels.items()))))


def _conf(tmp_path, port: int, extra: str = "") -> str:
    conf = tmp_path / "floatip.conf"
    conf.write_text(f"[DEFAULT]\nbind_port = {port}\nagent = false\n"
                    f"[database]\nconnection = sqlite:///{tmp_path}/floatip.db\n" + extra)
    return conf


def test_access_log_request_ids_and_metrics_of_a_server(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    s = Served(tmp_path, _conf(tmp_path, port))
    try:
        s.up(url)
        r = httpx.post(url + "/v2.0/networks", json={"network": {"name": "in-net"}},
                       headers={"X-Project-Id": PROJECT})
        assert r.status_code == 201, r.text
        rid = r.headers["X-Openstack-Request-Id"]
        assert re.fullmatch(r"req-[0-9a-f-]{36}", rid)
        missing = httpx.get(url + "/v2.0/networks/" + str(uuid.uuid4()))
        assert missing.status_code == 404
        bad = httpx.post(url + "/v2.0/networks", json={"network": {"nme": "x"}})
        assert bad.status_code == 400
        assert missing.headers["X-Openstack-Request-Id"] != rid
        # one line each on the access logger: method, path, status, ms, project, request id
        lines = wait_for(lambda: s.lines("floatip.access", rid), 10, "the access log line")
        assert len(lines) == 1
        assert re.search(rf"POST /v2.0/networks 201 \d+\.\dms project={PROJECT} {rid}$",
                         lines[0]), lines
        assert wait_for(lambda: s.lines("floatip.access", "GET /v2.0/networks/", " 404 ",
                                        missing.headers["X-Openstack-Request-Id"]), 10, "404")
        m = metrics(url)
        assert sample(m, "floatip_api_requests_total", method="POST",
                      route="/v2.0/networks", code="201") == 1
        assert sample(m, "floatip_api_requests_total", method="POST",
                      route="/v2.0/networks", code="400") == 1
        assert sample(m, "floatip_api_requests_total", method="GET",
                      route="/v2.0/networks/{rid}", code="404") == 1
        assert sample(m, "floatip_build_info", version=build_version()) == 1
        assert build_version() != "unknown"
        assert sample(m, "process_cpu_seconds_total") > 0
        assert sample(m, "process_resident_memory_bytes") > 0
        # no agent here: never passed, not alive
        assert sample(m, "floatip_agent_alive") == 0
        assert sample(m, "floatip_agent_last_pass_timestamp_seconds") == 0
    finally:
        s.stop()


def test_a_server_error_names_its_request_id_in_the_body_and_the_log(tmp_path, caplog):
    """A 500 carries its request id (body and header); the traceback in the log names it."""
    srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}",
                 agent=False).start()
    try:
        def boom():
            raise RuntimeError("in-test failure")
        srv.app.add_api_route("/in-test/boom", boom)
        with caplog.at_level(logging.INFO, logger="floatip"):
            r = httpx.get(srv.url + "/in-test/boom", timeout=10)
        assert r.status_code == 500
        err = r.json()["NeutronError"]
        rid = err["request_id"]
        assert re.fullmatch(r"req-[0-9a-f-]{36}", rid)
        assert r.headers["X-Openstack-Request-Id"] == rid
        assert "in-test failure" not in r.text  # the details stay in the log
        crash = [x for x in caplog.records if x.name == "floatip.api" and rid in x.getMessage()]
        assert crash and crash[0].exc_info and "in-test failure" in str(crash[0].exc_info[1])
        access = [x.getMessage() for x in caplog.records if x.name == "floatip.access"]
        assert any(" 500 " in a and a.endswith(rid) for a in access), access
        assert sample(metrics(srv.url), "floatip_api_requests_total", method="GET",
                      route="/in-test/boom", code="500") == 1
    finally:
        srv.close()


@pytest.mark.kernel
def test_agent_says_what_changed_and_an_error_once(tmp_path):
    """Passes every second: a router in ERROR (its physical network has no bridge here) is
    logged once in many passes, and again when its reason changes; a working router and a
    floating IP get one line each saying what changed; the agent gauges move."""
    from floatip.dataplane.ovs import datapath_type
    tag = "in" + uuid.uuid4().hex[:5]
    int_br, ex_br = f"{tag}i", f"{tag}e"
    lab = L.Lab(datapath_type())
    lab.bridge(int_br)
    lab.bridge(ex_br)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    conf = tmp_path / "floatip.conf"
    conf.write_text(f"[DEFAULT]\nbind_port = {port}\ninterval = 1\nprune = known\n"
                    f"[database]\nconnection = sqlite:///{tmp_path}/floatip.db\n"
                    f"[ovs]\nintegration_bridge = {int_br}\nbridge_mappings = physnet1:{ex_br}\n"
                    f"[agent]\nrun_dir = {tmp_path}/run\ndhcp = false\nmetadata = false\n")
    s = Served(tmp_path, conf)
    api = httpx.Client(base_url=url, timeout=30)
    routers: list[str] = []

    def post(kind, body):
        r = api.post(f"/v2.0/{kind}s", json={kind: body})
        assert r.status_code == 201, r.text
        return r.json()[kind]

    def ext(physnet, cidr):
        net = post("network", {"name": f"{tag}-{physnet}", "router:external": True,
                               "provider:network_type": "flat",
                               "provider:physical_network": physnet})
        post("subnet", {"network_id": net["id"], "cidr": cidr, "ip_version": 4,
                        "gateway_ip": cidr.replace("0/24", "1")})
        return net

    def status(kind, rid):
        return api.get(f"/v2.0/{kind}s/{rid}").json()[kind]["status"]
    try:
        s.up(url)
        good, lost1, lost2 = (ext("physnet1", "203.0.113.0/24"),
                              ext("physnet8", "198.51.100.0/24"),
                              ext("physnet9", "192.0.2.0/24"))
        bad = post("router", {"name": f"{tag}-bad",
                              "external_gateway_info": {"network_id": lost1["id"]}})
        routers.append(bad["id"])
        wait_for(lambda: status("router", bad["id"]) == "ERROR", 60, "router ERROR")
        m0 = metrics(url)
        passes0 = sum(v for (n, _), v in m0.items() if n == "floatip_agent_pass_seconds_count")
        # several full passes later, the error was said once
        wait_for(lambda: sum(v for (n, _), v in metrics(url).items()
                             if n == "floatip_agent_pass_seconds_count") >= passes0 + 4,
                 60, "4 more passes")
        said = s.lines(bad["id"], "ERROR", "physnet8")
        assert len(said) == 1, said
        # a new reason: said again, once
        assert api.put(f"/v2.0/routers/{bad['id']}", json={"router": {
            "external_gateway_info": {"network_id": lost2["id"]}}}).status_code == 200
        wait_for(lambda: s.lines(bad["id"], "ERROR", "physnet9"), 30, "the new reason")
        passes1 = sum(v for (n, _), v in metrics(url).items()
                      if n == "floatip_agent_pass_seconds_count")
        wait_for(lambda: sum(v for (n, _), v in metrics(url).items()
                             if n == "floatip_agent_pass_seconds_count") >= passes1 + 3,
                 60, "3 more passes")
        assert len(s.lines(bad["id"], "ERROR", "physnet9")) == 1
        assert len(s.lines(bad["id"], "ERROR", "physnet8")) == 1
        # a working router: one line naming it and what its pass did
        net = post("network", {"name": f"{tag}-n"})
        sub = post("subnet", {"network_id": net["id"], "cidr": "10.71.0.0/24",
                              "ip_version": 4})
        r = post("router", {"name": f"{tag}-ok",
                            "external_gateway_info": {"network_id": good["id"]}})
        routers.append(r["id"])
        assert api.put(f"/v2.0/routers/{r['id']}/add_router_interface",
                       json={"subnet_id": sub["id"]}).status_code == 200
        vm = post("port", {"network_id": net["id"], "name": f"{tag}-vm"})
        fip = post("floatingip", {"floating_network_id": good["id"], "port_id": vm["id"]})
        wait_for(lambda: status("floatingip", fip["id"]) == "ACTIVE", 60, "FIP ACTIVE")
        changed = s.lines(f"router {r['id']} ({tag}-ok) changed:", "step(s)")
        assert changed, s.output()[-3000:]
        addr = fip["floating_ip_address"]
        assert s.lines(f"floating IP {addr} -> {vm['fixed_ips'][0]['ip_address']} "
                       f"({fip['id']}): ACTIVE")
        assert api.delete(f"/v2.0/floatingips/{fip['id']}").status_code == 204
        wait_for(lambda: s.lines(f"floating IP {fip['id']}: removed"), 30, "FIP removed line")
        m = metrics(url)
        assert sample(m, "floatip_agent_alive") == 1
        assert time.time() - sample(m, "floatip_agent_last_pass_timestamp_seconds") < 30
        assert not s.lines("Traceback")
    finally:
        for rid in routers:
            api.put(f"/v2.0/routers/{rid}", json={"router": {"external_gateway_info": {}}})
            for p in api.get("/v2.0/ports", params={"device_id": rid}).json().get("ports", []):
                for f in p["fixed_ips"]:
                    api.put(f"/v2.0/routers/{rid}/remove_router_interface",
                            json={"subnet_id": f["subnet_id"]})
            api.delete(f"/v2.0/routers/{rid}")
        try:
            wait_for(lambda: not any(f"qrouter-{rid}" in L.sh("ip", "netns", "list").stdout
                                     for rid in routers), 60, "the routers removed")
        finally:
            api.close()
            s.stop()
            from floatip.agent.reconciler import reconcile
            from floatip.core.layout import AgentConfig
            from floatip.core.model import State
            from floatip.dataplane.kernel import Dataplane
            dp = Dataplane("nftables")
            try:
                reconcile(dp, State(), AgentConfig(int_br, {"physnet1": ex_br}),
                          remove=set(routers))
            finally:
                dp.close()
            left = lab.cleanup()
    assert not left, left
