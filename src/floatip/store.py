"""Persistent state: SQLAlchemy models and the repository functions. The only module that
builds queries; the service layer calls these functions inside one transaction per request.

Uniqueness that matters for correctness lives in the database, not only in Python:
- ``ipallocations``: one row per (subnet, address) -> two ports (router gateways, floating IPs,
  VM ports) can never hold the same address, whatever the interleaving of requests;
- ``floatingips``: one per (floating network, fixed port, fixed address), as in Neutron;
- ``networks.local_vlan``: one tenant network per tag on the integration bridge;
- ``ports.mac_address`` per network.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

from sqlalchemy import (JSON, Boolean, DateTime, ForeignKey, Integer, String,
                        UniqueConstraint, create_engine, event, select, func)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import (DeclarativeBase, Mapped, Session, mapped_column, relationship,
                            sessionmaker)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None)


class Base(DeclarativeBase):
    pass


class _Standard:
    """Neutron's standard attributes."""
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Network(_Standard, Base):
    __tablename__ = "networks"
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
    network_type: Mapped[str] = mapped_column(String(16), default="local")
    physical_network: Mapped[str | None] = mapped_column(String(64), nullable=True)
    segmentation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    local_vlan: Mapped[int | None] = mapped_column(Integer, nullable=True, unique=True)
    subnets: Mapped[list["Subnet"]] = relationship(back_populates="network",
                                                   order_by="Subnet.created_at")


class Subnet(_Standard, Base):
    __tablename__ = "subnets"
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    cidr: Mapped[str] = mapped_column(String(64))
    ip_version: Mapped[int] = mapped_column(Integer, default=4)
    gateway_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    allocation_pools: Mapped[list] = mapped_column(JSON, default=list)
    dns_nameservers: Mapped[list] = mapped_column(JSON, default=list)
    host_routes: Mapped[list] = mapped_column(JSON, default=list)
    network: Mapped[Network] = relationship(back_populates="subnets")


class Port(_Standard, Base):
    __tablename__ = "ports"
    __table_args__ = (UniqueConstraint("network_id", "mac_address", name="uniq_ports0network_id0mac"),)
    network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"), index=True)
    mac_address: Mapped[str] = mapped_column(String(32))
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    device_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    device_owner: Mapped[str] = mapped_column(String(255), default="", index=True)
    host_id: Mapped[str] = mapped_column(String(255), default="")
    fixed_ips: Mapped[list["IPAllocation"]] = relationship(
        back_populates="port", cascade="all, delete-orphan", order_by="IPAllocation.ip_address",
        lazy="selectin")


class IPAllocation(Base):
    __tablename__ = "ipallocations"
    subnet_id: Mapped[str] = mapped_column(ForeignKey("subnets.id"), primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"), index=True)
    network_id: Mapped[str] = mapped_column(String(36))
    port: Mapped[Port] = relationship(back_populates="fixed_ips")


class Router(_Standard, Base):
    __tablename__ = "routers"
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    gw_port_id: Mapped[str | None] = mapped_column(ForeignKey("ports.id"), nullable=True)
    enable_snat: Mapped[bool] = mapped_column(Boolean, default=True)
    routes: Mapped[list] = mapped_column(JSON, default=list)


class RouterPort(Base):
    __tablename__ = "routerports"
    router_id: Mapped[str] = mapped_column(ForeignKey("routers.id", ondelete="CASCADE"),
                                           index=True)
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"),
                                         primary_key=True)
    port_type: Mapped[str] = mapped_column(String(255))


