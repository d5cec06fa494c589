"""The event history's queries: status changes and repairs, with their reasons and causes,
bounded to the newest ``KEEP`` rows."""
from __future__ import annotations

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from .tables import Event, FloatingIP, Router, utcnow

KEEP = 10_000
FIELDS = ("id", "at", "resource", "resource_id", "project_id", "kind", "old_status", "status",
          "reason", "cause")
MODELS = {"floatingip": FloatingIP, "router": Router}


def current(s: Session, resource: str, ids) -> dict[str, tuple]:
    """id -> (status, status_reason, project_id, revision_number, updated_at) of the rows."""
    m = MODELS[resource]
    ids = list(ids)
    if not ids:
        return {}
    rows = s.execute(select(m.id, m.status, m.status_reason, m.project_id, m.revision_number,
                            m.updated_at).where(m.id.in_(ids))).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def record(s: Session, events: list[dict]) -> None:
    """Add events (dicts of ``FIELDS`` but id and at); the oldest beyond KEEP go."""
    if not events:
        return
    now = utcnow()
    s.execute(insert(Event), [{**e, "at": e.get("at") or now} for e in events])
    newest = s.execute(select(func.max(Event.id))).scalar() or 0
    if newest > KEEP and newest % 100 < len(events) + 1:  # pruned about every 100 events
        s.execute(delete(Event).where(Event.id <= newest - KEEP))


def listing(s: Session, object_id: str | None = None, project_id: str | None = None,
            limit: int = 100) -> list[dict]:
    """Newest first; ``project_id`` None: every project's."""
    q = select(*(getattr(Event, f) for f in FIELDS)).order_by(Event.id.desc()).limit(limit)
    if object_id is not None:
        q = q.where(Event.resource_id == object_id)
    if project_id is not None:
        q = q.where(Event.project_id == project_id)
    return [dict(zip(FIELDS, r)) for r in s.execute(q).all()]


def newest(s: Session) -> int:
    """The id of the newest event (0: none): changes whenever an event is recorded."""
    return s.execute(select(func.max(Event.id))).scalar() or 0
