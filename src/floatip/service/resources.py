"""Create, update and delete per resource kind, for the API's generic routes."""
from __future__ import annotations
from .floatingips import create_floatingip, delete_floatingip, update_floatingip
from .networks import create_network, delete_network, update_network
from .ports import create_port, delete_port, update_port
from .routers import create_router, delete_router, update_router
from .subnets import create_subnet, delete_subnet, update_subnet
from . import address_groups as ag, security_groups as sg





CREATE = {"network": create_network, "subnet": create_subnet, "port": create_port,
          "router": create_router, "floatingip": create_floatingip,
          "security_group": sg.create_security_group,
          "security_group_rule": sg.create_security_group_rule,
          "address_group": ag.create_address_group}
UPDATE = {"network": update_network, "subnet": update_subnet, "port": update_port,
          "router": update_router, "floatingip": update_floatingip,
          "security_group": sg.update_security_group,
          "security_group_rule": sg.update_security_group_rule,
          "address_group": ag.update_address_group}
DELETE = {"network": delete_network, "subnet": delete_subnet, "port": delete_port,
          "router": delete_router, "floatingip": delete_floatingip,
          "security_group": sg.delete_security_group,
          "security_group_rule": sg.delete_security_group_rule,
          "address_group": ag.delete_address_group}
