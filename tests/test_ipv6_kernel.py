"""Dual stack on real namespaces, OVS and radvd, once per NAT driver: IPv6 is routed (the VM's
own address arrives upstream), IPv4 still leaves through the floating IP, and the NAT
drivers leave IPv6 alone."""
from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import time

import pytest

from floatip import lab as L
from floatip.agent.reconciler import Reconciler
from floatip.dataplane.netns import nsexec
from floatip.dataplane.process import running

from cloud import wait_for
from topo import EXT6_GW, ROUTER6, TEN6, TEN6_GW, TEST_INSTANCE

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(shutil.which("radvd") is None,
                                 reason="radvd needed (make install)")]
FIP, PORT = "203.0.113.84", 8086


def eui64(prefix: str, mac: str) -> str:
    """The SLAAC address of ``mac`` in ``prefix`` (RFC 4291 modified EUI-64)."""
    b = bytes.fromhex(mac.replace(":", ""))
    iid = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:]
    net = ipaddress.ip_network(prefix)
    return str(net.network_address + int.from_bytes(iid, "big"))


def v6_addresses(ns: str, dev: str | None = None, scope: str = "global") -> list[str]:
    """Non-tentative IPv6 addresses (``ip/prefix``) of ``ns``."""
    argv = ["ip", "netns", "exec", ns, "ip", "-6", "-o", "addr", "show", "scope", scope]
    out = L.sh(*argv, *(["dev", dev] if dev else [])).stdout
    return [line.split()[3] for line in out.splitlines() if "tentative" not in line]


def _pid_from(path: str) -> int | None:
    """The pid a daemonising client writes: its file may exist and still be empty for a
    moment after the parent returned (seen on a loaded machine)."""
    deadline = time.monotonic() + 5
    while True:
        try:
            with open(path) as f:
                text = f.read().strip()
        except FileNotFoundError:
            text = ""
        if text or time.monotonic() > deadline:
            return int(text) if text else None
        time.sleep(0.05)


def radvd_pid(topo) -> int | None:
    try:
        with open(os.path.join(topo.dp.radvd.conf_dir(topo.router_id), "pid")) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


@pytest.fixture
def dual(topo):
    """The seed's topology, dual stack: vm4 with a floating IP and SLAAC on 2001:db8:1::/64."""
    topo.ipv6("slaac", dns=("2001:db8::53",))
    topo.vm("vm4", "198.51.100.84")
    topo.fip(FIP, "vm4")
    topo.apply()
    return topo


def mac_of(topo, name: str) -> str:
    return next(p.mac_address for p in topo.state().ports.values() if p.name == topo.port(name))


