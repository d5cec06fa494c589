"""Deleting a floating IP with its port: the check for port forwardings inside the DELETE."""
from __future__ import annotations

from sqlalchemy import bindparam, delete as sa_delete, select, text
from sqlalchemy.orm import Session

from .queries import _delete_by_id, _deleted, _pg, delete_unreferenced
from .tables import FloatingIP, Port, PortForwarding

_fip = FloatingIP.__table__
_DELETE_FREE_FIP = sa_delete(_fip).where(
    _fip.c.id == bindparam("id"),
    ~select(PortForwarding.id).where(PortForwarding.floatingip_id == _fip.c.id).exists())


def delete_fip_unless_forwarded(s: Session, fid: str, port_id: str | None) -> bool:
    """``delete_unreferenced`` of a floating IP that no port forwarding uses (they would go
    by ON DELETE CASCADE), the check inside the DELETE, then of its port ``port_id``: False,
    and nothing deleted, when one does. With the floating IP locked, no forwarding can
    commit on it meanwhile. PostgreSQL: both DELETEs are one statement."""
    if not _pg(s):
        if not _delete_by_id(s, FloatingIP, fid, _DELETE_FREE_FIP):
            return False
        if port_id:
            delete_unreferenced(s, Port, port_id)
        return True
    s.flush()
    if not s.connection().execute(_DELETE_FREE_FIP_AND_PORT, {"id": fid}).scalar():
        return False
    _deleted(s, FloatingIP, fid)
    if port_id:
        _deleted(s, Port, port_id)
    return True


# the port's DELETE runs whether or not the SELECT reads it; the floating IP that refers to
# it is gone by the foreign key checks (at the statement's end)
_DELETE_FREE_FIP_AND_PORT = text("""
WITH f AS (DELETE FROM floatingips WHERE id = :id AND NOT EXISTS (
             SELECT 1 FROM portforwardings WHERE floatingip_id = :id)
           RETURNING floating_port_id),
     p AS (DELETE FROM ports WHERE id IN (SELECT floating_port_id FROM f))
SELECT count(*) FROM f""")
