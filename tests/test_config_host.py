"""The host's settings in the config file (issue 26): Neutron's ``[ovs] integration_bridge``
and ``bridge_mappings``, floatip's ``[agent] nat_driver / run_dir / dhcp / metadata``, read by
``serve``, ``agent`` and ``port plug`` alike; the global flags still override them; unknown
keys are still refused. ``floatip`` runs as a real process where the command matters."""
from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest

from floatip import lab as L
from floatip.agent.binding import tap_name
from floatip.cli.app import Ctx
from floatip.cli.config import KEYS, load
from floatip.core.errors import NeutronError
from floatip.server import free_port
from served import Served, floatip, refused, wait_for


@pytest.mark.parametrize("lines, words", [
    ("[ovs]\nintegration_brige = br-int\n", ["integration_brige", "[ovs]",
                                              "did you mean 'integration_bridge'"]),
    ("[ovs]\nbridge_mappings = physnet1\n", ["[ovs]", "'physnet1' is not PHYSNET:BRIDGE"]),
    ("[ovs]\nbridge_mappings = physnet1:br-ex,physnet2:br-ex\n", ["[ovs]", "already mapped"]),
    ("[ovs]\nintegration_bridge = br int;x\n", ["[ovs]", "Invalid interface name"]),
    ("[agent]\nnat_driver = pf\n", ["[agent] nat_driver = 'pf'", "nftables or iptables"]),
    ("[agent]\nrun_dir = run/floatip\n", ["[agent] run_dir", "an absolute path"]),
    ("[agent]\ndhcp = sometimes\n", ["[agent] dhcp", "not a boolean"]),
    ("[metadata]\nmetadata_secret = x\n", ["metadata_secret",
                                           "did you mean 'metadata_proxy_shared_secret'"]),
])
def test_bad_host_settings_in_the_file_are_named(tmp_path, monkeypatch, lines, words):
    monkeypatch.setattr(Ctx, "flags", {})  # no global flags (a CLI test in this process)
    conf = tmp_path / "floatip.conf"
    conf.write_text(lines)
    with pytest.raises(NeutronError) as e:
        load(str(conf)).check()
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_a_bad_host_setting_stops_serve_agent_and_port_plug(tmp_path):
    """As processes: each command refuses the file, naming the key, before it does anything."""
    db = tmp_path / "floatip.db"
    conf = tmp_path / "floatip.conf"
    conf.write_text(f"[DEFAULT]\nbind_port = {free_port()}\nagent = false\n"
                    f"[database]\nconnection = sqlite:///{db}\n"
                    "[ovs]\nintegration_brige = br-int\n")
    words = ("integration_brige", "[ovs]", "did you mean 'integration_bridge'")
    refused(floatip("serve", "--config", str(conf)), *words)
    assert not db.exists()
    refused(floatip("agent", "--server", "http://127.0.0.1:9", "--config", str(conf)), *words)
    refused(floatip("port", "plug", "p", "--netns", "x", "--config", str(conf),
                    "--url", "http://127.0.0.1:9"), *words)


def test_metadata_secret_is_not_a_flag(tmp_path):
    """Secrets never on flags (they show in ``ps``): the file or FLOATIP_METADATA_SECRET."""
    refused(floatip("serve", "--metadata-secret", "s", "--no-agent"), "--metadata-secret")
    refused(floatip("agent", "--server", "http://127.0.0.1:9", "--metadata-secret", "s"),
            "--metadata-secret")


def test_global_flags_override_the_file(tmp_path):
    """A key the file sets wrong is replaced by the flag given: the server starts. Without
    the flag the same file stops it."""
    port = free_port()
    conf = tmp_path / "floatip.conf"
    conf.write_text(f"[DEFAULT]\nbind_port = {port}\nagent = false\n"
                    f"[database]\nconnection = sqlite:///{tmp_path}/floatip.db\n"
                    "[agent]\nnat_driver = pf\n[ovs]\nbridge_mappings = nonsense\n")
    refused(floatip("serve", "--config", str(conf)), "nat_driver")
    s = Served(tmp_path, conf, "--nat-driver", "iptables", "--bridge-mapping",
               "physnet1:br-in-x")
    try:
        s.up(f"http://127.0.0.1:{port}")
    finally:
        s.stop()


