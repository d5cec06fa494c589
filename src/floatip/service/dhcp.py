"""API-side DHCP, as Neutron does it: a tenant network with a DHCP-enabled subnet has one DHCP
port (``device_owner: network:dhcp``, ``device_id: dhcp<host uuid>-<network id>``) holding an
address from each such subnet; it goes when DHCP is disabled or the subnets go.

Also the ``floatip-metadata`` port attributes: ``floatip:user_data`` and
``floatip:public_keys``, what the port's VM reads from 169.254.169.254.
"""
from __future__ import annotations

import re
import socket
import uuid
from sqlalchemy.orm import Session

from .. import store as S
from .common import bad
from .ipam import _allocate, _new_port

DHCP_OWNER = "network:dhcp"
USER_DATA_MAX = 65535            # Nova's limit on user data
KEY_NAME = re.compile(r"^[A-Za-z0-9_.@ -]{1,255}$")
KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
             "sk-ecdsa-sha2-nistp256@openssh.com")


def device_id(network_id: str, host: str | None = None) -> str:
    """Neutron's DHCP port device_id: ``dhcp<uuid5 of the host>-<network id>``."""
    return f"dhcp{uuid.uuid5(uuid.NAMESPACE_DNS, host or socket.gethostname())}-{network_id}"


def sync_dhcp_port(s: Session, network_id: str) -> None:
    """Make the network's DHCP port match its DHCP-enabled subnets (created, given or
    relieved of addresses, deleted)."""
    net = S.get(s, S.Network, network_id)
    ports = [p for p in S.ports_on_network(s, network_id) if p.device_owner == DHCP_OWNER]
    want = [] if net is None or net.external else \
        [sn for sn in S.subnets_of(s, network_id) if sn.enable_dhcp]
    if not want:
        for p in ports:
            S.delete(s, p)
        return
    if not ports:
        port = _new_port(s, net, owner=DHCP_OWNER, device_id=device_id(network_id),
                         project_id=net.project_id, status="DOWN",
                         requests=[{"subnet_id": sn.id} for sn in want])
        S.touch(net)
        return
    port = ports[0]
    wanted = {sn.id for sn in want}
    have = {a.subnet_id for a in port.fixed_ips}
    for a in list(port.fixed_ips):
        if a.subnet_id not in wanted:
            port.fixed_ips.remove(a)
    s.flush()
    missing = [{"subnet_id": sid} for sid in sorted(wanted - have)]
    if missing:
        _allocate(s, port, net, missing)
    if missing or have - wanted:
        S.touch(port)


def release_subnet(s: Session, subnet_id: str) -> None:
    """Before a subnet is deleted: the DHCP port gives its address back (Neutron does the
    same; user ports still block the delete)."""
    for a in S.allocations_on_subnet(s, subnet_id):
        port = a.port
        if port.device_owner == DHCP_OWNER:
            port.fixed_ips.remove(a)
            S.touch(port)
    s.flush()


def delete_dhcp_ports(s: Session, network_id: str) -> None:
    for p in S.ports_on_network(s, network_id):
        if p.device_owner == DHCP_OWNER:
            S.delete(s, p)


# ---------------------------------------------------------------------------------------
# floatip-metadata port attributes

def set_metadata_attrs(port: S.Port, d: dict) -> None:
    if "floatip:user_data" in d:
        ud = d["floatip:user_data"]
        if ud is not None and (not isinstance(ud, str) or len(ud.encode()) > USER_DATA_MAX):
            raise bad(f"Invalid input for floatip:user_data. Reason: a string of at most "
                      f"{USER_DATA_MAX} bytes, or null.")
        port.user_data = ud
    if "floatip:public_keys" in d:
        keys = d["floatip:public_keys"] or {}
        if not isinstance(keys, dict):
            raise bad("Invalid input for floatip:public_keys. Reason: an object mapping key "
                      "names to OpenSSH public keys.")
        out = []
        for name, key in keys.items():
            if not isinstance(name, str) or not KEY_NAME.match(name):
                raise bad(f"Invalid input for floatip:public_keys. Reason: bad key name {name!r}.")
            parts = key.split() if isinstance(key, str) else []
            if "\n" in str(key) or len(parts) < 2 or parts[0] not in KEY_TYPES:
                raise bad(f"Invalid input for floatip:public_keys. Reason: key {name!r} is not "
                          "an OpenSSH public key (TYPE BASE64 [COMMENT]).")
            out.append([name, key.strip()])
        port.public_keys = out


def metadata_attrs(port: S.Port) -> dict:
    return {"floatip:user_data": port.user_data,
            "floatip:public_keys": {n: k for n, k in (port.public_keys or [])}}
