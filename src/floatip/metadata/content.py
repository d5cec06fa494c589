"""What a VM reads from 169.254.169.254, built from the desired state. Pure.

``find_instance(state, router_id, ip)`` (the router's proxy asked) and
``find_on_network(state, network_id, ip)`` (OVN's per-network proxy asked) are the only ways
to an ``Instance``: the port whose fixed IP is the request's source address on one of the
router's tenant subnets, or on the network. ``answer``
renders Nova's two trees for it: the EC2 one (``/latest/meta-data/...``) and the OpenStack
one (``/openstack/latest/meta_data.json``, ``network_data.json``, ``user_data``).
"""
from __future__ import annotations

import ipaddress
import json
import operator
from dataclasses import dataclass

from ..core.dhcp import hostname as dhcp_hostname
from ..core.model import State

EC2_VERSIONS = ("1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
                "2008-02-01", "2008-09-01", "2009-04-04")
OS_VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30",
               "2016-10-06", "2017-02-22", "2018-08-27", "2020-10-14")


@dataclass(frozen=True)
class Instance:
    port_id: str
    instance_id: str          # Nova's instance uuid: the port's device_id (else the port id)
    project_id: str
    name: str
    hostname: str
    mac: str
    local_ipv4: str
    cidr: str
    gateway_ip: str | None
    dns_nameservers: tuple[str, ...]
    host_routes: tuple[tuple[str, str], ...]
    mtu: int
    network_id: str
    public_ipv4: str | None
    user_data: str | None
    public_keys: tuple[tuple[str, str], ...]


def find_instance(state: State, router_id: str, ip: str) -> Instance | None:
    """The port behind ``ip`` on one of ``router_id``'s tenant subnets, or None."""
    router = state.routers.get(router_id)
    if router is None or not ip:
        return None
    subnets = {itf.subnet_id for itf in router.interfaces}
    return _find(state, ip, lambda sid, port: sid in subnets,
                 lambda f: (r := state.router_for_fip(f)) is not None and r.id == router_id)


def find_on_network(state: State, network_id: str, ip: str) -> Instance | None:
    """The port behind ``ip`` on network ``network_id`` (OVN's metadata namespace of that
    network asks), or None; its floating IP whatever router carries it."""
    if network_id not in state.networks or not ip:
        return None
    return _find(state, ip, lambda sid, port: port.network_id == network_id,
                 lambda f: state.router_for_fip(f) is not None)


def _find(state: State, ip: str, where, fip_ok) -> Instance | None:
    # list(): one step (the agent's thread changes the maps in place between passes)
    for port in list(state.ports.values()):
        if port.device_owner.startswith("network:"):
            continue  # DHCP ports and the like are no instances
        for sid, fixed in port.fixed_ips:
            if fixed != ip or not where(sid, port) or sid not in state.subnets:
                continue
            sub = state.subnets[sid]
            net = state.networks[port.network_id]
            fip = next((f.floating_ip_address for f in list(state.floatingips.values())
                        if f.port_id == port.id and f.fixed_ip_address in (None, ip)
                        and fip_ok(f)), None)
            return Instance(
                port_id=port.id, instance_id=port.device_id or port.id,
                project_id=port.project_id, name=port.name or dhcp_hostname("", ip),
                hostname=dhcp_hostname(port.name, ip, port.dns_name), mac=port.mac_address,
                local_ipv4=ip,
                cidr=sub.cidr, gateway_ip=sub.gateway_ip,
                dns_nameservers=tuple(sub.dns_nameservers), host_routes=tuple(sub.host_routes),
                mtu=net.mtu, network_id=net.id, public_ipv4=fip, user_data=port.user_data,
                public_keys=tuple(port.public_keys))
    return None


