"""The DHCP namespaces in the kernel and OVS, and the dnsmasq in each: the only code that
touches them.

A DHCP namespace is floatip's when its ``lo`` carries the alias ``floatip dhcp=<network id>``;
a tap is floatip's when its interface has ``external_ids:floatip-dhcp=<network id>``; a
dnsmasq is floatip's when it runs in such a namespace with the network's config directory on
its command line and ``FLOATIP_DHCP=<network id>`` in its environment. Nothing else is
changed. dnsmasq is started without a shell (``nsenter`` then dnsmasq, an argv list), forks
into the background and writes its pid file; a port change rewrites its hosts/options files
and sends SIGHUP; a changed command line (subnets, the DHCP port's addresses) restarts it.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field

from ovsdbapp.backend.ovs_idl import connection
from ovsdbapp.schema.open_vswitch import impl_idl
from pyroute2 import IPRoute, netns as pnetns

from ..core.dhcp import MARK_PREFIX, NS_PREFIX, OWNER_KEY, DhcpSpec, dnsmasq_argv, \
    render_hosts, render_opts
from . import process
from .kernel import INSTANCE_MARK
from .netns import NETNS_DIR, DataplaneError, run_in_netns, write_sysctls
from .ovs import OVSDB, datapath_type, idl_rows

log = logging.getLogger("floatip.dhcp")
STATE_DIR = "/run/floatip/dhcp"
ENV_KEY = "FLOATIP_DHCP"


@dataclass
class DhcpFacts:
    network_id: str
    namespace: str | None = None        # marked namespace, if there
    ports: dict[str, str] = field(default_factory=dict)  # our taps: name -> bridge
    pid: int | None = None              # live dnsmasq
    instance: str | None = None         # the server instance marked on the namespace


class DhcpDataplane:
    def __init__(self, state_dir: str = STATE_DIR, ovsdb: str = OVSDB,
                 dnsmasq: str | None = None, instance: str | None = None):
        self.state_dir = state_dir
        self.instance = instance  # marked on the namespaces it makes (see DhcpAgent's prune)
        self.ovsdb = ovsdb
        self.dnsmasq = dnsmasq or shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        self._ovs = None
        self._root_ipr: IPRoute | None = None
        # namespace -> (its identity, its mark): the mark lives and dies with the namespace,
        # so a namespace whose identity did not change is not entered again (a pass over 100
        # networks was 100 netlink sessions, each a process of pyroute2's)
        self._marks: dict[str, tuple[tuple[int, int], str | None]] = {}
        self.writes = 0           # namespaces, ports, files, signals, starts: for tests
        self.restarts = 0         # dnsmasq started again (dead, or command line changed)

    @property
    def ovs(self):
        if self._ovs is None:
            idl = connection.OvsdbIdl.from_server(self.ovsdb, "Open_vSwitch")
            api_class = type("DhcpOvs", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
            self._ovs = api_class(connection.Connection(idl=idl, timeout=10))
        return self._ovs

    @property
    def _root(self) -> IPRoute:
        if self._root_ipr is None:
            self._root_ipr = IPRoute()
        return self._root_ipr

    def close(self) -> None:
        if self._root_ipr is not None:
            self._root_ipr.close()
            self._root_ipr = None
        if self._ovs is not None:
            self._ovs.ovsdb_connection.stop()
            self._ovs = None

    def conf_dir(self, network_id: str) -> str:
        return os.path.join(self.state_dir, network_id)

    # -- observe ------------------------------------------------------------------------
    def observe(self) -> dict[str, DhcpFacts]:
        """floatip's DHCP namespaces, taps and live dnsmasqs, by network id."""
        out: dict[str, DhcpFacts] = {}
        for br in idl_rows(self.ovs.tables["Bridge"]):
            for port in br.ports:
                for itf in port.interfaces:
                    nid = (itf.external_ids or {}).get(OWNER_KEY)
                    if nid:
                        out.setdefault(nid, DhcpFacts(nid)).ports[port.name] = br.name
        names = os.listdir(NETNS_DIR) if os.path.isdir(NETNS_DIR) else []
        self._marks = {n: m for n, m in self._marks.items() if n in names}
        for ns in sorted(n for n in names if n.startswith(NS_PREFIX)):
            mark = self._mark_of(ns)
            if mark is not None:
                facts = out.setdefault(mark[0], DhcpFacts(mark[0]))
                facts.namespace, facts.instance = ns, mark[1]
        for nid, facts in out.items():
            facts.pid = self._pid(nid)
        return out

    def describe(self) -> list[dict]:
        """For ``floatip show``: each floatip DHCP namespace, its dnsmasq (by pid file, else
        the processes in the namespace, whatever run dir served it) and addresses."""
        out = []
        ns_pids = pnetns.ns_pids()
        for nid, f in sorted(self.observe().items()):
            if f.namespace is None:
                continue
            pids = [f.pid] if f.pid else [int(p) for p in ns_pids.get(f.namespace, [])]
            with IPRoute(netns=f.namespace, flags=0) as ipr:
                addrs = sorted(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                               for a in ipr.get_addr() if a["index"] != 1)
            out.append({"network_id": nid, "namespace": f.namespace, "instance": f.instance,
                        "dnsmasq_pid": pids[0] if pids else None,
                        "dnsmasq_alive": bool(pids) and process.running(pids[0]),
                        "addresses": addrs})
        return out

    def _mark_of(self, ns: str) -> tuple[str, str | None] | None:
        try:
            st = os.stat(os.path.join(NETNS_DIR, ns))
        except OSError:
            return None
        ident = (st.st_dev, st.st_ino)
        cached = self._marks.get(ns)
        if cached is not None and cached[0] == ident:
            return cached[1]
        mark = self._marked(ns)
        if mark is not None:  # an unmarked one (foreign, or unreadable now) is read again
            self._marks[ns] = (ident, mark)
        return mark

    @staticmethod
    def _marked(ns: str) -> tuple[str, str | None] | None:
        """``floatip dhcp=<network id>[ instance=<iid>]`` on ``lo`` -> (network id, instance)."""
        try:
            with IPRoute(netns=ns, flags=0) as ipr:
                lo = ipr.get_links(ifname="lo")
        except Exception:  # noqa: BLE001 - a namespace going away under us
            return None
        alias = lo[0].get_attr("IFLA_IFALIAS") if lo else None
        if not alias or not alias.startswith(MARK_PREFIX):
            return None
        nid, _, inst = alias[len(MARK_PREFIX):].partition(INSTANCE_MARK)
        return (nid, inst or None) if ns == NS_PREFIX + nid else None

    def _pid(self, network_id: str) -> int | None:
        d = self.conf_dir(network_id)
        return process.pid_from_file(os.path.join(d, "pid"), f"={d}/pid".encode())

    # -- ensure -------------------------------------------------------------------------
    def ensure(self, spec: DhcpSpec, facts: DhcpFacts | None) -> None:
        """Make the namespace, tap, files and dnsmasq of ``spec`` what they should be."""
        ns = spec.namespace
        pid = facts.pid if facts else None
        fresh = facts is None or facts.namespace is None
        if fresh:
            if os.path.exists(os.path.join(NETNS_DIR, ns)):
                raise DataplaneError(f"namespace {ns} exists and is not floatip's")
            if pid is not None:  # it serves in a namespace deleted by hand: nobody hears it
                self._kill(pid)
                pid = None
            pnetns.create(ns)
            # before the tap moves in: no autoconfiguration from the router's advertisements
            # (Neutron: accept_ra=0), no DAD delay on the DHCP port's IPv6 addresses
            run_in_netns(ns, write_sysctls, (("net.ipv6.conf.default.accept_ra", "0"),
                                             ("net.ipv6.conf.default.accept_dad", "0")))
            with IPRoute(netns=ns, flags=0) as ipr:
                ipr.link("set", index=1, state="up", ifalias=MARK_PREFIX + spec.network_id + (
                    INSTANCE_MARK + self.instance if self.instance else ""))
            st = os.stat(os.path.join(NETNS_DIR, ns))
            self._marks[ns] = ((st.st_dev, st.st_ino), (spec.network_id, self.instance))
            self.writes += 1
        for name in (facts.ports if facts else {}):
            # a replaced DHCP port goes; so does one whose device died with its namespace
            # (OVS does not make the device again for a port it still has)
            if name != spec.device or fresh:
                self._del_port(name)
        self._ensure_port(spec)
        self._ensure_link(spec)
        self._ensure_dnsmasq(spec, pid)

    def _ensure_port(self, spec: DhcpSpec) -> None:
        api = self.ovs
        port = next((p for p in idl_rows(api.tables["Port"]) if p.name == spec.device), None)
        if port is not None:
            ids = {}
            for itf in port.interfaces:
                ids = itf.external_ids or {}
            if ids.get(OWNER_KEY) != spec.network_id:
                raise DataplaneError(f"OVS port {spec.device} exists and is not floatip's")
            if (port.tag[0] if port.tag else None) != spec.tag:
                api.db_set("Port", spec.device, ("tag", spec.tag)).execute(check_error=True)
                self.writes += 1
            return
        ids = {"iface-id": spec.port_id, "attached-mac": spec.mac, "iface-status": "active",
               OWNER_KEY: spec.network_id}
        new_bridge = not any(b.name == spec.bridge for b in idl_rows(api.tables["Bridge"]))
        with api.transaction(check_error=True) as txn:  # tagged from the first moment
            if new_bridge:  # a network with DHCP and no router yet: as the routers' agent does
                txn.add(api.add_br(spec.bridge, may_exist=True, datapath_type=datapath_type()))
                txn.add(api.db_set("Bridge", spec.bridge,
                                   ("external_ids", {"floatip-owned": "true"})))
            txn.add(api.add_port(spec.bridge, spec.device, may_exist=True, type="internal",
                                 external_ids=ids))
            txn.add(api.db_set("Port", spec.device, ("tag", spec.tag)))
        self.writes += 1
        if new_bridge:
            idx = self._wait_device(spec.bridge)
            self._root.link("set", index=idx, state="up")

    def _wait_device(self, name: str) -> int:
        """vswitchd creates internal devices after the commit."""
        deadline = time.monotonic() + 15
        while not (idx := self._root.link_lookup(ifname=name)):
            if time.monotonic() > deadline:
                raise DataplaneError(f"OVS did not create {name} (is ovs-vswitchd up?)")
            time.sleep(0.005)
        return idx[0]

    def _ensure_link(self, spec: DhcpSpec) -> None:
        ns = spec.namespace
        with IPRoute(netns=ns, flags=0) as ipr:
            idx = ipr.link_lookup(ifname=spec.device)
            if not idx:
                self._root.link("set", index=self._wait_device(spec.device), net_ns_fd=ns)
                idx = ipr.link_lookup(ifname=spec.device)
                self.writes += 1
            link = ipr.get_links(idx[0])[0]
            if link.get_attr("IFLA_ADDRESS") != spec.mac or link.get_attr("IFLA_MTU") != spec.mtu \
                    or not link["flags"] & 1:
                ipr.link("set", index=idx[0], address=spec.mac, mtu=spec.mtu, state="up")
                self.writes += 1
            # global and permanent: not link-local, not made by autoconf (a namespace made
            # before accept_ra=0 may still take the router's advertisements)
            have = {f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                    for a in ipr.get_addr(index=idx[0]) if a["scope"] == 0 and a["flags"] & 0x80}
            # old ones first: deleting a primary address takes its secondaries along
            for cidr in sorted(have - set(spec.addresses)):
                itf = ipaddress.ip_interface(cidr)
                ipr.addr("del", index=idx[0], address=str(itf.ip),
                         prefixlen=itf.network.prefixlen)
                self.writes += 1
            for cidr in sorted(set(spec.addresses) - have):
                itf = ipaddress.ip_interface(cidr)
                if itf.version == 6:  # IFA_F_NODAD: dnsmasq may bind at once
                    ipr.addr("add", index=idx[0], address=str(itf.ip),
                             prefixlen=itf.network.prefixlen, flags=0x02)
                else:
                    ipr.addr("add", index=idx[0], address=str(itf.ip),
                             prefixlen=itf.network.prefixlen,
                             broadcast=str(itf.network.broadcast_address))
                self.writes += 1

    def _ensure_dnsmasq(self, spec: DhcpSpec, pid: int | None) -> None:
        d = self.conf_dir(spec.network_id)
        os.makedirs(d, mode=0o755, exist_ok=True)
        os.chmod(d, 0o755)
        # dnsmasq rereads its files after dropping root (as nobody): every directory above
        # them must let others through, or it silently serves no host
        parent = os.path.dirname(os.path.abspath(d))
        while parent != "/":
            if not os.stat(parent).st_mode & 0o001:
                raise DataplaneError(f"{parent} is not traversable by others: dnsmasq could "
                                     f"not read its files below it (choose another run dir)")
            parent = os.path.dirname(parent)
        # 0644: dnsmasq rereads them after dropping root
        changed = process.write_if_changed(os.path.join(d, "host"), render_hosts(spec))
        changed |= process.write_if_changed(os.path.join(d, "opts"), render_opts(spec))
        argv = dnsmasq_argv(spec, d, self.dnsmasq)
        if pid is not None and not self._same_argv(pid, argv):
            self._kill(pid)
            pid = None
        if pid is None:
            if os.path.exists(os.path.join(d, "pid")):
                self.restarts += 1
            self._start(spec, argv)
        elif changed:
            os.kill(pid, signal.SIGHUP)  # rereads hosts and options, keeps its leases
            self.writes += 1

    @staticmethod
    def _same_argv(pid: int, argv: list[str]) -> bool:
        # ours: nsenter exec'd dnsmasq, so the process' argv is argv itself
        have = process.argv_of(pid)
        return have is not None and have[1:] == argv[1:]

    def _start(self, spec: DhcpSpec, argv: list[str]) -> None:
        process.start(spec.namespace, argv, {ENV_KEY: spec.network_id},
                      f"dnsmasq for {spec.network_id}")
        self.writes += 1
        log.info("dnsmasq started for network %s", spec.network_id)

    _kill = staticmethod(process.kill)

    # -- remove -------------------------------------------------------------------------
    def remove(self, facts: DhcpFacts) -> None:
        """dnsmasq killed by its pid (and any other process of ours in the namespace), the
        taps and the namespace deleted, the config directory removed."""
        if facts.pid is not None:
            self._kill(facts.pid)
        if facts.namespace is not None:
            for pid in pnetns.ns_pids().get(facts.namespace, []):
                try:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        if f"{ENV_KEY}={facts.network_id}".encode() in f.read().split(b"\0"):
                            self._kill(pid)
                except OSError:
                    pass
        for name in facts.ports:
            self._del_port(name)
        if facts.namespace is not None:
            pnetns.remove(facts.namespace)
            self.writes += 1
        shutil.rmtree(self.conf_dir(facts.network_id), ignore_errors=True)
        log.info("DHCP for network %s removed", facts.network_id)

    def _del_port(self, name: str) -> None:
        self.ovs.del_port(name, if_exists=True).execute(check_error=True)
        self.writes += 1
