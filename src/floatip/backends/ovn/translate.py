"""floatip's desired state -> the OVN Northbound rows that realise it. Pure: no I/O.

Names follow Neutron's ML2/OVN driver, so operators find what they know: a logical switch
``neutron-<network id>`` per network, a ``localnet`` port ``provnet-<network id>`` on external
networks (tenant networks are Geneve overlays unless ``provider_tenant_networks``), a logical switch port named by the port id (VMs bind by iface-id),
a logical router ``neutron-<router id>`` with ports ``lrp-<port id>`` (their peers on the
switches are LSPs named by the router port's id, type ``router``), the gateway port scheduled
on ``Gateway_Chassis`` rows, ``snat`` per tenant subnet and ``dnat_and_snat`` per floating IP.

Every row carries in ``external_ids`` the owner marker (``floatip:owner``), its key
(``floatip:key``, unique per owner) and the floatip object it realises (``floatip:object``:
``network:<id>``, ``subnet:<id>``, ``port:<id>``, ``router:<id>``, ``fip:<id>``; security
groups ``sg:<id>``, address groups ``ag:<id>`` and the drop group ``portsec:drop``: ``acl``),
so a sync can be limited to some objects, and rows of another owner (Neutron, an admin,
another floatip) are never read as ours.
"""
from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

from ...core.model import State, fip_routers, stable_mac
from .acl import add_groups, lsp_addresses
from .dhcp import DHCP_OWNER, dhcp_ports, options_row, port_refs, ra_configs, served
from .port_forwarding import add_forwardings
from .qos import add_fip_qos, add_gateway_qos

OWNER = "floatip:owner"
KEY = "floatip:key"
OBJECT = "floatip:object"

# child table -> (parent table, the parent's column referring to it). Tables not listed
# (Logical_Switch, Logical_Router) are root tables.
PARENT = {
    "Logical_Switch_Port": ("Logical_Switch", "ports"),
    "Logical_Router_Port": ("Logical_Router", "ports"),
    "NAT": ("Logical_Router", "nat"),
    "Logical_Router_Static_Route": ("Logical_Router", "static_routes"),
    "Gateway_Chassis": ("Logical_Router_Port", "gateway_chassis"),
    "ACL": ("Port_Group", "acls"),
    # a root table the router refers to weakly: destroyed, not left to the garbage collector
    "Load_Balancer": ("Logical_Router", "load_balancer"),
    "QoS": ("Logical_Switch", "qos_rules"),
}
# child table -> (table, column) of further rows that hold it besides its parent: a port
# forwarding's load balancer is on its router and on the router's internal switches, so a
# VM reaches another VM through the floating IP's port (hairpin; Neutron's OVN driver)
HOLDERS = {"Load_Balancer": ("Logical_Switch", "load_balancer")}
# leaves first: a new parent is created with its new children already in the transaction
# (a Port_Group refers to LSPs: after them)
TABLES = ("DHCP_Options", "Address_Set", "ACL", "QoS", "Gateway_Chassis", "Logical_Router_Static_Route",
          "NAT", "Load_Balancer", "Logical_Router_Port", "Logical_Switch_Port",
          "Logical_Router", "Logical_Switch", "Port_Group")
# tables whose "name" the NB schema indexes: a name held by a row we do not own is a conflict
NAMED = ("Logical_Switch_Port", "Logical_Router_Port", "Gateway_Chassis", "Port_Group",
         "Address_Set")
MAX_GATEWAY_CHASSIS = 5  # as Neutron


@dataclass(frozen=True)
class Options:
    owner: str                       # this server's marker value, e.g. "floatip:host-a"
    distributed_fip: bool = False    # dnat_and_snat with external_mac + logical_port
    # floatip's tenant VLAN networks are local to the integration bridge (the kernel backend
    # tags br-int ports with it), so on OVN they are Geneve overlays like any tenant network.
    # True: Neutron's reading instead, a localnet port on their physical network + tag.
    provider_tenant_networks: bool = False
    # security groups and port security (``acl``); off: no port group, and every VM port's
    # port_security is its MAC and fixed IPs, as before them
    firewall: bool = False


@dataclass(frozen=True)
class ChassisInfo:
    name: str
    hostname: str = ""
    gateway: bool = False                       # ovn-cms-options has enable-chassis-as-gw
    physnets: frozenset[str] = frozenset()      # from ovn-bridge-mappings


@dataclass(frozen=True)
class Row:
    table: str
    key: str
    obj: str
    columns: dict
    parent: str | None = None  # key of the parent row (child tables only)
    holders: tuple[str, ...] = ()  # keys of the further rows holding it (``HOLDERS``)


