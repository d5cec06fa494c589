"""The only queries: repository functions called by the service layer inside one transaction."""
from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .tables import (DeletedRouter, FloatingIP, IPAllocation, Meta, Network, Port, Router,
                     RouterPort, Subnet, utcnow)


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
