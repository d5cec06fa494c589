"""A throw-away OVN deployment on one machine, for the tests and the demo.

Central: NB and SB ovsdb-servers and ovn-northd, on unix sockets in a run directory of
their own (never the system's /var/run/ovn), inside a namespace of their own. Each chassis:
a network namespace with its own ovsdb-server, ovs-vswitchd (userspace datapath: this kernel
has no openvswitch module) and ovn-controller, each with its own run directory, so that
several labs (and the host's own OVS) never share a socket. Chassis talk Geneve over a veth
pair whose ends sit on an OVS bridge (``br-phy``) in each chassis: the userspace datapath
routes tunnels only out of its own bridges.

The gateway chassis (the first one) has an external bridge ``br-ex`` mapped to ``physnet1``
and a link to the "upstream" host. Other chassis get an external link and mapping too when
``mappings`` says so (distributed floating IPs leave from the VM's own chassis). The
upstream namespace holds a Linux bridge joining those links, with the upstream address on
it. VMs are namespaces with a veth whose chassis end is an OVS port on ``br-int`` carrying
``external_ids:iface-id`` = the logical switch port's name, as libvirt/os-vif do.

Teardown (``close()``, also after a failed start): ovn-controller goes first (it would
recreate br-int), then every process started in our namespaces, by pid, then the
namespaces, veths and the run directory.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field

from pyroute2 import netns as pnetns

from .dataplane.process import kill
from .lab import TcpServer, sh

OVN_SCHEMAS = "/usr/share/ovn"
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
PHYSNET = "physnet1"
UNDERLAY = "100.64.255.{}"  # documentation-ish CGNAT range for the Geneve underlay (/24)
# dhclient -6's script for lab VMs: the address on the VM's interface only, and what the
# server sent in $V6_ENV_FILE
DHCLIENT6_SCRIPT = """#!/bin/sh
case "$reason" in
BOUND6|RENEW6|REBIND6|REBOOT6|INFORM6)
    [ -n "$new_ip6_address" ] && ip -6 addr replace "$new_ip6_address/$new_ip6_prefixlen" \\
        dev "$interface"
    env | grep -E '^(new_|reason=)' > "$V6_ENV_FILE" ;;
esac
exit 0
"""
# dhclient -4's script for lab VMs, as a cloud image's (Debian's rfc3442 hook): the address,
# MTU and the classless static routes (the metadata route through the network's localport),
# else the router; and what the server sent in $V6_ENV_FILE
DHCLIENT4_SCRIPT = """#!/bin/sh
env | grep -E '^(new_|reason=)' > "$V6_ENV_FILE"
case "$reason" in
PREINIT) ip link set dev "$interface" up ;;
BOUND|RENEW|REBIND|REBOOT)
    [ -n "$new_interface_mtu" ] && ip link set dev "$interface" mtu "$new_interface_mtu"
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
    if [ -n "$new_rfc3442_classless_static_routes" ]; then
        set -- $new_rfc3442_classless_static_routes
        while [ $# -ge 5 ]; do
            len=$1; shift
            n=$(( (len + 7) / 8 )); dst=""; i=0
            while [ $i -lt 4 ]; do
                if [ $i -lt $n ]; then o=$1; shift; else o=0; fi
                dst="$dst${dst:+.}$o"; i=$((i + 1))
            done
            gw="$1.$2.$3.$4"; shift 4
            if [ "$len" = 0 ]; then
                ip -4 route replace default via "$gw" dev "$interface"
            else
                ip -4 route replace "$dst/$len" via "$gw" dev "$interface"
            fi
        done
    elif [ -n "$new_routers" ]; then
        set -- $new_routers
        ip -4 route replace default via "$1" dev "$interface"
    fi ;;
EXPIRE|FAIL|RELEASE|STOP) ip -4 addr flush dev "$interface" ;;
esac
exit 0
"""


@dataclass
class Chassis:
    name: str            # system-id / SB Chassis.name
    ns: str              # its network namespace
    run: str             # run directory: db, sockets, pidfiles, logs
    encap_ip: str
    gateway: bool = False
    mapped: bool = False  # has br-ex mapped to physnet1 (gateway, or distributed FIPs)
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def db(self) -> str:
        return f"unix:{self.run}/db.sock"

    def vsctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ovs-vsctl", "--timeout=10", f"--db={self.db}", *args, check=check)

    def ofctl(self, *args: str, bridge: str = "br-int") -> str:
        return sh("ovs-ofctl", "-O", "OpenFlow15", args[0], f"unix:{self.run}/{bridge}.mgmt",
                  *args[1:]).stdout

    def appctl(self, target: str, *args: str) -> str:
        """``ovs-appctl`` to this chassis' ovs-vswitchd, ovsdb-server or ovn-controller."""
        ctl = f"{self.run}/{target}.ctl"
        if target == "ovn-controller":  # it names its socket after its pid
            ctl = f"{self.run}/ovn-controller.{self.pids['ovn-controller']}.ctl"
        return sh("ovs-appctl", "-t", ctl, *args).stdout

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.ns, *argv, check=check)


