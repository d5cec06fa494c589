"""``floatip trace``'s shell half: reads, never changes, what the host has programmed.

The facts come from the same tools a person would run (each hop prints its command):
``ip -j`` in the router namespace, ``nft``/``iptables-save``, ``ovs-vsctl``, ``ovs-appctl
fdb/show``, ``dpif/show`` and ``ofproto/trace``. All are started with argv lists (never a
shell), and every address given to them was parsed as an IP address first.
"""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess

from ..core.trace import (ApiFip, Facts, Link, OfTrace, Port, Query, Route, RouterFacts,
                          of_flow, parse_dpif_show, parse_of_trace)
from ..core.layout import NS_PREFIX, OWNER_KEY
from ..core.trace_out import snat_source
from .nat import iptables as ipt, nftables as nft
from .netns import NETNS_DIR, nsexec

MARK_PREFIX = "floatip router="


def _run(*argv: str) -> str:
    r = subprocess.run(list(argv), capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""


def _json(text: str):
    try:
        return json.loads(text) if text.strip() else []
    except json.JSONDecodeError:
        return []


def ovs_ports() -> dict[str, Port]:
    """Every OVS port with its bridge, tag and interface identity (one ovs-vsctl call)."""
    text = _run("ovs-vsctl", "--format=json", "--", "--columns=name,ofport,external_ids,"
                "mac_in_use", "list", "Interface", "--", "--columns=name,tag", "list", "Port",
                "--", "--columns=name,ports", "list", "Bridge", "--", "--columns=_uuid,name",
                "list", "Port")
    docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    if len(docs) != 4:
        return {}
    itfs, tags, bridges, uuids = (d["data"] for d in docs)
    by_uuid = {row[0][1]: row[1] for row in uuids}
    out: dict[str, Port] = {}
    for name, tag in tags:
        out[name] = Port(name, "", tag=tag if isinstance(tag, int) else None)
    for br, ports in bridges:
        refs = ports[1] if ports[0] == "set" else [ports]
        for ref in refs:
            pname = by_uuid.get(ref[1])
            if pname in out:
                out[pname].bridge = br
    for name, ofport, ids, mac in itfs:
        p = out.get(name)
        if p is None:
            continue
        ids = dict(ids[1])
        p.ofport = ofport if isinstance(ofport, int) else None
        p.mac = ids.get("attached-mac") or (mac if isinstance(mac, str) else None)
        p.iface_id = ids.get("iface-id")
        p.router_id = ids.get(OWNER_KEY)
    return out


def fdb(bridge: str) -> dict[tuple[int, str], str]:
    """(VLAN, MAC) -> the port column of ``ovs-appctl fdb/show`` (an ofport or LOCAL)."""
    out = {}
    for line in _run("ovs-appctl", "fdb/show", bridge).splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[1].isdigit():
            out[(int(parts[1]), parts[2].lower())] = parts[0]
    return out


def router_namespaces() -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(NS_PREFIX))
    except OSError:
        return []


def _links(ns: str) -> tuple[dict[str, Link], str | None]:
    """The namespace's links and floatip's mark (lo's alias), if any."""
    links, mark = {}, None
    for d in _json(nsexec(ns, ["ip", "-j", "-d", "addr", "show"], check=False).stdout):
        if d.get("ifname") == "lo":
            mark = d.get("ifalias")
            continue
        links[d["ifname"]] = Link(d["ifname"], d.get("address", ""), "UP" in d.get("flags", []),
                                  [f"{a['local']}/{a['prefixlen']}" for a in d.get("addr_info", [])
                                   if a.get("family") == "inet"])
    return links, mark


def _nat(ns: str) -> tuple:
    """(driver, dnat, snat, dnat rule, snat rule, [(tenant subnet, SNAT address)]) as
    programmed in ``ns``."""
    text = nsexec(ns, ["nft", "list", "table", "ip", nft.TABLE], check=False).stdout
    t = nft.parse(text)
    if t.present:
        post = t.chain_rules.get("nat_postrouting", ())
        rule = next((r for r in t.chain_rules.get("nat_prerouting", ())
                     if f"@{nft.DNAT_MAP}" in r), None)
        srule = next((r for r in post if f"@{nft.SNAT_MAP}" in r), None)
        to = next((r.split(" snat to ")[1].split()[0] for r in post
                   if f"@{nft.NETS}" in r and " snat to " in r), None)
        nets = [(n, to) for n in sorted(t.nets)] if to else []
        return "nftables", dict(t.dnat), dict(t.snat), rule, srule, nets
    rs = ipt.parse_save(nsexec(ns, ["iptables-save", "-t", "nat"], check=False).stdout)
    if not any(table == "nat" for table, _ in rs.chains):
        return None, {}, {}, None, None, []
    snat, nets = {}, []
    for chain in (f"{ipt.W}-float-snat", f"{ipt.W}-snat"):
        for rule in rs.chains.get(("nat", chain), []):
            w = rule.split()
            if "-s" in w and "--to-source" in w:
                src, to = w[w.index("-s") + 1], w[w.index("--to-source") + 1]
                if chain.endswith("float-snat"):
                    snat[src.removesuffix("/32")] = to
                else:
                    nets.append((src, to))
    return "iptables", rs.fip_map(), snat, None, None, nets


