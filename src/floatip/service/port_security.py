"""Port security on ports: ``port_security_enabled`` (the network's by default; never on
trusted ``network:*`` ports), the port's security groups (the project's ``default`` when
none is named) and allowed address pairs, with Neutron ML2's refusals."""
from __future__ import annotations

from sqlalchemy.orm import Session

from .. import store as S
from .common import _must, err
from .security_groups import ensure_default

MAX_PAIRS = 10  # Neutron's max_allowed_address_pair


def trusted(owner: str | None) -> bool:
    """neutron's is_port_trusted: router, DHCP and other network:* ports are not filtered."""
    return bool(owner) and owner.startswith("network:")


def _needs_psec_for_groups():
    return err("PortSecurityAndIPRequiredForSecurityGroups", 400,
               "Port security must be enabled and port must have an IP address in order to "
               "use security groups.")


def _needs_psec_for_pairs():
    return err("AddressPairAndPortSecurityRequired", 409,
               "Port Security must be enabled in order to have allowed address pairs on a "
               "port.")


def check_pairs(pairs: list[dict]) -> None:
    """What the schema cannot check alone: the number and duplicates."""
    if len(pairs) > MAX_PAIRS:
        raise err("AllowedAddressPairExhausted", 400, "The number of allowed address pair "
                                                      f"exceeds the maximum {MAX_PAIRS}.")
    seen = set()
    for p in pairs:
        key = (p.get("mac_address"), p["ip_address"])
        if key in seen:
            raise err("DuplicateAddressPairInRequest", 400, "Request contains duplicate address "
                      f"pair: mac_address {key[0]} ip_address {key[1]}.")
        seen.add(key)


def _filled(port: S.Port, pairs: list[dict]) -> list[dict]:
    return [{"ip_address": p["ip_address"], "mac_address": p.get("mac_address")
             or port.mac_address} for p in pairs]


def _set_groups(s: Session, port: S.Port, groups: list[str], check: bool = True) -> None:
    if not check:
        S.set_port_groups(s, port, groups)
        return
    # the groups' columns only: not their rules
    rows = [_must(s, "security_group", g, related=False) for g in dict.fromkeys(groups)]
    if len({g.stateful for g in rows}) > 1:
        raise err("SecurityGroupConflict", 409, "Error Cannot apply both stateful and "
                  "stateless security groups on the same port at the same time while "
                  "attempting the operation.")
    S.set_port_groups(s, port, [g.id for g in rows])


def on_create(s: Session, port: S.Port, net: S.Network, d: dict) -> None:
    """After the port row exists (ML2's _portsec_ext_port_create_processing)."""
    psec = False if trusted(port.device_owner) else \
        d.get("port_security_enabled", net.port_security_enabled)
    pairs = d.get("allowed_address_pairs") or []
    check_pairs(pairs)
    if pairs and not psec:
        raise _needs_psec_for_pairs()
    groups = d.get("security_groups")  # None: not named
    if psec:
        if groups is None:
            groups = [g for g in (ensure_default(s, port.project_id),) if g]
    elif groups:
        raise _needs_psec_for_groups()
    port.port_security_enabled = psec
    port.allowed_address_pairs = _filled(port, pairs)
    if groups:
        # the project's default group (one, just read or made) needs no check
        _set_groups(s, port, groups, check="security_groups" in d)


def on_update(s: Session, port: S.Port, d: dict) -> None:
    """ML2's _portsec_ext_port_update_processing and _update_security_group_on_port."""
    if trusted(port.device_owner):
        if d.get("port_security_enabled") or d.get("security_groups") \
                or d.get("allowed_address_pairs"):
            raise _needs_psec_for_groups() if not d.get("allowed_address_pairs") \
                else _needs_psec_for_pairs()
        return
    psec = d.get("port_security_enabled", port.port_security_enabled)
    if "allowed_address_pairs" in d:
        check_pairs(d["allowed_address_pairs"] or [])
    if not psec:
        if d.get("allowed_address_pairs"):
            raise _needs_psec_for_pairs()
        if "allowed_address_pairs" not in d and port.allowed_address_pairs:
            raise _needs_psec_for_pairs()
        if d.get("security_groups"):
            raise _needs_psec_for_groups()
        if "security_groups" not in d and port.sg_bindings:
            raise err("PortSecurityPortHasSecurityGroup", 409, "Port has security group "
                      "associated. Cannot disable port security or IP address until security "
                      "group is removed.")
    port.port_security_enabled = psec
    if "allowed_address_pairs" in d:
        port.allowed_address_pairs = _filled(port, d["allowed_address_pairs"] or [])
    if "security_groups" in d:
        _set_groups(s, port, d["security_groups"] or [])
