"""QoS from the command line: ``floatip qos policy|rule|attach`` (typer's runner, the real
server with the agent off, noauth), and with the real ``openstack`` CLI behind a real Keystone (conftest's ``keystone``), as
a project's admin: ``network qos policy create``, ``network qos rule create --type
bandwidth-limit``, ``floating ip set --qos-policy`` / ``unset``, ``router set
--external-gateway ... --qos-policy``, ``network qos policy delete`` refused while in use."""
from __future__ import annotations

import json
import uuid

import httpx
import pytest

from cloud import Osc, floatip_cli, served

pytestmark = [pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def test_openstack_cli(keystone, tmp_path):
    with served(tmp_path, keystone):
        osc = Osc(keystone, "qs", roles=("admin", "member", "reader"))
        tag = f"qso{uuid.uuid4().hex[:6]}"
        pol = osc("network", "qos", "policy", "create", "--description", "uplink", f"{tag}-p")
        osc("network", "qos", "rule", "create", "--type", "bandwidth-limit", "--max-kbps",
            "3000", "--max-burst-kbits", "300", "--egress", pol["id"])
        osc("network", "qos", "rule", "create", "--type", "bandwidth-limit", "--max-kbps",
            "1000", "--ingress", pol["id"])
        rules = osc("network", "qos", "rule", "list", pol["id"])
        assert sorted((r["Max Kbps"], r["Direction"]) for r in rules) == [
            (1000, "ingress"), (3000, "egress")]
        # a second egress rule: Neutron's conflict
        err = osc("network", "qos", "rule", "create", "--type", "bandwidth-limit",
                  "--max-kbps", "5", "--egress", pol["id"], ok=False)
        assert "conflicts" in err
        assert {"Type": "bandwidth_limit"} in osc("network", "qos", "rule", "type", "list")
        osc("network", "create", "--external", f"{tag}-ext")
        osc("subnet", "create", "--network", f"{tag}-ext", "--subnet-range",
            "203.0.113.0/24", f"{tag}-exts")
        fip = osc("floating", "ip", "create", f"{tag}-ext")
        osc("floating", "ip", "set", "--qos-policy", pol["id"], fip["id"], parse=False)
        assert osc("floating", "ip", "show", fip["id"])["qos_policy_id"] == pol["id"]
        osc("router", "create", f"{tag}-r")
        osc("router", "set", "--external-gateway", f"{tag}-ext", "--qos-policy", pol["id"],
            f"{tag}-r", parse=False)
        gw = osc("router", "show", f"{tag}-r")["external_gateway_info"]
        assert gw["qos_policy_id"] == pol["id"]
        osc("network", "qos", "policy", "delete", pol["id"], parse=False, ok=False)  # 409
        assert osc("network", "qos", "policy", "show", pol["id"])["id"] == pol["id"]
        osc("floating", "ip", "unset", "--qos-policy", fip["id"], parse=False)
        assert osc("floating", "ip", "show", fip["id"])["qos_policy_id"] is None
        osc("router", "set", "--external-gateway", f"{tag}-ext", "--no-qos-policy",
            f"{tag}-r", parse=False)
        osc("network", "qos", "policy", "delete", pol["id"], parse=False)
        assert osc("network", "qos", "policy", "list") == []


def test_floatip_cli(tmp_path, monkeypatch):
    with served(tmp_path) as srv:
        run = floatip_cli(srv.url, monkeypatch)
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            tag = f"qsc{uuid.uuid4().hex[:5]}"
            ext = c.post("/v2.0/networks", json={"network": {
                "name": f"{tag}-ext", "router:external": True}}).json()["network"]
            c.post("/v2.0/subnets", json={"subnet": {"network_id": ext["id"], "ip_version": 4,
                                                     "cidr": "203.0.113.0/24"}})
            fip = c.post("/v2.0/floatingips", json={"floatingip": {
                "floating_network_id": ext["id"]}}).json()["floatingip"]
            r = c.post("/v2.0/routers", json={"router": {
                "name": f"{tag}-r", "external_gateway_info": {"network_id": ext["id"]}}}
            ).json()["router"]
            pol = json.loads(run("qos", "policy", "create", f"{tag}-p", "-f", "json"))
            rule = json.loads(run("qos", "rule", "create", f"{tag}-p", "--max-kbps", "2000",
                                  "--direction", "ingress", "-f", "json"))
            assert (rule["max_kbps"], rule["direction"]) == (2000, "ingress")
            assert "conflicts" in run("qos", "rule", "create", f"{tag}-p", "--max-kbps", "1",
                                      "--direction", "ingress", code=1)
            assert "2000" in run("qos", "rule", "list", f"{tag}-p")
            run("qos", "attach", f"{tag}-p", "--floating-ip", fip["floating_ip_address"])
            run("qos", "attach", f"{tag}-p", "--router", f"{tag}-r")
            assert c.get(f"/v2.0/floatingips/{fip['id']}").json()["floatingip"][
                "qos_policy_id"] == pol["id"]
            assert c.get(f"/v2.0/routers/{r['id']}").json()["router"][
                "external_gateway_info"]["qos_policy_id"] == pol["id"]
            assert "is used by" in run("qos", "policy", "delete", f"{tag}-p", code=1)
            run("qos", "attach", "--detach", "--floating-ip", fip["id"])
            run("qos", "attach", "--detach", "--router", r["id"])
            run("qos", "rule", "delete", f"{tag}-p", rule["id"])
            run("qos", "policy", "delete", f"{tag}-p")
            assert json.loads(run("qos", "policy", "list", "-f", "json")) == []
