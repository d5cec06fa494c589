"""Tags with the real ``openstack`` CLI behind a real Keystone (conftest's ``keystone``), as
a project's member: ``network create --tag``, ``network set --tag``, ``network list --tags``
/ ``--any-tags`` / ``--not-tags``, ``network unset --tag``, ``port set --tag``."""
from __future__ import annotations

import pytest

from cloud import Osc, served

pytestmark = [pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def osc(keystone, tmp_path_factory):
    with served(tmp_path_factory.mktemp("fk-tagcli"), keystone):
        yield Osc(keystone, "tg")


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
