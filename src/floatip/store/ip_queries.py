"""Queries for Neutron's network-ip-availability: networks with their subnets, and the
addresses allocated per subnet."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .tables import IPAllocation, Network, Subnet


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


def used_per_subnet(s: Session, subnet_ids: list[str]) -> dict[str, int]:
    if not subnet_ids:
        return {}
    q = select(IPAllocation.subnet_id, func.count()).where(
        IPAllocation.subnet_id.in_(subnet_ids)).group_by(IPAllocation.subnet_id)
    return dict(s.execute(q).all())