@pytest.mark.kernel
def test_serve_and_port_plug_build_on_the_files_bridges_and_nat_driver(tmp_path):
    """A server whose bridges, NAT driver and services come from the file only: the router's
    gateway lands on the file's external bridge, its NAT is iptables (not the nftables
    default), no dnsmasq; ``port plug --config`` plugs into the file's integration bridge."""
    from floatip.dataplane.ovs import datapath_type
    tag = "in" + uuid.uuid4().hex[:5]
    int_br, ex_br, vm = f"{tag}i", f"{tag}e", f"{tag}v"
    lab = L.Lab(datapath_type())
    lab.bridge(int_br)
    lab.bridge(ex_br)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run = tmp_path / "run"
    conf = tmp_path / "floatip.conf"
    conf.write_text(f"[DEFAULT]\nbind_port = {port}\nprune = known\nagent_process = false\n"
                    f"[database]\nconnection = sqlite:///{tmp_path}/floatip.db\n"
                    f"[ovs]\nintegration_bridge = {int_br}\n"
                    f"bridge_mappings = physnet7:{ex_br}\n"
                    f"[agent]\nnat_driver = iptables\nrun_dir = {run}\ndhcp = false\n"
                    "metadata = false\n")
    s = Served(tmp_path, conf)
    api = httpx.Client(base_url=url, timeout=30)
    router = None
    try:
        s.up(url)

        def post(kind, body):
            r = api.post(f"/v2.0/{kind}s", json={kind: body})
            assert r.status_code == 201, r.text
            return r.json()[kind]
        ext = post("network", {"name": f"{tag}-ext", "router:external": True,
                               "provider:network_type": "flat",
                               "provider:physical_network": "physnet7"})
        post("subnet", {"network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4,
                        "gateway_ip": "203.0.113.1"})
        net = post("network", {"name": f"{tag}-n"})
        sub = post("subnet", {"network_id": net["id"], "cidr": "192.0.2.0/24",
                              "ip_version": 4})
        router = post("router", {"name": f"{tag}-r",
                                 "external_gateway_info": {"network_id": ext["id"]}})
        assert api.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                       json={"subnet_id": sub["id"]}).status_code == 200
        wait_for(lambda: api.get(f"/v2.0/routers/{router['id']}").json()["router"]["status"]
                 == "ACTIVE", 60, "router ACTIVE")
        # a router is ACTIVE from its creation, as in Neutron: wait for the agent's pass
        wait_for(lambda: any(p.startswith("qg-") for p in
                             L.sh("ovs-vsctl", "list-ports", ex_br).stdout.split()),
                 60, f"the gateway port on {ex_br}")
        ns = f"qrouter-{router['id']}"
        # the iptables driver's SNAT for the subnet; no table of the nftables driver
        wait_for(lambda: "-s 192.0.2.0/24" in L.sh("ip", "netns", "exec", ns, "iptables-save",
                                                   "-t", "nat").stdout, 30, "iptables SNAT")
        assert "table ip floatip" not in L.sh("ip", "netns", "exec", ns, "nft", "list",
                                              "ruleset").stdout
        assert not (run / "dhcp").exists() or not any((run / "dhcp").iterdir())
        # port plug reads the same file for its bridge
        L.sh("ip", "netns", "add", vm)
        lab.namespaces.append(vm)
        vport = post("port", {"network_id": net["id"], "name": vm})
        r = floatip("port", "plug", vport["id"], "--netns", vm, "--config", str(conf),
                    "--url", url, "--wait", "30")
        assert r.returncode == 0, r.stdout + r.stderr
        assert int_br in r.stdout
        taps = L.sh("ovs-vsctl", "list-ports", int_br).stdout.split()
        assert tap_name(vport["id"]) in taps, taps
        assert floatip("port", "unplug", vport["id"], "--url", url).returncode == 0
        assert api.delete(f"/v2.0/ports/{vport['id']}").status_code == 204
        api.put(f"/v2.0/routers/{router['id']}/remove_router_interface",
                json={"subnet_id": sub["id"]})
        assert api.delete(f"/v2.0/routers/{router['id']}").status_code == 204
        wait_for(lambda: ns not in L.sh("ip", "netns", "list").stdout, 60,
                 "the router's namespace removed")
        router = None
    finally:
        api.close()
        s.stop()
        if router is not None:  # the server did not remove it: do it here
            from floatip.agent.reconciler import reconcile
            from floatip.core.layout import AgentConfig
            from floatip.core.model import State
            from floatip.dataplane.kernel import Dataplane
            import sqlite3  # the router is the server instance's: only that instance removes it
            with sqlite3.connect(tmp_path / "floatip.db") as c:
                (inst,), = c.execute("SELECT value FROM floatip_info WHERE key='instance_id'")
            dp = Dataplane("iptables", instance=inst)
            try:
                reconcile(dp, State(), AgentConfig(int_br, {"physnet7": ex_br}, "iptables"),
                          remove={router["id"]})
            finally:
                dp.close()
        left = lab.cleanup()
    assert not left, left


def test_the_example_and_docs_list_every_key(tmp_path, monkeypatch):
    """deploy/floatip.conf.example with every commented key set is a valid file holding every
    key the loader knows; docs/config.md's table names each of them."""
    monkeypatch.setattr(Ctx, "flags", {})
    root = Path(__file__).resolve().parent.parent
    lines = []
    for ln in (root / "deploy" / "floatip.conf.example").read_text().splitlines():
        m = re.fullmatch(r"# ([a-z_]+) =(.*)", ln)
        lines.append(f"{m[1]} ={m[2].split('(')[0]}" if m else ln)
    conf = tmp_path / "floatip.conf"
    conf.write_text("\n".join(lines) + "\n")
    cfg = load(str(conf))
    cfg.check()
    known = {(sec, k) for sec, keys in KEYS.items() if sec != "keystone_authtoken" for k in keys}
    assert set(cfg.values) == known
    doc = (root / "docs" / "config.md").read_text()
    for sec, key in sorted(known):
        name = f"`[{sec}] quota_<resource>`" if sec == "quotas" else f"`[{sec}] {key}`"
        assert name in doc, name
