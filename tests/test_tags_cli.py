"""Tags with the real ``openstack`` CLI behind a real Keystone (conftest's ``keystone``), as
a project's member: ``network create --tag``, ``network set --tag``, ``network list --tags``
/ ``--any-tags`` / ``--not-tags``, ``network unset --tag``, ``port set --tag``."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid

import pytest

from floatip.api.auth import AuthSettings
from floatip.server import Server, free_port

pytestmark = [pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def osc(keystone, tmp_path_factory):
    d = tmp_path_factory.mktemp("fk-tagcli")
    srv = Server(f"sqlite:///{d}/floatip.db", f"127.0.0.1:{free_port()}", agent=False,
                 auth=AuthSettings("keystone", keystone.authtoken())).start()
    keystone.set_network_endpoint(srv.url)
    sfx = uuid.uuid4().hex[:6]
    name, project, password = f"tg-u-{sfx}", f"tg-p-{sfx}", secrets.token_urlsafe(12)
    keystone.user(name, password, project, ["member"])
    env = keystone.osc_env(name, password, project)

    def run(*args, parse: bool = True):
        r = subprocess.run([f"{BIN}/openstack", *args, *(["-f", "json"] if parse else [])],
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"openstack {' '.join(args)}: {r.stderr}"
        return json.loads(r.stdout) if parse and r.stdout.strip() else r.stdout

    yield run
    srv.close()


def test_network_and_port_tags_with_the_openstack_cli(osc):
    red = osc("network", "create", "--tag", "red", "tg-red")
    assert red["tags"] == ["red"]
    blue = osc("network", "create", "tg-blue")
    osc("network", "set", "--tag", "blue", "--tag", "green", blue["id"], parse=False)
    assert sorted(osc("network", "show", blue["id"])["tags"]) == ["blue", "green"]

    def names(*args) -> set[str]:
        return {n["Name"] for n in osc("network", "list", *args)}

    assert names("--tags", "blue") == {"tg-blue"}
    assert names("--tags", "blue,green") == {"tg-blue"}
    assert names("--tags", "blue,red") == set()
    assert names("--any-tags", "blue,red") == {"tg-blue", "tg-red"}
    assert names("--not-tags", "red") == {"tg-blue"}
    osc("network", "unset", "--tag", "green", blue["id"], parse=False)
    assert osc("network", "show", blue["id"])["tags"] == ["blue"]
    port = osc("port", "create", "--network", red["id"], "--tag", "vm", "tg-port")
    assert port["tags"] == ["vm"]
    osc("port", "set", "--no-tag", port["id"], parse=False)
    assert osc("port", "show", port["id"])["tags"] == []
    for args in (("port", "delete", port["id"]), ("network", "delete", red["id"]),
                 ("network", "delete", blue["id"])):
        osc(*args, parse=False)
