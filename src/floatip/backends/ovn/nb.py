"""The OVN databases through ovsdbapp: the Northbound rows floatip owns (read from the IDL
cache, written in one transaction per plan) and what the Southbound says (chassis, port
bindings) plus NB_Global's nb_cfg / hv_cfg. No ``ovn-nbctl`` processes."""
from __future__ import annotations

import logging
from typing import Callable

from ovsdbapp.backend.ovs_idl import connection, idlutils
from ovsdbapp.schema.ovn_northbound import impl_idl as nb_impl

from .diff import Actual, Plan
from .translate import KEY, NAMED, OBJECT, OWNER, PARENT, TABLES, ChassisInfo

log = logging.getLogger("floatip.ovn")

SB_COLUMNS = {
    "Chassis": ["name", "hostname", "other_config", "external_ids"],
    "Chassis_Private": ["name", "nb_cfg", "chassis"],
    "Port_Binding": ["logical_port", "chassis", "up"],
}


class _Idl(connection.OvsdbIdl):
    """An IDL that tells the backend what changed, so it wakes at once (hand-made drift of
    owned rows, chassis catching up, ports bound)."""

    on_change: Callable[[str, object, object], None] | None = None

    def notify(self, event, row, updates=None):
        if self.on_change is not None:
            try:
                self.on_change(event, row, updates)
            except Exception:  # noqa: BLE001 - never break the IDL thread
                log.exception("change callback")


def _connect(remote: str, schema: str, timeout: float, on_change, tables=None):
    if tables:
        helper = idlutils.get_schema_helper(remote, schema)
        for t, cols in tables.items():
            helper.register_columns(t, cols)
        idl = _Idl(remote, helper)
    else:
        idl = _Idl.from_server(remote, schema)
    idl.on_change = on_change
    conn = connection.Connection(idl, timeout=timeout)
    return idl, conn


class _Loader:
    """Reads what a sync pass needs of NB rows, when it needs it, from the IDL cache."""

    def __init__(self, nb: "Northbound"):
        self.nb = nb
        self._holder: dict | None = None
        self._children: dict = {}
        self._foreign: dict[str, set[str]] = {}

    def _row(self, table: str, uuid):
        return self.nb.idl.tables[table].rows.get(uuid)

    def columns(self, a: Actual) -> dict:
        with self.nb.conn.lock:
            row = self._row(a.table, a.uuid)
            if row is None:
                return {}
            return {c: getattr(row, c) for c in row._table.columns}

    def holds(self, parent: Actual, child: Actual) -> bool:
        key = (parent.table, parent.uuid)
        if key not in self._children:
            with self.nb.conn.lock:
                row = self._row(parent.table, parent.uuid)
                cols = {c for t, (pt, c) in PARENT.items() if pt == parent.table}
                self._children[key] = {x.uuid for c in cols for x in getattr(row, c)} \
                    if row is not None else set()
        return child.uuid in self._children[key]

    def holder(self, a: Actual) -> tuple:
        """(uuid, owned key or None) of the row holding ``a``; one scan for the pass."""
        if self._holder is None:
            self._holder = {}
            owner = self.nb.owner
            with self.nb.conn.lock:
                for ptable, col in set(PARENT.values()):
                    for prow in self.nb.idl.tables[ptable].rows.values():
                        pext = prow.external_ids
                        pkey = pext.get(KEY) if pext.get(OWNER) == owner else None
                        for child in getattr(prow, col):
                            self._holder[child.uuid] = (prow.uuid, pkey)
        return self._holder.get(a.uuid, (None, None))

    def get(self, table: str, default=()):
        """Names of ``table`` held by rows floatip does not own (indexed tables only)."""
        if table not in NAMED:
            return default
        if table not in self._foreign:
            owner = self.nb.owner
            with self.nb.conn.lock:
                self._foreign[table] = {
                    r.name for r in self.nb.idl.tables[table].rows.values()
                    if r.external_ids.get(OWNER) != owner or KEY not in r.external_ids}
        return self._foreign[table]


