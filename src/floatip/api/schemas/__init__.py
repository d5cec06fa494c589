"""Request and response bodies of the API: one module per resource (create and update
bodies differ: what is required, what is read-only), Neutron's attribute rules in ``base``."""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, create_model

from . import floatingips, networks, ports, routers, subnets


@dataclass(frozen=True)
class Schemas:
    create: type[BaseModel]     # {"<resource>": {...}} or {"<collection>": [...]}
    update: type[BaseModel]     # {"<resource>": {...}}
    item: type[BaseModel]       # the resource as the API shows it
    one: type[BaseModel]        # {"<resource>": item}
    many: type[BaseModel]       # {"<collection>": [item]}


def _schemas(kind: str, coll: str, create, update, item) -> Schemas:
    one = create_model(f"{item.__name__}Response", **{kind: (item, ...)})
    many = create_model(f"{item.__name__}ListResponse", **{coll: (list[item], ...)})
    return Schemas(create, update, item, one, many)


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
}