def test_slaac_vm_routes_ipv6_with_its_own_address_and_ipv4_through_the_fip(dual, lab,
                                                                           nat_driver):
    vm = dual.vms["vm4"]
    want = eui64(TEN6, mac_of(dual, "vm4"))
    # the VM's kernel configured itself from radvd's advertisement (accept_ra, autoconf)
    got = wait_for(lambda: [a for a in v6_addresses(vm, "eth0") if a.startswith("2001:db8:1:")])
    assert got == [f"{want}/64"]
    routes = L.sh("ip", "netns", "exec", vm, "ip", "-6", "route").stdout
    assert "default via fe80::" in routes and "proto ra" in routes
    assert L.sh("ip", "netns", "exec", vm, "sysctl", "-n",
                "net.ipv6.conf.eth0.mtu").stdout.strip() == "1450"  # AdvLinkMTU
    # ping and TCP to the IPv6 upstream: the upstream sees the VM's own address (routed)
    assert L.ping_until(vm, EXT6_GW)
    lab.serve(dual.upstream, EXT6_GW, PORT)
    lab.serve(dual.upstream, "203.0.113.1", PORT + 1)
    assert L.tcp_source(vm, EXT6_GW, PORT) == want
    # IPv4 still leaves through the floating IP
    assert L.tcp_source(vm, "203.0.113.1", PORT + 1) == FIP
    # and the upstream reaches the VM's IPv6 address directly (no NAT, no floating IP)
    assert L.ping_until(dual.upstream, want)

    # the router: addresses, the IPv6 default route, forwarding, radvd with the prefix
    ns = dual.ns
    lay = dual.apply().layouts[dual.router_id]
    qg = lay.gateway_device.name
    assert f"{ROUTER6}/64" in v6_addresses(ns, qg)
    assert f"{TEN6_GW}/64" in v6_addresses(ns)
    assert f"default via {EXT6_GW} dev {qg}" in \
        L.sh("ip", "netns", "exec", ns, "ip", "-6", "route", "show", "default").stdout
    assert L.sh("ip", "netns", "exec", ns, "sysctl", "-n",
                "net.ipv6.conf.all.forwarding").stdout.strip() == "1"
    conf = open(os.path.join(dual.dp.radvd.conf_dir(dual.router_id), "radvd.conf")).read()
    assert "prefix 2001:db8:1::/64" in conf and "AdvAutonomous on;" in conf
    assert "RDNSS 2001:db8::53" in conf and "AdvLinkMTU 1450;" in conf
    assert "AdvManagedFlag" not in conf
    assert running(radvd_pid(dual))
    # the NAT drivers left IPv6 alone: no IPv6 rule of anybody's in the router namespace
    if nat_driver == "nftables":
        rules = nsexec(ns, ["nft", "list", "ruleset"]).stdout
        assert "table ip6" not in rules and "table inet" not in rules and "2001:db8" not in rules
    else:
        six = nsexec(ns, ["ip6tables-save"], check=False).stdout
        assert "-A " not in six and "2001:db8" not in nsexec(ns, ["iptables-save"]).stdout
    # a second pass changes nothing
    assert dual.apply().writes == 0


def test_removing_ipv6_removes_address_route_and_radvd(dual, lab):
    ns, rid = dual.ns, dual.router_id
    pid = radvd_pid(dual)
    assert running(pid)
    # radvd dies: the agent's next pass (not only a full one) starts it again
    rec = Reconciler(dual.dp, dual.config)
    rec.sync(dual.state())  # the first sync is full
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not running(pid), 5)
    starts = dual.dp.radvd.starts
    rec.sync(dual.state())
    assert rec.full_syncs == 1 and rec.repairs == {"radvd": 1}
    assert dual.dp.radvd.starts == starts + 1 and running(radvd_pid(dual))
    # the namespace deleted by hand (radvd keeps the old one alive, unheard): the router is
    # rebuilt and radvd serves in the new namespace
    pid = radvd_pid(dual)
    L.sh("ip", "netns", "delete", ns)
    dual.apply()
    new = radvd_pid(dual)
    assert new != pid and running(new) and not running(pid)
    assert os.stat(f"/proc/{new}/ns/net").st_ino == os.stat(f"/run/netns/{ns}").st_ino
    # an IPv6 address drifted away by hand comes back
    qg = dual.apply().layouts[rid].gateway_device.name
    L.sh("ip", "netns", "exec", ns, "ip", "-6", "addr", "del", f"{ROUTER6}/64", "dev", qg)
    assert dual.apply().writes == 1 and f"{ROUTER6}/64" in v6_addresses(ns, qg)

    # an IPv6 extra route: 2001:db8:99::/64 via the VM, which holds 2001:db8:99::1
    vm = dual.vms["vm4"]
    hop = eui64(TEN6, mac_of(dual, "vm4"))
    assert wait_for(lambda: [a for a in v6_addresses(vm, "eth0") if a.startswith(hop + "/")])
    L.sh("ip", "netns", "exec", vm, "ip", "-6", "addr", "add", "2001:db8:99::1/128", "dev",
         "lo", "nodad")
    dual.doc["routers"][0]["routes"] = [{"destination": "2001:db8:99::/64", "nexthop": hop}]
    dual.apply()
    assert f"via {hop}" in L.sh("ip", "netns", "exec", ns, "ip", "-6", "route", "show",
                                "2001:db8:99::/64").stdout
    assert L.ping_until(ns, "2001:db8:99::1")
    assert dual.apply().writes == 0
    dual.doc["routers"][0]["routes"] = []
    dual.apply()
    assert L.sh("ip", "netns", "exec", ns, "ip", "-6", "route", "show",
                "2001:db8:99::/64").stdout == ""

    # the IPv6 interface goes: its device, address and radvd (config and pid) with it
    pid = radvd_pid(dual)
    dual.doc["routers"][0]["interfaces"] = dual.doc["routers"][0]["interfaces"][:1]
    dual.apply()
    assert f"{TEN6_GW}/64" not in v6_addresses(ns)
    assert wait_for(lambda: not running(pid), 5)
    assert not os.path.exists(dual.dp.radvd.conf_dir(rid))
    assert dual.apply().writes == 0
    # the IPv6 gateway goes: its address and the IPv6 default route
    dual.doc["routers"][0]["external_gateway_info"]["external_fixed_ips"] = [
        {"ip_address": "203.0.113.11"}]
    dual.apply()
    assert v6_addresses(ns) == []
    assert L.sh("ip", "netns", "exec", ns, "ip", "-6", "route", "show", "default").stdout == ""
    assert dual.apply().writes == 0
    # IPv4 is untouched: the VM still leaves through its floating IP
    lab.serve(dual.upstream, "203.0.113.1", PORT)
    assert L.tcp_source(dual.vms["vm4"], "203.0.113.1", PORT) == FIP