class OvnLab:
    """``OvnLab(prefix).start()``: central + ``chassis`` chassis (the first is the gateway)
    + upstream. ``nb`` / ``sb`` are the connection strings for ovsdbapp."""

    def __init__(self, prefix: str = "fo", chassis: int = 2, mappings: str = "gateway",
                 upstream_cidr: str = "203.0.113.1/24", base: str = "/tmp",
                 name: str | None = None, gateways: int = 1):
        """``name``: fixed names instead of ``prefix`` + a random suffix (a kept demo, which
        ``reattach`` finds again). ``gateways``: the first so many chassis are gateways
        (with the external bridge), for failover."""
        if mappings not in ("gateway", "all"):
            raise ValueError("mappings: gateway or all")
        self.sfx = name[-5:] if name else uuid.uuid4().hex[:5]
        self.prefix = prefix
        self.tag = name or f"{prefix}{self.sfx}"          # every name below starts with it
        self.dir = os.path.join(base, name or f"{prefix}-ovn-{self.sfx}")
        self.central_ns = f"{self.tag}-c"
        self.upstream = f"{self.tag}-up"
        self.upstream_cidr = upstream_cidr
        self.nb = f"unix:{self.dir}/c/nb.sock"
        self.sb = f"unix:{self.dir}/c/sb.sock"
        self.chassis = [Chassis(name=f"{self.tag}-ch{i + 1}", ns=f"{self.tag}-ch{i + 1}",
                                run=f"{self.dir}/ch{i + 1}", encap_ip=UNDERLAY.format(i + 1),
                                gateway=i < gateways, mapped=i < gateways or mappings == "all")
                        for i in range(chassis)]
        self.namespaces: list[str] = []
        self.veths: list[tuple[str, str | None]] = []   # (name, namespace or None)
        self.central_pids: dict[str, int] = {}
        self.procs: list[subprocess.Popen] = []
        self.vms: dict[str, tuple[Chassis, str]] = {}   # vm namespace -> (chassis, port name)
        self.servers = []
        self.dhcp_error = ""   # why the last ``dhcp`` got nothing

    # ------------------------------------------------------------------ processes
    def _spawn(self, ns: str, run: str, name: str, argv: list[str], env: dict | None = None) -> int:
        """A daemon in the foreground of its own Popen (we hold its pid), inside ``ns``."""
        log = open(os.path.join(run, f"{name}.out"), "ab")
        full_env = dict(os.environ, OVS_RUNDIR=run, OVS_LOGDIR=run, OVS_DBDIR=run,
                        OVN_RUNDIR=run, OVN_LOGDIR=run, OVN_DBDIR=run, **(env or {}))
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=log,
                             stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
        log.close()
        self.procs.append(p)
        return p.pid

    def _common(self, run: str, name: str) -> list[str]:
        return [f"--pidfile={run}/{name}.pid", f"--unixctl={run}/{name}.ctl",
                f"--log-file={run}/{name}.log", "-vconsole:off"]

    @staticmethod
    def _wait_file(path: str, proc_pid: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} did not appear")
            try:
                os.kill(proc_pid, 0)
            except ProcessLookupError:
                raise RuntimeError(f"process {proc_pid} died before creating {path}") from None
            time.sleep(0.02)

    def _netns(self, name: str) -> str:
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        return name

    def _veth(self, a: str, a_ns: str, b: str, b_ns: str) -> None:
        """A veth pair created in ``a_ns`` with its peer in ``b_ns``; offload off on both
        (the userspace datapath passes partial checksums through)."""
        sh("ip", "netns", "exec", a_ns, "ip", "link", "add", a, "type", "veth", "peer", "name", b,
           "netns", b_ns)
        self.veths.append((a, a_ns))
        for dev, ns in ((a, a_ns), (b, b_ns)):
            sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up")

    # ------------------------------------------------------------------ start
    def start(self) -> "OvnLab":
        try:
            os.makedirs(self.dir)
            self._start_central()
            self._start_upstream()
            for ch in self.chassis:
                self._start_chassis(ch)
            self._underlay()
            self.wait_chassis()
        except BaseException:
            self.close()
            raise
        return self

    def _start_central(self) -> None:
        run = f"{self.dir}/c"
        os.makedirs(run)
        ns = self._netns(self.central_ns)
        for db, schema in (("nb", "ovn-nb"), ("sb", "ovn-sb")):
            sh("ovsdb-tool", "create", f"{run}/{db}.db", f"{OVN_SCHEMAS}/{schema}.ovsschema")
            pid = self._spawn(ns, run, f"ovsdb-{db}", [
                "ovsdb-server", f"{run}/{db}.db", f"--remote=punix:{run}/{db}.sock",
                *self._common(run, f"ovsdb-{db}")])
            self.central_pids[f"ovsdb-{db}"] = pid
            self._wait_file(f"{run}/{db}.sock", pid)
        self.central_pids["northd"] = self._spawn(ns, run, "ovn-northd", [
            "ovn-northd", f"--ovnnb-db={self.nb}", f"--ovnsb-db={self.sb}",
            *self._common(run, "ovn-northd")])

    def restart_db(self, db: str, while_down=None) -> None:
        """Stop and start the central "nb" or "sb" ovsdb-server on the same file and socket
        (what a client sees when the central host restarts); ``while_down(path of the
        database file)`` runs in between (changes nobody connected sees)."""
        run = f"{self.dir}/c"
        self._kill(self.central_pids.pop(f"ovsdb-{db}"))
        if while_down is not None:
            while_down(f"{run}/{db}.db")
        pid = self._spawn(self.central_ns, run, f"ovsdb-{db}", [
            "ovsdb-server", f"{run}/{db}.db", f"--remote=punix:{run}/{db}.sock",
            *self._common(run, f"ovsdb-{db}")])
        self.central_pids[f"ovsdb-{db}"] = pid
        self._wait_file(f"{run}/{db}.sock", pid)

    def _start_upstream(self) -> None:
        ns = self._netns(self.upstream)
        inns = ["ip", "netns", "exec", ns]
        sh(*inns, "ip", "link", "add", "br0", "type", "bridge")
        sh(*inns, "ip", "addr", "add", self.upstream_cidr, "dev", "br0")
        sh(*inns, "ip", "link", "set", "br0", "up")
        sh(*inns, "sysctl", "-qw", "net.ipv4.conf.br0.arp_accept=1")

    def _start_chassis(self, ch: Chassis) -> None:
        os.makedirs(ch.run)
        ns = self._netns(ch.ns)
        run = ch.run
        sh("ovsdb-tool", "create", f"{run}/conf.db", OVS_SCHEMA)
        pid = self._spawn(ns, run, "ovsdb-server", [
            "ovsdb-server", f"{run}/conf.db", f"--remote=punix:{run}/db.sock",
            *self._common(run, "ovsdb-server")])
        ch.pids["ovsdb-server"] = pid
        self._wait_file(f"{run}/db.sock", pid)
        # the socket file can appear a moment before the server accepts on it (a busy host)
        deadline = time.monotonic() + 15
        while ch.vsctl("--no-wait", "init", check=False).returncode:
            if time.monotonic() > deadline:
                ch.vsctl("--no-wait", "init")   # raises with the reason
            time.sleep(0.05)
        ext_ids = {"system-id": ch.name, "hostname": ch.name, "ovn-remote": self.sb,
                   "ovn-encap-type": "geneve", "ovn-encap-ip": ch.encap_ip,
                   # without it ovn-controller makes br-int a "system" bridge: nothing passes
                   "ovn-bridge-datapath-type": "netdev"}
        if ch.mapped:
            ext_ids["ovn-bridge-mappings"] = f"{PHYSNET}:br-ex"
        if ch.gateway:
            ext_ids["ovn-cms-options"] = "enable-chassis-as-gw"
        ch.vsctl("--no-wait", "set", "Open_vSwitch", ".",
                 *[f'external_ids:{k}="{v}"' for k, v in ext_ids.items()])
        ch.pids["ovs-vswitchd"] = pid = self._spawn(ns, run, "ovs-vswitchd", [
            "ovs-vswitchd", ch.db, *self._common(run, "ovs-vswitchd")])
        self._wait_file(f"{run}/ovs-vswitchd.ctl", pid)
        # underlay bridge for Geneve, external bridge for the gateway / mapped chassis
        ch.vsctl("add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev")
        ch.exec("ip", "addr", "add", f"{ch.encap_ip}/24", "dev", "br-phy")
        ch.exec("ip", "link", "set", "br-phy", "up")
        if ch.mapped:
            ch.vsctl("add-br", "br-ex", "--", "set", "bridge", "br-ex", "datapath_type=netdev")
            ch.exec("ip", "link", "set", "br-ex", "up")
            idx = self.chassis.index(ch) + 1
            self._veth("ex0", ch.ns, f"ch{idx}", self.upstream)
            ch.vsctl("add-port", "br-ex", "ex0")
            sh("ip", "netns", "exec", self.upstream, "ip", "link", "set", f"ch{idx}",
               "master", "br0")
        self._start_controller(ch)

    def _start_controller(self, ch: Chassis) -> None:
        # no --unixctl option here: its control socket goes to $OVN_RUNDIR
        opts = [o for o in self._common(ch.run, "ovn-controller")
                if not o.startswith("--unixctl")]
        ch.pids["ovn-controller"] = self._spawn(ch.ns, ch.run, "ovn-controller",
                                                ["ovn-controller", ch.db, *opts])

    def _underlay(self) -> None:
        """The Geneve underlay: each chassis' ``br-phy`` has a veth to a Linux bridge in the
        central namespace (any number of chassis, one L2 segment)."""
        ns = self.central_ns
        sh("ip", "netns", "exec", ns, "ip", "link", "add", "ul0", "type", "bridge")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "ul0", "up")
        for i, ch in enumerate(self.chassis, 1):
            self._veth("ul", ch.ns, f"ul{i}", ns)
            sh("ip", "netns", "exec", ns, "ip", "link", "set", f"ul{i}", "master", "ul0")
            ch.vsctl("add-port", "br-phy", "ul")

    def wait_chassis(self, timeout: float = 30.0) -> None:
        """Until every chassis registered in the SB and made its br-int."""
        deadline = time.monotonic() + timeout
        for ch in self.chassis:
            while True:
                names = sh("ovn-sbctl", f"--db={self.sb}", "--bare", "--columns=name", "list",
                           "Chassis", check=False).stdout.split()
                if ch.name in names and ch.vsctl("br-exists", "br-int", check=False).returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"chassis {ch.name} did not come up; see {ch.run}")
                time.sleep(0.05)

    # ------------------------------------------------------------------ VMs
    def vm(self, name: str, chassis: Chassis | int, iface_id: str, mac: str,
           cidr: str | None = None, gateway: str | None = None) -> str:
        """A VM namespace whose eth0 is plugged into ``chassis``' br-int as the logical
        switch port ``iface_id``; ``cidr`` None: no address (DHCP, see ``dhcp``). Returns
        the namespace name."""
        ch = self.chassis[chassis] if isinstance(chassis, int) else chassis
        ns = self._netns(f"{self.tag}-{name}")
        tap = f"t{len(self.vms)}{self.sfx}"[:15]
        self._veth(tap, ch.ns, "eth0", ns)
        inns = ["ip", "netns", "exec", ns]
        # down first: the link-local address comes back from the new MAC (OVN's port
        # security lets only that one through)
        sh(*inns, "ip", "link", "set", "eth0", "down")
        sh(*inns, "ip", "link", "set", "eth0", "address", mac)
        sh(*inns, "ip", "link", "set", "eth0", "up")
        if cidr:
            sh(*inns, "ip", "addr", "add", cidr, "dev", "eth0")
        if gateway:
            sh(*inns, "ip", "route", "add", "default", "via", gateway)
        ch.vsctl("add-port", "br-int", tap, "--", "set", "Interface", tap,
                 f"external_ids:iface-id={iface_id}", "external_ids:iface-status=active",
                 f"external_ids:attached-mac={mac}")
        self.vms[ns] = (ch, tap)
        return ns

    def dhcp(self, ns: str, v6: bool = False, stateless: bool = False,
             timeout: float = 30) -> dict | None:
        """ISC dhclient on eth0 of ``ns``, one exchange (``-1``); IPv4: the address, MTU,
        classless routes (else the default route) configured, IPv6 (``v6``; ``stateless``:
        information only) the address. Returns what the server sent (dhclient's ``new_*``
        variables), None when nothing came. dhclient stays to renew; ``close()`` ends it
        with the namespace."""
        files = os.path.join(self.dir, f"dhclient-{ns}{'-6' if v6 else ''}")
        script = files + ".sh"
        with open(script, "w") as f:
            f.write(DHCLIENT6_SCRIPT if v6 else DHCLIENT4_SCRIPT)
        os.chmod(script, 0o755)
        argv = ["ip", "netns", "exec", ns, "dhclient", "-6" if v6 else "-4", "-1",
                *(["-S"] if stateless else []), "-lf", files + ".lease", "-pf", files + ".pid",
                "-sf", script, "-e", f"V6_ENV_FILE={files}.env", "eth0"]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self.dhcp_error = f"dhclient timed out: {e.stderr}"
            return None
        if r.returncode or not os.path.exists(files + ".env"):
            self.dhcp_error = f"dhclient exit {r.returncode}: {r.stderr[-800:]}"
            return None
        with open(files + ".env") as f:
            return dict(line.rstrip("\n").partition("=")[::2] for line in f)

    def stop_chassis(self, ch: Chassis) -> None:
        """The chassis goes down: its ovn-controller and ovs-vswitchd stop (BFD to it goes
        silent, as when the host dies); ``close()`` still removes the rest."""
        for name in ("ovn-controller", "ovs-vswitchd"):
            if name in ch.pids:
                self._kill(ch.pids.pop(name))

    def restart_chassis(self, ch: Chassis) -> None:
        """A chassis stopped by ``stop_chassis`` comes back: ovs-vswitchd (its bridges from
        its database; the underlay's internal port made anew, so its address again) and
        ovn-controller."""
        run = ch.run
        ch.pids["ovs-vswitchd"] = pid = self._spawn(ch.ns, run, "ovs-vswitchd", [
            "ovs-vswitchd", ch.db, *self._common(run, "ovs-vswitchd")])
        self._wait_file(f"{run}/ovs-vswitchd.ctl", pid)
        deadline = time.monotonic() + 15
        while ch.exec("ip", "link", "show", "br-phy", check=False).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError(f"br-phy of {ch.name} did not come back")
            time.sleep(0.05)
        ch.exec("ip", "addr", "replace", f"{ch.encap_ip}/24", "dev", "br-phy")
        ch.exec("ip", "link", "set", "br-phy", "up")
        if ch.mapped:
            ch.exec("ip", "link", "set", "br-ex", "up", check=False)
        self._start_controller(ch)

    def restart_controller(self, ch: Chassis) -> None:
        """ovn-controller alone restarts (an upgrade): it clears br-int's flows when it
        connects and installs its own again."""
        self._kill(ch.pids.pop("ovn-controller"))
        self._start_controller(ch)

    def unplug(self, ns: str) -> None:
        ch, tap = self.vms[ns]
        ch.vsctl("--if-exists", "del-port", "br-int", tap)

    def serve(self, ns: str, ip: str = "0.0.0.0", port: int = 8080):
        srv = TcpServer(ns, ip, port)
        self.servers.append(srv)
        return srv

    @property
    def gateway(self) -> Chassis:
        return self.chassis[0]

    def describe(self) -> dict:
        return {"nb": self.nb, "sb": self.sb, "upstream": self.upstream, "dir": self.dir,
                "central": self.central_ns,
                "chassis": [{"name": c.name, "namespace": c.ns, "run_dir": c.run,
                             "gateway": c.gateway, "bridge_mapping": c.mapped,
                             "encap_ip": c.encap_ip} for c in self.chassis],
                "vms": {ns: ch.name for ns, (ch, _) in self.vms.items()}}

    # ------------------------------------------------------------------ teardown
    @classmethod
    def reattach(cls, name: str, base: str, chassis: int = 2) -> "OvnLab":
        """The lab a former process left up under ``name`` (``floatip demo --keep``): its
        processes found by their pidfiles, its namespaces by name; ``close()`` removes it."""
        lab = cls(name=name, base=base, chassis=chassis)
        existing = set(sh("ip", "netns", "list").stdout.split())
        lab.namespaces = [ns for ns in existing if ns.startswith(name + "-")]
        lab.namespaces.sort(key=lambda ns: (ns != lab.central_ns, ns != lab.upstream, ns))

        def pid(path: str) -> int | None:
            try:
                with open(path) as f:
                    return int(f.read().strip())
            except (OSError, ValueError):
                return None
        for ch in lab.chassis:
            for d in ("ovn-controller", "ovs-vswitchd", "ovsdb-server"):
                if (p := pid(f"{ch.run}/{d}.pid")) is not None:
                    ch.pids[d] = p
        for d, f in (("northd", "ovn-northd"), ("ovsdb-sb", "ovsdb-sb"), ("ovsdb-nb", "ovsdb-nb")):
            if (p := pid(f"{lab.dir}/c/{f}.pid")) is not None:
                lab.central_pids[d] = p
        return lab

    def _kill(self, pid: int, timeout: float = 5.0) -> None:
        """By pid (a zombie of a kept lab counts as gone); our own children are reaped."""
        kill(pid, timeout)
        proc = next((p for p in self.procs if p.pid == pid), None)
        if proc is not None:
            proc.wait(timeout)

    def close(self) -> list[str]:
        """Remove everything; returns what could not be removed."""
        left: list[str] = []
        for srv in self.servers:
            srv.close()
        # ovn-controller first: left running it recreates br-int; ovs-vswitchd next, so the
        # chassis' taps and bridges go with it; then the databases and central
        for ch in self.chassis:
            if "ovn-controller" in ch.pids:
                self._kill(ch.pids.pop("ovn-controller"))
        for ch in self.chassis:
            for name in ("ovs-vswitchd", "ovsdb-server"):
                if name in ch.pids:
                    self._kill(ch.pids.pop(name))
        for name in ("northd", "ovsdb-sb", "ovsdb-nb"):
            if name in self.central_pids:
                self._kill(self.central_pids.pop(name))
        for p in self.procs:
            if p.poll() is None:
                self._kill(p.pid)
        for ns in reversed(self.namespaces):
            for pid in pnetns.ns_pids().get(ns, []):  # anything else started in it, by id
                self._kill(pid)
            if sh("ip", "netns", "delete", ns, check=False).returncode:
                left.append(ns)
        self.namespaces, self.veths, self.procs, self.servers = [], [], [], []
        if os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)
        return left


