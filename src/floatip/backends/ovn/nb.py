"""The OVN databases through ovsdbapp: the Northbound rows floatip owns (read from the IDL
cache, written in one transaction per plan) and what the Southbound says (chassis, port
bindings) plus NB_Global's nb_cfg / hv_cfg. No ``ovn-nbctl`` processes."""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Callable

from ovs.db.data import Atom
from ovs.db.types import UuidType
from ovsdbapp.backend.ovs_idl import connection, idlutils
from ovsdbapp.backend.ovs_idl.transaction import Transaction
from ovsdbapp.schema.ovn_northbound import impl_idl as nb_impl

from .chassis import ChassisCfg
from .dhcp import Ref
from .diff import Actual, Plan
from .translate import HOLDERS, KEY, NAMED, OBJECT, OWNER, PARENT, TABLES, ChassisInfo

log = logging.getLogger("floatip.ovn")

SB_COLUMNS = {
    "Chassis": ["name", "hostname", "other_config", "external_ids"],
    "Chassis_Private": ["name", "nb_cfg", "nb_cfg_timestamp", "chassis"],
    "Port_Binding": ["logical_port", "chassis", "up"],
}


class _Idl(connection.OvsdbIdl):
    """An IDL that tells the backend what changed, so it wakes at once (hand-made drift of
    owned rows, chassis catching up, ports bound), and when it reconnected: a refill after
    a reconnect tells no deletions, so what changed meanwhile needs a full compare."""

    on_change: Callable[[str, object, object], None] | None = None
    _synced: int | None = None   # session seqno of the last complete monitor reply

    def run(self):
        changed = super().run()
        seqno = self._session.get_seqno()
        if self._session.is_connected() and self.state == self.IDL_S_MONITORING and \
                seqno != self._synced:
            first, self._synced = self._synced is None, seqno
            if not first and self.on_change is not None:
                self.notify("reconnect", None)
        return changed

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


class _Columns:
    """A row's columns, each read from the IDL when asked (a router's ``nat`` column with
    10,000 references is never built when only its name is compared)."""

    def __init__(self, nb: "Northbound", table: str, uuid):
        self.nb, self.table, self.uuid = nb, table, uuid

    def get(self, column: str, default=None):
        with self.nb.conn.lock:
            row = self.nb.idl.tables[self.table].rows.get(self.uuid)
            return default if row is None else getattr(row, column, default)

    def __getitem__(self, column: str):
        return self.get(column)


def _holds(prow, column: str, child_uuid) -> bool:
    """Whether ``prow``'s reference set ``column`` holds ``child_uuid``. python-ovs keeps a
    set column as a Datum keyed by Atom: a lookup there, not a list of 10,000 rows."""
    datum = getattr(prow, "_data", {}).get(column)
    if datum is not None:
        return Atom(UuidType, child_uuid) in datum.values
    return any(x.uuid == child_uuid for x in getattr(prow, column))


class _Loader:
    """Reads what a sync pass needs of NB rows, when it needs it, from the IDL cache."""

    def __init__(self, nb: "Northbound"):
        self.nb = nb
        self._holder: dict = {}

    def columns(self, a: Actual) -> _Columns:
        return _Columns(self.nb, a.table, a.uuid)

    def holds(self, parent: Actual, child: Actual) -> bool:
        _, col = PARENT[child.table]
        with self.nb.conn.lock:
            prow = self.nb.idl.tables[parent.table].rows.get(parent.uuid)
            return prow is not None and _holds(prow, col, child.uuid)

    def holders(self, a: Actual) -> frozenset[str]:
        """Keys of the owned rows holding ``a`` through ``HOLDERS`` (a few switches)."""
        if a.table not in HOLDERS:
            return frozenset()
        table, col = HOLDERS[a.table]
        owner = self.nb.owner
        with self.nb.conn.lock:
            return frozenset(prow.external_ids[KEY]
                             for prow in self.nb.idl.tables[table].rows.values()
                             if prow.external_ids.get(OWNER) == owner
                             and KEY in prow.external_ids and _holds(prow, col, a.uuid))

    def holder(self, a: Actual) -> tuple:
        """(uuid, owned key or None) of the row holding ``a``: a look into each row of the
        parent table (a few routers or switches), not into every reference."""
        if a.uuid not in self._holder:
            found = (None, None)
            if a.table in PARENT:
                ptable, col = PARENT[a.table]
                owner = self.nb.owner
                with self.nb.conn.lock:
                    for prow in self.nb.idl.tables[ptable].rows.values():
                        if _holds(prow, col, a.uuid):
                            pext = prow.external_ids
                            found = (prow.uuid, pext.get(KEY) if pext.get(OWNER) == owner
                                     else None)
                            break
            self._holder[a.uuid] = found
        return self._holder[a.uuid]