# dhclient -6's client script for the VM: the address it got on eth0 of the VM's namespace
# only, and what the server sent in $V6D_ENV_FILE
DHCLIENT6_SCRIPT = """#!/bin/sh
case "$reason" in
BOUND6|RENEW6|REBIND6|REBOOT6|INFORM6)
    [ -n "$new_ip6_address" ] && ip -6 addr replace "$new_ip6_address/$new_ip6_prefixlen" \\
        dev "$interface"
    env | grep -E '^(new_|reason=)' > "$V6D_ENV_FILE" ;;
esac
exit 0
"""


@pytest.mark.parametrize("nat_driver", ["nftables"])  # NAT plays no part: once is enough
@pytest.mark.parametrize("mode", ["dhcpv6-stateful", "dhcpv6-stateless"])
def test_dhcpv6_vm_configures_itself_from_radvd_and_dnsmasq(topo, lab, mode):
    """stateful: the address from dnsmasq (the RA's managed flag, prefix not autonomous);
    stateless: the address by SLAAC, the DNS servers from dnsmasq (other-config flag)."""
    from floatip.agent.dhcp import DhcpAgent
    from floatip.core.model import State
    s = topo.sid
    topo.ipv6(mode, dns=("2001:db8::53",))
    ten6 = f"tens6-{s}"
    topo.doc["ports"].append({"name": f"dhcp-{s}", "network": f"ten-{s}",
                              "device_owner": "network:dhcp",
                              "fixed_ips": [{"subnet": ten6, "ip_address": "2001:db8:1::2"}]})
    vm = topo.vm("vm6", "198.51.100.86")
    # the port's IPv6 address as the API allocates it: any in stateful mode, EUI-64 else
    want = "2001:db8:1::86" if mode == "dhcpv6-stateful" else eui64(TEN6, mac_of(topo, "vm6"))
    port = next(p for p in topo.doc["ports"] if p["name"] == topo.port("vm6"))
    port["fixed_ips"] = [{"ip_address": "198.51.100.86"}, {"subnet": ten6, "ip_address": want}]
    port.pop("fixed_ip")
    topo.apply()
    run = f"/run/v6d-{s}"  # dnsmasq rereads its files as nobody: a traversable directory
    os.makedirs(run, mode=0o755)
    agent = DhcpAgent(topo.int_br, state_dir=f"{run}/dhcp", prune_scope="known",
                      instance=TEST_INSTANCE)
    pid = None
    try:
        assert agent.sync(topo.state()) == {}
        spec = next(iter(agent.specs.values()))
        hosts = open(os.path.join(agent.dp.conf_dir(spec.network_id), "host")).read()
        entry = f"{mac_of(topo, 'vm6')},tag:dhcpv6,vm6-{s},[{want}]"
        conf = open(os.path.join(topo.dp.radvd.conf_dir(topo.router_id), "radvd.conf")).read()
        if mode == "dhcpv6-stateful":
            assert entry in hosts
            assert "AdvManagedFlag on;" in conf and "AdvAutonomous off;" in conf
        else:
            assert want not in hosts
            assert "AdvOtherConfigFlag on;" in conf and "AdvAutonomous on;" in conf
        # the VM: dhclient -6 asks dnsmasq for what the advertisement says to ask for
        assert wait_for(lambda: v6_addresses(vm, "eth0", scope="link"))
        script, env = f"{run}/dhclient6-script", f"{run}/bound6.env"
        with open(script, "w") as f:
            f.write(DHCLIENT6_SCRIPT)
        os.chmod(script, 0o755)
        r = L.sh("ip", "netns", "exec", vm, "dhclient", "-6", "-1",
                 *(["-S"] if mode == "dhcpv6-stateless" else []), "-lf", f"{run}/lease6",
                 "-pf", f"{run}/dhclient6.pid", "-sf", script, "-e", f"V6D_ENV_FILE={env}",
                 "eth0", check=False)
        pid = _pid_from(f"{run}/dhclient6.pid")
        assert r.returncode == 0, r.stderr[-500:]
        bound = dict(line.rstrip("\n").partition("=")[::2] for line in open(env))
        assert bound.get("new_dhcp6_name_servers") == "2001:db8::53"
        assert bound.get("new_ip6_address") == (want if mode == "dhcpv6-stateful" else None)
        # the one global address: from dnsmasq (stateful) or SLAAC (stateless)
        got = wait_for(lambda: [a for a in v6_addresses(vm, "eth0") if a.startswith(want + "/")])
        assert [a for a in v6_addresses(vm, "eth0")] == got
        assert wait_for(lambda: "default via fe80::" in L.sh(
            "ip", "netns", "exec", vm, "ip", "-6", "route").stdout)
        lab.serve(topo.upstream, EXT6_GW, PORT)
        assert L.ping_until(vm, EXT6_GW)
        assert L.tcp_source(vm, EXT6_GW, PORT) == want
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            agent.sync(State())
        finally:
            agent.close()
            shutil.rmtree(run, ignore_errors=True)


