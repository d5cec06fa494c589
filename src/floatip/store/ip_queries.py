"""Queries of addresses: allocation (the unique key settles races), and Neutron's
network-ip-availability (networks with their subnets, the addresses allocated per subnet)."""
from __future__ import annotations

from sqlalchemy import String, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, lazyload, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from .queries import _record_changes
from .tables import IPAllocation, Network, Port, Subnet


def networks_with_subnets(s: Session, filters: dict[str, list]) -> list[tuple]:
    """(network, subnet or None) rows, networks in creation order; ``filters``: network_id,
    network_name, project_id and ip_version values (Neutron's SUPPORTED_FILTERS)."""
    cols = {"network_id": Network.id, "network_name": Network.name,
            "project_id": Network.project_id, "ip_version": Subnet.ip_version}
    q = select(Network, Subnet).outerjoin(Subnet, Subnet.network_id == Network.id)
    for key, values in filters.items():
        q = q.where(cols[key].in_(values))
    return list(s.execute(q.order_by(Network.created_at, Network.id, Subnet.created_at,
                                     Subnet.id)))


_ADDRESSES = (select(IPAllocation.subnet_id, IPAllocation.ip_address, Subnet.gateway_ip)
              .join(Subnet, Subnet.id == IPAllocation.subnet_id)
              .where(IPAllocation.port_id == bindparam("p")).order_by(IPAllocation.ip_address))


def port_addresses(s: Session, port_id: str) -> list[tuple[str, str, str | None]]:
    """(subnet id, address, the subnet's gateway_ip) of a port's addresses, in ``fixed_ips``
    order: one statement where loading ``fixed_ips`` and then the subnet took two."""
    return [tuple(r) for r in s.execute(_ADDRESSES, {"p": port_id})]


def used_per_subnet(s: Session, subnet_ids: list[str]) -> dict[str, int]:
    if not subnet_ids:
        return {}
    q = select(IPAllocation.subnet_id, func.count()).where(
        IPAllocation.subnet_id.in_(subnet_ids)).group_by(IPAllocation.subnet_id)
    return dict(s.execute(q).all())


def allocated_ips(s: Session, subnet_id: str) -> set[str]:
    return set(s.execute(select(IPAllocation.ip_address)
                         .where(IPAllocation.subnet_id == subnet_id)).scalars())


def allocated_among(s: Session, subnet_id: str, ips: list[str]) -> set[str]:
    """Which of ``ips`` are taken in the subnet: one lookup on the primary key."""
    return set(s.execute(select(IPAllocation.ip_address)
                         .where(IPAllocation.subnet_id == subnet_id,
                                IPAllocation.ip_address.in_(ips))).scalars())


_ALLOCATE = {"sqlite": sqlite_insert(IPAllocation.__table__).on_conflict_do_nothing(),
             "postgresql": pg_insert(IPAllocation.__table__).on_conflict_do_nothing()}


def _allocate_free_pg():
    """PostgreSQL: the INSERT only if no other transaction is trying the same address now
    (a transaction-scoped advisory lock on it, tried without waiting). An INSERT of a key
    another transaction inserted and has not committed waits for that commit: concurrent
    allocations starting at the same free address queued on each other, one at a time."""
    t = IPAllocation.__table__
    p = {c: bindparam(c, type_=String) for c in ("subnet_id", "ip_address", "port_id",
                                                  "network_id")}
    lock = func.pg_try_advisory_xact_lock(func.hashtext(p["subnet_id"]),
                                          func.hashtext(p["ip_address"]))
    return pg_insert(t).from_select(list(p), select(*p.values()).where(lock)) \
        .on_conflict_do_nothing()


_ALLOCATE_FREE_PG = _allocate_free_pg()


def try_allocate(s: Session, port: Port, subnet: Subnet, ip: str, skip_busy: bool = False
                 ) -> bool:
    """Give ``port`` the address unless another transaction (or row) already holds
    (subnet, ip): the unique key decides, not this process. One INSERT … ON CONFLICT DO
    NOTHING, not a savepoint around the unit of work's flush (three statements and the
    flush's bookkeeping, on every port and floating IP made). The port's ``fixed_ips`` are
    kept current here: a port that had none (a new one) holds the new row, known without
    a query; else they are expired (read again, in the relationship's order, when next
    used). ``skip_busy`` (any free address will do): False at once, not after a wait, when
    another transaction is taking it now."""
    s.flush()
    name = s.bind.dialect.name
    stmt = _ALLOCATE_FREE_PG if skip_busy and name == "postgresql" else _ALLOCATE[name]
    row = {"subnet_id": subnet.id, "ip_address": ip, "port_id": port.id,
           "network_id": subnet.network_id}
    # an INSERT's rowcount is kept only on request (SQLAlchemy 2.1; psycopg 3 reports -1, and
    # every address looked taken: a subnet's creation walked all of them)
    done = s.connection().execute(stmt, row,
                                  execution_options={"preserve_rowcount": True}).rowcount == 1
    if done:
        _allocated(s, port, row)
    return done


