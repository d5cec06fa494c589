"""The resources that have tags, and Neutron's policy rules for their ``/tags``."""
from __future__ import annotations

# the collection in the path -> the kind (``store.MODELS``) and Neutron's parent type, the
# name in the policy rules (``get_security_groups_tags``) and errors
TAGGED = {"networks": ("network", "networks"), "subnets": ("subnet", "subnets"),
          "ports": ("port", "ports"), "routers": ("router", "routers"),
          "floatingips": ("floatingip", "floatingips"),
          "security-groups": ("security_group", "security_groups")}
ADM = "rule:context_is_admin"
# Neutron's tagging controller checks <action>_<parent>_tags on {id, project_id}: its
# readers read, its members change
TAG_RULES = {f"{action}_{parent}_tags":
             f"{ADM} or (role:{'reader' if action == 'get' else 'member'} and rule:owner)"
             for _, parent in TAGGED.values()
             for action in ("get", "create", "update", "delete")}