def router_facts(ns: str) -> RouterFacts | None:
    links, mark = _links(ns)
    if not (mark or "").startswith(MARK_PREFIX):
        return None  # not floatip's namespace: not read further
    rid = mark[len(MARK_PREFIX):].split(" ")[0]
    neigh = {}
    for n in _json(nsexec(ns, ["ip", "-j", "-4", "neigh", "show"], check=False).stdout):
        if n.get("lladdr"):
            neigh[n["dst"]] = (n.get("dev", ""), n["lladdr"].lower(),
                               ",".join(n.get("state", [])))
    driver, dnat, snat, rule, srule, nets = _nat(ns)
    return RouterFacts(rid, ns, links, neigh, driver, dnat, snat, rule, srule, nets)


def find_router(dest: str, router_id: str | None = None) -> RouterFacts | None:
    """The router namespace that holds ``dest``: the one named by the API (none if it is not
    here: another instance's router with the same address is not ours to trace), else the
    one with ``dest`` on its gateway port, else with a DNAT for it, else with ``dest`` on
    its gateway network."""
    names = router_namespaces()
    if router_id:
        names = [n for n in names if n == NS_PREFIX + router_id]
    best, score = None, 0
    addr = ipaddress.ip_address(dest)
    for ns in names:
        r = router_facts(ns)
        if r is None or r.gateway is None:
            continue
        qg = r.gateway
        s = (3 if any(a.split("/")[0] == dest for a in qg.addresses) else
             2 if dest in r.dnat else
             1 if any(addr in ipaddress.ip_interface(a).network for a in qg.addresses) else 0)
        if s > score:
            best, score = r, s
    return best


def _route(ns: str, *argv: str) -> Route | None:
    got = _json(nsexec(ns, ["ip", "-j", "route", "get", *argv], check=False).stdout)
    if not got:
        return None
    g = got[0]
    return Route(g.get("dev"), g.get("gateway"), g.get("type", "unicast"))


def _default_via(ns: str) -> str | None:
    got = _json(nsexec(ns, ["ip", "-j", "-4", "route", "show", "default"], check=False).stdout)
    return got[0].get("gateway") if got else None


def of_trace(bridge: str, flow: str, odp: dict[str, dict[int, str]]) -> OfTrace:
    text = _run("ovs-appctl", "ofproto/trace", bridge, flow)
    return parse_of_trace(bridge, flow, text, odp.get(bridge, {}))


def _port_by_mac(ports: dict[str, Port], bridge: str, tag: int | None, mac: str) -> Port | None:
    learned = fdb(bridge).get((tag or 0, mac))
    for p in ports.values():
        if p.bridge == bridge and learned is not None and str(p.ofport) == learned:
            return p
    return next((p for p in ports.values() if p.bridge == bridge and p.router_id is None
                 and (p.mac or "").lower() == mac), None)


def _uplink(ports: dict[str, Port], bridge: str, mac: str | None) -> Port | None:
    """The external bridge's port to upstream: where the upstream's MAC was learned, else
    the first port floatip did not make (not the bridge's own internal port)."""
    if mac:
        p = _port_by_mac(ports, bridge, None, mac)
        if p is not None and p.router_id is None:
            return p
    return next((p for n, p in sorted(ports.items())
                 if p.bridge == bridge and p.router_id is None and n != bridge), None)


def gather(q: Query, source_ip: str | None = None, api: ApiFip | None = None,
           api_note: str | None = None, router_id: str | None = None) -> Facts:
    """Everything ``core.trace.build`` needs for a packet from upstream to ``q.dest``
    (``router_id``, or the API's, picks the router where several hold the address)."""
    r = find_router(q.dest, router_id or (api.router_id if api else None))
    f = Facts(q, source_ip or "192.0.2.1", r, api=api, api_note=api_note)
    if r is None or r.gateway is None:
        return f
    ns, qg = r.namespace, r.gateway
    f.source_ip = source_ip or _default_via(ns) or f.source_ip
    ports = ovs_ports()
    odp = parse_dpif_show(_run("ovs-appctl", "dpif/show"))
    f.gateway_port = ports.get(qg.name)
    neigh = r.neighbours.get(f.source_ip)
    f.upstream_mac = neigh[1] if neigh else None
    if f.gateway_port is None:
        return f
    ex = f.gateway_port.bridge
    f.uplink = _uplink(ports, ex, f.upstream_mac)
    if f.uplink is not None:
        f.traces["ex_in"] = of_trace(ex, of_flow(f.uplink.name, f.upstream_mac, qg.mac, q,
                                                 f.source_ip, q.dest), odp)
    fixed = r.dnat.get(q.dest)
    if fixed is None:
        return f
    f.routes["forward"] = rt = _route(ns, fixed)
    if rt is None or rt.dev not in r.links:
        return f
    qr = r.links[rt.dev]
    f.router_port = rp = ports.get(rt.dev)
    if rp is None:
        return f
    n = r.neighbours.get(fixed)
    f.vm_mac = n[1] if n else None
    if f.vm_mac is None:
        return f
    f.vm_port = _port_by_mac(ports, rp.bridge, rp.tag, f.vm_mac)
    f.traces["int_out"] = of_trace(rp.bridge, of_flow(rt.dev, qr.mac, f.vm_mac, q, f.source_ip,
                                                      fixed), odp)
    if f.vm_port is not None:
        f.traces["int_reply"] = of_trace(rp.bridge, of_flow(f.vm_port.name, f.vm_mac, qr.mac, q,
                                                            fixed, f.source_ip, reply=True), odp)
    f.routes["reply"] = rt2 = _route(ns, f.source_ip, "from", fixed, "iif", rt.dev)
    if rt2 is not None and rt2.dev == qg.name and f.uplink is not None:
        hop = rt2.via or f.source_ip
        n = r.neighbours.get(hop)
        dst_mac = n[1] if n else (f.upstream_mac or "ff:ff:ff:ff:ff:ff")
        f.traces["ex_reply"] = of_trace(ex, of_flow(qg.name, qg.mac, dst_mac, q, q.dest,
                                                    f.source_ip, reply=True), odp)
    return f


