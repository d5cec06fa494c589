"""``floatip trace --from PORT``: a VM's packet out to an address beyond the router (pure,
like ``core.trace``): the VM port, the integration bridge to ``qr-``, the route lookup, the
SNAT (float-SNAT element or rule, else the subnet's SNAT to the gateway address), ``qg-``
and its next hop, the external bridge to the uplink; then the reply back in to the VM."""
from __future__ import annotations

import ipaddress
import shlex

from .trace import Facts, Hop, Trace, _ns, _of_hop, disagreements


def snat_source(f: Facts) -> tuple[str, str]:
    """(the source the packet leaves with, why) for the VM's address ``f.source_ip``."""
    r, ip = f.router, f.source_ip
    fip = r.snat.get(ip)
    if fip is not None:
        return fip, (f"float-SNAT element {ip} : {fip} of map fip_snat"
                     if r.nat_driver == "nftables"
                     else f"float-SNAT rule -s {ip}/32 -j SNAT --to-source {fip}")
    for cidr, to in r.snat_nets:
        if ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False):
            return to, f"the router's SNAT of {cidr} to {to}"
    return ip, "no SNAT for it: it leaves with its own address"


def build_out(f: Facts) -> Trace:
    q, r, vm = f.query, f.router, f.vm_port
    hops: list[Hop] = []
    out = Trace(q, hops, False)

    def stop(hop: Hop) -> Trace:
        hops.append(hop)
        out.stopped, out.reason = hop.name, hop.matched
        out.disagreements = disagreements(f)
        return out

    if vm is None or f.vm_mac is None or not f.source_ip:
        return stop(Hop("VM port", False, f"no port {q.source} with a known MAC and address on "
                                          f"an integration bridge here",
                        "ovs-vsctl --columns=name,external_ids list Interface"))
    hops.append(Hop("VM port", True, f"{vm.name} (MAC {f.vm_mac}, {f.source_ip}) on "
                                     f"{vm.bridge} VLAN tag {vm.tag} sends {q.proto} to "
                                     f"{q.dest}" + (f":{q.port}" if q.port else ""),
                    shlex.join(["ovs-vsctl", "list", "Interface", vm.name])))
    if r is None or f.router_port is None:
        return stop(Hop("router", False, f"no floatip router has an interface on VLAN {vm.tag} "
                                         f"of {vm.bridge} holding {f.source_ip}'s subnet",
                        "ip netns exec qrouter-<id> ip -4 addr show (each router)"))
    qr = f.router_port
    hop = _of_hop("integration bridge", f.traces.get("int_out"), qr.name, "forward")
    if not hop.ok:
        return stop(hop)
    hops.append(hop)
    link = r.links.get(qr.name)
    hops.append(Hop(f"router port {qr.name}", bool(link and link.up),
                    f"{qr.name} VLAN tag {qr.tag}, "
                    f"{', '.join(link.addresses) if link else 'no address'} in {r.namespace}",
                    _ns(r, "ip", "-4", "addr", "show", "dev", qr.name)))
    if not hops[-1].ok:
        return stop(hops.pop())
    qg = r.gateway
    rt = f.routes.get("forward")
    cmd = _ns(r, "ip", "route", "get", q.dest, "from", f.source_ip, "iif", qr.name)
    if rt is None or rt.kind != "unicast" or qg is None or rt.dev != qg.name:
        where = f"dev {rt.dev} ({rt.kind})" if rt else "no route"
        return stop(Hop("route lookup", False, f"{q.dest} from {f.source_ip}: {where}, not the "
                                               f"gateway port" + (
                                                   " (east-west: not traced further)"
                                                   if rt and (rt.dev or "").startswith("qr-")
                                                   else ""), cmd))
    hops.append(Hop("route lookup", True, f"{q.dest} dev {rt.dev}" +
                    (f" via {rt.via}" if rt.via else " (connected)"), cmd))
    src, why = snat_source(f)
    hops.append(Hop("SNAT", True, f"{why}: source {f.source_ip} -> {src}",
                    r.nat_command("snat" if src != f.source_ip and src in r.snat.values()
                                  else "table")))
    nexthop = rt.via or q.dest
    neigh = r.neighbours.get(nexthop)
    hops.append(Hop(f"gateway port {qg.name}", qg.up,
                    f"{qg.name} ({'up' if qg.up else 'DOWN'}); next hop {nexthop} " +
                    (f"lladdr {neigh[1]} {neigh[2]}" if neigh
                     else "without a neighbour entry: the router ARPs for it"),
                    _ns(r, "ip", "neigh", "show", nexthop)))
    if not qg.up:
        return stop(hops.pop())
    hop = _of_hop("external bridge", f.traces.get("ex_out"),
                  f.uplink.name if f.uplink else None, "forward")
    if not hop.ok:
        return stop(hop)
    hops.append(hop)
    # reply: in by the uplink to qg-, conntrack undoes the SNAT, back out of qr- to the VM
    hop = _of_hop("external bridge", f.traces.get("ex_back"), qg.name, "reply")
    if not hop.ok:
        return stop(hop)
    hops.append(hop)
    hops.append(Hop("NAT", True, f"conntrack undoes the SNAT: destination {src} -> "
                                 f"{f.source_ip}",
                    _ns(r, "conntrack", "-L", "-s", f.source_ip, "-d", q.dest), "reply"))
    rt2 = f.routes.get("reply")
    cmd = _ns(r, "ip", "route", "get", f.source_ip, "from", q.dest, "iif", qg.name)
    if rt2 is None or rt2.dev != qr.name:
        return stop(Hop("route lookup", False, f"{f.source_ip}: "
                                               f"{'dev ' + str(rt2.dev) if rt2 else 'no route'}"
                                               f", not {qr.name}", cmd, "reply"))
    hops.append(Hop("route lookup", True, f"{f.source_ip} dev {rt2.dev}", cmd, "reply"))
    hop = _of_hop("integration bridge", f.traces.get("int_back"), vm.name, "reply")
    if not hop.ok:
        return stop(hop)
    hops.append(hop)
    out.delivered = True
    return out
