"""Security groups with the ``openstack`` CLI against floatip behind a real Keystone, as a
project member: group and rule create/list, ``port set --security-group`` and ``port set
--no-security-group --disable-port-security``; the API's state is checked after each step."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from test_keystone import BIN, cloud, ok  # noqa: F401  (cloud: the module's Keystone + floatip)

pytestmark = [pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _env(cloud, user) -> dict:
    env = cloud["ks"].osc_env(user.name, user.password, user.project)
    return env


def test_security_groups_with_the_openstack_cli(cloud):  # noqa: F811
    a, b = cloud["users"]["a"], cloud["users"]["b"]
    env = _env(cloud, a)

    def osc(*args, fmt=True):
        r = subprocess.run([f"{BIN}/openstack", *args, *(("-f", "json") if fmt else ())],
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"openstack {' '.join(args)}: {r.stderr}"
        return json.loads(r.stdout) if r.stdout.strip() else ""

    with a.client(cloud["srv"].url) as api:
        def get(path):
            return ok(api.get(path))

        sg = osc("security", "group", "create", "--description", "web tier", "cli-web")
        got = get(f"/v2.0/security-groups/{sg['id']}")["security_group"]
        assert (got["name"], got["description"], got["project_id"]) == \
            ("cli-web", "web tier", a.project_id)
        assert sorted((r["direction"], r["ethertype"]) for r in got["security_group_rules"]) \
            == [("egress", "IPv4"), ("egress", "IPv6")]

        rule = osc("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port",
                   "22", "cli-web")
        got = get(f"/v2.0/security-group-rules/{rule['id']}")["security_group_rule"]
        assert (got["security_group_id"], got["direction"], got["ethertype"], got["protocol"],
                got["port_range_min"], got["port_range_max"], got["project_id"]) == \
            (sg["id"], "ingress", "IPv4", "tcp", 22, 22, a.project_id)

        listed = osc("security", "group", "rule", "list", "cli-web")
        assert {r["ID"] for r in listed} == {
            r["id"] for r in get(f"/v2.0/security-group-rules?security_group_id={sg['id']}")
            ["security_group_rules"]}
        assert len(listed) == 3
        assert [r["Port Range"] for r in listed if r["ID"] == rule["id"]] == ["22:22"]

        # a port of the project gets its default group; port set adds ours
        net = osc("network", "create", "cli-sg-net")
        osc("subnet", "create", "--network", net["id"], "--subnet-range", "100.64.31.0/24",
            "cli-sg-sub")
        port = osc("port", "create", "--network", net["id"], "cli-sg-vm")
        default = get("/v2.0/security-groups?name=default")["security_groups"]
        assert len(default) == 1 and default[0]["project_id"] == a.project_id
        assert get(f"/v2.0/ports/{port['id']}")["port"]["security_groups"] == \
            [default[0]["id"]]
        osc("port", "set", "--security-group", "cli-web", port["id"], fmt=False)
        got = get(f"/v2.0/ports/{port['id']}")["port"]
        assert sorted(got["security_groups"]) == sorted([default[0]["id"], sg["id"]])
        assert got["port_security_enabled"] is True

        # in use: Neutron's refusal, the group stays
        r = subprocess.run([f"{BIN}/openstack", "security", "group", "delete", "cli-web"],
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode != 0 and "in use" in r.stderr.lower()
        assert get(f"/v2.0/security-groups/{sg['id']}")["security_group"]["id"] == sg["id"]

        osc("port", "set", "--no-security-group", "--disable-port-security", port["id"],
            fmt=False)
        got = get(f"/v2.0/ports/{port['id']}")["port"]
        assert got["security_groups"] == [] and got["port_security_enabled"] is False

        # project B sees none of it
        with b.client(cloud["srv"].url) as other:
            assert other.get(f"/v2.0/security-groups/{sg['id']}").status_code == 404
            assert sg["id"] not in {g["id"] for g in ok(other.get("/v2.0/security-groups"))
                                    ["security_groups"]}

        osc("security", "group", "rule", "delete", rule["id"], fmt=False)
        assert api.get(f"/v2.0/security-group-rules/{rule['id']}").status_code == 404
        for args in (("port", "delete", port["id"]), ("network", "delete", net["id"]),
                     ("security", "group", "delete", "cli-web")):
            osc(*args, fmt=False)
        assert api.get(f"/v2.0/security-groups/{sg['id']}").status_code == 404
