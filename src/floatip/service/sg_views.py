"""Security groups, rules and address groups as Neutron's response bodies."""
from __future__ import annotations

import ipaddress

from sqlalchemy.orm import Session

from .. import store as S
from .common import ts


def _std(row) -> dict:
    return {"id": row.id, "project_id": row.project_id, "tenant_id": row.project_id,
            "description": row.description, "revision_number": row.revision_number,
            "created_at": ts(row.created_at), "updated_at": ts(row.updated_at), "tags": []}


def rule_dict(s: Session, r: S.SecurityGroupRule, default_of: str | None = "?") -> dict:
    """``default_of``: the id of the default group of the rule's group's project, when the
    caller knows it ("?": look it up)."""
    if default_of == "?":
        sg = S.get(s, S.SecurityGroup, r.security_group_id)
        default_of = S.default_group_id(s, sg.project_id) if sg is not None else None
    return {**_std(r), "security_group_id": r.security_group_id, "direction": r.direction,
            "ethertype": r.ethertype, "protocol": r.protocol,
            "port_range_min": r.port_range_min, "port_range_max": r.port_range_max,
            "remote_ip_prefix": r.remote_ip_prefix,
            "normalized_cidr": str(ipaddress.ip_network(r.remote_ip_prefix, strict=False))
            if r.remote_ip_prefix else None,
            "remote_group_id": r.remote_group_id,
            "remote_address_group_id": r.remote_address_group_id,
            "belongs_to_default_sg": default_of == r.security_group_id}


def sg_dict(s: Session, sg: S.SecurityGroup) -> dict:
    default_of = S.default_group_id(s, sg.project_id)
    return {**_std(sg), "name": sg.name, "stateful": sg.stateful, "shared": False,
            "security_group_rules": [rule_dict(s, r, default_of) for r in sg.rules]}


def ag_dict(s: Session, ag: S.AddressGroup) -> dict:
    return {**_std(ag), "name": ag.name, "addresses": list(ag.addresses or [])}


# columns as they are, for policy checks without the whole view (``views.FACTS``)
_STD = {"id": "id", "project_id": "project_id", "tenant_id": "project_id",
        "description": "description"}
SG_FACTS = {
    "security_group": {**_STD, "name": "name", "stateful": "stateful"},
    "security_group_rule": {**_STD, "security_group_id": "security_group_id",
                            "direction": "direction", "ethertype": "ethertype",
                            "protocol": "protocol", "remote_group_id": "remote_group_id"},
    "address_group": {**_STD, "name": "name"},
}
SG_SERIALIZERS = {"security_group": sg_dict, "security_group_rule": rule_dict,
                  "address_group": ag_dict}
