"""``floatip security-group ...``, ``floatip port create|set`` with groups and port security,
and ``floatip apply FILE`` with security groups against the API (the real server, agent off);
each step is checked in the API's state. The command runs in this process (typer's runner:
the same code as the ``floatip`` program, without ~2 s of interpreter start per call)."""
from __future__ import annotations

import json
import os
import uuid

import httpx
import pytest
import yaml

from typer.testing import CliRunner

from cloud import floatip_cli, served
from floatip.cli.main import app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("sgcli")) as srv:
        yield srv


@pytest.fixture
def cli(server, monkeypatch):
    return floatip_cli(server.url, monkeypatch)


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield lambda path: c.get(path).raise_for_status().json()


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_security_group_commands(cli, api):
    web = uniq("web")
    sg = json.loads(cli("security-group", "create", web, "--description", "the web tier",
                        "-f", "json"))
    assert api(f"/v2.0/security-groups/{sg['id']}")["security_group"]["description"] == \
        "the web tier"
    # Neutron's egress rules come with every new group
    assert sorted((r["direction"], r["ethertype"]) for r in sg["security_group_rules"]) == \
        [("egress", "IPv4"), ("egress", "IPv6")]

    ssh = json.loads(cli("security-group", "rule", "create", web, "--protocol", "tcp",
                         "--dst-port", "22", "-f", "json"))
    got = api(f"/v2.0/security-group-rules/{ssh['id']}")["security_group_rule"]
    assert (got["security_group_id"], got["direction"], got["ethertype"], got["protocol"],
            got["port_range_min"], got["port_range_max"]) == \
        (sg["id"], "ingress", "IPv4", "tcp", 22, 22)
    rng = json.loads(cli("security-group", "rule", "create", web, "--protocol", "udp",
                         "--dst-port", "5000:5010", "--remote-ip", "198.51.100.0/24",
                         "-f", "json"))
    assert (rng["port_range_min"], rng["port_range_max"], rng["remote_ip_prefix"]) == \
        (5000, 5010, "198.51.100.0/24")
    ping = json.loads(cli("security-group", "rule", "create", web, "--protocol", "icmp",
                          "--icmp-type", "8", "-f", "json"))
    assert (ping["port_range_min"], ping["port_range_max"]) == (8, None)
    peers = json.loads(cli("security-group", "rule", "create", web, "--ethertype", "IPv6",
                           "--remote-group", web, "-f", "json"))
    assert peers["remote_group_id"] == sg["id"] and peers["ethertype"] == "IPv6"

    # the same rule again: Neutron's refusal, nothing added
    err = cli("security-group", "rule", "create", web, "--protocol", "tcp", "--dst-port", "22",
              code=1)
    assert "SecurityGroupRuleExists" in err
    # a port range on a protocol without ports: refused
    err = cli("security-group", "rule", "create", web, "--protocol", "gre", "--dst-port", "1",
              code=1)
    assert "InvalidInput" in err or "SecurityGroup" in err
    rules = json.loads(cli("security-group", "rule", "list", web, "-f", "json"))
    assert len(rules) == 6 and {r["security_group_id"] for r in rules} == {sg["id"]}
    assert {r["id"] for r in rules} == {
        r["id"] for r in api(f"/v2.0/security-group-rules?security_group_id={sg['id']}")
        ["security_group_rules"]}
    table = cli("security-group", "rule", "list", web)
    assert "5000:5010" in table and "198.51.100.0/24" in table and "type=8" in table
    assert web in cli("security-group", "list")
    shown = json.loads(cli("security-group", "show", web, "-f", "json"))
    assert len(shown["security_group_rules"]) == 6

    cli("security-group", "set", web, "--stateless", "--name", web + "-x")
    got = api(f"/v2.0/security-groups/{sg['id']}")["security_group"]
    assert got["stateful"] is False and got["name"] == web + "-x"
    cli("security-group", "set", sg["id"], "--stateful", "--name", web)

    cli("security-group", "rule", "delete", ssh["id"])
    assert ssh["id"] not in {r["id"] for r in api("/v2.0/security-group-rules")
                             ["security_group_rules"]}

    # ports: named groups, none, port security off and on again, allowed address pairs
    net = uniq("net")
    cli("network", "create", net)
    cli("subnet", "create", uniq("sub"), "--network", net, "--subnet-range", "100.64.21.0/24")
    db = json.loads(cli("security-group", "create", uniq("db"), "-f", "json"))
    vm = json.loads(cli("port", "create", uniq("vm"), "--network", net, "--security-group", web,
                        "--allowed-address", "ip-address=100.64.21.200", "-f", "json"))
    got = api(f"/v2.0/ports/{vm['id']}")["port"]
    assert got["security_groups"] == [sg["id"]] and got["port_security_enabled"] is True
    assert [a["ip_address"] for a in got["allowed_address_pairs"]] == ["100.64.21.200"]
    cli("port", "set", vm["id"], "--security-group", db["name"])  # adds, as openstack does
    assert sorted(api(f"/v2.0/ports/{vm['id']}")["port"]["security_groups"]) == \
        sorted([sg["id"], db["id"]])
    err = cli("security-group", "delete", web, code=1)
    assert "SecurityGroupInUse" in err
    # port security off needs the groups gone first (Neutron's refusal) ...
    err = cli("port", "set", vm["id"], "--disable-port-security", code=1)
    assert "PortSecurityAndIPRequiredForSecurityGroups" in err or "409" in err or \
        "PortSecurity" in err
    cli("port", "set", vm["id"], "--no-allowed-address")
    cli("port", "set", vm["id"], "--no-security-group", "--disable-port-security")
    got = api(f"/v2.0/ports/{vm['id']}")["port"]
    assert got["security_groups"] == [] and got["port_security_enabled"] is False
    cli("port", "set", vm["id"], "--enable-port-security", "--security-group", web)
    got = api(f"/v2.0/ports/{vm['id']}")["port"]
    assert got["security_groups"] == [sg["id"]] and got["port_security_enabled"] is True
    cli("port", "delete", vm["id"])
    cli("security-group", "delete", web)
    assert sg["id"] not in {g["id"] for g in api("/v2.0/security-groups")["security_groups"]}
    cli("security-group", "delete", db["id"])


