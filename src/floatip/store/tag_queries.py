"""Queries for tags (Neutron's standard-attr-tag): a resource's tags, and the list filters
``tags``, ``tags-any``, ``not-tags``, ``not-tags-any`` as SQL conditions on its table."""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import delete as sa_delete, func, insert, select
from sqlalchemy.orm import Session

from .tables import Tag


def tags_of(s: Session, resource: str, ids: Iterable[str]) -> dict[str, list[str]]:
    """The tags of each of ``ids`` (sorted; ids without tags are left out), in a few IN
    queries (a list of 10,000 is 20 queries, not 10,000)."""
    ids = sorted(set(ids))
    out: dict[str, list[str]] = {}
    for i in range(0, len(ids), 500):
        q = (select(Tag.resource_id, Tag.tag)
             .where(Tag.resource == resource, Tag.resource_id.in_(ids[i:i + 500]))
             .order_by(Tag.resource_id, Tag.tag))
        for rid, tag in s.execute(q):
            out.setdefault(rid, []).append(tag)
    return out


def add_tags(s: Session, resource: str, rid: str, tags: Iterable[str]) -> None:
    """``tags`` (not yet held by ``rid``) added."""
    rows = [{"resource": resource, "resource_id": rid, "tag": t} for t in tags]
    if rows:
        s.execute(insert(Tag), rows)


def remove_tags(s: Session, resource: str, rid: str, tags: Iterable[str] | None = None) -> int:
    """``tags`` of ``rid`` removed (None: all of them); how many there were."""
    q = sa_delete(Tag).where(Tag.resource == resource, Tag.resource_id == rid)
    if tags is not None:
        q = q.where(Tag.tag.in_(list(tags)))
    return s.execute(q).rowcount


def tag_condition(model, resource: str, op: str, tags: list[str]):
    """Neutron's tag filters on ``model``'s rows: ``tags`` all of them, ``tags-any`` one of
    them, ``not-tags`` not all of them, ``not-tags-any`` none of them."""
    having = select(Tag.resource_id).where(Tag.resource == resource, Tag.tag.in_(tags))
    if op in ("tags", "not-tags"):
        having = having.group_by(Tag.resource_id).having(
            func.count(Tag.tag) == len(set(tags)))
    cond = model.id.in_(having)
    return ~cond if op.startswith("not-") else cond
