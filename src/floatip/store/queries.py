"""The only queries: repository functions called by the service layer inside one transaction."""
from __future__ import annotations

import random
import uuid
from typing import Any, Iterable

from sqlalchemy import (and_, bindparam, case, delete as sa_delete, func, insert, literal,
                        literal_column, or_, select, union_all, update)
from sqlalchemy.orm import Session, aliased, lazyload
from sqlalchemy.orm.util import identity_key

from .tables import (AddressGroup, Change, DeletedRouter, Info, FloatingIP, IPAllocation, Meta,
                     Network, Port, PortForwarding, PortSecurityGroup, QosBandwidthLimitRule,
                     Router, RouterPort, SecurityGroup, SecurityGroupRule, SubPort, Subnet, Trunk,
                     utcnow)


# ---------------------------------------------------------------------------------------
# Repository functions

KEEP_CHANGES = 100_000  # an agent further behind reads everything again


def changed_keys(obj) -> list[tuple[str, str]]:
    """(resource, id) pairs in the agent's vocabulary that a changed row stands for."""
    match obj:
        case Network():
            return [("network", obj.id)]
        case Subnet():
            return [("subnet", obj.id)]
        case Port():
            return [("port", obj.id)]
        case IPAllocation():
            return [("port", obj.port_id)]
        case Router() | DeletedRouter():
            return [("router", obj.id)]
        case RouterPort():
            return [("router", obj.router_id), ("port", obj.port_id)]
        case FloatingIP():
            return [("floatingip", obj.id)]
        case SecurityGroup():
            return [("security_group", obj.id)]
        case SecurityGroupRule():  # a rule reaches the agent as a change of its group
            return [("security_group", obj.security_group_id)]
        case PortSecurityGroup():
            return [("port", obj.port_id)]
        case AddressGroup():
            return [("address_group", obj.id)]
        case PortForwarding():  # its own element: not its floating IP's 1,000 others
            return [("port_forwarding", obj.id)]
    return []


_meta = Meta.__table__
_BUMP = (update(_meta).where(_meta.c.key == "generation").values(value=_meta.c.value + 1)
         .returning(_meta.c.value))
_chg = Change.__table__
_ADD_CHANGES = insert(_chg)
# PostgreSQL: a change's generation is its transaction's id, given when the transaction
# first wrote: no row every writer updates (the counter row was the one all writes queued
# on). Ids are given in order but commit in any order, so readers stop below the oldest
# transaction still running (``_PG_POSITION``): nothing below it can appear later.
_XID = literal_column("pg_current_xact_id()::text::bigint")
_ADD_CHANGES_PG = insert(_chg).values(generation=_XID)
_PRUNED = select(_meta.c.value).where(_meta.c.key == "pruned").scalar_subquery()
# the newest change below the oldest transaction still running (the snapshot's xmin): every
# change up to it is committed and visible, and none can appear below it later. It moves
# with changes only, not with other transactions.
_PG_POSITION = func.greatest(func.coalesce(
    select(func.max(_chg.c.generation)).where(
        _chg.c.generation < literal_column("pg_snapshot_xmin(pg_current_snapshot())::text"
                                           "::bigint")).scalar_subquery(), 0),
    func.coalesce(_PRUNED, 0))


def _pg(s: Session) -> bool:
    return s.bind.dialect.name == "postgresql"


def bump_generation(s: Session, changed: Iterable[tuple[str, str]] = ()) -> int:
    """Record what this transaction changed, in the same transaction, under its
    generation. SQLite (one writer at a time): the next value of the counter row, one
    UPDATE ... RETURNING. PostgreSQL: the transaction's id, no shared row (``_XID``)."""
    conn = s.connection()
    keys = sorted(set(changed))
    if _pg(s):
        if keys:
            conn.execute(_ADD_CHANGES_PG, [{"resource": r, "resource_id": i} for r, i in keys])
        if random.random() < 0.001:  # now and then: the feed keeps ~KEEP_CHANGES ids
            _prune_pg(s, KEEP_CHANGES)
        return 0
    gen = conn.execute(_BUMP).scalar()
    if gen is None:
        gen = 1
        conn.execute(insert(_meta).values(key="generation", value=gen))
    if keys:
        conn.execute(_ADD_CHANGES, [{"generation": gen, "resource": r, "resource_id": i}
                                    for r, i in keys])
    if gen % 1000 == 0:  # the feed keeps the last KEEP_CHANGES generations
        s.execute(sa_delete(Change).where(Change.generation <= gen - KEEP_CHANGES))
    return gen