class Pinger:
    """``ping -D -i 0.01`` from ``ns`` to ``ip`` until ``stop()``: the answers' timestamps
    (``time.time()``), to measure an outage."""

    def __init__(self, ns: str, ip: str):
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, "ping", "-D", "-n", "-i", "0.01",
                                   "-W", "1", ip], stdout=subprocess.PIPE, text=True)
        self.times: list[float] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.p.stdout:
            m = re.match(r"\[(\d+\.\d+)\] \d+ bytes from", line)
            if m:
                self.times.append(float(m.group(1)))

    def gap(self, since: float, until: float | None = None) -> float:
        """The longest time without an answer between ``since`` and ``until`` (seconds)."""
        ts = [since] + [t for t in self.times if t > since and (until is None or t <= until)]
        return max(b - a for a, b in zip(ts, ts[1:])) if len(ts) > 1 else float("inf")

    def stop(self) -> None:
        self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
        self.thread.join(5)


class GatewayWatch:
    """Where a router's gateway port (``lrp``: its LRP name) is bound, polled every 50 ms;
    ``changes``: (time, chassis name) each time it changed. ``close()`` stops it."""

    def __init__(self, lab: OvnLab, lrp: str):
        self.lab, self.lrp = lab, lrp
        self.changes: list[tuple[float, str]] = []
        self.stop_event = threading.Event()
        threading.Thread(target=self._poll, daemon=True).start()

    def now(self) -> str:
        sb = f"--db={self.lab.sb}"
        uuid_ = sh("ovn-sbctl", sb, "--bare", "--columns=chassis", "find", "Port_Binding",
                   f"logical_port=cr-{self.lrp}", check=False).stdout.strip()
        if not uuid_:
            return ""
        return sh("ovn-sbctl", sb, "--bare", "--columns=name", "list", "Chassis", uuid_,
                  check=False).stdout.strip()

    def close(self) -> None:
        self.stop_event.set()

    def _poll(self) -> None:
        last = None
        while not self.stop_event.is_set():
            c = self.now()
            if c != last:
                self.changes.append((time.time(), c))
                last = c
            self.stop_event.wait(0.05)