@dataclass
class Desired:
    rows: dict[str, Row] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)   # object -> why it is ERROR
    by_obj: dict[str, list[str]] = field(default_factory=dict)  # object -> keys of its rows

    def add(self, table: str, key: str, obj: str, columns: dict, parent: str | None = None,
            owner: str = "", holders: tuple[str, ...] = ()) -> None:
        ext = dict(columns.pop("external_ids", {}))
        ext.update({OWNER: owner, KEY: key, OBJECT: obj})
        columns["external_ids"] = ext
        if key not in self.rows:
            self.by_obj.setdefault(obj, []).append(key)
        self.rows[key] = Row(table, key, obj, columns, parent, holders)

    def objects(self) -> set[str]:
        return set(self.by_obj)

    def replace(self, objects: set[str], new: "Desired") -> None:
        """The rows and problems of ``objects`` replaced by what ``new`` (a translation of
        these objects only) has for them: the whole translation moved forward by a change."""
        for o in objects:
            for k in self.by_obj.pop(o, ()):
                self.rows.pop(k, None)
            self.problems.pop(o, None)
        for o in objects:
            keys = new.by_obj.get(o)
            if keys:
                self.by_obj[o] = list(keys)
                self.rows.update((k, new.rows[k]) for k in keys)
            if o in new.problems:
                self.problems[o] = new.problems[o]


def ls_name(network_id: str) -> str:
    return f"neutron-{network_id}"


def lr_name(router_id: str) -> str:
    return f"neutron-{router_id}"


def lrp_name(port_id: str) -> str:
    return f"lrp-{port_id}"


def fip_mac(fip_id: str) -> str:
    """The MAC a distributed floating IP answers with (Neutron uses the FIP port's MAC;
    floatip has no port for it, so it derives one from the FIP id)."""
    return stable_mac("fip:" + fip_id)


def gateway_chassis_for(router_id: str, physnet: str | None,
                        chassis: list[ChassisInfo]) -> list[tuple[str, int]]:
    """(chassis, priority) for a router's gateway port: gateway chassis that map the
    external network's physical network, highest priority first, the order rotated per
    router so that routers spread over the gateways; stable while the chassis set is."""
    cands = sorted(c.name for c in chassis if c.gateway and physnet in c.physnets)
    if not cands:
        return []
    k = int(hashlib.sha256(router_id.encode()).hexdigest(), 16) % len(cands)
    order = (cands[k:] + cands[:k])[:MAX_GATEWAY_CHASSIS]
    return [(name, len(order) - i) for i, name in enumerate(order)]


def _picked(objects: set[str] | None) -> dict[str, set[str]] | None:
    """{"network": ids, "port": ids, ...} of ``objects`` (None: everything)."""
    if objects is None:
        return None
    out: dict[str, set[str]] = {}
    for o in objects:
        kind, _, oid = o.partition(":")
        out.setdefault(kind, set()).add(oid)
    return out