def _prune_pg(s: Session, keep: int) -> None:
    """Forget changes of transactions more than ``keep`` ids old; ``pruned`` says how far
    (a reader behind it reads everything). A transaction still running below the mark
    writes its rows after the delete: only readers behind the mark could want them."""
    mark = s.connection().execute(select(_XID)).scalar() - keep
    if mark <= 0:
        return
    s.execute(sa_delete(Change).where(Change.generation <= mark))
    s.merge(Meta(key="pruned", value=mark))


# the generation now and the oldest change kept, in one statement
_FEED = select(select(_meta.c.value).where(_meta.c.key == "generation").scalar_subquery(),
               select(func.min(_chg.c.generation)).scalar_subquery())
_PG_FEED = select(_PG_POSITION, _PRUNED)
_CHANGES = select(_chg.c.resource, _chg.c.resource_id).where(_chg.c.generation > bindparam("g"))
_PG_CHANGES = _CHANGES.where(_chg.c.generation <= bindparam("now"))
_HELD = select(literal(1)).where(_chg.c.generation > bindparam("now")).limit(1)


def changes_since(s: Session, gen: int) -> tuple[int, list[tuple[str, str]]] | None:
    """(generation now, [(resource, id)] changed after ``gen``); None when the feed no longer
    reaches back to ``gen`` (pruned): the caller reads everything. Prebuilt statements on
    the Core connection: the agent reads a delta after every commit, and building and
    executing each SELECT through the ORM session cost more than the query.
    PostgreSQL: "now" is the newest change below the oldest writer still running, read in
    the caller's snapshot (REPEATABLE READ, ``_PG_POSITION``); a later one committed
    meanwhile waits for the next read (``changes_held``)."""
    conn = s.connection()
    if _pg(s):
        now, pruned = conn.execute(_PG_FEED).one()
        if gen < (pruned or 0):
            return None
        if gen >= now:
            return now, []
        rows = conn.execute(_PG_CHANGES, {"g": gen, "now": now}).all()
        return now, sorted({(r, i) for r, i in rows})
    now, oldest = conn.execute(_FEED).one()
    now = now or 0
    if gen >= now:
        return now, []
    if oldest is None or oldest > gen + 1:
        return None
    rows = conn.execute(_CHANGES, {"g": gen}).all()
    return now, sorted({(r, i) for r, i in rows})


def changes_held(s: Session, now: int) -> bool:
    """Changes committed past ``now`` (the feed's position) are visible but held back
    behind an older writer still running: the reader should look again soon."""
    return _pg(s) and s.connection().execute(_HELD, {"now": now}).first() is not None


def select_changes(gen: int):
    """The change rows after ``gen`` (tests and tools read them)."""
    return select(Change.__table__).where(Change.generation > gen).order_by(Change.generation)


def prune_changes(s: Session, keep: int) -> None:
    """Forget changes older than the last ``keep`` generations."""
    if _pg(s):
        _prune_pg(s, keep)
        return
    s.execute(sa_delete(Change).where(Change.generation <= generation(s) - keep))


def instance_id(s: Session) -> str:
    """This database's server instance id, made on first use and kept."""
    row = s.get(Info, "instance_id")
    if row is None:
        row = Info(key="instance_id", value=uuid.uuid4().hex[:12])
        s.add(row)
        s.flush()
    return row.value


_LAZY = (lazyload("*"),)


def get(s: Session, model, rid: str, lock: bool = False, related: bool = True):
    """The row with id ``rid`` or None; ``lock``: locked until commit (SELECT ... FOR UPDATE).
    ``related=False``: its relationships (a port's addresses) are loaded when first read,
    not with the row (an access check reads columns only).
    SQLite has no row locks (a writer holds the whole database from BEGIN IMMEDIATE): there
    the row the transaction read already needs no second query. The session's identity map
    holds rows weakly: the rows got are held for the transaction, so a second get of one row
    in a request (access's check, then the service) is no query either, nor is locking
    a row this transaction locked already."""
    locked = s.info.setdefault("locked", set())
    if lock and s.bind.dialect.name != "sqlite" and (model, rid) not in locked:
        q = select(model).where(model.id == rid).with_for_update()
        # the row as locked, not as an earlier read of it in this transaction saw it
        q = q.execution_options(populate_existing=True)
        row = s.execute(q if related else q.options(*_LAZY)).scalar_one_or_none()
        locked.add((model, rid))
    else:
        row = s.get(model, rid) if related else s.get(model, rid, options=_LAZY)
    if row is not None:
        s.info.setdefault("held", []).append(row)
    return row