def instance_table(state: State, routers,
                   cache: dict | None = None) -> dict[str, dict[str, dict]]:
    """router id -> fixed IP -> the ``Instance`` ``find_instance`` gives (as plain data),
    for ``routers``: what a metadata process apart from the agent answers from. One walk
    over ports and floating IPs, not one per address. ``cache`` (kept by the caller between
    calls): an entry whose port, subnet, network and floating IP are the same objects is
    reused, not built again; ``cache["changed"]`` says whether anything differs from the
    last call."""
    old = cache.get("entries", {}) if cache is not None else {}
    entries: dict = {}
    changed = False
    fips: dict[str, list] = {}
    for f in list(state.floatingips.values()):
        if f.port_id:
            fips.setdefault(f.port_id, []).append(f)
    by_subnet: dict[str, list[str]] = {}
    table: dict[str, dict[str, dict]] = {}
    for rid in routers:
        r = state.routers.get(rid)
        if r is None:
            continue
        table[rid] = {}
        for itf in r.interfaces:
            by_subnet.setdefault(itf.subnet_id, []).append(rid)
    for port in list(state.ports.values()):
        if port.device_owner.startswith("network:"):
            continue
        for sid, ip in port.fixed_ips:
            for rid in by_subnet.get(sid, ()):
                if ip in table[rid]:
                    continue  # find_instance: the first port with that address
                sub, net = state.subnets[sid], state.networks[port.network_id]
                mine = fips.get(port.id, ())
                key = (rid, ip)
                hit = old.get(key)
                if hit is not None and hit[0] is port and hit[1] is sub and hit[2] is net \
                        and len(hit[3]) == len(mine) and all(map(operator.is_, hit[3], mine)):
                    doc = hit[4]   # the same objects: the same answer
                else:
                    fip = next((f.floating_ip_address for f in mine
                                if f.fixed_ip_address in (None, ip)
                                and (x := state.router_for_fip(f)) is not None
                                and x.id == rid), None)
                    changed = True
                    doc = dict(vars(Instance(
                        port_id=port.id, instance_id=port.device_id or port.id,
                        project_id=port.project_id, name=port.name or dhcp_hostname("", ip),
                        hostname=dhcp_hostname(port.name, ip, port.dns_name), mac=port.mac_address,
                        local_ipv4=ip, cidr=sub.cidr, gateway_ip=sub.gateway_ip,
                        dns_nameservers=tuple(sub.dns_nameservers),
                        host_routes=tuple(sub.host_routes), mtu=net.mtu, network_id=net.id,
                        public_ipv4=fip, user_data=port.user_data,
                        public_keys=tuple(port.public_keys))))
                entries[key] = (port, sub, net, mine, doc)
                table[rid][ip] = doc
    if cache is not None:
        cache["changed"] = changed or entries.keys() != old.keys() or \
            set(table) != cache.get("routers")
        cache["entries"], cache["routers"] = entries, set(table)
    return table


def instance_from(doc: dict) -> Instance:
    """``instance_table``'s plain data back to an ``Instance`` (tuples from JSON lists)."""
    return Instance(**{**doc, "dns_nameservers": tuple(doc["dns_nameservers"]),
                       "host_routes": tuple(tuple(x) for x in doc["host_routes"]),
                       "public_keys": tuple(tuple(x) for x in doc["public_keys"])})


# ---------------------------------------------------------------------------------------
# The trees

def _text(lines) -> tuple[int, str, bytes]:
    return 200, "text/plain", "\n".join(lines).encode()


def _json(doc) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps(doc).encode()


NOT_FOUND = (404, "text/plain", b"Not Found")


def ec2_meta_data(inst: Instance) -> dict:
    """The EC2 tree below ``meta-data/``: leaves are strings, directories dicts."""
    md: dict = {
        "ami-id": "", "ami-launch-index": "0", "ami-manifest-path": "FIXME",
        "instance-id": inst.instance_id, "instance-type": "",
        "hostname": inst.hostname, "local-hostname": inst.hostname,
        "public-hostname": inst.hostname, "local-ipv4": inst.local_ipv4, "mac": inst.mac,
        "placement": {"availability-zone": "nova"}, "reservation-id": "",
        "security-groups": "",
    }
    if inst.public_ipv4:
        md["public-ipv4"] = inst.public_ipv4
    if inst.public_keys:
        md["public-keys"] = {str(i): {"openssh-key": key}
                             for i, (_, key) in enumerate(inst.public_keys)}
    return md


