"""A per-test copy of the seed's topology on documentation ranges, with unique names:
external 203.0.113.0/24 (upstream .1), tenant 198.51.100.0/24 (gateway .1)."""
from __future__ import annotations

import copy
import uuid

from floatip.agent.reconciler import reconcile
from floatip.core.layout import AgentConfig, namespace_name
from floatip.core.document import load
from floatip.core.model import State

# The instance that marks what this test process's dataplanes make. Unmarked routers would be
# taken by every server under test elsewhere on the host (prune all) as its own: one pruned
# a test's router between its namespace and its address (CI: ENODEV on add_address).
TEST_INSTANCE = f"tw{uuid.uuid4().hex[:8]}"

EXT_GW, UPSTREAM_IP = "203.0.113.1", "203.0.113.1"
# IPv6 (routed, no NAT): external 2001:db8:ff::/64 (upstream ::1), tenant 2001:db8:1::/64
EXT6_GW, ROUTER6, TEN6, TEN6_GW = "2001:db8:ff::1", "2001:db8:ff::11", "2001:db8:1::/64", \
    "2001:db8:1::1"


class Topo:
    def __init__(self, lab, dp, nat_driver: str, vlan: int = 3):
        self.sid = uuid.uuid4().hex[:6]
        self.lab, self.dp = lab, dp
        self.int_br, self.ex_br = f"ti{self.sid}", f"tx{self.sid}"
        self.config = AgentConfig(self.int_br, {"physnet1": self.ex_br}, nat_driver)
        self.upstream = f"tup{self.sid}"
        self.vms: dict[str, str] = {}  # port name -> namespace
        lab.bridge(self.int_br)
        lab.bridge(self.ex_br)
        lab.host(self.upstream, self.ex_br, f"tu{self.sid}", "203.0.113.1/24", arp_accept=True)
        s = self.sid
        self.doc = {
            "networks": [
                {"name": f"ext-{s}", "router:external": True, "provider:physical_network": "physnet1"},
                {"name": f"ten-{s}", "provider:network_type": "vlan",
                 "provider:segmentation_id": vlan}],
            "subnets": [
                {"name": f"exts-{s}", "network": f"ext-{s}", "cidr": "203.0.113.0/24",
                 "gateway_ip": EXT_GW},
                {"name": f"tens-{s}", "network": f"ten-{s}", "cidr": "198.51.100.0/24",
                 "gateway_ip": "198.51.100.1"}],
            "ports": [],
            "routers": [{"name": f"r-{s}",
                         "external_gateway_info": {"network": f"ext-{s}",
                                                   "ip_address": "203.0.113.11"},
                         "interfaces": [f"tens-{s}"]}],
            "floatingips": []}
        self.removed: set[str] = set()

    def ipv6(self, mode: str | None = "slaac", dns: tuple[str, ...] = ()) -> None:
        """Dual stack: an IPv6 subnet on both networks (the tenant one with ``mode`` as its RA
        and address mode), the router's gateway and an interface (its own port, as Neutron
        makes for each IPv6 subnet) on them, and the upstream host on the IPv6 external
        subnet with the route back to the tenant prefix through the router."""
        s = self.sid
        self.doc["networks"][1]["mtu"] = 1450  # announced in the RA: the VM's IPv6 MTU
        self.doc["subnets"] += [
            {"name": f"exts6-{s}", "network": f"ext-{s}", "cidr": "2001:db8:ff::/64",
             "ip_version": 6, "gateway_ip": EXT6_GW},
            {"name": f"tens6-{s}", "network": f"ten-{s}", "cidr": TEN6, "ip_version": 6,
             "gateway_ip": TEN6_GW, "ipv6_ra_mode": mode, "ipv6_address_mode": mode,
             "dns_nameservers": list(dns), "enable_dhcp": mode is not None}]
        router = self.doc["routers"][0]
        router["external_gateway_info"]["external_fixed_ips"] = [
            {"ip_address": "203.0.113.11"}, {"subnet": f"exts6-{s}", "ip_address": ROUTER6}]
        router["interfaces"].append(f"tens6-{s}")
        self.lab.add_ipv6(self.upstream, f"{EXT6_GW}/64", ((TEN6, ROUTER6),))

    # names of the per-test resources
    def port(self, name: str) -> str:
        return f"{name}-{self.sid}"

    @property
    def router_id(self) -> str:
        return next(iter(self.state().routers))

    @property
    def ns(self) -> str:
        return namespace_name(self.router_id)

    def vm(self, name: str, ip: str, vlan: int = 3, net: str | None = None,
           gateway: str = "198.51.100.1") -> str:
        """A VM namespace on the integration bridge, with its port in the desired state."""
        self.doc["ports"].append({"name": self.port(name), "network": net or f"ten-{self.sid}",
                                  "fixed_ip": ip})
        mac = next(p.mac_address for p in self.state().ports.values() if p.name == self.port(name))
        ns = f"t{name}{self.sid}"
        self.lab.host(ns, self.int_br, f"tp{name}{self.sid}"[:15], f"{ip}/24", gateway, tag=vlan,
                      mac=mac)
        self.vms[name] = ns
        return ns

    def fip(self, address: str, port: str | None):
        self.doc["floatingips"] = [f for f in self.doc["floatingips"]
                                   if f["floating_ip_address"] != address]
        if port is not False:
            self.doc["floatingips"].append({"floating_ip_address": address,
                                            "port": self.port(port) if port else None})

    def state(self) -> State:
        return load(copy.deepcopy(self.doc))

    def apply(self):
        report = reconcile(self.dp, self.state(), self.config)
        assert report.ok, report.errors
        return report

    def remove_router(self):
        rids = set(self.state().routers)
        report = reconcile(self.dp, State(), self.config, remove=rids)
        self.removed |= rids
        return report

    def close(self):
        """Remove the routers through floatip (the lab removes hosts and bridges)."""
        try:
            reconcile(self.dp, State(), self.config, remove=set(self.state().routers))
        except Exception:  # the lab cleanup still runs; a leftover shows in its assertion
            pass