def list_all(s: Session, model, filters: dict[str, Iterable[Any]] | None = None,
             where: Iterable[Any] = ()) -> list:
    """Rows of ``model``; ``filters`` maps column names to accepted values (SQL side);
    ``where``: further conditions (tag filters)."""
    q = select(model).where(*where)
    for col, values in (filters or {}).items():
        q = q.where(getattr(model, col).in_(list(values)))
    if hasattr(model, "created_at"):
        q = q.order_by(model.created_at, model.id)
    return list(s.execute(q).scalars())


def subnets_on_shared(values: set[bool]):
    """The condition: a subnet whose network's ``shared`` is one of ``values``."""
    return Subnet.network_id.in_(select(Network.id).where(Network.shared.in_(sorted(values))))


def page(s: Session, model, filters: dict[str, Iterable[Any]] | None = None, *,
         sort: list[str] = (), dirs: list[str] = (), limit: int | None = None,
         marker: str | None = None, reverse: bool = False, plain: bool = False,
         where: Iterable[Any] = ()) -> list:
    """One page of ``model`` rows in SQL: filters, ORDER BY the sort keys (then the default
    order, then id), rows after ``marker`` (keyset: a row-value comparison on the index),
    LIMIT. ``plain``: Core rows (attribute access, no ORM objects: 10,000 of them are read
    several times faster). ``where``: further conditions (tag filters)."""
    cols = [getattr(model, k) for k in sort] or \
        ([model.created_at] if hasattr(model, "created_at") else [])
    asc = [(dirs[i] if i < len(dirs) else "asc") == "asc" for i in range(len(cols))]
    cols.append(model.id)
    asc.append(True)  # Neutron's tiebreak: id ascending, whatever the keys' directions
    if reverse:
        asc = [not a for a in asc]
    q = (select(model.__table__) if plain else select(model)).where(*where)
    for col, values in (filters or {}).items():
        q = q.where(getattr(model, col).in_(list(values)))
    if marker:
        m = s.get(model, marker)
        if m is None:
            return []
        # keyset paging: equal on the leading keys, past the marker on the next one
        ors = []
        for i, col in enumerate(cols):
            val = getattr(m, col.key)
            past = col > val if asc[i] else col < val
            ors.append(and_(*[c == getattr(m, c.key) for c in cols[:i]], past))
        q = q.where(or_(*ors))
    q = q.order_by(*[c.asc() if a else c.desc() for c, a in zip(cols, asc)])
    if limit:
        q = q.limit(limit)
    rows = list(s.execute(q)) if plain else list(s.execute(q).scalars())
    return rows[::-1] if reverse else rows


def load_many(s: Session, model, ids: set[str], relations: bool = True,
              plain: bool = False) -> list:
    """Into the session's identity map, in chunks of one IN query each. The identity map
    holds objects weakly: keep the returned list while the session is to find them.
    ``plain``: Core rows instead (columns only, several times faster to read)."""
    ids = sorted(ids)
    out = []
    for i in range(0, len(ids), 500):
        if plain:
            t = model.__table__
            out += s.execute(select(t).where(t.c.id.in_(ids[i:i + 500]))).all()
            continue
        q = select(model).where(model.id.in_(ids[i:i + 500]))
        out += s.execute(q if relations else q.options(lazyload("*"))).scalars().all()
    return out


def add(s: Session, row) -> Any:
    s.add(row)
    s.flush()
    return row


def delete(s: Session, row) -> None:
    s.delete(row)
    s.flush()


def _record_changes(s: Session, keys: Iterable[tuple[str, str]]) -> None:
    """What a statement outside the unit of work changed, recorded as a flush would."""
    s.info.setdefault("changed", set()).update(keys)
    s.info["wrote"] = True


