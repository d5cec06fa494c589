"""The resources that have tags. Their ``/tags`` are checked with Neutron 29's attribute
rules ``<action>_<resource>:tags`` (its tagging controller's names, in ``policy.RULES``)."""
from __future__ import annotations

# the collection in the path -> the kind (``store.MODELS``, the name in the policy rules:
# ``get_security_group:tags``) and Neutron's parent type (in errors)
TAGGED = {"networks": ("network", "networks"), "subnets": ("subnet", "subnets"),
          "ports": ("port", "ports"), "routers": ("router", "routers"),
          "floatingips": ("floatingip", "floatingips"),
          "security-groups": ("security_group", "security_groups"),
          "subnetpools": ("subnetpool", "subnetpools")}