class FloatingIP(Base):
    __tablename__ = "floatingips"
    __table_args__ = (UniqueConstraint("floating_network_id", "fixed_port_id", "fixed_ip_address",
                                       name="uniq_floatingips0floatingnetworkid0fixedportid0fixedipaddress"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    floating_ip_address: Mapped[str] = mapped_column(String(64))
    floating_network_id: Mapped[str] = mapped_column(ForeignKey("networks.id"))
    floating_subnet_id: Mapped[str] = mapped_column(String(36))
    floating_port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"))
    fixed_port_id: Mapped[str | None] = mapped_column(ForeignKey("ports.id"), nullable=True,
                                                      index=True)
    fixed_ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    router_id: Mapped[str | None] = mapped_column(ForeignKey("routers.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class DeletedRouter(Base):
    """Routers deleted through the API: an agent that missed the deletion still knows the
    namespace it finds is one of its own to remove."""
    __tablename__ = "deleted_routers"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deleted_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Meta(Base):
    """Key/value facts about the database itself: ``generation`` counts committed changes."""
    __tablename__ = "floatip_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


MODELS = {"network": Network, "subnet": Subnet, "port": Port, "router": Router,
          "floatingip": FloatingIP}


# ---------------------------------------------------------------------------------------
# Engine, migrations, transactions

def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=20, max_overflow=20)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _rec):
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (pysqlite quirk)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            # Writers serialize at BEGIN: no read-then-upgrade deadlock between transactions.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        return engine
    return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """``alembic upgrade head`` with a Config built in code."""
    from alembic import command
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    def __init__(self, url: str, migrate_schema: bool = True):
        self.url = url
        self.engine = make_engine(url)
        if migrate_schema:
            migrate(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        event.listen(self.sessions, "after_flush",
                     lambda sess, _ctx: sess.info.__setitem__("wrote", True))
        self.changed = threading.Condition()
        self.generation = 0
        self.listeners: list = []          # told after every committed change
        self.resync_listeners: list = []   # asked for a full resync (POST /floatip/v1/sync?full=true)

    @contextlib.contextmanager
    def tx(self, notify: bool = True) -> Iterator[Session]:
        """One transaction: committed if the block returns, rolled back if it raises.
        After a committed change the in-process listeners (the agent) are told at once;
        ``notify=False`` is for reads and for the agent's own status reports."""
        with self.sessions() as s:
            with s.begin():
                yield s
                if notify and (s.new or s.dirty or s.deleted or s.info.get("wrote")):
                    bump_generation(s)
                    s.info["bumped"] = True
            bumped = s.info.get("bumped", False)
        if bumped:
            self.notify()

    def notify(self) -> None:
        with self.changed:
            self.generation += 1
            self.changed.notify_all()
        for fn in list(self.listeners):
            fn()

    def wait(self, generation: int, timeout: float) -> int:
        with self.changed:
            self.changed.wait_for(lambda: self.generation != generation, timeout)
            return self.generation

    def close(self) -> None:
        self.engine.dispose()


# ---------------------------------------------------------------------------------------
# Repository functions

def bump_generation(s: Session) -> None:
    row = s.get(Meta, "generation")
    if row is None:
        s.add(Meta(key="generation", value=1))
    else:
        row.value += 1


def get(s: Session, model, rid: str, lock: bool = False):
    if lock:
        return s.execute(select(model).where(model.id == rid).with_for_update()).scalar_one_or_none()
    return s.get(model, rid)


def list_all(s: Session, model, filters: dict[str, Iterable[Any]] | None = None) -> list:
    """Rows of ``model``; ``filters`` maps column names to accepted values (SQL side)."""
    q = select(model)
    for col, values in (filters or {}).items():
        q = q.where(getattr(model, col).in_(list(values)))
    if hasattr(model, "created_at"):
        q = q.order_by(model.created_at, model.id)
    return list(s.execute(q).scalars())


def add(s: Session, row) -> Any:
    s.add(row)
    s.flush()
    return row


def delete(s: Session, row) -> None:
    s.delete(row)
    s.flush()


def touch(row) -> None:
    row.revision_number = (row.revision_number or 0) + 1
    row.updated_at = utcnow()


def subnets_of(s: Session, network_id: str) -> list[Subnet]:
    return list_all(s, Subnet, {"network_id": [network_id]})


def allocated_ips(s: Session, subnet_id: str) -> set[str]:
    return set(s.execute(select(IPAllocation.ip_address)
                         .where(IPAllocation.subnet_id == subnet_id)).scalars())


def try_allocate(s: Session, port: Port, subnet: Subnet, ip: str) -> bool:
    """Insert the allocation inside a savepoint; False when another transaction (or row)
    already holds (subnet, ip) — the unique key decides, not this process."""
    try:
        with s.begin_nested():
            s.add(IPAllocation(subnet_id=subnet.id, ip_address=ip, port_id=port.id,
                               network_id=subnet.network_id))
            s.flush()
        return True
    except IntegrityError:
        return False


def allocation_owner(s: Session, subnet_id: str, ip: str) -> IPAllocation | None:
    return s.get(IPAllocation, (subnet_id, ip))


def allocations_on_subnet(s: Session, subnet_id: str) -> list[IPAllocation]:
    return list(s.execute(select(IPAllocation).where(IPAllocation.subnet_id == subnet_id)).scalars())


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


def used_vlans(s: Session) -> set[int]:
    return {v for v in s.execute(select(Network.local_vlan)).scalars() if v is not None}


def deleted_routers(s: Session) -> set[str]:
    return set(s.execute(select(DeletedRouter.id)).scalars())


def record_router_deleted(s: Session, rid: str) -> None:
    s.merge(DeletedRouter(id=rid))


def generation(s: Session) -> int:
    row = s.get(Meta, "generation")
    return row.value if row else 0


def snapshot_rows(s: Session) -> dict:
    """Every row the agent needs, as plain rows (Core selects, no ORM identity map)."""
    out = {}
    for key, model in (("networks", Network), ("subnets", Subnet), ("ports", Port),
                       ("ipallocations", IPAllocation), ("routerports", RouterPort),
                       ("routers", Router), ("floatingips", FloatingIP)):
        q = select(model.__table__)
        if "created_at" in model.__table__.c:
            q = q.order_by(model.__table__.c.created_at, model.__table__.c.id)
        out[key] = list(s.execute(q))
    out["deleted_routers"] = deleted_routers(s)
    out["generation"] = generation(s)
    return out


def count(s: Session, model) -> int:
    return s.execute(select(func.count()).select_from(model)).scalar_one()
