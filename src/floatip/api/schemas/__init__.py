"""Request and response bodies of the API: one module per resource (create and update
bodies differ: what is required, what is read-only), Neutron's attribute rules in ``base``."""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field, create_model

from . import floatingips, networks, ports, routers, security_groups as sg, subnets


@dataclass(frozen=True)
class Schemas:
    create: type[BaseModel]     # {"<resource>": {...}} or {"<collection>": [...]}
    update: type[BaseModel]     # {"<resource>": {...}}
    item: type[BaseModel]       # the resource as the API shows it
    one: type[BaseModel]        # {"<resource>": item}: what create and update answer
    many: type[BaseModel]       # {"<collection>": [item]}: a bulk create
    shown: type[BaseModel]      # show: any attribute may be left out by ?fields=
    listed: type[BaseModel]     # list: likewise


def _fields(item: type[BaseModel]) -> type[BaseModel]:
    """``item`` with every attribute optional: what ``?fields=`` leaves of it."""
    return create_model(f"{item.__name__}Fields", **{
        n: (f.annotation, Field(None, alias=f.alias)) for n, f in item.model_fields.items()})


def _schemas(kind: str, coll: str, create, update, item) -> Schemas:
    name, fields = item.__name__, _fields(item)
    return Schemas(create, update, item,
                   create_model(f"{name}Response", **{kind: (item, ...)}),
                   create_model(f"{name}BulkResponse", **{coll: (list[item], ...)}),
                   create_model(f"{name}ShowResponse", **{kind: (fields, ...)}),
                   create_model(f"{name}ListResponse", **{coll: (list[fields], ...)}))


SCHEMAS = {
    "network": _schemas("network", "networks", networks.CreateNetworkRequest,
                        networks.UpdateNetworkRequest, networks.Network),
    "subnet": _schemas("subnet", "subnets", subnets.CreateSubnetRequest,
                       subnets.UpdateSubnetRequest, subnets.Subnet),
    "port": _schemas("port", "ports", ports.CreatePortRequest, ports.UpdatePortRequest,
                     ports.Port),
    "router": _schemas("router", "routers", routers.CreateRouterRequest,
                       routers.UpdateRouterRequest, routers.Router),
    "floatingip": _schemas("floatingip", "floatingips", floatingips.CreateFloatingIPRequest,
                           floatingips.UpdateFloatingIPRequest, floatingips.FloatingIP),
    "security_group": _schemas("security_group", "security_groups",
                               sg.CreateSecurityGroupRequest, sg.UpdateSecurityGroupRequest,
                               sg.SecurityGroup),
    "security_group_rule": _schemas("security_group_rule", "security_group_rules",
                                    sg.CreateSecurityGroupRuleRequest,
                                    sg.UpdateSecurityGroupRuleRequest, sg.SecurityGroupRule),
    "address_group": _schemas("address_group", "address_groups", sg.CreateAddressGroupRequest,
                              sg.UpdateAddressGroupRequest, sg.AddressGroup),
}
