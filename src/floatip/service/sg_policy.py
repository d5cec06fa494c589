"""Neutron 29's default policy for security groups, their rules, address groups and the
port-security attributes (neutron/conf/policies/security_group.py, address_group.py,
port.py, network.py), verbatim. Shared groups (RBAC) do not exist here: ``shared`` is
always false."""
from __future__ import annotations

P_MEMBER = "(rule:admin_only) or (role:member and project_id:%(project_id)s)"
P_READER = "(rule:admin_only) or (role:reader and project_id:%(project_id)s)"
SG_MEMBER = "(rule:admin_only) or (role:member and rule:sg_owner)"
NET_MEMBER_SVC = ("(rule:admin_only) or (rule:service_api) or role:member and "
                  "rule:network_owner")
PAIRS = "(rule:admin_only) or (role:member and rule:network_owner) or rule:service_api"

SG_RULES = {
    # used when a project's default group is made on first use (a reader's list too)
    "create_default_security_group": "(rule:admin_only) or (rule:service_api) or "
                                     "role:reader and project_id:%(project_id)s",
    "create_security_group": P_MEMBER,
    "create_security_group:tags": P_MEMBER,
    "get_security_group": f"{P_READER} or rule:shared_security_group",
    "get_security_group:tags": f"{P_READER} or rule:shared_security_group",
    "update_security_group": P_MEMBER,
    "update_security_group:tags": P_MEMBER,
    "delete_security_group": P_MEMBER,
    "delete_security_group:tags": P_MEMBER,
    "create_security_group_rule": SG_MEMBER,
    "get_security_group_rule": "(rule:admin_only) or (role:reader and rule:sg_owner)",
    "delete_security_group_rule": SG_MEMBER,
    "update_security_group_rule": SG_MEMBER,  # floatip's: the description only
    "create_address_group": P_MEMBER,
    "get_address_group": f"{P_READER} or rule:shared_address_groups",
    "update_address_group": P_MEMBER,
    "delete_address_group": P_MEMBER,
    "add_addresses": P_MEMBER,
    "remove_addresses": P_MEMBER,
    "create_network:port_security_enabled": P_MEMBER,
    "update_network:port_security_enabled": P_MEMBER,
    "create_port:port_security_enabled": NET_MEMBER_SVC,
    "update_port:port_security_enabled": NET_MEMBER_SVC,
    "create_port:allowed_address_pairs": PAIRS,
    "create_port:allowed_address_pairs:mac_address": PAIRS,
    "create_port:allowed_address_pairs:ip_address": PAIRS,
    "update_port:allowed_address_pairs": PAIRS,
    "update_port:allowed_address_pairs:mac_address": PAIRS,
    "update_port:allowed_address_pairs:ip_address": PAIRS,
}
