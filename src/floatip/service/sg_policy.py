"""Neutron 29's default policy for security groups, their rules, address groups and the
port-security attributes (neutron/conf/policies/security_group.py, address_group.py,
port.py, network.py). Shared groups (RBAC) do not exist here: ``shared`` is always false."""
from __future__ import annotations

ADM = "rule:context_is_admin"
A_MEMBER = f"{ADM} or (role:member and rule:owner)"
A_READER = f"{ADM} or (role:reader and rule:owner)"
SG_MEMBER = f"({ADM}) or (role:member and rule:sg_owner)"
SG_READER = f"({ADM}) or (role:reader and rule:sg_owner)"
NET_MEMBER = "(role:member and rule:network_owner)"
ADM_NET_MEMBER_SERVICE = f"{ADM} or {NET_MEMBER} or role:service"

SG_RULES = {
    "sg_owner": "project_id:%(security_group:project_id)s",
    "admin_or_sg_owner": f"{ADM} or project_id:%(security_group:project_id)s",
    "admin_owner_or_sg_owner": "rule:owner or rule:admin_or_sg_owner",
    "shared_security_group": "True:%(shared)s",
    "shared_address_groups": "True:%(shared)s",
    # used when a project's default group is made on first use (a reader's list too)
    "create_default_security_group": f"{ADM} or role:service or (role:reader and rule:owner)",
    "create_security_group": A_MEMBER,
    "get_security_group": f"{A_READER} or rule:shared_security_group",
    "update_security_group": A_MEMBER,
    "delete_security_group": A_MEMBER,
    "create_security_group_rule": SG_MEMBER,
    "get_security_group_rule": SG_READER,
    "delete_security_group_rule": SG_MEMBER,
    "update_security_group_rule": SG_MEMBER,  # the description only
    "create_address_group": A_MEMBER,
    "get_address_group": f"{A_READER} or rule:shared_address_groups",
    "update_address_group": A_MEMBER,
    "delete_address_group": A_MEMBER,
    "add_addresses": A_MEMBER,
    "remove_addresses": A_MEMBER,
    "create_network:port_security_enabled": A_MEMBER,
    "update_network:port_security_enabled": A_MEMBER,
    "create_port:port_security_enabled": f"{ADM} or role:service or {NET_MEMBER}",
    "update_port:port_security_enabled": f"{ADM} or role:service or {NET_MEMBER}",
    "create_port:allowed_address_pairs": ADM_NET_MEMBER_SERVICE,
    "create_port:allowed_address_pairs:mac_address": ADM_NET_MEMBER_SERVICE,
    "create_port:allowed_address_pairs:ip_address": ADM_NET_MEMBER_SERVICE,
    "update_port:allowed_address_pairs": ADM_NET_MEMBER_SERVICE,
    "update_port:allowed_address_pairs:mac_address": ADM_NET_MEMBER_SERVICE,
    "update_port:allowed_address_pairs:ip_address": ADM_NET_MEMBER_SERVICE,
}
