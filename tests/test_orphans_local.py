"""Routers made by ``apply --local`` carry their own owner (issue 26, item 5): a server with
the default ``--prune all`` leaves them alone (no prune, no "will be rebuilt"), ``cleanup
--orphans`` does not take them for a dead server's, and ``floatip show`` says who owns
what. Real namespaces, OVS and netfilter, once per NAT driver."""
from __future__ import annotations

import json
import logging

import pytest
from typer.testing import CliRunner

from floatip import lab as L
from floatip.cli.main import app
from floatip.dataplane.kernel import Dataplane
from floatip.server import Server, free_port
from cloud import wait_for

pytestmark = pytest.mark.kernel


def test_a_server_leaves_local_routers_alone(topo, nat_driver, tmp_path, caplog):
    topo.vm("vm4", "198.51.100.84")
    topo.fip("203.0.113.84", "vm4")
    doc = tmp_path / "local.json"
    doc.write_text(json.dumps(topo.doc))
    flags = ["--nat-driver", nat_driver, "--integration-bridge", topo.int_br,
             "--bridge-mapping", f"physnet1:{topo.ex_br}"]
    cli = CliRunner()
    r = cli.invoke(app, [*flags, "apply", "--local", str(doc)])
    assert r.exit_code == 0, r.output
    mark = L.sh("ip", "netns", "exec", topo.ns, "ip", "-o", "link", "show", "lo").stdout
    assert "instance=local" in mark
    assert L.ping_until(topo.upstream, "203.0.113.84")

    # a server on the same bridges, pruning everything it owns, passes in full twice
    caplog.set_level(logging.INFO, logger="floatip")
    srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}", topo.config,
                 prune_scope="all", agent_options={"dhcp": False, "metadata": False}).start()
    try:
        assert srv.wait_for_agent(30)
        passes = srv.agent.stats.full_passes
        srv.backend.request_full()
        wait_for(lambda: srv.agent.stats.full_passes > passes, 30, "a full pass")
        assert srv.wait_for_agent(30)
    finally:
        srv.close()
    other = Dataplane(nat_driver, instance=srv.instance)
    try:
        obs = other.observe()
        assert obs.other_instances.get(topo.router_id) == "local"
        assert topo.ns not in obs.namespaces
    finally:
        other.close()
    assert topo.router_id not in caplog.text, caplog.text  # no "will be rebuilt", no prune
    assert L.ping_until(topo.upstream, "203.0.113.84")

    # cleanup --orphans does not take it for a dead server's router
    r = cli.invoke(app, [*flags, "cleanup", "--orphans", "--dry-run"])
    assert r.exit_code == 0 and topo.router_id not in r.output, r.output
    # show: its owner
    r = cli.invoke(app, [*flags, "show", "--json"])
    assert r.exit_code == 0, r.output
    shown = {x["router_id"]: x for x in json.loads(r.output)["routers"]}
    assert shown[topo.router_id]["owner"] == "apply --local"
    # and teardown FILE removes it
    r = cli.invoke(app, [*flags, "teardown", str(doc)])
    assert r.exit_code == 0, r.output
    assert topo.ns not in L.sh("ip", "netns", "list").stdout
