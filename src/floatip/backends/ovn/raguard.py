"""No router advertisement from a VM on OVN: an OpenFlow drop of floatip's own on br-int.

OVN 23.03 cannot say it in the Northbound: ovn-northd lets ``nd || nd_ra || nd_rs`` skip
every ACL (a priority-65532 ``next;`` in ``ls_in_acl``, ``ls_out_acl`` and
``ls_in_acl_after_lb``), ovn-controller's port security checks only the addresses of ARP
and neighbour solicitations/advertisements, and no stage before the ACLs takes a match
from the NB. So, as Neutron's openvswitch firewall drops a VM's RAs (its
``ipv6_icmp_type 134`` egress drop), this drops ICMPv6 type 134 at ``br-int``'s table 0
from the ofport of each VM port with port security plugged into this chassis' br-int
(``external_ids:iface-id``, also before ovn-controller claims it), at a priority
above ovn-controller's per-port flow (100), with floatip's cookie. Router ports still
advertise (their RAs come from ovn-controller's pipeline, not from a VM's ofport), DHCP,
neighbour discovery and router solicitations pass as before; a port with port security
off or a trusted port (``network:*``) is not guarded, as in Neutron.

ovn-controller keeps the flow across its recomputes (it changes only the flows it made),
but clears the whole bridge when it (re)connects to ovs-vswitchd: the agent watches table 0
(``ovs-ofctl monitor``; a drop deleted wakes its pass at once) and checks every
``guard_interval`` seconds besides, and puts back what is missing, in one bundle with what
it removes (``ovs-ofctl --bundle``): a port is never half-guarded.
"""
from __future__ import annotations

import os
import re

COOKIE = 0xF10A700000000086   # above ovn-controller's 32-bit cookies; 0x86: RA's type
PRIORITY = 200                 # above ovn-controller's per-port table-0 flow (100)
_IN_PORT = re.compile(r"\bin_port=(\d+)\b")


def match(ofport: int) -> str:
    return f"table=0,priority={PRIORITY},icmp6,in_port={ofport},icmp_type=134"


def target(ovs_db: str | None, bridge: str) -> str:
    """What ``ovs-ofctl`` talks to: the bridge's management socket beside the database's
    socket when OVS runs from a run directory of its own (``unix:DIR/db.sock``: a lab
    chassis), else the bridge's name (the system's OVS)."""
    if ovs_db and ovs_db.startswith("unix:"):
        return f"unix:{os.path.join(os.path.dirname(ovs_db[5:]), bridge)}.mgmt"
    return bridge


def installed(dump: str) -> set[int]:
    """The ofports guarded in ``ovs-ofctl dump-flows ... cookie=COOKIE/-1``'s output."""
    return {int(m.group(1)) for line in dump.splitlines() if (m := _IN_PORT.search(line))}


def bundle(want: set[int], have: set[int]) -> list[str]:
    """``ovs-ofctl add-flows`` lines from ``have`` to ``want`` ([]: nothing to do)."""
    return ([f"delete_strict cookie={COOKIE:#x}/-1,{match(p)}" for p in sorted(have - want)] +
            [f"add cookie={COOKIE:#x},{match(p)},actions=drop" for p in sorted(want - have)])


def guarded_ports(state) -> list[str]:
    """The VM ports (ids) to guard where plugged: port security on, not trusted."""
    return sorted(p.id for p in list(state.ports.values())
                  if p.port_security_enabled and not p.device_owner.startswith("network:"))