def delete_unreferenced(s: Session, model: type[FloatingIP] | type[Port], rid: str) -> None:
    """``delete`` for a floating IP, or a port no router or floating IP refers to, by id
    (the row need not be read) as one DELETE statement (a port's addresses go by ON DELETE
    CASCADE): the unit of work's flush of a delete was a third of a DELETE request's time
    inside the write lock. What it changes is recorded."""
    table = model.__table__
    _delete_by_id(s, model, rid, sa_delete(table).where(table.c.id == bindparam("id")))


def _delete_by_id(s: Session, model, rid: str, statement) -> bool:
    s.flush()
    if not s.connection().execute(statement, {"id": rid}).rowcount:
        return False
    _deleted(s, model, rid)
    return True


def _deleted(s: Session, model, rid: str) -> None:
    """A row deleted by a statement: the change recorded, the session's copy forgotten."""
    _record_changes(s, changed_keys(model(id=rid)))
    row = s.identity_map.get(identity_key(model, rid))
    if row is not None:
        s.expunge(row)


_fip = FloatingIP.__table__
_RELEASE = (update(_fip).where(_fip.c.fixed_port_id == bindparam("p"))
            .values(fixed_port_id=None, fixed_ip_address=None, router_id=None, status="DOWN",
                    revision_number=_fip.c.revision_number + 1, updated_at=bindparam("now"))
            .returning(_fip.c.id))


def release_fips_of(s: Session, port_id: str) -> None:
    """The floating IPs on a port let go of it (DOWN, as ``touch`` counts an update): one
    UPDATE, its changes recorded."""
    ids = s.connection().execute(_RELEASE, {"p": port_id, "now": utcnow()}).scalars().all()
    if ids:
        _record_changes(s, (("floatingip", i) for i in ids))


_BACKS = union_all(
    select(literal("router"), RouterPort.router_id).where(RouterPort.port_id == bindparam("p")),
    select(literal("floating IP"), FloatingIP.id).where(FloatingIP.floating_port_id == bindparam("p")),
    select(literal("router"), Router.id).where(Router.gw_port_id == bindparam("p"))).limit(1)


def port_backs(s: Session, port_id: str) -> str | None:
    """The router or floating IP a port backs (as an interface, a gateway or a floating
    IP's address), as "router ID" / "floating IP ID", or None: one statement."""
    row = s.connection().execute(_BACKS, {"p": port_id}).first()
    return f"{row[0]} {row[1]}" if row else None


_p = bindparam("p")
# everything a port delete asks of other tables, in the order its refusals are checked
_USES = union_all(
    select(literal("sub"), SubPort.trunk_id).where(SubPort.port_id == _p),
    select(literal("parent"), Trunk.id).where(Trunk.port_id == _p),
    select(literal("router"), RouterPort.router_id).where(RouterPort.port_id == _p),
    select(literal("floating IP"), FloatingIP.id).where(FloatingIP.floating_port_id == _p),
    select(literal("router"), Router.id).where(Router.gw_port_id == _p),
    select(literal("fixed"), FloatingIP.id).where(FloatingIP.fixed_port_id == _p),
    select(literal("forwarding"), PortForwarding.id).where(PortForwarding.internal_port_id == _p))


def port_uses(s: Session, port_id: str) -> list[tuple[str, str]]:
    """(use, id) of every row that names the port: a trunk ("sub", "parent"), what it backs
    ("router", "floating IP", as ``port_backs``), a floating IP on it ("fixed"), a port
    forwarding to it ("forwarding"). One statement where a port delete made four; with the
    port locked, no new use can commit before the delete does (their foreign keys wait)."""
    return [tuple(r) for r in s.connection().execute(_USES, {"p": port_id})]


def touch(row) -> None:
    row.revision_number = (row.revision_number or 0) + 1
    row.updated_at = utcnow()


def subnets_of(s: Session, network_id: str) -> list[Subnet]:
    return list_all(s, Subnet, {"network_id": [network_id]})


def ports_on_network(s: Session, network_id: str) -> list[Port]:
    return list_all(s, Port, {"network_id": [network_id]})


def router_ports(s: Session, router_id: str | None = None, port_type: str | None = None) -> list[RouterPort]:
    q = select(RouterPort)
    if router_id is not None:
        q = q.where(RouterPort.router_id == router_id)
    if port_type is not None:
        q = q.where(RouterPort.port_type == port_type)
    return list(s.execute(q).scalars())


def router_port_of(s: Session, port_id: str) -> RouterPort | None:
    return s.get(RouterPort, port_id)