class Northbound:
    def __init__(self, remote: str, owner: str, on_change: Callable[[str], None],
                 timeout: float = 10.0):
        self.owner = owner
        self._cb = on_change
        # owned rows by key, kept up to date from the IDL's notifications (a scan of every
        # row's external_ids per pass costs ~85 ms at 1,000 floating IPs)
        self._index: dict[str, tuple[str, object, str | None]] = {}   # key -> table, uuid, obj
        self._keys: dict[object, str] = {}                             # uuid -> key
        self._indexed = False
        self.idl, self.conn = _connect(remote, "OVN_Northbound", timeout, self._notify)
        # ovsdbapp keeps the connection in a class attribute: a class of our own per
        # instance, or a second Northbound (another backend, a test) would take it over
        api_cls = type("FloatipNbApi", (nb_impl.OvnNbApiIdlImpl,), {})
        self.api = api_cls(self.conn)   # starts the connection thread

    def _notify(self, event, row, updates) -> None:
        table = row._table.name
        if table == "NB_Global":
            self._cb("hv")
            return
        if table not in PARENT and table not in ("Logical_Switch", "Logical_Router"):
            return
        self._track(event, table, row)
        for ext in (getattr(row, "external_ids", None),
                    getattr(updates, "external_ids", None) if updates is not None else None):
            if isinstance(ext, dict) and ext.get(OWNER) == self.owner and OBJECT in ext:
                self._cb("drift:" + ext[OBJECT])

    def _track(self, event: str, table: str, row) -> None:
        old = self._keys.pop(row.uuid, None)
        if old is not None:
            self._index.pop(old, None)
        if event == "delete":
            return
        ext = row.external_ids
        if ext.get(OWNER) == self.owner and KEY in ext:
            self._index[ext[KEY]] = (table, row.uuid, ext.get(OBJECT))
            self._keys[row.uuid] = ext[KEY]

    def _rescan(self) -> None:
        self._index, self._keys = {}, {}
        for table in TABLES:
            for row in self.idl.tables[table].rows.values():
                self._track("create", table, row)
        self._indexed = True

    def close(self) -> None:
        self.conn.stop(timeout=5)

    # -- reading (from the IDL's cache, under the connection's lock) -------------------
    def actual(self, rescan: bool = False) -> tuple[dict[str, "Actual"], "_Loader"]:
        """key -> owned row (columns and holder read on demand), and the names held by rows
        of other owners (``loader.get(table)``). ``rescan``: rebuild the index from every
        row (the full sync; after a reconnect the IDL refills without telling deletions)."""
        owned: dict[str, Actual] = {}
        loader = _Loader(self)
        with self.conn.lock:
            if rescan or not self._indexed:
                self._rescan()
            tables = self.idl.tables
            for key, (table, uid, obj) in self._index.items():
                if uid in tables[table].rows:
                    owned[key] = Actual(uid, table, key, obj, loader=loader)
        return owned, loader

    def cfg(self) -> tuple[int, int]:
        """NB_Global (nb_cfg, hv_cfg)."""
        with self.conn.lock:
            g = next(iter(self.idl.tables["NB_Global"].rows.values()), None)
            return (g.nb_cfg, g.hv_cfg) if g is not None else (0, 0)

    # -- writing ------------------------------------------------------------------------
    def apply(self, plan: Plan, actual: dict[str, Actual]) -> int:
        """One transaction for the whole plan, raising NB_Global.nb_cfg with it (as
        ``ovn-nbctl --wait=hv`` does); returns the nb_cfg the chassis must reach."""
        api = self.api
        cmds: dict[str, object] = {}
        new_children: dict[str, dict[str, list]] = {}   # parent key -> column -> commands
        gone = {a.uuid for a in plan.delete}
        new_keys = {r.key for r in plan.create}
        with api.transaction(check_error=True) as txn:
            for row in plan.create:   # leaves first
                cols = dict(row.columns)
                for col, children in new_children.pop(row.key, {}).items():
                    cols[col] = children
                cmd = txn.add(api.db_create(row.table, **cols))
                cmds[row.key] = cmd
                if row.parent is not None:
                    _, col = PARENT[row.table]
                    if row.parent in new_keys:
                        new_children.setdefault(row.parent, {}).setdefault(col, []).append(cmd)
                    else:
                        ptable, _ = PARENT[row.table]
                        txn.add(api.db_add(ptable, actual[row.parent].uuid, col, cmd))
            for row, have, cols in plan.update:
                txn.add(api.db_set(row.table, have.uuid, *cols.items()))
            for row, have in plan.attach:
                ptable, col = PARENT[row.table]
                parent = cmds.get(row.parent) or actual[row.parent].uuid
                txn.add(api.db_add(ptable, parent, col, have.uuid))
                if have.parent_uuid is not None and have.parent_uuid not in gone:
                    txn.add(api.db_remove(ptable, have.parent_uuid, col, have.uuid))
            for have in plan.delete:
                if have.table not in PARENT:
                    txn.add(api.db_destroy(have.table, have.uuid))
                elif have.parent_uuid is not None and have.parent_uuid not in gone:
                    ptable, col = PARENT[have.table]
                    txn.add(api.db_remove(ptable, have.parent_uuid, col, have.uuid))
                # a child no row holds is garbage collected by ovsdb-server already
            nb_cfg, _ = self.cfg()
            g = self._global_uuid()
            if g is not None:
                txn.add(api.db_set("NB_Global", g, ("nb_cfg", nb_cfg + 1)))
        return nb_cfg + 1

    def _global_uuid(self):
        with self.conn.lock:
            g = next(iter(self.idl.tables["NB_Global"].rows.values()), None)
            return g.uuid if g is not None else None


class Southbound:
    def __init__(self, remote: str, on_change: Callable[[str], None], timeout: float = 10.0):
        self._cb = on_change
        self.idl, self.conn = _connect(remote, "OVN_Southbound", timeout, self._notify,
                                       tables=SB_COLUMNS)
        self.conn.start()

    def _notify(self, event, row, updates) -> None:
        self._cb("sb:" + row._table.name)

    def close(self) -> None:
        self.conn.stop(timeout=5)

    def chassis(self) -> list[ChassisInfo]:
        out = []
        with self.conn.lock:
            for c in self.idl.tables["Chassis"].rows.values():
                cfg = {**c.external_ids, **c.other_config}
                maps = {m.split(":", 1)[0] for m in cfg.get("ovn-bridge-mappings", "").split(",")
                        if ":" in m}
                gw = "enable-chassis-as-gw" in cfg.get("ovn-cms-options", "").split(",")
                out.append(ChassisInfo(c.name, c.hostname or c.name, gw, frozenset(maps)))
        return sorted(out, key=lambda c: c.name)

    def bindings(self, ports) -> dict[str, tuple[str, str]]:
        """port id -> (chassis name, hostname) for the ports a chassis has claimed."""
        want = set(ports)
        out = {}
        with self.conn.lock:
            for pb in self.idl.tables["Port_Binding"].rows.values():
                if pb.logical_port in want and pb.chassis:
                    ch = pb.chassis[0]
                    out[pb.logical_port] = (ch.name, ch.hostname or ch.name)
        return out

    def chassis_cfg(self) -> dict[str, int]:
        """chassis name -> the nb_cfg it has caught up with."""
        with self.conn.lock:
            return {p.name: p.nb_cfg for p in self.idl.tables["Chassis_Private"].rows.values()}
