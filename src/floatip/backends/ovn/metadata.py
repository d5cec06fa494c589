"""``floatip ovn-metadata``: metadata on an OVN chassis, as Neutron's OVN metadata agent does
it (neutron/agent/ovn/metadata/agent.py), beside ``ovn-controller`` on every chassis.

The OVN backend writes each network's DHCP port as a ``localport`` LSP (translate.py): every
chassis has it, and DHCP tells VMs that 169.254.169.254/32 goes through its address. Here,
for each network with a VM port bound to this chassis (Southbound ``Port_Binding.chassis``),
a namespace ``ovnmeta-<network id>`` holds one end of a veth pair whose other end is a port
of ``br-int`` with ``external_ids:iface-id`` = the localport: the namespace answers as the
localport (its MAC, its fixed IPs) and as 169.254.169.254. A proxy in it (port 80, the one
of ``metadata.proxy``) sets ``X-Forwarded-For`` to the connection's source and
``X-OVN-Network-ID`` to the network, and relays to the metadata service on a unix socket
(``metadata.service``: the same trees as the kernel backend's, or signed forwarding to
Nova), which finds the port with that address on that network in the desired state this
agent follows like a remote agent (``RemoteSource``: shared secret, long poll, full reads).
A VM cannot pose as another: OVN's port security drops a forged source address.

Every pass (on a Southbound or desired-state change, and every ``interval`` seconds) makes
what is wanted true and repairs drift: a namespace, veth, address or OVS port gone or
changed is made again; a namespace is removed when the last VM of its network leaves this
chassis. Only the OVS ports marked ``external_ids:floatip-ovnmeta`` and the namespaces they
name (or that this process made) are ever removed.

The same agent keeps VMs on this chassis from sending router advertisements (raguard.py:
OVN 23.03's Northbound cannot drop them): its pass puts them on br-int, and since
ovn-controller clears br-int when it reconnects, a flow monitor wakes it when one goes
(a check every ``guard_interval`` seconds besides).
"""
from __future__ import annotations

import ipaddress
import itertools
import json
import logging
import os
import subprocess
import threading
import time

from ...agent.desired import Desired
from ...core.dhcp import DHCP_OWNER
from ...dataplane.netns import NETNS_DIR
from ...metadata.content import find_on_network
from ...metadata.proxy import Loop, MetadataProxies
from ...metadata.service import NETWORK_HEADER, MetadataService
from .dhcp import METADATA_IP
from . import raguard
from .nb import Southbound

log = logging.getLogger("floatip.ovn.metadata")
NS_PREFIX = "ovnmeta-"
MARK = "floatip-ovnmeta"       # external_ids key on the br-int ports this agent made
PORT = 80
_serial = itertools.count()


def veth_names(network_id: str) -> tuple[str, str]:
    """(the br-int end, the namespace end), as Neutron names them: 15 characters."""
    base = "tap" + network_id.replace("-", "")[:10]
    return base + "0", base + "1"


