"""Networks: provider attributes, external networks, the local VLAN on the integration bridge."""
from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import store as S
from .common import DEFAULT_PHYSNET, _must, bad, err, new_id
from .dhcp import DHCP_OWNER, delete_dhcp_ports
from .views import network_dict


# Neutron's global_physnet_mtu: the largest MTU of the physical networks, so of any network
# on them (``[DEFAULT] global_physnet_mtu`` of ``floatip serve``'s config file sets it)
GLOBAL_PHYSNET_MTU = 1500
IPV4_MIN_MTU, IPV6_MIN_MTU = 68, 1280


def _mtu(mtu: int) -> int:
    # as Neutron: any MTU up to the physical network's; what a subnet needs is checked with it
    if mtu < 0:
        raise bad(f"Invalid input for mtu. Reason: '{mtu}' should be non-negative.")
    if mtu > GLOBAL_PHYSNET_MTU:
        raise err("InvalidInput", 400, f"Invalid input for operation: Requested MTU is too "
                                       f"big, maximum is {GLOBAL_PHYSNET_MTU}.")
    return mtu


def check_subnet_mtu(net: S.Network, mtu: int, ip_version: int) -> None:
    """An IPv4 subnet needs a network MTU of at least 68, an IPv6 one 1280 (Neutron's 409)."""
    least = IPV6_MIN_MTU if ip_version == 6 else IPV4_MIN_MTU
    if mtu < least:
        raise err("NetworkMTUSubnetConflict", 409, f"MTU of {net.id} is not valid, subnet "
                                                   f"requires a minimum of {least}")


def create_network(s: Session, d: dict) -> dict:
    """``d``: the attributes the request set, validated (``api.schemas.networks``)."""
    external = d.get("router:external", False)
    ntype = d.get("provider:network_type") or ("flat" if external else "local")
    if ntype not in ("flat", "vlan", "local"):
        raise err("InvalidInput", 400, f"Invalid input for operation: network_type value "
                                       f"'{ntype}' not supported (flat, vlan, local).")
    physnet = d.get("provider:physical_network")
    seg = d.get("provider:segmentation_id")
    if ntype == "local":
        if physnet or seg is not None:
            raise err("InvalidInput", 400, "Invalid input for operation: provider attributes "
                                           "are not allowed for local networks.")
        if external:
            raise err("InvalidInput", 400, "Invalid input for operation: an external network "
                                           "needs a physical network (flat or vlan).")
    else:
        physnet = physnet or DEFAULT_PHYSNET
    if ntype == "flat":
        if seg is not None:
            raise err("InvalidInput", 400, "Invalid input for operation: segmentation_id "
                                           "requires a vlan network.")
        if not external:
            raise err("InvalidInput", 400, "Invalid input for operation: flat networks are "
                                           "supported as external networks only; use local or "
                                           "vlan for tenant networks.")
    if ntype == "vlan":
        if seg is None:
            raise err("InvalidInput", 400, "Invalid input for operation: segmentation_id "
                                           "required for VLAN provider network.")
        if not 1 <= seg <= 4094:
            raise err("InvalidInput", 400, f"Invalid input for operation: segmentation_id "
                                           f"{seg} out of range (1 through 4094).")
    if ntype == "flat" and (d.get("provider:network_type") or d.get("provider:physical_network")):
        _check_flat_free(s, physnet)
    mtu = _mtu(d.get("mtu", GLOBAL_PHYSNET_MTU))
    net = S.Network(id=d.get("id") or new_id(),
                    project_id=d.get("project_id") or d.get("tenant_id", ""),
                    name=d.get("name", ""), description=d.get("description", ""),
                    admin_state_up=d.get("admin_state_up", True),
                    shared=d.get("shared", False), external=external, mtu=mtu,
                    network_type=ntype, physical_network=physnet, segmentation_id=seg,
                    port_security_enabled=d.get("port_security_enabled", True),
                    dns_domain=d.get("dns_domain", ""))
    if S.get(s, S.Network, net.id) is not None:
        raise err("Conflict", 409, f"Network {net.id} already exists.")
    S.add(s, net)
    if not external:  # the tag of this network on the integration bridge
        if ntype == "vlan":
            if not _try_vlan(s, net, seg):
                raise err("VlanIdInUse", 409, f"Unable to create the network. The VLAN {seg} "
                                              f"on physical network {physnet} is in use.")
        else:
            _allocate_local_vlan(s, net)
    return network_dict(s, net)


