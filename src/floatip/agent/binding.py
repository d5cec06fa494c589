"""VM attachment, the way hypervisors do it.

libvirt and os-vif plug a VM's tap into the integration bridge with
``external_ids:iface-id=<port id>`` and ``attached-mac``. ``Binder`` watches the bridge through
its own OVSDB connection (an IDL notification, not polling): an interface whose iface-id is a
floatip port gets the port's local VLAN as its tag and the port is bound (``binding:host_id``,
status ACTIVE). A port that is administratively down, or whose floatip port was deleted, goes
to the dead VLAN 4095. An interface floatip never knew is never touched: it gets no tenant
VLAN (``port plug`` parks its own interfaces on 4095 until the agent knows them), and its tag
is not changed — the only OVS ports floatip changes are its own and those of floatip ports —
except on an integration bridge that floatip created itself (``external_ids:floatip-owned``):
there floatip is the only L2 agent, and an unknown iface-id is parked on the dead VLAN 4095,
as Neutron's OVS agent does.
Interfaces without an iface-id, and floatip's own router ports, are never touched.

``plug``/``unplug`` do the hypervisor's part for a network namespace (a container): a veth
pair, the port's MAC and fixed IP, a default route via the subnet gateway.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import subprocess
import threading
from typing import Callable

from ovsdbapp.backend.ovs_idl import connection, idlutils
from ovsdbapp.schema.open_vswitch import impl_idl

from ..core.dhcp import DEAD_VLAN
from ..core.errors import NeutronError
from ..core.layout import OWNER_KEY
from ..core.names import check_ifname
from ..dataplane.ovs import OVSDB, datapath_type as dp_type, idl_rows

log = logging.getLogger("floatip.binding")
PLUGGED_KEY = "floatip-plugged"  # external_ids mark on the interfaces ``plug`` creates


class Binder:
    def __init__(self, bridge: str, host: str, on_change: Callable[[], None] | None = None,
                 ovsdb: str = OVSDB):
        self.bridge = check_ifname(bridge)
        self.host = host
        self.on_change = on_change or (lambda: None)
        self.ovsdb = ovsdb
        self._api = None
        self._lock = threading.Lock()
        self.managed: set[str] = set()  # OVS ports this binder tagged for a floatip port
        self.iface_ids: set[str] = set()  # port ids an interface on the bridge carried

    @property
    def api(self):
        if self._api is None:
            helper = idlutils.get_schema_helper(self.ovsdb, "Open_vSwitch")
            # Only the columns that matter: Interface statistics change every few seconds
            # and must not wake the agent.
            helper.register_columns("Open_vSwitch", ["bridges", "cur_cfg", "next_cfg"])
            helper.register_columns("Bridge", ["name", "ports", "external_ids"])
            helper.register_columns("Port", ["name", "tag", "interfaces"])
            helper.register_columns("Interface", ["name", "external_ids", "ofport"])
            binder = self

            class Idl(connection.OvsdbIdl):
                """Wakes the agent for VM interfaces (an iface-id, not floatip's) of the
                integration bridge only: churn on other bridges of the host, and floatip's
                own router ports, never wake it. Membership is checked after each IDL run,
                when the Bridge, Port and Interface rows of an update are all in place."""
                pending: set = set()
                ours: set = set()   # uuids of VM interfaces last seen on the bridge

                def notify(self, event, row, updates=None):
                    try:
                        if row._table.name != "Interface":
                            return
                        ids = getattr(row, "external_ids", {}) or {}
                        if event == "delete":
                            if row.uuid in self.ours:
                                self.ours.discard(row.uuid)
                                binder.on_change()
                        elif "iface-id" in ids and OWNER_KEY not in ids:
                            self.pending.add(row.uuid)
                    except Exception:  # noqa: BLE001 - a notification must never kill the IDL
                        pass

                def run(self):
                    out = super().run()
                    if self.pending:
                        pending, self.pending = self.pending, set()
                        try:
                            self.ours = binder._vm_interfaces(self)
                            if pending & self.ours:
                                binder.on_change()
                        except Exception:  # noqa: BLE001
                            binder.on_change()
                    return out

            idl = Idl(self.ovsdb, helper)
            # ovsdbapp keeps one connection per API class: a class of our own keeps this
            # connection (with its notifications) apart from the dataplane's.
            api_class = type("BinderApi", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
            self._api = api_class(connection.Connection(idl=idl, timeout=10))
        return self._api

    def _vm_interfaces(self, idl) -> set:
        """uuids of the interfaces with an iface-id (not floatip's) on the bridge."""
        bridge = next((b for b in idl_rows(idl.tables["Bridge"]) if b.name == self.bridge), None)
        out = set()
        for port in list(bridge.ports) if bridge is not None else []:
            for itf in port.interfaces:
                ids = itf.external_ids or {}
                if "iface-id" in ids and OWNER_KEY not in ids:
                    out.add(itf.uuid)
        return out

    def ofports(self) -> dict[str, int]:
        """port id -> OpenFlow port number of the VM interfaces on the bridge (the
        firewall's ``in_port``), from this binder's OVSDB copy."""
        with self._lock:
            api = self.api
            bridge = next((b for b in idl_rows(api.tables["Bridge"]) if b.name == self.bridge),
                          None)
            out = {}
            for port in list(bridge.ports) if bridge is not None else []:
                for itf in port.interfaces:
                    ids = itf.external_ids or {}
                    ofport = itf.ofport[0] if itf.ofport else None
                    if ids.get("iface-id") and OWNER_KEY not in ids and ofport and ofport > 0:
                        out[ids["iface-id"]] = ofport
            return out

    def close(self) -> None:
        if self._api is not None:
            self._api.ovsdb_connection.stop()
            self._api = None

    def sync(self, vm_ports: dict[str, dict], report: set[str] | None = None) -> dict[str, dict]:
        """Tag every VM interface on the bridge; return ``{port_id: {status, host}}`` for the
        ports of ``vm_ports`` (id -> {tag, admin_state_up, host}), or of ``report`` only when
        given: ACTIVE where an interface carries the port's id, DOWN for ports bound to this
        host that have none any more. ``report`` naming no VM port and no port an interface
        carried (a floating IP's own port, a router's) leaves the bridge unread: the pass of
        a floating IP does not walk every port of the bridge."""
        if report is not None and not any(p in vm_ports or p in self.iface_ids for p in report):
            return {}  # (no set of every VM port: a pass costs what it touches)
        with self._lock:
            api = self.api
            bridge = next((b for b in idl_rows(api.tables["Bridge"]) if b.name == self.bridge),
                          None)
            # on its own bridge floatip is the L2 agent: unknown iface-ids go to the dead VLAN
            own_bridge = bridge is not None and \
                (bridge.external_ids or {}).get("floatip-owned") == "true"
            seen: set[str] = set()
            carried: set[str] = set()
            changes = []
            for port in list(bridge.ports) if bridge is not None else []:
                for itf in port.interfaces:
                    ids = itf.external_ids or {}
                    pid = ids.get("iface-id")
                    if not pid or OWNER_KEY in ids:
                        continue
                    carried.add(pid)
                    info = vm_ports.get(pid)
                    tag = DEAD_VLAN
                    if info is not None:
                        self.managed.add(port.name)
                        if info.get("admin_state_up", True) and info.get("tag") is not None:
                            tag = info["tag"]
                            seen.add(pid)
                    elif port.name not in self.managed and PLUGGED_KEY not in ids \
                            and not own_bridge:
                        continue  # never a floatip port, on a bridge of others: not ours
                    have = port.tag[0] if port.tag else None
                    if have != tag:
                        changes.append((port.name, tag))
            self.iface_ids = carried
            if changes:
                with api.transaction(check_error=True) as txn:
                    for name, tag in changes:
                        txn.add(api.db_set("Port", name, ("tag", tag)))
                for name, tag in changes:
                    log.info("VM port %s: tag %s", name, tag)
        out = {}
        todo = vm_ports.items() if report is None else \
            [(p, vm_ports[p]) for p in report if p in vm_ports]
        for pid, info in todo:
            if pid in seen:
                out[pid] = {"status": "ACTIVE", "host": self.host}
            elif info.get("host") in (self.host, "") and info.get("status") == "ACTIVE":
                out[pid] = {"status": "DOWN"}
        return out


# ---------------------------------------------------------------------------------------
# plug / unplug a network namespace

def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True)
    if check and r.returncode:
        raise NeutronError(f"{' '.join(argv[:4])}: {r.stderr.strip()}", "PlugFailed", 500)
    return r


def tap_name(port_id: str) -> str:
    """Nova's and os-vif's name for a port's tap: ``tap`` + the port id, 14 characters."""
    return check_ifname(("tap" + str(port_id))[:14])


def check_netns(name: str) -> str:
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "-_." for c in name) \
            or name in (".", ".."):
        raise NeutronError(f"Invalid namespace name {name!r}: 1-64 characters of [A-Za-z0-9-_.]")
    return name