def translate(state: State, opts: Options, chassis: list[ChassisInfo] = (),
              port_chassis: dict[str, str] | None = None,
              vm_ports: dict[str, dict] | None = None, objects: set[str] | None = None,
              skip: set[str] = frozenset(), fip_router: dict[str, str] | None = None,
              group_ports: dict[str, set[str]] | None = None,
              secured: set[str] | None = None) -> Desired:
    """The NB rows for ``state``. ``chassis``: the SB chassis (for gateway scheduling and
    distributed FIPs); ``port_chassis``: port id -> chassis that bound it; ``vm_ports``:
    the snapshot's per-port info (``admin_state_up``). ``objects``: only the rows of these
    floatip objects (``network:<id>``, ``port:<id>``, ``router:<id>``, ``fip:<id>``), what
    a change touched; ``skip``: objects left out (invalid ones); ``fip_router``: floating
    IP id -> its router, when the caller keeps it (else found here); ``group_ports`` /
    ``secured``: ``acl.members(state)``, likewise."""
    d = Desired()
    port_chassis = port_chassis or {}
    vm_ports = vm_ports or {}
    by_name = {c.name: c for c in chassis}
    own = opts.owner
    want = _picked(objects)

    def pick(kind: str, table: dict) -> list:
        if want is None:
            return [x for x in table.values() if f"{kind}:{x.id}" not in skip]
        return [table[i] for i in sorted(want.get(kind, ()))
                if i in table and f"{kind}:{i}" not in skip]

    for net in pick("network", state.networks):
        obj = f"network:{net.id}"
        d.add("Logical_Switch", f"ls:{net.id}", obj, {
            "name": ls_name(net.id),
            "external_ids": {"neutron:network_name": net.name}}, owner=own)
        if net.physical_network and (net.external or opts.provider_tenant_networks):
            d.add("Logical_Switch_Port", f"provnet:{net.id}", obj, {
                "name": f"provnet-{net.id}", "type": "localnet", "addresses": ["unknown"],
                "options": {"network_name": net.physical_network},
                "tag": [net.segmentation_id] if net.network_type == "vlan" and
                net.segmentation_id else []}, parent=f"ls:{net.id}", owner=own)

    subs = pick("subnet", state.subnets)
    if subs:
        dports = dhcp_ports(state)
        for sub in subs:
            cols = options_row(state, sub, dports.get(sub.network_id))
            if cols is not None:
                d.add("DHCP_Options", f"dhcp:{sub.id}", f"subnet:{sub.id}", cols, owner=own)

    ports = pick("port", state.ports)
    dports = dhcp_ports(state) if any(p.extra_dhcp_opts for p in ports) else {}
    for port in ports:
        if port.network_id not in state.networks:
            continue
        up = vm_ports.get(port.id, {}).get("admin_state_up", True)
        net = state.networks[port.network_id]
        offered = {sid for sid, _ in port.fixed_ips if not net.external
                   and (s := state.subnets.get(sid)) is not None and served(s)}
        # the network's DHCP port is on every chassis (a localport): the DHCP server's
        # address and the metadata next hop of the VMs of its network
        local = port.device_owner == DHCP_OWNER
        if opts.firewall:
            addresses, port_security = lsp_addresses(port)
        else:
            addresses = [" ".join([port.mac_address, *[ip for _, ip in port.fixed_ips]])]
            port_security = [] if local else addresses
        ext = {"neutron:port_name": port.name}
        if local:   # what the metadata agent on each chassis gives the namespace
            ext["neutron:cidrs"] = " ".join(
                f"{ip}/{ipaddress.ip_network(state.subnets[sid].cidr).prefixlen}"
                for sid, ip in port.fixed_ips if sid in state.subnets)
        refs, own_rows = port_refs(state, port, offered, dports)
        for key, cols in own_rows.items():  # its extra DHCP options
            d.add("DHCP_Options", key, f"port:{port.id}", cols, owner=own)
        d.add("Logical_Switch_Port", f"lsp:{port.id}", f"port:{port.id}", {
            "name": port.id, "type": "localport" if local else "", "addresses": addresses,
            "port_security": port_security, "enabled": [bool(up)], "options": {},
            **refs, "external_ids": ext}, parent=f"ls:{port.network_id}", owner=own)

    for router in pick("router", state.routers):
        _router(d, state, router, opts, chassis)

    fips = pick("fip", state.floatingips)
    if fip_router is None:
        fip_router = fip_routers(state) if want is None else \
            {f.id: r.id for f in fips if (r := state.router_for_fip(f)) is not None}
    for fip in fips:
        router = state.routers.get(fip_router.get(fip.id, ""))
        if fip.port_forwardings and not fip.port_id:  # Neutron's load balancers
            if router is not None and router.gateway is not None and \
                    f"router:{router.id}" not in skip:
                add_forwardings(d, state, fip, router, own)
                add_fip_qos(d, fip, router, own)
            continue
        port = state.ports.get(fip.port_id) if fip.port_id else None
        if router is None or port is None or router.gateway is None or \
                f"router:{router.id}" in skip:
            continue
        fixed = fip.fixed_ip_address or _fixed_on_router(state, router, port,
                                                         fip.floating_ip_address)
        if fixed is None:
            continue
        cols = {"type": "dnat_and_snat", "external_ip": fip.floating_ip_address,
                "logical_ip": fixed, "logical_port": [], "external_mac": [],
                "external_ids": {"neutron:fip_id": fip.id}}
        ext_net = state.networks.get(fip.floating_network_id)
        bound = by_name.get(port_chassis.get(port.id, ""))
        if opts.distributed_fip and ext_net is not None and bound is not None and \
                ext_net.physical_network in bound.physnets:
            cols["logical_port"] = [port.id]
            cols["external_mac"] = [fip_mac(fip.id)]
        d.add("NAT", f"nat:{router.id}:fip:{fip.id}", f"fip:{fip.id}", cols,
              parent=f"lr:{router.id}", owner=own)
        add_fip_qos(d, fip, router, own, port.id if cols["logical_port"] else None)
    if opts.firewall:
        add_groups(d, state, want, skip, own, group_ports, secured)
    return d


def _version(address: str) -> int:
    return ipaddress.ip_address(address.split("/")[0]).version