def fips_where(s: Session, **eq) -> list[FloatingIP]:
    q = select(FloatingIP)
    for k, v in eq.items():
        q = q.where(getattr(FloatingIP, k) == v)
    return list(s.execute(q.order_by(FloatingIP.created_at, FloatingIP.id)).scalars())


def routers_with_gateway(s: Session, port_id: str) -> list[str]:
    return list(s.execute(select(Router.id).where(Router.gw_port_id == port_id)).scalars())


def _router_for_subnet():
    gw, itf = aliased(Port), aliased(Port)
    # from the network's interface ports ((network_id, device_owner) index: a few), not
    # from every router interface (100 routers: 0.5 ms) nor every address on the subnet
    # (each VM port's: 10,000 made the POST 15 ms slower; the subnet term is an expression,
    # `|| ''`, so that SQLite does not start there). device_owner only narrows: the router
    # port row decides.
    return (select(Router).select_from(itf)
            .join(RouterPort, RouterPort.port_id == itf.id)
            .join(Router, Router.id == RouterPort.router_id)
            .join(IPAllocation, IPAllocation.port_id == itf.id)
            .join(gw, gw.id == Router.gw_port_id)
            .where(itf.network_id == bindparam("net"), itf.device_owner == bindparam("itype"),
                   RouterPort.port_type == bindparam("itype"),
                   IPAllocation.subnet_id.concat("") == bindparam("sid"),
                   gw.network_id == bindparam("ext"))
            # Neutron's get_router_for_floatingip: the router holding the subnet's gateway
            # address, then the first
            .order_by(case((IPAllocation.ip_address == bindparam("gw"), 0), else_=1),
                      Router.created_at, Router.id).limit(1))


_ROUTER_FOR_SUBNET = _router_for_subnet()  # built once: adapting the aliases cost ~0.5 ms


def router_for_subnet(s: Session, network_id: str, subnet_id: str, external_network_id: str,
                      interface_type: str, gateway_ip: str | None) -> Router | None:
    """The router for a floating IP of a port on the subnet (of ``network_id``): of those
    with an interface there and their gateway on the external network, the one whose
    interface address is ``gateway_ip`` (the subnet's), else the first in creation order
    (the agent's order: ``core.model.State.router_for_fip``). Indexed lookups from the
    network's interface ports."""
    return s.execute(_ROUTER_FOR_SUBNET, {"itype": interface_type, "sid": subnet_id,
                                          "net": network_id, "gw": gateway_ip or "",
                                          "ext": external_network_id}).scalar()


def used_vlans(s: Session) -> set[int]:
    return {v for v in s.execute(select(Network.local_vlan)).scalars() if v is not None}


def deleted_routers(s: Session) -> set[str]:
    return set(s.execute(select(DeletedRouter.id)).scalars())


def record_router_deleted(s: Session, rid: str) -> None:
    s.merge(DeletedRouter(id=rid))


def generation(s: Session) -> int:
    """The newest committed change: a backend at this generation has realised everything
    committed so far. PostgreSQL: the newest change visible (its transaction's id)."""
    if _pg(s):
        return s.execute(select(func.max(_chg.c.generation))).scalar() or \
            s.execute(select(_PRUNED)).scalar() or 0
    return s.execute(select(Meta.value).where(Meta.key == "generation")).scalar() or 0


def feed_position(s: Session) -> int:
    """Where a reader of the change feed stands after reading everything in this
    transaction: SQLite's counter; on PostgreSQL the newest change below the oldest writer
    still running (changes past it may be read again: a re-read, never a miss)."""
    if _pg(s):
        return s.execute(select(_PG_POSITION)).scalar()
    return generation(s)


def snapshot_rows(s: Session) -> dict:
    """Every row the agent needs, as plain rows (Core selects, no ORM identity map)."""
    out = {}
    for key, model in (("networks", Network), ("subnets", Subnet), ("ports", Port),
                       ("ipallocations", IPAllocation), ("routerports", RouterPort),
                       ("routers", Router), ("floatingips", FloatingIP),
                       ("portforwardings", PortForwarding)):
        q = select(model.__table__)
        if "created_at" in model.__table__.c:
            q = q.order_by(model.__table__.c.created_at, model.__table__.c.id)
        out[key] = list(s.execute(q))
    out["qos_rules"] = list(s.execute(select(QosBandwidthLimitRule.__table__)))
    out["deleted_routers"] = deleted_routers(s)
    out["generation"] = feed_position(s)
    return out