def plug(port: dict, subnets: dict[str, dict], netns: str, bridge: str, ifname: str = "eth0",
         datapath_type: str | None = None, addresses: bool = True) -> str:
    """Wire ``port`` (an API port dict) into ``netns``; ``subnets`` maps subnet id -> API
    subnet dict. ``addresses=False`` leaves the fixed IP and route to DHCP. The OVS port starts on the dead VLAN; the agent sets the real tag when it
    sees the iface-id. Returns the host-side device name."""
    check_netns(netns)
    check_ifname(ifname)
    check_ifname(bridge)
    if not os.path.exists(f"/run/netns/{netns}"):
        raise NeutronError(f"Network namespace {netns} does not exist", "NotFound", 404)
    tap = tap_name(port["id"])
    inns = ["ip", "netns", "exec", netns]
    if _run(["ip", "link", "show", "dev", tap], check=False).returncode == 0:
        raise NeutronError(f"Port {port['id']} is already plugged ({tap} exists)", "PortInUse", 409)
    _run(["ip", "link", "add", tap, "type", "veth", "peer", "name", ifname, "netns", netns])
    try:
        _run(["ovs-vsctl", "--", "--may-exist", "add-port", bridge, tap, "tag=%d" % DEAD_VLAN,
              "--", "set", "Interface", tap, f"external_ids:iface-id={port['id']}",
              f"external_ids:attached-mac={port['mac_address']}",
              "external_ids:iface-status=active", f"external_ids:{PLUGGED_KEY}=true"])
        if (datapath_type or dp_type()) == "netdev":
            # OVS' userspace datapath passes partial checksums through: offload off, both ends.
            _run(["ethtool", "-K", tap, "tx", "off"])
            _run([*inns, "ethtool", "-K", ifname, "tx", "off"])
        _run(["ip", "link", "set", tap, "up"])
        _run([*inns, "ip", "link", "set", ifname, "address", port["mac_address"]])
        _run([*inns, "ip", "link", "set", "lo", "up"])
        _run([*inns, "ip", "link", "set", ifname, "up"])
        gateways: dict[int, str] = {}
        for f in port["fixed_ips"] if addresses else ():
            sn = subnets.get(f["subnet_id"])
            if sn is None:
                continue
            net = ipaddress.ip_network(sn["cidr"])
            if net.version == 6 and sn.get("ipv6_address_mode") in ("slaac", "dhcpv6-stateless"):
                continue  # the kernel's autoconf makes it from the router's advertisement
            _run([*inns, "ip", "addr", "add", f"{f['ip_address']}/{net.prefixlen}", "dev", ifname]
                 + (["nodad"] if net.version == 6 else []))
            if sn.get("gateway_ip") and (net.version == 4 or not sn.get("ipv6_ra_mode")):
                gateways.setdefault(net.version, sn["gateway_ip"])  # else the RA's route
        for gateway in gateways.values():
            _run([*inns, "ip", "route", "replace", "default", "via", gateway, "dev", ifname])
    except Exception:
        unplug(port["id"], bridge)
        raise
    return tap


def unplug(port_id: str, bridge: str | None = None) -> bool:
    """Remove the OVS port and the veth pair of ``port_id``; True if something was there."""
    tap = tap_name(port_id)
    found = False
    r = _run(["ovs-vsctl", "--bare", "--columns=name", "find", "Interface",
              f"external_ids:iface-id={port_id}"], check=False)
    for name in r.stdout.split():
        if name == tap:
            _run(["ovs-vsctl", "--if-exists", "del-port", name], check=False)
            found = True
    if _run(["ip", "link", "delete", tap], check=False).returncode == 0:
        found = True
    return found