def _port_mac(p: Port, tag: int | None) -> str | None:
    """The VM's MAC behind port ``p``: external_ids:attached-mac, else the one its bridge
    learned on it (a veth's own MAC is not the VM's)."""
    if p.iface_id and p.mac:
        return p.mac.lower()
    return next((mac for (vlan, mac), where in fdb(p.bridge).items()
                 if where == str(p.ofport) and vlan == (tag or 0)), None)


def gather_out(q: Query, source_ip: str | None = None, router_id: str | None = None) -> Facts:
    """Everything ``core.trace_out.build_out`` needs for a packet from the port
    ``q.source`` (OVS port name or Neutron port id) to ``q.dest``."""
    ports = ovs_ports()
    vm = ports.get(q.source) or next((p for p in ports.values() if p.iface_id == q.source
                                      and p.router_id is None), None)
    f = Facts(q, source_ip or "", vm_port=vm)
    if vm is None:
        return f
    f.vm_mac = _port_mac(vm, vm.tag)
    names = router_namespaces()
    if router_id and NS_PREFIX + router_id in names:
        names = [NS_PREFIX + router_id]
    for ns in names:  # the router with an interface on the port's VLAN
        r = router_facts(ns)
        if r is None:
            continue
        for name, link in sorted(r.links.items()):
            p = ports.get(name)
            if not name.startswith("qr-") or p is None or p.bridge != vm.bridge \
                    or p.tag != vm.tag:
                continue
            if not f.source_ip and f.vm_mac:  # the VM's address, from the router's neighbours
                f.source_ip = next((ip for ip, (dev, mac, _) in r.neighbours.items()
                                    if dev == name and mac == f.vm_mac), "")
            if f.source_ip and any(ipaddress.ip_address(f.source_ip) in
                                   ipaddress.ip_interface(a).network for a in link.addresses):
                f.router, f.router_port = r, p
                break
        if f.router is not None:
            break
    r, qr = f.router, f.router_port
    if r is None or f.vm_mac is None:
        return f
    odp = parse_dpif_show(_run("ovs-appctl", "dpif/show"))
    qr_link = r.links[qr.name]
    f.traces["int_out"] = of_trace(vm.bridge, of_flow(vm.name, f.vm_mac, qr_link.mac, q,
                                                      f.source_ip, q.dest), odp)
    qg = r.gateway
    f.routes["forward"] = rt = _route(r.namespace, q.dest, "from", f.source_ip, "iif", qr.name)
    if rt is None or qg is None or rt.dev != qg.name:
        return f
    f.gateway_port = ports.get(qg.name)
    n = r.neighbours.get(rt.via or q.dest)
    f.upstream_mac = n[1] if n else None
    if f.gateway_port is None:
        return f
    ex = f.gateway_port.bridge
    f.uplink = _uplink(ports, ex, f.upstream_mac)
    src, _ = snat_source(f)
    mac = f.upstream_mac or "ff:ff:ff:ff:ff:ff"
    if f.uplink is not None:
        f.traces["ex_out"] = of_trace(ex, of_flow(qg.name, qg.mac, mac, q, src, q.dest), odp)
        f.traces["ex_back"] = of_trace(ex, of_flow(f.uplink.name, f.upstream_mac, qg.mac, q,
                                                   q.dest, src, reply=True), odp)
    f.routes["reply"] = _route(r.namespace, f.source_ip, "from", q.dest, "iif", qg.name)
    f.traces["int_back"] = of_trace(vm.bridge, of_flow(qr.name, qr_link.mac, f.vm_mac, q,
                                                       q.dest, f.source_ip, reply=True), odp)
    return f