def test_apply_with_security_groups(cli, api, tmp_path):
    """The seed file's form: groups with rules, a port naming a group, and a second apply that
    changes nothing; a rule added to the file is added, and port security is the file's."""
    web, app_, raw, net = uniq("aweb"), uniq("aapp"), uniq("araw"), uniq("anet")
    doc = {
        "networks": [{"name": net}],
        "subnets": [{"name": uniq("asub"), "network": net, "cidr": "100.64.22.0/24"}],
        "security_groups": [
            {"name": web, "description": "web", "rules": [
                {"direction": "ingress", "protocol": "icmp"},
                {"direction": "ingress", "protocol": "tcp", "port_range_min": 8080,
                 "port_range_max": 8080}]},
            {"name": app_, "rules": [
                {"protocol": "tcp", "dst_port": "9000:9001", "remote_group": web}]},
            {"name": raw, "stateful": False},
        ],
        "ports": [{"name": uniq("avm"), "network": net, "fixed_ip": "100.64.22.5",
                   "security_groups": [web, app_]},
                  {"name": uniq("aopen"), "network": net, "fixed_ip": "100.64.22.6",
                   "security_groups": [], "port_security_enabled": False}],
    }
    f = tmp_path / "sg.yaml"
    f.write_text(yaml.safe_dump(doc))
    first = json.loads(cli("apply", str(f), "--json"))
    assert f"security_group {web}" in first["created"] and \
        f"security_group {app_}" in first["created"]
    ids = first["ids"]["security_group"]
    rules = api(f"/v2.0/security-group-rules?security_group_id={ids[web]}")["security_group_rules"]
    assert sorted((r["direction"], r["protocol"], r["port_range_min"]) for r in rules
                  if r["direction"] == "ingress") == [("ingress", "icmp", None),
                                                      ("ingress", "tcp", 8080)]
    assert len(rules) == 4  # and the API's two egress rules, which apply leaves alone
    app_rules = [r for r in api(f"/v2.0/security-group-rules?security_group_id={ids[app_]}")
                 ["security_group_rules"] if r["direction"] == "ingress"]
    assert [(r["port_range_min"], r["port_range_max"], r["remote_group_id"])
            for r in app_rules] == [(9000, 9001, ids[web])]
    assert api(f"/v2.0/security-groups/{ids[raw]}")["security_group"]["stateful"] is False
    vm = api(f"/v2.0/ports/{first['ids']['port'][doc['ports'][0]['name']]}")["port"]
    assert sorted(vm["security_groups"]) == sorted([ids[web], ids[app_]])
    opened = api(f"/v2.0/ports/{first['ids']['port'][doc['ports'][1]['name']]}")["port"]
    assert opened["security_groups"] == [] and opened["port_security_enabled"] is False

    second = json.loads(cli("apply", str(f), "--json"))
    assert not second["created"] and not second["updated"]

    # a rule more, the VM leaves the app group: only that changes
    doc["security_groups"][0]["rules"].append({"protocol": "tcp", "dst_port": 22,
                                               "remote_ip_prefix": "203.0.113.0/24"})
    doc["ports"][0]["security_groups"] = [web]
    f.write_text(yaml.safe_dump(doc))
    third = json.loads(cli("apply", str(f), "--json"))
    assert [x for x in third["created"] if "rule" in x] == \
        [f"security group {web} rule ingress tcp 22"]
    assert third["updated"] == [f"port {doc['ports'][0]['name']}"]
    assert api(f"/v2.0/ports/{vm['id']}")["port"]["security_groups"] == [ids[web]]
    assert len(api(f"/v2.0/security-group-rules?security_group_id={ids[web]}")
               ["security_group_rules"]) == 5