class OvnMetadataAgent:
    """``source``: the desired state (``RemoteSource``, or any source with ``snapshot``,
    ``delta`` and ``watch``); ``sb``: the Southbound connection string; ``ovs``: the local
    Open vSwitch database (None: ovs-vsctl's default); ``ovs_netns``: the namespace OVS runs
    in (None: this one; a lab's chassis is a namespace); ``ns_prefix``: the metadata
    namespaces' prefix (several lab chassis share one machine)."""

    def __init__(self, source, sb: str, run_dir: str, ovs: str | None = None,
                 ovs_netns: str | None = None, chassis: str | None = None,
                 ns_prefix: str = NS_PREFIX, bridge: str = "br-int", interval: float = 30.0,
                 nova_url: str | None = None, secret: str = "", port: int = PORT,
                 timeout: float = 10.0, guard_interval: float = 2.0):
        self.source, self.sb_remote, self.run_dir = source, sb, run_dir
        self.ovs, self.ovs_netns, self.bridge = ovs, ovs_netns, bridge
        self.ns_prefix, self.interval, self.port, self.timeout = ns_prefix, interval, port, timeout
        self.guard_interval = guard_interval
        self.guard: set[str] = set()     # the VM ports whose router advertisements are dropped
        self.chassis = chassis or self._vsctl("get", "Open_vSwitch", ".",
                                              "external_ids:system-id").strip().strip('"')
        # unique to this process and agent (several lab chassis share a machine)
        self.socket_path = os.path.join(run_dir, f"ovnmeta-{os.getpid()}-{next(_serial)}.sock")
        self.nova_url, self.secret = nova_url, secret
        self.desired = Desired()
        self.wake, self.stop_event = threading.Event(), threading.Event()
        self.done = threading.Condition()
        self.networks: set[str] = set()      # the namespaces made (or found) and served
        self.passes, self.repairs, self.last_error = 0, 0, None
        self.sb: Southbound | None = None
        self.loop: Loop | None = None
        self.service: MetadataService | None = None
        self.proxies: MetadataProxies | None = None
        self.thread: threading.Thread | None = None
        self.watcher: threading.Thread | None = None
        self.monitor: subprocess.Popen | None = None     # ovs-ofctl monitor (_watch_guard)
        self._source_changed = True

    # -- commands (argv lists, never a shell) ---------------------------------------------
    def _run(self, *argv: str, ns: str | None = None, check: bool = True) -> str:
        if ns:
            argv = ("ip", "netns", "exec", ns, *argv)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if check and r.returncode:
            raise RuntimeError(f"{' '.join(argv[:6])}: {r.stderr.strip()}")
        return r.stdout

    def _vsctl(self, *args: str, check: bool = True) -> str:
        db = [f"--db={self.ovs}"] if self.ovs else []
        return self._run("ovs-vsctl", "--timeout=10", *db, *args, check=check)

    def _ip(self, ns: str | None, *args: str, check: bool = True) -> str:
        return self._run("ip", *(["-n", ns] if ns else []), *args, check=check)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "OvnMetadataAgent":
        os.makedirs(self.run_dir, mode=0o755, exist_ok=True)
        self.loop = Loop()
        self.service = MetadataService(lambda r, ip: None, self.socket_path, self.nova_url,
                                       self.secret, lookup_network=self._lookup)
        self.loop.call(self.service.start())
        self.proxies = MetadataProxies(self.loop, self.socket_path, self.port,
                                       ns_prefix=self.ns_prefix, header=NETWORK_HEADER)
        self.sb = Southbound(self.sb_remote, self._note, self.timeout)
        self.source.watch(_Wake(self), self.stop_event)
        self.thread = threading.Thread(target=self._loop, name="floatip-ovn-metadata",
                                       daemon=True)
        self.thread.start()
        self.watcher = threading.Thread(target=self._watch_guard, name="floatip-ra-guard",
                                        daemon=True)
        self.watcher.start()
        return self

    def stop(self, remove: bool = True) -> None:
        """Stop; ``remove``: the namespaces and ports go too (a restart keeps them: VMs
        keep reaching metadata while the agent is away). Once only."""
        if self.loop is None:
            return
        self.stop_event.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
            self.thread = None
        if self.monitor is not None:
            self.monitor.terminate()
        if self.watcher is not None:
            self.watcher.join(timeout=10)
            self.watcher = None
        if self.proxies is not None:
            self.proxies.close()
        if remove:
            for net in sorted(self._ours()):
                self._remove(net)
            try:
                self._guard_ras(set())
            except (OSError, RuntimeError) as e:   # OVS already gone: nothing left to drop
                log.warning("router advertisement guard not removed: %s", e)
        if self.loop is not None:
            self.loop.call(self.service.stop())
            self.loop.stop()
            self.loop = None
        if self.sb is not None:
            self.sb.close()
            self.sb = None

    def _note(self, reason: str) -> None:
        if reason == "reconnect" or reason.startswith("pb:") or reason == "chassis":
            self.wake.set()

    def _lookup(self, network_id: str, ip: str):
        st = self.desired.state
        return find_on_network(st, network_id, ip) if st is not None else None

    def wait(self, what, timeout: float = 30.0) -> bool:
        """Until ``what(self)`` holds after a pass."""
        deadline = time.monotonic() + timeout
        with self.done:
            while not what(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.done.wait(min(left, 0.2))
        return True

    def _loop(self) -> None:
        backoff, last_full = 0.5, 0.0
        while not self.stop_event.is_set():
            full = time.monotonic() - last_full >= self.interval
            try:
                self._read(full)
                if full:
                    self.sb.rescan()
                    last_full = time.monotonic()
                errors = self.sync()
                if errors:   # a network that failed is tried again soon, not at the next full pass
                    raise RuntimeError("; ".join(f"{k}: {v}" for k, v in errors.items()))
                self.last_error, backoff = None, 0.5
            except Exception as e:  # noqa: BLE001 - the agent survives and retries in full
                log.warning("ovn-metadata pass: %s", e)
                self.last_error, last_full = str(e), 0.0
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 10)
                continue
            finally:
                with self.done:
                    self.done.notify_all()
            while not self.stop_event.is_set():
                left = last_full + self.interval - time.monotonic()
                if left <= 0 or self.wake.wait(min(left, self.guard_interval)):
                    break
                try:   # ovn-controller clears br-int when it reconnects: put the guard back
                    self._guard_ras(self.guard)
                except Exception as e:  # noqa: BLE001
                    log.warning("router advertisement guard: %s", e)
                    self.last_error = str(e)
                    break
            self.wake.clear()

    def _read(self, full: bool) -> None:
        d = self.desired
        if d.state is not None and not full:
            if not self._source_changed:
                return
            self._source_changed = False
            delta = self.source.delta(d.generation)
            if not delta.get("full"):
                d.apply(delta)
                return
            d.load(delta)
            return
        self._source_changed = False
        d.load(self.source.snapshot())

    # -- what is wanted -------------------------------------------------------------------
    def wanted(self) -> dict[str, tuple[str, str, list[str]]]:
        """network id -> (localport name, its MAC, its addresses with prefix) for each
        network with a VM bound to this chassis and a localport with an IPv4 address."""
        st = self.desired.state
        if st is None:
            return {}
        vms = [p for p in list(st.ports.values()) if not p.device_owner.startswith("network:")]
        bound = self.sb.bindings([p.id for p in vms])
        # every VM port with port security: the guard goes on the ones plugged here, also
        # before ovn-controller claims them
        self.guard = set(raguard.guarded_ports(st))
        nets = {p.network_id for p in vms if bound.get(p.id, ("",))[0] == self.chassis}
        out = {}
        for p in sorted(list(st.ports.values()), key=lambda p: p.id):
            if p.device_owner != DHCP_OWNER or p.network_id not in nets or p.network_id in out:
                continue
            cidrs = [f"{ip}/{ipaddress.ip_network(st.subnets[sid].cidr).prefixlen}"
                     for sid, ip in p.fixed_ips if sid in st.subnets]
            if any(ipaddress.ip_interface(c).version == 4 for c in cidrs):
                out[p.network_id] = (p.id, p.mac_address.lower(), cidrs)
        return out

    def _ours(self) -> set[str]:
        """Networks whose metadata port on br-int this agent made (this run or before)."""
        doc = json.loads(self._vsctl("--format=json", "--columns=external_ids", "list",
                                     "Interface") or "{}")
        out = set(self.networks)
        for (ext,) in doc.get("data", []):
            pairs = dict(ext[1]) if isinstance(ext, list) and ext[0] == "map" else {}
            if pairs.get(MARK):
                out.add(pairs[MARK])
        return out

    # -- a pass ---------------------------------------------------------------------------
    def sync(self) -> dict[str, str]:
        """Namespaces, ports and proxies as wanted; returns {network: error}."""
        want = self.wanted()
        errors = {}
        for net in sorted(self._ours() - set(want)):
            try:
                self._remove(net)
            except Exception as e:  # noqa: BLE001
                errors[net] = str(e)
        for net, (lsp, mac, cidrs) in sorted(want.items()):
            try:
                self._ensure(net, lsp, mac, cidrs)
                self.networks.add(net)
            except Exception as e:  # noqa: BLE001 - the other networks go on
                errors[net] = str(e)
                log.error("metadata namespace of network %s: %s", net, e)
        errors.update(self.proxies.sync(set(want) & self.networks))
        try:
            self._guard_ras(self.guard)
        except Exception as e:  # noqa: BLE001
            errors["ra-guard"] = str(e)
        self.passes += 1
        if errors:
            self.last_error = "; ".join(f"{k}: {v}" for k, v in errors.items())
        return errors

    def _watch_guard(self) -> None:
        """Wakes the agent the moment one of its RA drops leaves br-int (ovn-controller clears
        the bridge when it reconnects): an OpenFlow flow monitor on table 0, started again
        when it ends (ovs-vswitchd restarting)."""
        cookie = f"cookie={raguard.COOKIE:#x}"
        argv = ["ovs-ofctl", "monitor", raguard.target(self.ovs, self.bridge),
                "watch:table=0,!initial,!actions"]
        while not self.stop_event.is_set():
            try:
                # the events after the first reply come on stderr (unbuffered)
                self.monitor = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT, text=True)
            except OSError as e:
                log.warning("router advertisement guard monitor: %s", e)
            else:
                if self.stop_event.is_set():   # stop() came while it started
                    self.monitor.terminate()
                for line in self.monitor.stdout:
                    if "event=DELETED" in line and cookie in line:
                        self.wake.set()
                self.monitor.wait()
            self.stop_event.wait(1.0)

    def _guard_ras(self, ports: set[str]) -> None:
        """The RA drop on the ofport of each of ``ports`` plugged here, and on no other."""
        ofports = set()
        doc = json.loads(self._vsctl("--format=json", "--columns=ofport,external_ids", "list",
                                     "Interface") or "{}")
        for ofport, ext in doc.get("data", []):
            pairs = dict(ext[1]) if isinstance(ext, list) and ext[0] == "map" else {}
            if pairs.get("iface-id") in ports and isinstance(ofport, int) and ofport > 0:
                ofports.add(ofport)
        ofctl = ("ovs-ofctl", "-O", "OpenFlow15", "--no-names")
        br = raguard.target(self.ovs, self.bridge)
        have = raguard.installed(self._run(*ofctl, "dump-flows", br,
                                           f"cookie={raguard.COOKIE:#x}/-1"))
        lines = raguard.bundle(ofports, have)
        if lines:
            path = os.path.join(self.run_dir, f"raguard-{os.getpid()}-{id(self)}.flows")
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            try:
                self._run(*ofctl, "--bundle", "add-flows", br, path)
            finally:
                os.unlink(path)
            self.repairs += bool(ofports - have)
            log.info("router advertisement guard: %s", "; ".join(lines))

    def _ensure(self, net: str, lsp: str, mac: str, cidrs: list[str]) -> None:
        ns = self.ns_prefix + net
        outer, inner = veth_names(net)
        repaired = False
        if not os.path.exists(os.path.join(NETNS_DIR, ns)):
            self._run("ip", "netns", "add", ns)
            self._ip(ns, "link", "set", "lo", "up")
            repaired = True
        link = json.loads(self._ip(ns, "-j", "addr", "show", "dev", inner, check=False) or "[]")
        if not link:   # made anew: a stale outer end goes first
            self._ip(self.ovs_netns, "link", "del", outer, check=False)
            self._ip(self.ovs_netns, "link", "add", outer, "type", "veth", "peer", "name",
                     inner, "netns", ns)
            # the userspace datapath passes partial checksums through (labs)
            for where, dev in ((self.ovs_netns, outer), (ns, inner)):
                self._run("ethtool", "-K", dev, "tx", "off", ns=where, check=False)
            link, repaired = [{}], True
        have = {f"{a['local']}/{a['prefixlen']}" for a in link[0].get("addr_info", [])
                if a.get("family") == "inet" or a.get("scope") == "global"}
        if link[0].get("address", "").lower() != mac:
            self._ip(ns, "link", "set", inner, "down")
            self._ip(ns, "link", "set", inner, "address", mac)
            repaired = True
        for cidr in [*cidrs, f"{METADATA_IP}/32"]:
            if cidr not in have:
                self._ip(ns, "addr", "replace", cidr, "dev", inner)
                repaired = True
        for cidr in have - {*cidrs, f"{METADATA_IP}/32"}:
            self._ip(ns, "addr", "del", cidr, "dev", inner, check=False)
            repaired = True
        if "UP" not in link[0].get("flags", ["UP"]) or repaired:
            self._ip(ns, "link", "set", inner, "up")
            self._ip(self.ovs_netns, "link", "set", outer, "up")
        iface = self._vsctl("--if-exists", "get", "Interface", outer, "external_ids",
                            check=False).strip()
        if f'iface-id="{lsp}"' not in iface and f"iface-id={lsp}" not in iface or \
                MARK not in iface:
            self._vsctl("--may-exist", "add-port", self.bridge, outer, "--", "set",
                        "Interface", outer, f"external_ids:iface-id={lsp}",
                        f"external_ids:{MARK}={net}")
            repaired = True
        if repaired:
            self.repairs += 1
            log.info("metadata namespace %s for port %s: made or repaired", ns, lsp)

    def _remove(self, net: str) -> None:
        outer, _ = veth_names(net)
        self._vsctl("--if-exists", "del-port", self.bridge, outer)
        self._ip(self.ovs_netns, "link", "del", outer, check=False)
        ns = self.ns_prefix + net
        if os.path.exists(os.path.join(NETNS_DIR, ns)):
            self._run("ip", "netns", "delete", ns)
        self.networks.discard(net)
        log.info("metadata namespace %s removed: no VM of its network here", ns)


class _Wake(threading.Event):
    """Handed to the source's watch: a change of the desired state wakes the agent."""

    def __init__(self, agent: OvnMetadataAgent):
        super().__init__()
        self.agent = agent

    def set(self) -> None:
        self.agent._source_changed = True
        self.agent.wake.set()
