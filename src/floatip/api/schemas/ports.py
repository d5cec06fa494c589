"""Ports: create and update bodies, the response."""
from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from ...service import dns
from ...service.dhcp import USER_DATA_MAX
from .base import (STANDARD, UUID, Bool, Dict, FixedIPs, MacAddress, Name, Resource, Str,
                   Str255, StrList, checked, ip_address, mac_address, reason, refuse, request,
                   shown, subnet_cidr)



def _pairs(v: Any) -> Any:
    """neutron-lib's _validate_allowed_address_pairs: [{ip_address: IP or CIDR (not
    multicast), mac_address?: unicast MAC}], returned canonical."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise refuse("Allowed address pairs must be a list.")
    out = []
    for p in v:
        if not isinstance(p, dict):
            raise reason(f"'{shown(p)}' is not a dictionary")
        if "mac_address" in p:
            try:
                mac = mac_address(p["mac_address"])
            except Exception as e:  # noqa: BLE001 - its message, as Neutron's HTTPBadRequest
                raise refuse(getattr(e, "context", {}).get("reason", str(e))) from None
        else:
            mac = None
        if "ip_address" not in p:
            raise refuse("AllowedAddressPair must contain ip_address",
                         "AllowedAddressPairsMissingIP")
        extra = set(p) - {"mac_address", "ip_address"}
        if extra:
            raise refuse(f"Unrecognized attribute(s) '{', '.join(sorted(map(str, extra)))}'")
        ip = p["ip_address"]
        try:
            ip = subnet_cidr(ip) if isinstance(ip, str) and "/" in ip else ip_address(ip)
        except Exception as e:  # noqa: BLE001
            raise refuse(getattr(e, "context", {}).get("reason", str(e))) from None
        net = ipaddress.ip_network(ip, strict=False)
        if net.is_multicast:
            raise refuse(f"'{ip}' is a multicast address, which is not supported."
                         if "/" not in ip else f"'{ip}' is a multicast subnet")
        out.append({"ip_address": ip, **({"mac_address": mac} if mac else {})})
    return out


AddressPairs = Annotated[list[dict[str, str]], BeforeValidator(_pairs)]
def _group_ids(v: Any) -> Any:
    """null is none; a group named twice is refused (Neutron's uuid_list)."""
    if v is None:
        return []
    if isinstance(v, list):
        twice = sorted({shown(x) for i, x in enumerate(v) if x in v[:i]})
        if twice:
            raise reason(f"Duplicate items in the list: '{', '.join(twice)}'")
    return v


GroupIds = Annotated[list[UUID], BeforeValidator(_group_ids)]

DhcpOpts = Annotated[list[dict[str, Any]], checked(dns.check_opts, "InvalidInput")]
DnsName = Annotated[str, checked(dns.port_dns_name)]

PublicKeys = Annotated[dict[Str(255, none_ok=False), Str(16384, none_ok=False)],
                      BeforeValidator(lambda v: {} if v is None else v)]

ATTRS = STANDARD | {"name", "network_id", "fixed_ips", "mac_address", "device_id",
                    "device_owner", "admin_state_up", "binding:host_id", "binding:profile",
                    "binding:vnic_type", "security_groups", "port_security_enabled",
                    "allowed_address_pairs", "status", "floatip:user_data",
                    "floatip:public_keys", "extra_dhcp_opts", "dns_name", "dns_assignment",
                    "dns_domain"}


class PortUpdate(Resource):
    ATTRS = ATTRS
    METHOD = "PUT"
    name: Name = ""
    description: Str255 = ""
    admin_state_up: Bool = True
    device_id: Str255 = ""
    device_owner: Str255 = ""
    host_id: Str255 = Field("", alias="binding:host_id")
    fixed_ips: FixedIPs = Field([], description="each {subnet_id?, ip_address?}")
    mac_address: MacAddress | None = None
    profile: Dict = Field({}, alias="binding:profile")
    vnic_type: Str(64) = Field("normal", alias="binding:vnic_type")
    security_groups: GroupIds = Field([], description="security group ids; [] or null: none")
    port_security_enabled: Bool = Field(True, description="default: the network's")
    allowed_address_pairs: AddressPairs = Field(
        [], description="each {ip_address: IP or CIDR, mac_address?}")
    # floatip-metadata extension: text here, its format checked in
    # service.dhcp.set_metadata_attrs
    user_data: Str(USER_DATA_MAX, none_ok=False) | None = Field(
        None, alias="floatip:user_data", description="user data served to the port's VM "
                                                     f"(at most {USER_DATA_MAX} bytes), or null")
    public_keys: PublicKeys = Field({}, alias="floatip:public_keys",
                                    description="{name: OpenSSH public key}")
    extra_dhcp_opts: DhcpOpts = Field(
        [], description="each {opt_name, opt_value (null: remove), ip_version?: 4 or 6}")
    dns_name: DnsName = Field("", description="the port's hostname (recorded when the "
                                              "configured dns_domain is not openstacklocal.)")
    dns_domain: Annotated[str, checked(dns.port_dns_domain)] = Field(
        "", description="a FQDN ending in '.', for an external DNS service (recorded as "
                        "dns_name is)")


class PortCreate(PortUpdate):
    METHOD = "POST"
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    network_id: UUID
    tags: StrList = []


CreatePortRequest = request("CreatePortRequest", "port", PortCreate, "ports")
UpdatePortRequest = request("UpdatePortRequest", "port", PortUpdate)


class IPAllocation(BaseModel):
    subnet_id: str
    ip_address: str


class Port(BaseModel):
    id: str
    name: str
    description: str
    project_id: str
    tenant_id: str
    network_id: str
    mac_address: str
    admin_state_up: bool
    status: str
    device_id: str
    device_owner: str
    fixed_ips: list[IPAllocation]
    host_id: str = Field(alias="binding:host_id")
    vif_type: str = Field(alias="binding:vif_type")
    vnic_type: str = Field(alias="binding:vnic_type")
    profile: dict = Field(alias="binding:profile")
    vif_details: dict = Field(alias="binding:vif_details")
    security_groups: list[str]
    allowed_address_pairs: list[Any]
    extra_dhcp_opts: list[Any]
    dns_name: str
    dns_assignment: list[Any]
    dns_domain: str
    port_security_enabled: bool
    user_data: str | None = Field(None, alias="floatip:user_data")
    public_keys: dict = Field({}, alias="floatip:public_keys")
    tags: list[str]
    revision_number: int
    created_at: str | None
    updated_at: str | None