def test_the_seed_file_opens_what_the_demo_checks(cli, api):
    """examples/seed.yaml (and the demo's SEED, the same document) put vm4 in a group that lets
    ping and TCP 8080 in, and vm5 in one that lets nothing in."""
    from floatip.cli.demo import PORT, SEED
    with open(os.path.join(ROOT, "examples", "seed.yaml")) as fh:
        assert yaml.safe_load(fh) == SEED
    res = json.loads(cli("apply", os.path.join(ROOT, "examples", "seed.yaml"), "--json"))
    web = res["ids"]["security_group"]["seed-web"]
    ingress = {(r["protocol"], r["port_range_min"], r["port_range_max"])
               for r in api(f"/v2.0/security-group-rules?security_group_id={web}")
               ["security_group_rules"] if r["direction"] == "ingress"}
    assert ingress == {("icmp", None, None), ("tcp", PORT, PORT)}
    out = res["ids"]["security_group"]["seed-out"]
    assert not [r for r in api(f"/v2.0/security-group-rules?security_group_id={out}")
                ["security_group_rules"] if r["direction"] == "ingress"]
    vm4 = api(f"/v2.0/ports/{res['ids']['port']['vm4']}")["port"]
    vm5 = api(f"/v2.0/ports/{res['ids']['port']['vm5']}")["port"]
    assert vm4["security_groups"] == [web] and vm5["security_groups"] == [out]


def test_firewall_driver_from_the_config_file_and_flags(tmp_path):
    """On by default; ``[securitygroup] firewall_driver = noop`` or ``--no-firewall`` turn it
    off, a flag beats the file, and a driver floatip does not have is refused at start."""
    from floatip.cli.config import load
    from floatip.cli.serve import _driver
    conf = tmp_path / "floatip.conf"
    assert load(None).firewall() is True
    conf.write_text("[securitygroup]\nfirewall_driver = noop\n")
    assert load(str(conf)).firewall() is False
    assert load(str(conf), {("securitygroup", "firewall_driver"): _driver(True)}).firewall()
    assert not load(None, {("securitygroup", "firewall_driver"): _driver(False)}).firewall()
    conf.write_text("[securitygroup]\nfirewall_driver = iptables_hybrid\n")
    r = CliRunner().invoke(app, ["serve", "--config", str(conf), "--no-agent"])
    assert r.exit_code == 1 and "firewall_driver = iptables_hybrid" in r.stderr
