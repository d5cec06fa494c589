"""What a pass changed, as log lines an operator can read: one line per router the pass
touched (which steps), one per floating IP whose status moved, and a router's ERROR once when
it starts or its reason changes (not at every pass: a broken router used to be logged every
30 s for ever)."""
from __future__ import annotations

import logging
from collections import defaultdict

from ..core.model import State

log = logging.getLogger("floatip.agent")
SHOWN = 6  # steps named per router line; the rest counted
MANY = 50  # floating IP lines in one pass beyond which they are counted by status


def _name(state: State | None, rid: str) -> str:
    r = state.routers.get(rid) if state is not None else None
    return f"router {rid} ({r.name})" if r is not None and r.name else f"router {rid}"


def log_pass(steps, state: State | None, errors_before: dict[str, str],
             errors: dict[str, str], fips_before: dict[str, list], fips: dict[str, list],
             removed_fips) -> None:
    """``steps``: the plan's steps applied; ``errors``: router id -> reason (ERROR);
    ``fips``: floating IP id -> [status, reason]; ``removed_fips``: the ids of the floating
    IPs gone from the state since the last pass."""
    by_router: dict[str, list] = defaultdict(list)
    for st in steps:
        by_router[st.router or st.target].append(st)
    for rid, done in by_router.items():
        if rid in errors and errors_before.get(rid) == errors[rid]:
            continue  # retried and failing as before: said once, below
        what = ", ".join(f"{s.action} {s.target}" for s in done[:SHOWN])
        more = f" and {len(done) - SHOWN} more" if len(done) > SHOWN else ""
        gone = state is not None and rid not in state.routers
        log.info("%s %s: %d step(s): %s%s", _name(state, rid),
                 "removed" if gone else "changed", len(done), what, more)
    for rid, why in errors.items():
        if errors_before.get(rid) != why:
            log.error("%s: ERROR: %s", _name(state, rid), why)
    for rid in errors_before.keys() - errors.keys():
        if state is not None and rid in state.routers:
            log.info("%s: no longer in ERROR", _name(state, rid))
    moved = []
    for fid, (status, why) in fips.items():
        if fips_before.get(fid, [None])[0] == status and \
                (status != "ERROR" or fips_before[fid][1] == why):
            continue
        f = state.floatingips.get(fid) if state is not None else None
        addr = f.floating_ip_address if f is not None else ""
        to = f" -> {f.fixed_ip_address}" if f is not None and f.fixed_ip_address else ""
        moved.append((status, f"floating IP {addr}{to} ({fid}): {status}"
                      + (f": {why}" if why else "")))
    moved += [("removed", f"floating IP {fid}: removed") for fid in removed_fips]
    if len(moved) > MANY:  # a restart with thousands: counted, not listed
        counts = defaultdict(int)
        for status, _ in moved:
            counts[status] += 1
        log.info("%d floating IPs changed status: %s", len(moved),
                 ", ".join(f"{n} {st}" for st, n in sorted(counts.items())))
        return
    for status, line in moved:
        (log.error if status == "ERROR" else log.info)(line)


def log_forwardings(before: dict[str, str], now: dict[str, dict[str, str]]) -> None:
    """A port forwarding left out (the others of its floating IP applied), said once when
    it starts or its reason changes, and when it is applied again."""
    flat = {i: (fid, why) for fid, bad in now.items() for i, why in bad.items()}
    for i, (fid, why) in flat.items():
        if before.get(i) != why:
            log.error("port forwarding %s of floating IP %s: ERROR, left out: %s", i, fid, why)
    for i in before.keys() - flat.keys():
        log.info("port forwarding %s: no longer left out", i)
