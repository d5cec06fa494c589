"""Bandwidth limits on OVN as Neutron's OVN driver writes them: a ``QoS`` row per direction
on the external network's logical switch, ``from-lport`` (egress) / ``to-lport``
(ingress) on the router's gateway port; a floating IP's rows match its address (priority
2003, ``neutron:fip_id``) where it is NATed, a gateway's the whole port (priority 2002,
``neutron:router_id``). OVN on the netdev datapath meters them in OVS userspace."""
from __future__ import annotations

FIP_PRIORITY, GATEWAY_PRIORITY = 2003, 2002  # Neutron's OVN_QOS_*_RULE_PRIORITY


def _add(d, key: str, obj: str, network_id: str, gw_port_id: str, limits, own: str,
         ext: dict, ip: str | None = None, resident: str | None = None) -> None:
    for direction, kbps, burst in limits:
        egress = direction == "egress"
        match = f'{"inport" if egress else "outport"} == "{gw_port_id}"'
        if ip:
            match += f' && ip4.{"src" if egress else "dst"} == {ip} && ' \
                     f'is_chassis_resident("{resident}")'
        bandwidth = {"rate": kbps, **({"burst": burst} if burst else {})}
        d.add("QoS", f"qos:{key}:{direction}", obj, {
            "priority": FIP_PRIORITY if ip else GATEWAY_PRIORITY,
            "direction": "from-lport" if egress else "to-lport", "match": match,
            "action": {}, "bandwidth": bandwidth, "external_ids": dict(ext)},
            parent=f"ls:{network_id}", owner=own)


def add_fip_qos(d, fip, router, own: str, resident: str | None = None) -> None:
    """``fip``'s limits on its router's gateway port; ``resident``: the port where it is
    NATed (a distributed floating IP's VM port), else the gateway's chassisredirect port."""
    gw = router.gateway
    _add(d, f"fip:{fip.id}", f"fip:{fip.id}", gw.network_id, gw.port_id, fip.qos, own,
         {"neutron:fip_id": fip.id}, fip.floating_ip_address,
         resident or f"cr-lrp-{gw.port_id}")


def add_gateway_qos(d, router, own: str) -> None:
    gw = router.gateway
    _add(d, f"router:{router.id}", f"router:{router.id}", gw.network_id, gw.port_id,
         router.gateway_qos, own, {"neutron:router_id": router.id})