@pytest.mark.parametrize("nat_driver", ["nftables"])
def test_cli_dry_run_apply_show_and_teardown_dual_stack(topo, tmp_path):
    """The document path (``floatip apply --dry-run``, ``apply --local``, ``show``,
    ``teardown``), in process: the commands a person reads, then the kernel."""
    import json
    import yaml
    from typer.testing import CliRunner
    from floatip.cli.main import app
    topo.ipv6("dhcpv6-stateless")
    f = tmp_path / "state.yaml"
    f.write_text(yaml.safe_dump(topo.doc))
    base = ["--integration-bridge", topo.int_br, "--bridge-mapping", f"physnet1:{topo.ex_br}",
            "--nat-driver", topo.config.nat_driver]

    def cli(*args):
        r = CliRunner().invoke(app, [*base, *args])
        assert r.exit_code == 0, r.output
        return r.output
    text = cli("apply", "--local", str(f), "--dry-run")
    assert f"ip -6 addr add {TEN6_GW}/64 dev qr-" in text and f"{ROUTER6}/64" in text
    assert f"ip -6 route replace default via {EXT6_GW} dev qg-" in text
    assert "net.ipv6.conf.all.forwarding=1" in text
    assert "AdvOtherConfigFlag on;" in text and "radvd -C" in text
    assert topo.ns not in L.sh("ip", "netns", "list").stdout, "dry run changed the kernel"
    cli("apply", "--local", str(f))
    shown = {r["router_id"]: r for r in json.loads(cli("show", "--json"))["routers"]}
    shown = shown[topo.router_id]
    addrs = {a for d in shown["devices"] for a in d["addresses"]}
    assert {f"{TEN6_GW}/64", f"{ROUTER6}/64", "203.0.113.11/24"} <= addrs
    assert shown["default_route6"]["via"] == EXT6_GW
    assert "prefix 2001:db8:1::/64" in shown["radvd"]
    rdir = topo.dp.radvd.conf_dir(topo.router_id)
    pid = radvd_pid(topo)
    assert running(pid)
    cli("teardown", str(f))
    assert topo.ns not in L.sh("ip", "netns", "list").stdout
    assert wait_for(lambda: not running(pid), 5) and not os.path.exists(rdir)
