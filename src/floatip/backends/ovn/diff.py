"""Desired NB rows vs the rows floatip owns in the NB database -> what to write. Pure.

The NB side comes in as ``Actual`` records read from the IDL by ``nb.Northbound``; the
answer is a ``Plan`` that ``nb.Northbound.apply`` turns into one ovsdbapp transaction.
``objects`` limits the comparison to some floatip objects (the per-object sync after a
change: only their rows are looked at, on both sides); ``None`` compares everything and
removes every owned row nothing wants (the full sync, which repairs hand-made drift).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .dhcp import Ref
from .translate import HOLDERS, NAMED, TABLES, Desired, Row


_UNSET = object()


class Actual:
    """An owned NB row. Read from the IDL, its columns and the row holding it are looked up
    only when asked (``loader``): a per-object sync touches few rows among many."""

    def __init__(self, uuid: Any, table: str, key: str, obj: str | None, columns: Any = _UNSET,
                 parent: Any = _UNSET, parent_uuid: Any = _UNSET, loader: Any = None,
                 holders: Any = _UNSET):
        self.uuid, self.table, self.key, self.obj = uuid, table, key, obj
        self._columns, self._parent, self._parent_uuid = columns, parent, parent_uuid
        self._loader, self._holders = loader, holders

    def __repr__(self) -> str:
        return f"Actual({self.table}, {self.key})"

    @property
    def columns(self) -> dict:
        if self._columns is _UNSET:
            self._columns = self._loader.columns(self) if self._loader else {}
        return self._columns

    @property
    def parent(self) -> str | None:
        """Key of the owned row holding it (None: no owned row holds it)."""
        if self._parent is _UNSET:
            self._parent = self._loader.holder(self)[1] if self._loader else None
        return self._parent

    @parent.setter
    def parent(self, value: str | None) -> None:
        self._parent = value

    @property
    def parent_uuid(self) -> Any:
        """Uuid of whichever row holds it."""
        if self._parent_uuid is _UNSET:
            self._parent_uuid = self._loader.holder(self)[0] if self._loader else None
        return self._parent_uuid

    @property
    def holders(self) -> frozenset[str]:
        """Keys of the owned rows holding it besides its parent (``translate.HOLDERS``)."""
        if self._holders is _UNSET:
            self._holders = self._loader.holders(self) if self._loader else frozenset()
        return self._holders

    def held_by(self, parent: "Actual | None") -> bool:
        if parent is None:
            return False
        if self._loader is not None and self._parent is _UNSET:
            return self._loader.holds(parent, self)
        return self.parent == parent.key


@dataclass
class Plan:
    create: list[Row] = field(default_factory=list)            # leaves first
    update: list[tuple[Row, Actual, dict]] = field(default_factory=list)
    attach: list[tuple[Row, Actual]] = field(default_factory=list)  # held by the wrong parent
    # further holders to add and to drop (keys): a load balancer's switches
    hold: list[tuple[Row, Actual, tuple, tuple]] = field(default_factory=list)
    delete: list[Actual] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)    # object -> why not written

    @property
    def objects(self) -> set[str]:
        """The floatip objects whose rows this plan writes."""
        return ({r.obj for r in self.create} | {r.obj for r, _, _ in self.update}
                | {r.obj for r, _ in self.attach} | {r.obj for r, *_ in self.hold}
                | {a.obj for a in self.delete if a.obj})

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.attach or self.hold or self.delete)

    def summary(self) -> str:
        return (f"{len(self.create)} create, {len(self.update)} update, "
                f"{len(self.attach) + len(self.hold)} attach, {len(self.delete)} delete")


def _norm(v):
    if hasattr(v, "uuid"):   # a referenced row, as the IDL gives it
        return v.uuid
    if isinstance(v, (list, tuple, set, frozenset)):
        return sorted((_norm(x) for x in v), key=repr)
    if isinstance(v, dict):
        return {str(k): _norm(x) for k, x in v.items()}
    return v


def refs(columns: dict) -> list[str]:
    """Keys of the rows ``columns`` refer to (``dhcp.Ref``)."""
    return [x for v in columns.values() if isinstance(v, list) for x in v if isinstance(x, Ref)]


def changed_columns(want: dict, have: dict, actual: Mapping | None = None) -> dict:
    """The columns of ``want`` that differ from ``have``; a reference (``Ref``) is compared
    with the uuid of the owned row it names in ``actual`` (not there yet: changed)."""
    out = {}
    for c, v in want.items():
        w = v
        if isinstance(v, list) and any(isinstance(x, Ref) for x in v):
            w = [(actual[x].uuid if actual is not None and x in actual else _UNSET)
                 if isinstance(x, Ref) else x for x in v]
        if _norm(w) != _norm(have.get(c)):
            out[c] = v
    return out


def _keys_of(actual, obj: str):
    """Keys of the owned rows of ``obj``: through the mapping's own index when it has one
    (``nb.Owned``), else by a scan (plain dicts, in tests)."""
    if hasattr(actual, "keys_of"):
        return actual.keys_of(obj)
    return [k for k, a in actual.items() if a.obj == obj]


def _closure(desired: Desired, actual, objects: set[str]) -> set[str]:
    """``objects`` plus the objects whose rows they hang under when those rows are missing
    from the NB (a port's switch deleted by hand: the switch is written with the port)."""
    out, todo = set(objects), list(objects)
    while todo:
        for key in desired.by_obj.get(todo.pop(), ()):
            row = desired.rows[key]
            # the row holding it, and the rows it refers to (a port's DHCP options)
            for need in ([row.parent] if row.parent is not None else []) + \
                    list(row.holders) + refs(row.columns):
                prow = desired.rows.get(need)
                if prow is not None and prow.obj not in out and need not in actual:
                    out.add(prow.obj)
                    todo.append(prow.obj)
    return out


def diff(desired: Desired, actual: Mapping[str, Actual],
         foreign: Mapping[str, set[str]] | None = None, objects: set[str] | None = None,
         hold: set[str] = frozenset()) -> Plan:
    """``actual``: key -> the owned row; ``foreign``: table -> names held by rows of other
    owners (a name the schema indexes cannot be taken twice). ``objects``: compare the rows
    of these floatip objects only (and of the objects they need, see ``_closure``); None:
    everything, removing every owned row nothing wants. ``hold``: objects whose rows are
    left as they are (invalid ones)."""
    foreign = foreign or {}
    plan = Plan()
    rank = {t: i for i, t in enumerate(TABLES)}
    if objects is None:
        rows = list(desired.rows.values())
    else:
        objects = _closure(desired, actual, objects) - set(hold)
        rows = [desired.rows[k] for o in objects for k in desired.by_obj.get(o, ())]

    # roots first: a row whose parent cannot exist is not written either
    blocked: set[str] = set()
    creates: list[Row] = []
    for row in sorted(rows, key=lambda r: -rank[r.table]):
        if row.obj in hold:
            continue
        if row.parent is not None and (row.parent in blocked or (
                row.parent not in desired.rows and row.parent not in actual)):
            blocked.add(row.key)
            continue
        have = actual.get(row.key)
        if have is None or have.table != row.table:
            name = row.columns.get("name")
            if row.table in NAMED and name in foreign.get(row.table, ()):
                plan.conflicts[row.obj] = (f"{row.table} {name} exists and is not floatip's "
                                           f"(no {row.obj.split(':')[0]} row written)")
                blocked.add(row.key)
                continue
            creates.append(row)
            continue
        cols = changed_columns(row.columns, have.columns, actual)
        if cols:
            plan.update.append((row, have, cols))
        if row.parent is not None and row.parent in actual and \
                not have.held_by(actual[row.parent]):
            plan.attach.append((row, have))
        if row.holders or have.table in HOLDERS:
            want = {k for k in row.holders if k in desired.rows or k in actual}
            add, drop = want - have.holders, have.holders - want
            if add or drop:
                plan.hold.append((row, have, tuple(sorted(add)), tuple(sorted(drop))))
    plan.create = sorted(creates, key=lambda r: rank[r.table])
    if objects is None:
        candidates = actual.items()
    else:
        candidates = ((k, actual[k]) for o in objects for k in _keys_of(actual, o)
                      if k in actual)
    for key, have in candidates:
        row = desired.rows.get(key)
        if (row is None or row.table != have.table) and have.obj not in hold:
            plan.delete.append(have)
    return plan
