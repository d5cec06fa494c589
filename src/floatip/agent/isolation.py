"""One bad object stops nobody: desired state is checked object by object, and an invalid
router or floating IP is taken out of what is applied (and reported ERROR with its reason)
while every other router is applied."""
from __future__ import annotations

from dataclasses import replace

from ..core.model import State
from ..core.validate import problems


def _text(errors) -> str:
    return "; ".join(e.message for e in errors)


def isolate(state: State) -> tuple[State, dict[str, str], dict[str, str]]:
    """(the state without invalid routers and floating IPs, router id -> reason, floating
    IP id -> reason). A network or subnet problem belongs to every router and floating IP
    that uses it; a port problem to the floating IPs on that port; a floating IP on an
    invalid router is in ERROR too (its router is left as it is)."""
    found = problems(state)
    if not found:
        return state, {}, {}
    by_kind: dict[str, dict[str, str]] = {}
    for (kind, oid), errors in found.items():
        by_kind.setdefault(kind, {})[oid] = _text(errors)
    nets = dict(by_kind.get("network", {}))
    subs = dict(by_kind.get("subnet", {}))
    for sid, sn in state.subnets.items():
        if sid not in subs and sn.network_id in nets:
            subs[sid] = f"network {sn.network_id}: {nets[sn.network_id]}"
    ports = dict(by_kind.get("port", {}))
    for pid, p in state.ports.items():
        if pid in ports:
            continue
        why = nets.get(p.network_id) or next((subs[sid] for sid, _ in p.fixed_ips
                                              if sid in subs), None)
        if why:
            ports[pid] = why
    routers: dict[str, str] = dict(by_kind.get("router", {}))
    for rid, r in state.routers.items():
        if rid in routers:
            continue
        used = [r.gateway.subnet_id] if r.gateway else []
        used += [i.subnet_id for i in r.interfaces]
        why = (nets.get(r.gateway.network_id) if r.gateway else None) or \
            next((f"subnet {sid}: {subs[sid]}" for sid in used if sid in subs), None)
        if why:
            routers[rid] = why
    fips: dict[str, str] = dict(by_kind.get("floatingip", {}))
    for fid, f in state.floatingips.items():
        if fid in fips:
            continue
        why = nets.get(f.floating_network_id)
        if why is None and f.port_id in ports:
            why = f"port {f.port_id}: {ports[f.port_id]}"
        if why is None and f.port_id:
            router = state.router_for_fip(f)
            if router is not None and router.id in routers:
                why = f"router {router.id}: {routers[router.id]}"
        if why:
            fips[fid] = why
    clean = replace(state,
                    routers={k: v for k, v in state.routers.items() if k not in routers},
                    floatingips={k: v for k, v in state.floatingips.items() if k not in fips})
    return clean, routers, fips
