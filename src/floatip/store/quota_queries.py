"""Queries for quotas: the limits admins set per project, what a project uses, and the lock
that makes a quota check and the insert it allows one step under concurrency."""
from __future__ import annotations

import uuid
import zlib

from sqlalchemy import delete as sa_delete, func, select, text
from sqlalchemy.orm import Session

from .tables import Quota


def quota_limits(s: Session, project_id: str | None = None) -> dict[str, dict[str, int]]:
    """{project: {resource: limit}} of the limits set (of one project, or of all)."""
    q = select(Quota.project_id, Quota.resource, Quota.limit).order_by(Quota.project_id,
                                                                       Quota.resource)
    if project_id is not None:
        q = q.where(Quota.project_id == project_id)
    out: dict[str, dict[str, int]] = {}
    for pid, resource, limit in s.execute(q):
        out.setdefault(pid, {})[resource] = limit
    return out


def set_quota_limit(s: Session, project_id: str, resource: str, limit: int) -> None:
    row = s.scalars(select(Quota).where(Quota.project_id == project_id,
                                        Quota.resource == resource)).first()
    if row is None:
        s.add(Quota(id=str(uuid.uuid4()), project_id=project_id, resource=resource,
                    limit=limit))
    else:
        row.limit = limit
    s.flush()


def delete_quota_limits(s: Session, project_id: str) -> int:
    """The project's limits removed (it has the defaults again); how many there were."""
    return s.execute(sa_delete(Quota).where(Quota.project_id == project_id)).rowcount


def count_owned(s: Session, model, project_id: str) -> int:
    return s.scalar(select(func.count()).select_from(model)
                    .where(model.project_id == project_id))


def lock_quota(s: Session, project_id: str, resource: str) -> None:
    """Until this transaction ends, no other transaction passes this point for the same
    project and resource (others go on). PostgreSQL: a transaction-scoped advisory lock on
    two 32-bit keys (a collision only serializes two unrelated keys). SQLite: nothing to do,
    its writers are serialized already (``Database.tx``: the process's write lock and BEGIN
    IMMEDIATE), so a count made in a write transaction stays true until it commits."""
    if s.get_bind().dialect.name != "postgresql":
        return
    keys = [zlib.crc32(x.encode()) - 2**31 for x in (project_id, resource)]
    s.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": keys[0], "b": keys[1]})