class Owned(Mapping):
    """The rows floatip owns, by key, looked up in the index (kept from the IDL's
    notifications) when asked: a per-object sync touches a few rows among many. ``keys_of``
    gives an object's rows without a scan."""

    def __init__(self, nb: "Northbound", loader: _Loader):
        self._nb, self._loader = nb, loader
        self._cache: dict[str, Actual] = {}

    def __getitem__(self, key: str) -> Actual:
        have = self._cache.get(key)
        if have is None:
            nb = self._nb
            with nb.conn.lock:
                entry = nb._index.get(key)
                if entry is None or entry[1] not in nb.idl.tables[entry[0]].rows:
                    raise KeyError(key)
            have = self._cache[key] = Actual(entry[1], entry[0], key, entry[2],
                                             loader=self._loader)
        return have

    def __iter__(self):
        nb = self._nb
        with nb.conn.lock:
            tables = nb.idl.tables
            keys = [k for k, (t, uid, _) in nb._index.items() if uid in tables[t].rows]
        return iter(keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def keys_of(self, obj: str) -> list[str]:
        with self._nb.conn.lock:
            return list(self._nb._by_obj.get(obj, ()))

    def prefetch(self, desired: dict) -> None:
        """Every owned row with the columns ``desired`` (key -> translate.Row) compares and
        the row holding it, read in one hold of the IDL's lock: the full pass, where row by
        row costs a lock and a lookup per column."""
        nb = self._nb
        with nb.conn.lock:
            tables = nb.idl.tables
            holder = {}
            for ptable, col in set(PARENT.values()):
                for prow in tables[ptable].rows.values():
                    ext = prow.external_ids
                    pkey = ext.get(KEY) if ext.get(OWNER) == nb.owner else None
                    for child in getattr(prow, col):
                        holder[child.uuid] = (prow.uuid, pkey)
            held: dict = {}   # child uuid -> owned keys holding it through HOLDERS
            for ptable, col in set(HOLDERS.values()):
                for prow in tables[ptable].rows.values():
                    ext = prow.external_ids
                    if ext.get(OWNER) == nb.owner and KEY in ext:
                        for child in getattr(prow, col):
                            held.setdefault(child.uuid, set()).add(ext[KEY])
            for key, (table, uid, obj) in nb._index.items():
                row = tables[table].rows.get(uid)
                if row is None:
                    continue
                want = desired.get(key)
                cols = want.columns if want is not None and want.table == table else ()
                puuid, pkey = holder.get(uid, (None, None))
                self._cache[key] = Actual(uid, table, key, obj,
                                          {c: getattr(row, c) for c in cols}, pkey, puuid,
                                          loader=self._loader,
                                          holders=frozenset(held.get(uid, ())))


class Northbound:
    def __init__(self, remote: str, owner: str, on_change: Callable[[str], None],
                 timeout: float = 10.0):
        self.owner = owner
        self.timeout = timeout
        self._cb = on_change
        # owned rows by key and by object, kept up to date from the IDL's notifications (a
        # scan of every row's external_ids per pass costs ~85 ms at 1,000 floating IPs);
        # and the names of indexed tables held by rows of other owners
        self._index: dict[str, tuple[str, object, str | None]] = {}   # key -> table, uuid, obj
        self._keys: dict[object, str] = {}                             # uuid -> key
        self._by_obj: dict[str | None, set[str]] = {}                  # obj -> keys
        self._foreign: dict[str, Counter] = {t: Counter() for t in NAMED}
        self._foreign_rows: dict[object, tuple[str, str]] = {}        # uuid -> table, name
        self._indexed = False
        self.idl, self.conn = _connect(remote, "OVN_Northbound", timeout, self._notify)
        # ovsdbapp keeps the connection in a class attribute: a class of our own per
        # instance, or a second Northbound (another backend, a test) would take it over
        api_cls = type("FloatipNbApi", (nb_impl.OvnNbApiIdlImpl,), {})
        self.api = api_cls(self.conn)   # starts the connection thread

    def _notify(self, event, row, updates) -> None:
        if event == "reconnect":
            self._cb("reconnect")
            return
        table = row._table.name
        if table == "NB_Global":
            self._cb("hv")
            return
        if table not in TABLES:
            return
        self._track(event, table, row)
        for ext in (getattr(row, "external_ids", None),
                    getattr(updates, "external_ids", None) if updates is not None else None):
            if isinstance(ext, dict) and ext.get(OWNER) == self.owner and OBJECT in ext:
                self._cb("drift:" + ext[OBJECT])

    def _track(self, event: str, table: str, row) -> None:
        old = self._keys.pop(row.uuid, None)
        if old is not None:
            entry = self._index.pop(old, None)
            if entry is not None:
                keys = self._by_obj.get(entry[2])
                if keys is not None:
                    keys.discard(old)
                    if not keys:
                        del self._by_obj[entry[2]]
        gone = self._foreign_rows.pop(row.uuid, None)
        if gone is not None:
            names = self._foreign[gone[0]]
            names[gone[1]] -= 1
            if names[gone[1]] <= 0:
                del names[gone[1]]
        if event == "delete":
            return
        ext = row.external_ids
        if ext.get(OWNER) == self.owner and KEY in ext:
            key, obj = ext[KEY], ext.get(OBJECT)
            self._index[key] = (table, row.uuid, obj)
            self._keys[row.uuid] = key
            self._by_obj.setdefault(obj, set()).add(key)
        elif table in NAMED:
            self._foreign_rows[row.uuid] = (table, row.name)
            self._foreign[table][row.name] += 1

    def _rescan(self) -> None:
        self._index, self._keys, self._by_obj = {}, {}, {}
        self._foreign = {t: Counter() for t in NAMED}
        self._foreign_rows = {}
        for table in TABLES:
            for row in self.idl.tables[table].rows.values():
                self._track("create", table, row)
        self._indexed = True

    def close(self) -> None:
        self.conn.stop(timeout=5)

    # -- reading (from the IDL's cache, under the connection's lock) -------------------
    def actual(self, rescan: bool = False) -> tuple[Owned, dict[str, Counter]]:
        """The owned rows by key (``Owned``: columns and holder read on demand), and per
        indexed table the names held by rows of other owners. ``rescan``: rebuild the
        indexes from every row (the full sync; after a reconnect the IDL refills without
        telling deletions)."""
        with self.conn.lock:
            if rescan or not self._indexed:
                self._rescan()
        return Owned(self, _Loader(self)), self._foreign

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
        added: dict[tuple, list] = {}   # (table, uuid, column) of an existing row -> new children

        def ref(key: str):
            if key in cmds:
                return cmds[key]
            return actual[key].uuid if key in actual else None

        def resolved(cols: dict) -> dict:
            """References by key -> the row made in this transaction, or the owned one."""
            return {c: [r for x in v if (r := ref(x) if isinstance(x, Ref) else x) is not None]
                    if isinstance(v, list) else v for c, v in cols.items()}
        # a big plan (10,000 rules in one bulk create) commits for longer than one row
        rows = len(plan.create) + len(plan.update) + len(plan.attach) + len(plan.delete)
        with Transaction(api, self.conn, self.timeout + rows / 250, check_error=True) as txn:
            for row in plan.create:   # leaves first
                cols = resolved(row.columns)
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
                        added.setdefault((ptable, actual[row.parent].uuid, col), []).append(cmd)
                for hkey in row.holders:   # a load balancer's switches
                    htable, hcol = HOLDERS[row.table]
                    if hkey in new_keys:
                        new_children.setdefault(hkey, {}).setdefault(hcol, []).append(cmd)
                    elif hkey in actual:
                        added.setdefault((htable, actual[hkey].uuid, hcol), []).append(cmd)
            for (ptable, puuid, col), children in added.items():   # one mutation per parent
                txn.add(api.db_add(ptable, puuid, col, *children))
            for row, have, cols in plan.update:
                # db_set merges a map into the row's: a load balancer's VIPs that go are
                # removed by key, and only the VIPs that differ are set (one forwarding
                # changed on a floating IP with 1,000: one key, not the 1,000)
                if "vips" in cols:
                    had = have.columns.get("vips") or {}
                    stale = [k for k in had if k not in cols["vips"]]
                    if stale:
                        txn.add(api.db_remove(row.table, have.uuid, "vips", *stale))
                    cols = {**cols, "vips": {k: v for k, v in cols["vips"].items()
                                             if had.get(k) != v}}
                    if not cols["vips"]:
                        del cols["vips"]
                if cols:
                    txn.add(api.db_set(row.table, have.uuid, *resolved(cols).items()))
            for row, have in plan.attach:
                ptable, col = PARENT[row.table]
                parent = cmds.get(row.parent) or actual[row.parent].uuid
                txn.add(api.db_add(ptable, parent, col, have.uuid))
                if have.parent_uuid is not None and have.parent_uuid not in gone:
                    txn.add(api.db_remove(ptable, have.parent_uuid, col, have.uuid))
            for row, have, add, drop in plan.hold:
                htable, hcol = HOLDERS[have.table]
                for hkey in add:
                    holder = cmds.get(hkey) or actual[hkey].uuid
                    txn.add(api.db_add(htable, holder, hcol, have.uuid))
                for hkey in drop:
                    if hkey in actual and actual[hkey].uuid not in gone:
                        txn.add(api.db_remove(htable, actual[hkey].uuid, hcol, have.uuid))
            for have in plan.delete:
                if have.table not in PARENT or have.table == "Load_Balancer":  # roots
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

    def bump(self) -> int:
        """Raise NB_Global.nb_cfg alone: every live chassis answers with a fresh
        ``nb_cfg_timestamp`` (Neutron's agent liveness check does the same)."""
        api = self.api
        with api.transaction(check_error=True) as txn:
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
    """Chassis, port bindings and what each chassis caught up with. The backend is told
    ``"chassis"`` (a chassis came, went or changed its mappings), ``"pb:<port>"`` (a port
    was bound or unbound) and ``"hv"`` (a chassis caught up)."""

    def __init__(self, remote: str, on_change: Callable[[str], None], timeout: float = 10.0):
        self._cb = on_change
        self._bound: dict[str, object] = {}     # logical port -> chassis uuid
        self.idl, self.conn = _connect(remote, "OVN_Southbound", timeout, self._notify,
                                       tables=SB_COLUMNS)
        self.conn.start()

    def _notify(self, event, row, updates) -> None:
        if event == "reconnect":
            self._cb("reconnect")
            return
        table = row._table.name
        if table == "Port_Binding":
            self._track(event, row)
            self._cb("pb:" + row.logical_port)
        elif table == "Chassis":
            self._cb("chassis")
        else:
            self._cb("hv")

    def _track(self, event: str, row) -> None:
        if event != "delete" and row.chassis:
            self._bound[row.logical_port] = row.chassis[0].uuid
        else:
            self._bound.pop(row.logical_port, None)

    def rescan(self) -> None:
        """The binding index again from every row (after a reconnect the IDL refills
        without telling deletions)."""
        with self.conn.lock:
            self._bound = {}
            for pb in self.idl.tables["Port_Binding"].rows.values():
                self._track("create", pb)

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
        """port id -> (chassis name, hostname) for those of ``ports`` a chassis claimed."""
        out = {}
        with self.conn.lock:
            chassis = self.idl.tables["Chassis"].rows
            for p in ports:
                ch = chassis.get(self._bound.get(p))
                if ch is not None:
                    out[p] = (ch.name, ch.hostname or ch.name)
        return out

    def chassis_cfg(self) -> dict[str, ChassisCfg]:
        """chassis name -> the nb_cfg it has caught up with, and when."""
        with self.conn.lock:
            return {p.name: ChassisCfg(p.nb_cfg, p.nb_cfg_timestamp)
                    for p in self.idl.tables["Chassis_Private"].rows.values()}