def _router(d: Desired, state: State, router, opts: Options, chassis) -> None:
    obj, lr, own = f"router:{router.id}", f"lr:{router.id}", opts.owner
    d.add("Logical_Router", lr, obj, {
        "name": lr_name(router.id), "enabled": [bool(router.admin_state_up)],
        "external_ids": {"neutron:router_name": router.name}}, owner=own)

    def port_pair(port_id, network_id, mac, networks: list[str], gateway: bool,
                  subnet_ids: list[str] = ()) -> None:
        d.add("Logical_Router_Port", f"lrp:{port_id}", obj, {
            "name": lrp_name(port_id), "mac": mac, "networks": networks,
            "ipv6_ra_configs": ra_configs(state, list(subnet_ids))}, parent=lr, owner=own)
        opts_ = {"router-port": lrp_name(port_id)}
        if gateway:  # the gateway chassis answers ARP / sends GARPs for NAT addresses
            opts_["nat-addresses"] = "router"
        d.add("Logical_Switch_Port", f"lsp:{port_id}", obj, {
            "name": port_id, "type": "router", "addresses": ["router"],
            "port_security": [], "options": opts_, "enabled": [True]},
            parent=f"ls:{network_id}", owner=own)

    def cidr_of(subnet_id: str, ip: str) -> str | None:
        sub = state.subnets.get(subnet_id)
        if sub is None:
            return None
        return f"{ip}/{ipaddress.ip_network(sub.cidr).prefixlen}"

    gw = router.gateway
    if gw is not None:
        sub = state.subnets.get(gw.subnet_id)
        net = state.networks.get(gw.network_id)
        if sub is not None and net is not None:
            # every address of the gateway port (IPv6 ones routed, no NAT)
            extra = [c for sid, ip in gw.extra_ips if (c := cidr_of(sid, ip))]
            port_pair(gw.port_id, gw.network_id, gw.mac_address,
                      [cidr_of(gw.subnet_id, gw.ip_address), *extra], True)
            add_gateway_qos(d, router, own)
            sched = gateway_chassis_for(router.id, net.physical_network, chassis)
            if not sched:
                d.problems[obj] = (f"no gateway chassis (ovn-cms-options=enable-chassis-as-gw) "
                                   f"maps physical network {net.physical_network}")
            for name, prio in sched:
                gc = f"{lrp_name(gw.port_id)}_{name}"
                d.add("Gateway_Chassis", f"gc:{gw.port_id}:{name}", obj, {
                    "name": gc, "chassis_name": name, "priority": prio},
                    parent=f"lrp:{gw.port_id}", owner=own)
            for sid in [gw.subnet_id, *(s for s, _ in gw.extra_ips)]:
                gsub = state.subnets.get(sid)
                if gsub is None or not gsub.gateway_ip:
                    continue
                default = "0.0.0.0/0" if _version(gsub.gateway_ip) == 4 else "::/0"
                d.add("Logical_Router_Static_Route", f"route:{router.id}:{default}", obj, {
                    "ip_prefix": default, "nexthop": gsub.gateway_ip}, parent=lr, owner=own)
    # a router port with addresses on several subnets (IPv4 and IPv6) is one LRP
    ports: dict[str, tuple[str, str, list[str], list[str]]] = {}
    for itf in router.interfaces:
        sub = state.subnets.get(itf.subnet_id)
        if sub is None or sub.network_id not in state.networks:
            continue
        entry = ports.setdefault(itf.port_id, (sub.network_id, itf.mac_address, [], []))
        entry[2].append(cidr_of(itf.subnet_id, itf.ip_address))
        entry[3].append(itf.subnet_id)
        # SNAT to the gateway's address: IPv4 subnets only (IPv6 is routed)
        if gw is not None and gw.enable_snat and \
                ipaddress.ip_network(sub.cidr).version == _version(gw.ip_address):
            d.add("NAT", f"nat:{router.id}:snat:{sub.cidr}", obj, {
                "type": "snat", "external_ip": gw.ip_address, "logical_ip": sub.cidr,
                "logical_port": [], "external_mac": []}, parent=lr, owner=own)
    for port_id, (network_id, mac, networks, subnet_ids) in ports.items():
        port_pair(port_id, network_id, mac, networks, False, subnet_ids)
    for dest, nexthop in router.routes:
        d.add("Logical_Router_Static_Route", f"route:{router.id}:{dest}:{nexthop}", obj, {
            "ip_prefix": dest, "nexthop": nexthop}, parent=lr, owner=own)


def _fixed_on_router(state: State, router, port, floating_ip: str) -> str | None:
    """The port's address on one of the router's subnets, of the floating IP's version."""
    subnets = {i.subnet_id for i in router.interfaces}
    version = _version(floating_ip)
    return next((ip for sid, ip in port.fixed_ips
                 if sid in subnets and _version(ip) == version), None)