def _allocated(s: Session, port: Port, row: dict) -> None:
    _record_changes(s, [("port", port.id)])
    if port.__dict__.get("fixed_ips") == [] and \
            identity_key(IPAllocation, (row["subnet_id"], row["ip_address"])) not in s.identity_map:
        alloc = IPAllocation(**row)
        make_transient_to_detached(alloc)  # the row exists: persistent, not pending
        s.add(alloc)
        set_committed_value(port, "fixed_ips", [alloc])
    else:
        s.expire(port, ["fixed_ips"])


# PostgreSQL: the first of the candidates that no row holds and no other transaction is
# taking now (``_ALLOCATE_FREE_PG``'s advisory lock), inserted; and how many no row held.
# OFFSET 0 keeps the lock out of the sort: it is tried in order, up to the first it gets.
_ALLOCATE_AMONG_PG = text("""
WITH free AS (
  SELECT c.ip, c.n FROM unnest(CAST(:ips AS text[])) WITH ORDINALITY AS c(ip, n)
  WHERE NOT EXISTS (SELECT 1 FROM ipallocations a
                    WHERE a.subnet_id = :subnet_id AND a.ip_address = c.ip)),
ins AS (
  INSERT INTO ipallocations (subnet_id, ip_address, port_id, network_id)
  SELECT :subnet_id, o.ip, :port_id, :network_id
  FROM (SELECT ip FROM free ORDER BY n OFFSET 0) AS o
  WHERE pg_try_advisory_xact_lock(hashtext(:subnet_id), hashtext(o.ip))
  LIMIT 1
  ON CONFLICT DO NOTHING RETURNING ip_address)
SELECT (SELECT ip_address FROM ins), (SELECT count(*) FROM free)""")


def allocate_among(s: Session, port: Port, subnet: Subnet, ips: list[str]
                   ) -> tuple[str | None, int] | None:
    """PostgreSQL: ``allocated_among`` and then ``try_allocate(skip_busy=True)`` of each
    free one in order, as one statement: (the address given or None, how many of ``ips``
    no row held). None on SQLite (its caller takes the two steps)."""
    if s.bind.dialect.name != "postgresql":
        return None
    s.flush()
    row = {"subnet_id": subnet.id, "port_id": port.id, "network_id": subnet.network_id}
    ip, free = s.connection().execute(_ALLOCATE_AMONG_PG, {**row, "ips": ips}).one()
    if ip is not None:
        _allocated(s, port, {**row, "ip_address": ip})
    return ip, free


def allocation_owner(s: Session, subnet_id: str, ip: str) -> IPAllocation | None:
    return s.get(IPAllocation, (subnet_id, ip))


def allocations_on_subnet(s: Session, subnet_id: str) -> list[IPAllocation]:
    return list(s.execute(select(IPAllocation).where(IPAllocation.subnet_id == subnet_id)).scalars())


_INSERT = {"sqlite": sqlite_insert, "postgresql": pg_insert}


def insert_unless_taken(s: Session, model: type[Port], values: dict) -> Port | None:
    """A new row of ``model`` (a port), one INSERT … ON CONFLICT DO NOTHING RETURNING: the
    row, persistent in the session with no addresses or groups yet (known without a query),
    or None when a unique key (a MAC on the network) refused it. Not a flush in a savepoint:
    SAVEPOINT, INSERT and RELEASE were three round trips on every port made."""
    s.flush()
    stmt = _INSERT[s.bind.dialect.name](model).values(**values).on_conflict_do_nothing()
    # lazy, then set: the eager loaders would read what a new row has not
    row = s.scalars(stmt.returning(model).options(lazyload("*"))).first()
    if row is not None:
        _record_changes(s, [("port", row.id)])
        set_committed_value(row, "fixed_ips", [])
        set_committed_value(row, "sg_bindings", [])
    return row