def qos_bindings(s: Session, policy_id: str) -> tuple[list[str], list[str]]:
    """(floating IP ids, router ids) whose qos_policy_id is ``policy_id``."""
    return (list(s.execute(select(FloatingIP.id).where(FloatingIP.qos_policy_id == policy_id))
                 .scalars()),
            list(s.execute(select(Router.id).where(Router.qos_policy_id == policy_id))
                 .scalars()))


def record_qos_change(s: Session, policy_id: str) -> None:
    """A policy's rules changed: it reaches the agents as a change of every floating IP
    and router gateway bound to it (their limits are in the agents' state)."""
    fids, rids = qos_bindings(s, policy_id)
    _record_changes(s, [("floatingip", f) for f in fids] + [("router", r) for r in rids])


def qos_rules_of(s: Session, policy_ids) -> list:
    ids = sorted({p for p in policy_ids if p})
    if not ids:
        return []
    c = QosBandwidthLimitRule.__table__.c
    return list(s.execute(select(QosBandwidthLimitRule.__table__)
                          .where(c.qos_policy_id.in_(ids))))


_ROW_BY: dict[tuple, Any] = {}


def _row_by(model, col: str, many: bool):
    """``SELECT * FROM table WHERE col = :v`` (or ``IN :v``), built once: a prebuilt
    statement keeps its cache key, so executing it again skips building and hashing it."""
    key = (model, col, many)
    if key not in _ROW_BY:
        c = model.__table__.c[col]
        _ROW_BY[key] = select(model.__table__).where(
            c.in_(bindparam("v", expanding=True)) if many else c == bindparam("v"))
    return _ROW_BY[key]


def rows_for(s: Session, ids: dict[str, set[str]]) -> dict:
    """The rows ``snapshot_rows`` gives, for the objects named in ``ids`` (resource -> ids)
    only, plus what building them needs: a router's ports and their addresses, the
    routers a changed port belongs to. Indexed lookups, no scan."""
    conn = s.connection()

    def where(model, col, values):
        values = sorted(v for v in values if v)
        if not values:
            return []
        # .all(): one fetchall (a floating IP's 1,000 forwardings were 1,000 fetchone calls)
        if len(values) == 1:  # the usual delta: no IN list to expand at each execution
            return conn.execute(_row_by(model, col, False), {"v": values[0]}).all()
        return [r for i in range(0, len(values), 500)
                for r in conn.execute(_row_by(model, col, True), {"v": values[i:i + 500]}).all()]
    port_ids = set(ids.get("port", ()))
    router_ids = set(ids.get("router", ()))
    rp_of_ports = where(RouterPort, "port_id", port_ids)
    router_ids |= {rp.router_id for rp in rp_of_ports}
    router_ids |= {r.id for r in where(Router, "gw_port_id", port_ids)}
    routers = where(Router, "id", router_ids)
    routerports = where(RouterPort, "router_id", router_ids)
    port_ids |= {rp.port_id for rp in routerports} | {r.gw_port_id for r in routers}
    fips = where(FloatingIP, "id", ids.get("floatingip", ()))
    return {"networks": where(Network, "id", ids.get("network", ())),
            "subnets": where(Subnet, "id", ids.get("subnet", ())),
            "ports": where(Port, "id", port_ids),
            "ipallocations": where(IPAllocation, "port_id", port_ids),
            "routerports": routerports + [rp for rp in rp_of_ports
                                          if rp.router_id not in router_ids],
            "routers": routers, "floatingips": fips,
            "portforwardings": where(PortForwarding, "floatingip_id",
                                     ids.get("floatingip", ())),
            # forwardings changed on their own (a deleted one: no row)
            "forwardings": where(PortForwarding, "id", ids.get("port_forwarding", ())),
            "fip_ports": {f.floating_port_id for f in where(FloatingIP, "floating_port_id",
                                                            port_ids)},
            "qos_rules": qos_rules_of(s, [x.qos_policy_id for x in (*fips, *routers)]),
            "deleted_routers": {r.id for r in where(DeletedRouter, "id", router_ids)}}


def count(s: Session, model) -> int:
    return s.execute(select(func.count()).select_from(model)).scalar_one()
