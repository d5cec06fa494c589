"""Port forwardings from the command line: ``floatip floating-ip port-forwarding`` (typer's
runner, the real server with the agent off, noauth) and ``openstack floating ip port
forwarding create|list|show|delete`` behind a real Keystone (conftest's ``keystone``)."""
from __future__ import annotations

import json
import uuid

import httpx
import pytest

from cloud import Osc, floatip_cli, served

pytestmark = [pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _world(post, put, tag: str, cidr: str) -> dict:
    """An external network, a network behind a router with a gateway there, a VM port."""
    ext = post("networks", {"network": {"name": f"{tag}-ext", "router:external": True}})
    post("subnets", {"subnet": {"network_id": ext["id"], "cidr": "203.0.113.0/24",
                                "ip_version": 4}})
    net = post("networks", {"network": {"name": f"{tag}-net"}})
    sub = post("subnets", {"subnet": {"network_id": net["id"], "cidr": cidr,
                                      "ip_version": 4}})
    r = post("routers", {"router": {"name": f"{tag}-r",
                                    "external_gateway_info": {"network_id": ext["id"]}}})
    put(f"routers/{r['id']}/add_router_interface", {"subnet_id": sub["id"]})
    port = post("ports", {"port": {"network_id": net["id"], "name": f"{tag}-vm"}})
    fip = post("floatingips", {"floatingip": {"floating_network_id": ext["id"]}})
    return {"port": port, "fip": fip}


def test_floatip_cli(tmp_path, monkeypatch):
    with served(tmp_path) as srv:
        run = floatip_cli(srv.url, monkeypatch)
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            def post(path, body):
                r = c.post(f"/v2.0/{path}", json=body)
                assert r.status_code == 201, r.text
                return next(iter(r.json().values()))

            def put(path, body):
                c.put(f"/v2.0/{path}", json=body).raise_for_status()
            tag = f"pfc{uuid.uuid4().hex[:5]}"
            w = _world(post, put, tag, "100.64.11.0/24")
            fip = w["fip"]["floating_ip_address"]
            made = json.loads(run("floating-ip", "port-forwarding", "create", fip, "--port",
                                  f"{tag}-vm", "--internal-protocol-port", "22",
                                  "--external-protocol-port", "2222", "-f", "json"))
            assert made["external_port"] == 2222 and made["internal_port"] == 22
            rng = json.loads(run("floating-ip", "port-forwarding", "create", fip, "--port",
                                 f"{tag}-vm", "--protocol", "udp", "--internal-protocol-port",
                                 "5000:5004", "--external-protocol-port", "6000:6004",
                                 "-f", "json"))
            assert rng["external_port_range"] == "6000:6004"
            listed = json.loads(run("floating-ip", "port-forwarding", "list", fip, "-f", "json"))
            assert {x["id"] for x in listed} == {made["id"], rng["id"]}
            assert "2222:2222" in run("floating-ip", "port-forwarding", "list", fip)
            # a collision: Neutron's error, exit 1
            assert "port collision" in run("floating-ip", "port-forwarding", "create", fip,
                                           "--port", f"{tag}-vm", "--internal-protocol-port",
                                           "23", "--external-protocol-port", "2222", code=1)
            run("floating-ip", "port-forwarding", "delete", fip, made["id"], rng["id"])
            assert c.get(f"/v2.0/floatingips/{w['fip']['id']}/port_forwardings").json() == \
                {"port_forwardings": []}


def test_openstack_cli(keystone, tmp_path):
    with served(tmp_path, keystone):
        osc = Osc(keystone, "pf", roles=("admin", "member", "reader"))
        tag = f"pfo{uuid.uuid4().hex[:6]}"
        osc("network", "create", "--external", f"{tag}-ext")
        osc("subnet", "create", "--network", f"{tag}-ext", "--subnet-range",
            "203.0.113.0/24", f"{tag}-exts")
        osc("network", "create", f"{tag}-net")
        osc("subnet", "create", "--network", f"{tag}-net", "--subnet-range",
            "100.64.12.0/24", f"{tag}-sub")
        osc("router", "create", f"{tag}-r")
        osc("router", "set", "--external-gateway", f"{tag}-ext", f"{tag}-r", parse=False)
        osc("router", "add", "subnet", f"{tag}-r", f"{tag}-sub", parse=False)
        port = osc("port", "create", "--network", f"{tag}-net", f"{tag}-vm")
        ip = port["fixed_ips"][0]["ip_address"]
        fip = osc("floating", "ip", "create", f"{tag}-ext")
        pf = osc("floating", "ip", "port", "forwarding", "create", "--internal-ip-address", ip,
                 "--port", port["id"], "--internal-protocol-port", "22",
                 "--external-protocol-port", "2222", "--protocol", "tcp", "--description",
                 "ssh", fip["id"])
        assert (pf["internal_port"], pf["external_port"], pf["description"]) == (22, 2222,
                                                                                  "ssh")
        listed = osc("floating", "ip", "port", "forwarding", "list", fip["id"])
        assert [x["ID"] for x in listed] == [pf["id"]]
        shown = osc("floating", "ip", "port", "forwarding", "show", fip["id"], pf["id"])
        assert shown["internal_ip_address"] == ip
        assert osc("floating", "ip", "show", fip["id"])["router_id"]
        osc("floating", "ip", "port", "forwarding", "delete", fip["id"], pf["id"],
            parse=False)
        assert osc("floating", "ip", "port", "forwarding", "list", fip["id"]) == []


def test_apply_file_with_forwardings(tmp_path, monkeypatch):
    """``floatip apply FILE`` through the API: a floating IP's ``port_forwardings`` made,
    a second apply changes nothing, one taken out of the file is deleted."""
    import yaml
    tag = f"pfa{uuid.uuid4().hex[:5]}"
    doc = {"networks": [{"name": f"{tag}-ext", "router:external": True},
                        {"name": f"{tag}-net"}],
           "subnets": [{"name": f"{tag}-exts", "network": f"{tag}-ext",
                        "cidr": "203.0.113.0/24", "gateway_ip": "203.0.113.1"},
                       {"name": f"{tag}-sub", "network": f"{tag}-net",
                        "cidr": "100.64.13.0/24", "gateway_ip": "100.64.13.1"}],
           "ports": [{"name": f"{tag}-vm", "network": f"{tag}-net",
                      "fixed_ip": "100.64.13.5"}],
           "routers": [{"name": f"{tag}-r",
                        "external_gateway_info": {"network": f"{tag}-ext"},
                        "interfaces": [f"{tag}-sub"]}],
           "floatingips": [{"floating_ip_address": "203.0.113.70", "port_forwardings": [
               {"protocol": "tcp", "internal_port_name": f"{tag}-vm", "internal_port": 22,
                "external_port": 2222},
               {"protocol": "udp", "internal_port_name": f"{tag}-vm",
                "internal_port_range": "5000:5002", "external_port_range": "6000:6002"}]}]}
    f = tmp_path / "pf.yaml"

    def apply() -> dict:
        f.write_text(yaml.safe_dump(doc))
        return json.loads(run("apply", str(f), "--json"))
    with served(tmp_path) as srv:
        run = floatip_cli(srv.url, monkeypatch)
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            def forwardings() -> list:
                fip = c.get("/v2.0/floatingips",
                            params={"floating_ip_address": "203.0.113.70"}).json()[
                    "floatingips"][0]
                return sorted((x["protocol"], x["external_port_range"], x["internal_port_range"],
                               x["internal_ip_address"]) for x in c.get(
                    f"/v2.0/floatingips/{fip['id']}/port_forwardings").json()[
                    "port_forwardings"])
            first = apply()
            assert any("port forwarding" in x for x in first["created"])
            assert forwardings() == [("tcp", "2222:2222", "22:22", "100.64.13.5"),
                                     ("udp", "6000:6002", "5000:5002", "100.64.13.5")]
            again = apply()
            assert not again["created"] and not again["updated"]
            doc["floatingips"][0]["port_forwardings"].pop()
            apply()
            assert forwardings() == [("tcp", "2222:2222", "22:22", "100.64.13.5")]
