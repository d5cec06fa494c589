"""Which chassis are alive and which of them an object waits for. Pure: no I/O.

``NB_Global.hv_cfg`` (what ``ovn-nbctl --wait=hv`` waits for) is the lowest ``nb_cfg`` any
chassis in the Southbound reached, so one dead chassis left there holds every status back.
Instead, as Neutron's OVN driver judges agent liveness: a chassis is alive when it caught up
with the current ``nb_cfg`` or reported (``Chassis_Private.nb_cfg_timestamp``) within the
agent-down time; the backend raises ``nb_cfg`` every half of that time when nothing else
does, so a live chassis always reports in time. An object is realised once the live chassis
that matter to it caught up with the ``nb_cfg`` of the write that last changed it: a router
on its gateway chassis, a floating IP on its router's gateway chassis and the chassis of its
VM; anything else on every live chassis.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChassisCfg:
    nb_cfg: int
    timestamp_ms: int = 0      # Chassis_Private.nb_cfg_timestamp: when it reached nb_cfg


def alive(cfg: dict[str, ChassisCfg], nb_cfg: int, now_ms: float,
          down_time: float) -> set[str]:
    """Names of the chassis that are up: caught up with ``nb_cfg``, or heard from within
    ``down_time`` seconds."""
    return {name for name, c in cfg.items()
            if c.nb_cfg >= nb_cfg or now_ms - c.timestamp_ms < down_time * 1000}


def realised(want: int, matter: set[str] | None, cfg: dict[str, ChassisCfg],
             up: set[str]) -> bool:
    """Whether every live chassis of ``matter`` (None, or none of them alive: every live
    chassis) reached ``want``."""
    chassis = (matter & up) if matter else set()
    if not chassis:
        chassis = up
    return all(cfg[name].nb_cfg >= want for name in chassis if name in cfg)


def gateway_chassis(rows, router_id: str) -> set[str]:
    """The chassis a router's gateway port is scheduled on (its Gateway_Chassis rows)."""
    keys = rows.by_obj.get(f"router:{router_id}", ()) if rows is not None else ()
    return {rows.rows[k].columns["chassis_name"] for k in keys
            if rows.rows[k].table == "Gateway_Chassis"}
