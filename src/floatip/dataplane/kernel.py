"""The shell: the only code that reads or changes the kernel and OVS.

- netlink through pyroute2, one session per namespace kept open (no process per change);
  the two hot paths, floating IP /32 addresses and conntrack deletes, use raw rtnetlink and
  ctnetlink sockets opened in the namespace (RtBatch, CtNetlink): hundreds of requests per
  system call; at 10,000 pyroute2's batching is 1.2-3.7x and its conntrack code 54-70x
  slower (benchmarks/netlink_libs.py);
- OVSDB through ovsdbapp, consecutive OVS steps committed as one transaction;
- NAT through a driver (``nftables`` or ``iptables``): one transaction per router per apply;
- sysctls and raw sockets (gratuitous ARP) from a thread that entered the namespace.

Ownership: a router namespace is floatip's when its ``lo`` carries the alias
``floatip router=<id>`` (the mark lives and dies with the namespace); an OVS port is floatip's
when its interface has ``external_ids:floatip-router``; rules live in floatip's own chains
(iptables) or its own ``ip floatip`` table (nftables).
Anything else is read at most, never changed.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import resource
import time
from dataclasses import dataclass, field
from socket import AF_INET, AF_INET6

from ovsdbapp.backend.ovs_idl import connection
from ovsdbapp.schema.open_vswitch import impl_idl
from pyroute2 import IPRoute, netns as pnetns
from pyroute2.netlink.exceptions import NetlinkError

from ..core.layout import NS_PREFIX, OWNER_KEY
from ..core.plan import Link, NsFacts, Observed, OvsPort, Plan, Step
from ..core.tc import ifb_name
from .conntrack import CtNetlink, Flusher
from . import tc
from .garp import Garp
from .nat import nat_driver
from .netlink import RtBatch
from .radvd import Radvd
from .netns import (NETNS_DIR, DataplaneError, NamespaceWatch, nsexec, run_in_netns,
                    write_sysctls)
from .ovs import OVSDB, datapath_type, idl_rows

log = logging.getLogger("floatip.dataplane")
MARK_PREFIX = "floatip router="
INSTANCE_MARK = " instance="
INSTANCE_KEY = "floatip-instance"  # external_ids key: the server instance that made the port
# the owner marked on what ``apply --local`` makes: no server's, so no server prunes or
# rebuilds it, and no ``cleanup --orphans`` takes it for a dead server's
LOCAL_OWNER = "local"


def parse_mark(mark: str) -> tuple[str, str | None]:
    """``floatip router=<id>[ instance=<iid>]`` -> (router id, instance or None)."""
    rid, _, inst = mark[len(MARK_PREFIX):].partition(INSTANCE_MARK)
    return rid, inst or None
OVS_ACTIONS = {"ensure_bridge", "add_port", "set_tag", "del_port"}


@dataclass
class Result:
    writes: int = 0
    steps: list[Step] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # target -> error


class Dataplane:
    def __init__(self, nat: str = "nftables", ovsdb: str = OVSDB, instance: str | None = None,
                 run_dir: str = "/run/floatip"):
        self.nat = nat_driver(nat)
        self.radvd = Radvd(run_dir)
        # routers, namespaces and ports made by another instance are never touched
        self.instance = instance
        self.datapath_type = datapath_type()
        log.info("OVS datapath type: %s", self.datapath_type)
        self.ovsdb = ovsdb
        self._ovs = None
        self._root = IPRoute()
        try:  # a few descriptors per router namespace are kept open
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if soft < hard:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
        self._sessions: dict[str, IPRoute] = {}
        self._batches: dict[str, RtBatch] = {}
        self._ct: dict[str, CtNetlink] = {}
        self._idx: dict[tuple[str, str], int] = {}  # (namespace, device) -> ifindex
        # namespace name -> identity (device, inode of /run/netns/<name>) of the namespace
        # floatip made or read its mark in: a namespace deleted or replaced by hand under
        # the same name is a different namespace, and sessions opened in the old one
        # (which they keep alive) must not be used for the new one.
        self._ident: dict[str, tuple[int, int]] = {}
        self.replaced: list[str] = []  # namespaces found replaced or gone, for reports
        self._ns_watch = NamespaceWatch()
        self.garp = Garp()
        self.flusher = Flusher()  # flows of removed FIPs and un-NATed ones to new FIPs
        self._removing: set[tuple[str, str]] = set()  # (namespace, FIP) removed by this plan
        self.writes = 0  # kernel and OVS changes made by this object, for tests and reports
        self.seconds: dict[str, float] = {}  # time spent per step action, for benchmarks

    # -- sessions ---------------------------------------------------------------------
    @property
    def ovs(self):
        if self._ovs is None:
            idl = connection.OvsdbIdl.from_server(self.ovsdb, "Open_vSwitch")
            # ovsdbapp keeps one connection per API class; a class per Dataplane keeps
            # close() of one from stopping the connection of another in the same process.
            api_class = type("DataplaneOvs", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
            self._ovs = api_class(connection.Connection(idl=idl, timeout=10))
        return self._ovs

    def ipr(self, ns: str | None) -> IPRoute:
        if ns is None:
            return self._root
        s = self._sessions.get(ns)
        if s is None:
            s = self._sessions[ns] = IPRoute(netns=ns, flags=0)
        return s

    def close(self) -> None:
        self.flusher.drain()
        if hasattr(self.nat, "close"):
            self.nat.close()
        for s in self._sessions.values():
            s.close()
        self._sessions.clear()
        for b in self._batches.values():
            b.close()
        self._batches.clear()
        for c in self._ct.values():
            c.close()
        self._ct.clear()
        self.garp.close()
        self._idx.clear()
        self._ns_watch.close()
        self._root.close()
        if self._ovs is not None:
            self._ovs.ovsdb_connection.stop()
            self._ovs = None

    def batch(self, ns: str) -> RtBatch:
        b = self._batches.get(ns)
        if b is None:
            b = self._batches[ns] = RtBatch(ns)
        return b

    def _drop_session(self, ns: str) -> None:
        s = self._sessions.pop(ns, None)
        if s is not None:
            s.close()
        b = self._batches.pop(ns, None)
        if b is not None:
            b.close()
        c = self._ct.pop(ns, None)
        if c is not None:
            c.close()
        self.garp.forget(ns)
        self._idx = {k: v for k, v in self._idx.items() if k[0] != ns}

    # -- namespace identity -------------------------------------------------------------
    @staticmethod
    def identity(ns: str) -> tuple[int, int] | None:
        try:
            st = os.stat(os.path.join(NETNS_DIR, ns))
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def changed_namespaces(self, names, force: bool = False) -> set[str]:
        """Of ``names`` (namespaces floatip made), those deleted or replaced since floatip
        last saw them: one stat each, no netlink; none looked at when /run/netns saw no
        change since the last call (unless ``force``: full passes look anyway)."""
        if not self._ns_watch.changed() and not force:
            return set()
        out = set()
        for ns in names:
            have = self._ident.get(ns)
            if have is not None and self.identity(ns) != have:
                out.add(ns)
        return out

    def _forget_namespace(self, ns: str) -> None:
        """Close everything opened in the namespace that had this name and drop what the
        NAT driver knew of it."""
        self._drop_session(ns)
        self.flusher.forget(ns)
        if hasattr(self.nat, "forget"):
            self.nat.forget(ns)
        self._ident.pop(ns, None)

    # -- observe ----------------------------------------------------------------------
    def observe(self, routers: set[str] | None = None) -> Observed:
        """Read what floatip owns. ``routers`` limits the namespace reads to those ids."""
        obs = Observed()
        tables = self.ovs.tables
        for br in idl_rows(tables["Bridge"]):
            obs.bridges.add(br.name)
            for port in br.ports:
                owner = inst = None
                ptype = ""
                for itf in port.interfaces:
                    owner = itf.external_ids.get(OWNER_KEY) or owner
                    inst = itf.external_ids.get(INSTANCE_KEY) or inst
                    ptype = itf.type
                if owner is None or not self._mine(inst):
                    obs.other_ports.add(port.name)
                    if owner is not None:
                        obs.other_instances[owner] = inst
                    continue
                obs.ports[port.name] = OvsPort(port.name, br.name, port.tag[0] if port.tag else None,
                                               ptype, owner, inst)
        obs.root_links = {l.get("ifname") for l in self._root.get_links()}
        names = sorted(n for n in (os.listdir(NETNS_DIR) if os.path.isdir(NETNS_DIR) else [])
                       if n.startswith(NS_PREFIX))
        for ns in set(self._ident) - set(names):  # deleted by hand
            if routers is None or ns[len(NS_PREFIX):] in routers:
                log.warning("namespace %s is gone; the router will be rebuilt", ns)
                self.replaced.append(ns)
                self._forget_namespace(ns)
        for ns in names:
            rid = ns[len(NS_PREFIX):]
            if routers is not None and rid not in routers:
                continue
            adopt = None
            have = self._ident.get(ns)
            if have is not None and self.identity(ns) != have:
                log.warning("namespace %s was replaced; the router is rebuilt in the new one",
                            ns)
                self.replaced.append(ns)
                self._forget_namespace(ns)
                adopt = rid  # the name was ours: the new namespace is the router's now
            try:
                facts = self._observe_ns(ns, adopt)
            except (OSError, NetlinkError) as e:  # deleted while we looked: not there
                log.info("namespace %s vanished while observed: %s", ns, e)
                self._drop_session(ns)
                continue
            if facts is None:
                obs.foreign_namespaces.add(ns)
            elif not self._mine(facts.instance):
                obs.other_instances[facts.router_id] = facts.instance
            else:
                obs.namespaces[ns] = facts
        return obs

    def _observe_ns(self, ns: str, adopt: str | None = None) -> NsFacts | None:
        ident = self.identity(ns)
        nl = self.batch(ns)
        links = nl.links()
        lo = next((l for l in links if l["ifname"] == "lo"), None)
        mark = lo["alias"] if lo is not None else None
        if adopt is not None and not mark and lo is not None:
            mark = self._mark(ns, adopt)
        if not mark or not mark.startswith(MARK_PREFIX):
            self._drop_session(ns)
            return None
        rid, inst = parse_mark(mark)
        facts = NsFacts(ns, rid, instance=inst)
        if not self._mine(inst):
            self._drop_session(ns)
            return facts
        self._ident[ns] = ident
        addrs: dict[int, set[str]] = {}
        for index, addr in nl.addrs():
            addrs.setdefault(index, set()).add(addr)
        byidx = {}
        for l in links:
            name = l["ifname"]
            byidx[l["index"]] = name
            self._idx[(ns, name)] = l["index"]
            if name == "lo":
                continue
            facts.links[name] = Link(name, l["mac"], l["mtu"], bool(l["flags"] & 1),
                                     frozenset(addrs.get(l["index"], ())), l.get("qdisc"))
        extra, connected = set(), set()
        for dst, gw, oif in nl.routes():
            if dst == "0.0.0.0/0":
                facts.default_route = (gw, byidx.get(oif))
            elif dst == "::/0":
                facts.default_route6 = (gw, byidx.get(oif))
            elif gw is not None:
                extra.add((dst, gw))
            else:
                connected.add((dst, byidx.get(oif)))
        facts.extra_routes = frozenset(extra)
        facts.connected = frozenset(connected)
        facts.sysctls = nl.sysctls
        facts.radvd, facts.radvd_stale = self.radvd.observe(rid, ns)
        facts.nat = self.nat.observe(ns)
        facts.fip_map = self.nat.fip_map(facts.nat)
        facts.pf_map = self.nat.forward_map(facts.nat)
        qg = next((n for n in facts.links if n.startswith("qg-")), None)
        if qg is not None:  # tc is read only where floatip's qdiscs are
            facts.qos = tc.observe(ns, qg, facts.links[qg].qdisc == "htb",
                                   ifb_name(qg) in facts.links)
        return facts

    # -- apply ------------------------------------------------------------------------
    def apply(self, plan: Plan) -> Result:
        """Run the steps in order; consecutive OVS steps go in one OVSDB transaction.
        A failing step stops the steps of its router, not the others; its error is filed
        under the router (``qrouter-<id>``), OVS steps included."""
        res = Result()
        failed: set[str] = set()
        steps = plan.steps
        self._removing = set()
        for s in steps:  # a FIP whose flows wait for a batch is flushed before it comes back
            if s.action == "add_fips":
                self.flusher.before_add(s.target, s.args[2])
            elif s.action == "del_fips":
                self._removing |= {(s.target, ip) for ip in s.args[1]}
        i = 0
        while i < len(steps):
            if steps[i].action in OVS_ACTIONS:
                j = i
                while j < len(steps) and steps[j].action in OVS_ACTIONS:
                    j += 1
                self._ovs_steps([s for s in steps[i:j] if self._owner(s) not in failed],
                                res, failed)
                i = j
                continue
            s = steps[i]
            i += 1
            if self._owner(s) in failed:
                continue
            try:
                t0 = time.perf_counter()
                self._execute(s)
                self.seconds[s.action] = self.seconds.get(s.action, 0.0) + time.perf_counter() - t0
                res.steps.append(s)
            except Exception as e:  # noqa: BLE001
                log.error("%s %s failed: %s", s.action, s.target, e)
                res.errors[self._owner(s)] = f"{s.action}: {e}"
                failed.add(self._owner(s))
        res.writes = len(res.steps)
        self.writes += res.writes
        return res

    def _ovs_steps(self, batch: list[Step], res: Result, failed: set[str]) -> None:
        """One OVSDB transaction for the batch; if it fails, bridges first and then each
        router's steps in a transaction of their own, so only the routers whose steps fail
        are marked failed (a bridge that cannot be made fails the routers that use it)."""
        try:
            self._ovs_batch(batch)
            res.steps += batch
            return
        except Exception as e:  # noqa: BLE001
            if len({self._owner(s) for s in batch}) == 1:
                owner = self._owner(batch[0])
                log.error("OVS steps of %s failed: %s", owner, e)
                res.errors[owner] = f"{batch[0].action}: {e}"
                failed.add(owner)
                return
        groups: dict[str, list[Step]] = {}
        for s in batch:
            groups.setdefault(self._owner(s), []).append(s)
        bridges = [s for s in batch if s.action == "ensure_bridge"]
        bad_bridges = {}
        for s in bridges:
            try:
                self._ovs_batch([s])
                res.steps.append(s)
            except Exception as e:  # noqa: BLE001
                bad_bridges[s.target] = f"ensure_bridge {s.target}: {e}"
        for owner, group in groups.items():
            group = [s for s in group if s.action != "ensure_bridge"]
            if not group:
                continue
            why = next((bad_bridges[s.target] for s in group if s.target in bad_bridges), None)
            try:
                if why is not None:
                    raise DataplaneError(why)
                self._ovs_batch(group)
                res.steps += group
            except Exception as e:  # noqa: BLE001
                log.error("OVS steps of %s failed: %s", owner, e)
                res.errors[owner] = f"{group[0].action}: {e}"
                failed.add(owner)

    @staticmethod
    def _owner(step: Step) -> str:
        """Where the step's error is filed: its router's namespace, else its target."""
        if step.router:
            return NS_PREFIX + step.router
        if step.action == "add_port":
            return NS_PREFIX + dict(step.args[2])[OWNER_KEY]
        return step.target

    def _ovs_batch(self, batch: list[Step]) -> None:
        if not batch:
            return
        readd = {s.args[0] for s in batch if s.action == "add_port"} & \
            {s.args[0] for s in batch if s.action == "del_port"}
        if readd:  # a port whose device vanished: vswitchd makes a new device only for a
            # port it saw go away, so the delete gets a transaction of its own
            first = [s for s in batch if s.action == "del_port" and s.args[0] in readd]
            self._ovs_batch(first)
            batch = [s for s in batch if s not in first]
        api = self.ovs
        with api.transaction(check_error=True) as txn:
            for s in batch:
                if s.action == "ensure_bridge":
                    txn.add(api.add_br(s.target, may_exist=True, datapath_type=self.datapath_type))
                    txn.add(api.db_set("Bridge", s.target,
                                       ("external_ids", {"floatip-owned": "true"})))
                elif s.action == "add_port":
                    name, tag, ids = s.args
                    ids = dict(ids) | ({INSTANCE_KEY: self.instance} if self.instance else {})
                    txn.add(api.add_port(s.target, name, may_exist=True, type="internal",
                                         external_ids=ids))
                    if tag is not None:
                        txn.add(api.db_set("Port", name, ("tag", tag)))
                elif s.action == "set_tag":
                    name, tag = s.args
                    txn.add(api.db_set("Port", name, ("tag", tag)) if tag is not None
                            else api.db_clear("Port", name, "tag"))
                elif s.action == "del_port":
                    txn.add(api.del_port(s.args[0], if_exists=True))
        # vswitchd creates internal devices after the commit: wait for them, and bring
        # new bridges' own devices up.
        waits = [s.args[0] for s in batch if s.action == "add_port"]
        waits += [s.target for s in batch if s.action == "ensure_bridge"]
        deadline = time.monotonic() + 15
        for name in waits:
            while not self._root.link_lookup(ifname=name):
                if time.monotonic() > deadline:
                    raise DataplaneError(f"OVS did not create device {name} (is ovs-vswitchd up?)")
                time.sleep(0.005)
        for s in batch:
            if s.action == "ensure_bridge":
                self._root.link("set", index=self._root.link_lookup(ifname=s.target)[0], state="up")

    def _index(self, ns: str, name: str, cached: bool = False) -> int:
        """The device's ifindex; ``cached`` reuses the last lookup (the event path)."""
        if cached and (ns, name) in self._idx:
            return self._idx[(ns, name)]
        idx = self.ipr(ns).link_lookup(ifname=name)
        if not idx:
            raise DataplaneError(f"no device {name} in {ns}")
        self._idx[(ns, name)] = idx[0]
        return idx[0]

    def _fip_addresses(self, ns: str, dev: str, add: bool, ips) -> None:
        try:
            self.batch(ns).addresses(add, self._index(ns, dev, cached=True), ips)
        except NetlinkError as e:
            if e.code != 19:  # ENODEV: the device was replaced; look it up again
                raise
            self.batch(ns).addresses(add, self._index(ns, dev), ips)

    def _execute(self, s: Step) -> None:
        ns, a = s.target, s.args
        match s.action:
            case "create_namespace":
                self._forget_namespace(ns)  # nothing opened in a namespace of that name stays
                pnetns.create(ns)
                self._mark(ns, a[0])
            case "move_link":
                idx = self._root.link_lookup(ifname=a[0])
                if not idx:
                    raise DataplaneError(f"device {a[0]} not found in the root namespace")
                self._root.link("set", index=idx[0], net_ns_fd=ns)
            case "set_link":
                name, mac, mtu = a
                self.ipr(ns).link("set", index=self._index(ns, name), address=mac, mtu=mtu,
                                  state="up")
            case "add_address" | "del_address":
                self.batch(ns).address(s.action == "add_address", self._index(ns, a[0]), a[1])
            case "replace_default_route":
                v6 = ":" in a[0]
                self.ipr(ns).route("replace", dst="::/0" if v6 else "0.0.0.0/0", gateway=a[0],
                                   oif=self._index(ns, a[1]), family=AF_INET6 if v6 else AF_INET)
            case "del_default_route":
                v6 = bool(a) and ":" in a[0]
                self.ipr(ns).route("del", dst="::/0" if v6 else "0.0.0.0/0",
                                   family=AF_INET6 if v6 else AF_INET)
            case "replace_route" | "del_route":
                self.ipr(ns).route("replace" if s.action == "replace_route" else "del",
                                   dst=a[0], gateway=a[1],
                                   family=AF_INET6 if ":" in a[1] else AF_INET)
            case "add_connected_route":
                itf = ipaddress.ip_interface(a[1])
                v6 = itf.version == 6
                # as the kernel makes it: proto kernel, scope link, from the address (IPv4);
                # metric 256 (IPv6)
                self.ipr(ns).route("replace", dst=str(itf.network), oif=self._index(ns, a[0]),
                                   proto=2, **({"family": AF_INET6, "priority": 256} if v6 else
                                               {"family": AF_INET, "scope": 253,
                                                "prefsrc": str(itf.ip)}))
            case "ensure_radvd":
                self.radvd.ensure(ns, a[0], a[1])
            case "stop_radvd":
                self.radvd.stop(a[0])
            case "set_sysctls":
                run_in_netns(ns, write_sysctls, a)

            case "add_fips":
                # announced before the address add too: the DNAT (an earlier step) already
                # carries the traffic, and an upstream resolving the address need not wait;
                # and again after it: an upstream that asked in between got no reply, and
                # would ask again only a second later
                dev, mac, ips = a
                self.garp.send_now(ns, dev, mac, ips)
                self._fip_addresses(ns, dev, True, ips)
                self.garp.send_now(ns, dev, mac, ips)
                self.garp.announce(ns, dev, mac, ips, sent=True)
                self.flusher.stale(ns, ips)  # within 0.1 s: un-NATed flows opened before it
            case "del_fips":
                dev, ips = a
                self._fip_addresses(ns, dev, False, ips)
            case "flush_conntrack":
                # Entries whose original or reply destination is the address (inbound flows
                # and the float-SNATed outbound ones): one ctnetlink dump and the deletes, in
                # process; the conntrack tool is the fallback. Removed floating IPs wait
                # (<= 0.1 s) for a batch; moved ones, still programmed, are cut now.
                removed = {ip for ip in a if (ns, ip) in self._removing}
                if removed:
                    self.flusher.request(ns, removed)
                a = [ip for ip in a if ip not in removed]
                if not a:
                    return
                try:
                    ct = self._ct.get(ns) or self._ct.setdefault(ns, CtNetlink(ns))
                    ct.delete_by_address(a)
                except (OSError, NetlinkError) as e:
                    log.info("ctnetlink in %s: %s; using conntrack", ns, e)
                    for ip in a:
                        nsexec(ns, ["conntrack", "-D", "-d", ip], check=False)
                        nsexec(ns, ["conntrack", "-D", "-q", ip], check=False)
            case "flush_forwards":
                # the flows a removed forwarding carried: original destination its floating
                # IP, protocol and external port (Neutron's conntrack -D -d -p --dport)
                ct = self._ct.get(ns) or self._ct.setdefault(ns, CtNetlink(ns))
                ct.delete_forwarded(a)
            case "set_qos":
                qg, want = a
                links = {l["ifname"]: l for l in self.batch(ns).links()}
                tc.apply(ns, qg, want, links.get(qg, {}).get("qdisc") == "htb",
                         ifb_name(qg) in links)
            case "delete_namespace":
                self._kill_our_processes(ns)
                self._forget_namespace(ns)
                pnetns.remove(ns)
            case "iptables_restore" | "nft":
                self.nat.execute(s)
            case _:
                raise DataplaneError(f"unknown step {s.action}")

    def _mine(self, instance: str | None) -> bool:
        """Made by this instance (or by a floatip that marks no instance)."""
        return instance is None or instance == self.instance

    def _mark(self, ns: str, router_id: str) -> str:
        mark = MARK_PREFIX + router_id + (INSTANCE_MARK + self.instance if self.instance else "")
        self.ipr(ns).link("set", index=1, state="up", ifalias=mark)
        self._ident[ns] = self.identity(ns)
        return mark

    @staticmethod
    def _kill_our_processes(ns: str) -> None:
        """A process found in the namespace that floatip started (radvd: it carries
        FLOATIP_ROUTER in its environment) is ended, by its pid."""
        for pid in pnetns.ns_pids().get(ns, []):
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if b"FLOATIP_ROUTER=" in f.read():
                        os.kill(pid, 15)
            except OSError:
                pass
