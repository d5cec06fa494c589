"""Port forwardings on OVN as Neutron's OVN driver writes them: per floating IP and
protocol a ``Load_Balancer`` named ``pf-floatingip-<fip id>-<protocol>`` on the router,
one VIP per external port ``"FIP:port" -> "fixed ip:port"`` (ranges unrolled, as the driver
does with ``unroll_port_ranges``), Neutron's external_ids plus floatip's owner marker. Each
load balancer is also on the logical switches of the router's internal networks, as the
driver puts it there: a VM reaches another VM through the floating IP's port (hairpin)."""
from __future__ import annotations

from ...core.layout import forward_elements
from ...core.model import FloatingIP, Router, State

PF_OWNER = "port_forwarding_plugin"  # Neutron's neutron:device_owner of these rows


def lb_name(fip_id: str, protocol: str) -> str:
    return f"pf-floatingip-{fip_id}-{protocol}"


def add_forwardings(d, state: State, fip: FloatingIP, router: Router, own: str) -> None:
    """The load balancers of ``fip``'s forwardings, held by ``router``'s logical router and
    by the switches of its interfaces (Neutron: the router's ports without a gateway
    chassis)."""
    forwards = tuple((fip.floating_ip_address, pf.protocol, pf.external_port_start,
                      pf.external_port_end, pf.internal_ip_address, pf.internal_port_start,
                      pf.internal_port_end, pf.id) for pf in fip.port_forwardings)
    vips: dict[str, dict[str, str]] = {}
    for (ip, proto, lo, hi), (fixed, port) in sorted(forward_elements(forwards).items()):
        for p in range(lo, hi + 1):  # N ports to one: a VIP per external port
            vips.setdefault(proto, {})[f"{ip}:{p}"] = f"{fixed}:{port}"
    switches = tuple(sorted({f"ls:{state.subnets[i.subnet_id].network_id}"
                             for i in router.interfaces if i.subnet_id in state.subnets}))
    for proto, v in sorted(vips.items()):
        d.add("Load_Balancer", f"lb:{router.id}:pf:{fip.id}:{proto}", f"fip:{fip.id}",
              {"name": lb_name(fip.id, proto), "protocol": [proto], "vips": v,
               "external_ids": {"neutron:device_owner": PF_OWNER, "neutron:fip_id": fip.id,
                                "neutron:router_name": f"neutron-{router.id}"}},
              parent=f"lr:{router.id}", owner=own, holders=switches)