def _check_flat_free(s: Session, physnet: str) -> None:
    """One flat network per physical network (ML2's type_flat), for a request that names
    its provider segment: a second one on the same wire hands its routers the first one's
    upstream addresses. An external network without provider attributes (Neutron would
    give it a tenant segment) keeps floatip's default, flat on physnet1, unchecked: Tempest
    makes such networks beside its flat "public" one."""
    if S.list_all(s, S.Network, {"network_type": ["flat"], "physical_network": [physnet]}):
        raise err("FlatNetworkInUse", 409, f"Unable to create the flat network. Physical "
                                           f"network {physnet} is in use.")


def _try_vlan(s: Session, net: S.Network, vlan: int) -> bool:
    try:
        with s.begin_nested():
            net.local_vlan = vlan
            s.flush()
        return True
    except IntegrityError:
        net.local_vlan = None
        return False


def _allocate_local_vlan(s: Session, net: S.Network) -> None:
    used = S.used_vlans(s)
    for vlan in range(1, 4095):
        if vlan not in used and _try_vlan(s, net, vlan):
            return
    raise err("NoNetworkAvailable", 503, "Unable to create the network. No local VLAN is "
                                         "available on the integration bridge.")


def update_network(s: Session, nid: str, d: dict) -> dict:
    net = _must(s, "network", nid, lock=True)
    if "router:external" in d:
        _set_external(s, net, bool(d["router:external"]))
    for key in ("name", "description", "admin_state_up", "shared", "port_security_enabled",
                "dns_domain"):
        if key in d:
            setattr(net, key, d[key])
    if "mtu" in d:
        net.mtu = _mtu(d["mtu"])
        for version in {sn.ip_version for sn in S.subnets_of(s, net.id)}:
            check_subnet_mtu(net, net.mtu, version)
    S.touch(net)
    s.flush()
    return network_dict(s, net)


def _set_external(s: Session, net: S.Network, external: bool) -> None:
    """An external network is a flat or VLAN network on a physical network, without a tag on
    the integration bridge; a local tenant network made external becomes flat on the default
    physical network (Neutron leaves the segment to the ML2 driver), and back."""
    if external == net.external:
        return
    if S.ports_on_network(s, net.id):
        raise err("NetworkInUse", 409, f"Unable to complete operation on network {net.id}. "
                                       "There are one or more ports still in use on the network.")
    net.external = external
    if external:
        net.local_vlan = None
        if net.network_type == "local":
            net.network_type, net.physical_network = "flat", DEFAULT_PHYSNET
    else:
        if net.network_type == "flat":
            net.network_type, net.physical_network = "local", None
        s.flush()
        if net.network_type == "vlan" and _try_vlan(s, net, net.segmentation_id):
            return
        _allocate_local_vlan(s, net)
    s.flush()


def delete_network(s: Session, nid: str) -> None:
    net = _must(s, "network", nid, lock=True)
    if net.external:  # Neutron deletes the unassociated floating IPs with the network
        fips = S.fips_where(s, floating_network_id=nid)
        if any(f.fixed_port_id for f in fips):
            raise err("NetworkInUse", 409, f"Unable to complete operation on network {nid}. "
                                           "There are one or more floating IPs associated.")
        for f in fips:
            port = S.get(s, S.Port, f.floating_port_id)
            S.delete(s, f)
            if port is not None:
                S.delete(s, port)
    ports = S.ports_on_network(s, nid)
    if any(p.device_owner != DHCP_OWNER for p in ports):
        raise err("NetworkInUse", 409, f"Unable to complete operation on network {nid}. "
                                       "There are one or more ports still in use on the network.")
    delete_dhcp_ports(s, nid)  # floatip's own: they do not keep a network alive
    for sn in S.subnets_of(s, nid):
        S.delete(s, sn)
    S.delete(s, net)