def _ec2(inst: Instance, parts: list[str]) -> tuple[int, str, bytes]:
    if not parts or parts == [""]:
        return _text(["meta-data/"] + (["user-data"] if inst.user_data is not None else []))
    if parts[0] == "user-data" and len(parts) == 1:
        return (200, "text/plain", inst.user_data.encode()) if inst.user_data is not None \
            else NOT_FOUND
    if parts[0] != "meta-data":
        return NOT_FOUND
    path = [p for p in parts[1:] if p]
    if path == ["public-keys"] and inst.public_keys:  # EC2 lists keys as "index=name"
        return _text(f"{i}={name}" for i, (name, _) in enumerate(inst.public_keys))
    node = ec2_meta_data(inst)
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return NOT_FOUND
    if isinstance(node, dict):
        return _text(sorted(k + "/" if isinstance(v, dict) else k for k, v in node.items()))
    return 200, "text/plain", node.encode()


def meta_data_json(inst: Instance) -> dict:
    return {"uuid": inst.instance_id, "name": inst.name, "hostname": inst.hostname,
            "project_id": inst.project_id, "availability_zone": "nova", "launch_index": 0,
            "public_keys": dict(inst.public_keys),
            "keys": [{"name": n, "type": "ssh", "data": k} for n, k in inst.public_keys],
            "meta": {}, "devices": []}


def network_data_json(inst: Instance) -> dict:
    net = ipaddress.ip_network(inst.cidr)
    routes = [{"network": str(ipaddress.ip_network(d, strict=False).network_address),
               "netmask": str(ipaddress.ip_network(d, strict=False).netmask), "gateway": h}
              for d, h in inst.host_routes]
    if inst.gateway_ip:
        routes.append({"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": inst.gateway_ip})
    link = "tap" + inst.port_id[:11]
    return {"links": [{"id": link, "vif_id": inst.port_id, "type": "ovs", "mtu": inst.mtu,
                       "ethernet_mac_address": inst.mac}],
            "networks": [{"id": "network0", "type": "ipv4", "link": link,
                          "ip_address": inst.local_ipv4, "netmask": str(net.netmask),
                          "routes": routes, "network_id": inst.network_id,
                          "services": [{"type": "dns", "address": a}
                                       for a in inst.dns_nameservers]}],
            "services": [{"type": "dns", "address": a} for a in inst.dns_nameservers]}


def _openstack(inst: Instance, parts: list[str]) -> tuple[int, str, bytes]:
    if not parts or parts == [""]:
        return _text(list(OS_VERSIONS) + ["latest"])
    if parts[0] not in OS_VERSIONS and parts[0] != "latest":
        return NOT_FOUND
    rest = "/".join(p for p in parts[1:] if p)
    if rest == "":
        return _text(["meta_data.json", "network_data.json", "vendor_data.json",
                      "vendor_data2.json"] + (["user_data"] if inst.user_data is not None else []))
    if rest == "meta_data.json":
        return _json(meta_data_json(inst))
    if rest == "network_data.json":
        return _json(network_data_json(inst))
    if rest in ("vendor_data.json", "vendor_data2.json"):
        return _json({})
    if rest == "user_data":
        return (200, "application/octet-stream", inst.user_data.encode()) \
            if inst.user_data is not None else NOT_FOUND
    return NOT_FOUND


def answer(inst: Instance, path: str) -> tuple[int, str, bytes]:
    """(status, content type, body) for ``path`` (the query string already cut off)."""
    parts = path.strip().lstrip("/").split("/")
    if parts == [""]:
        return _text(list(EC2_VERSIONS) + ["latest"])
    if parts[0] == "openstack":
        return _openstack(inst, parts[1:])
    if parts[0] in EC2_VERSIONS or parts[0] == "latest":
        return _ec2(inst, parts[1:])
    return NOT_FOUND
