"""Queries for security groups, their rules, address groups and the ports' groups."""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import delete as sa_delete, func, select
from sqlalchemy.orm import Session

from .tables import (AddressGroup, DefaultSecurityGroup, PortSecurityGroup, SecurityGroup,
                     SecurityGroupRule)


def _rows(s: Session, model, col: str | None = None, values: Iterable[str] | None = None):
    t = model.__table__
    q = select(t)
    if col is not None:
        values = sorted(v for v in values or () if v)
        if not values:
            return []
        return [r for i in range(0, len(values), 500)
                for r in s.execute(q.where(t.c[col].in_(values[i:i + 500])))]
    return list(s.execute(q))


def sg_snapshot_rows(s: Session) -> dict:
    """Every group, rule, address group and port binding, as plain rows."""
    return {"security_groups": _rows(s, SecurityGroup), "sg_rules": _rows(s, SecurityGroupRule),
            "address_groups": _rows(s, AddressGroup),
            "sg_bindings": _rows(s, PortSecurityGroup)}


def sg_rows_for(s: Session, group_ids: Iterable[str], address_group_ids: Iterable[str],
                port_ids: Iterable[str]) -> dict:
    """The rows of the named groups (with their rules), address groups, and the named
    ports' bindings."""
    group_ids = set(group_ids)
    return {"security_groups": _rows(s, SecurityGroup, "id", group_ids),
            "sg_rules": _rows(s, SecurityGroupRule, "security_group_id", group_ids),
            "address_groups": _rows(s, AddressGroup, "id", address_group_ids),
            "sg_bindings": _rows(s, PortSecurityGroup, "port_id", port_ids)}


def default_group_id(s: Session, project_id: str) -> str | None:
    return s.execute(select(DefaultSecurityGroup.security_group_id)
                     .where(DefaultSecurityGroup.project_id == project_id)).scalar()


def groups_of_port(s: Session, port_id: str) -> list[str]:
    return sorted(s.execute(select(PortSecurityGroup.security_group_id)
                            .where(PortSecurityGroup.port_id == port_id)).scalars())


def groups_of_ports(s: Session, port_ids: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in _rows(s, PortSecurityGroup, "port_id", port_ids):
        out.setdefault(r.port_id, []).append(r.security_group_id)
    return {k: sorted(v) for k, v in out.items()}


def ports_of_group(s: Session, group_id: str, limit: int | None = None) -> list[str]:
    q = select(PortSecurityGroup.port_id).where(PortSecurityGroup.security_group_id == group_id)
    return list(s.execute(q.limit(limit) if limit else q).scalars())


def set_port_groups(s: Session, port, group_ids: Iterable[str]) -> None:
    """The port's groups become ``group_ids`` (through the unit of work: recorded)."""
    want = set(group_ids)
    for b in list(port.sg_bindings):
        if b.security_group_id not in want:
            port.sg_bindings.remove(b)
    have = {b.security_group_id for b in port.sg_bindings}
    for gid in sorted(want - have):
        port.sg_bindings.append(PortSecurityGroup(port_id=port.id, security_group_id=gid))
    s.flush()


def rules_with_remote_group(s: Session, group_id: str) -> list[SecurityGroupRule]:
    return list(s.execute(select(SecurityGroupRule)
                          .where(SecurityGroupRule.remote_group_id == group_id)).scalars())


def rules_with_address_group(s: Session, ag_id: str) -> int:
    return s.execute(select(func.count()).select_from(SecurityGroupRule).where(
        SecurityGroupRule.remote_address_group_id == ag_id)).scalar_one()


def count_where(s: Session, model, **eq) -> int:
    q = select(func.count()).select_from(model)
    for k, v in eq.items():
        q = q.where(getattr(model, k) == v)
    return s.execute(q).scalar_one()


def delete_port_groups(s: Session, port_id: str) -> None:
    s.execute(sa_delete(PortSecurityGroup).where(PortSecurityGroup.port_id == port_id))
