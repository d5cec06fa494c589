"""Address groups: named sets of CIDRs a security group rule may name as its remote."""
from __future__ import annotations

from sqlalchemy.orm import Session

from .. import store as S
from .common import _must, err, new_id
from .sg_views import ag_dict


def create_address_group(s: Session, d: dict) -> dict:
    ag = S.AddressGroup(id=new_id(), project_id=d["project_id"], name=d.get("name", ""),
                        description=d.get("description", ""),
                        addresses=list(d.get("addresses") or []))
    S.add(s, ag)
    return ag_dict(s, ag)


def update_address_group(s: Session, aid: str, d: dict) -> dict:
    ag = _must(s, "address_group", aid, lock=True)
    for key in ("name", "description"):
        if key in d:
            setattr(ag, key, d[key])
    S.touch(ag)
    s.flush()
    return ag_dict(s, ag)


def delete_address_group(s: Session, aid: str) -> None:
    ag = _must(s, "address_group", aid, lock=True)
    if S.rules_with_address_group(s, aid):
        raise err("AddressGroupInUse", 409, f"Address group {aid} is in use on one or more "
                                            "security group rules.")
    S.delete(s, ag)


def change_addresses(s: Session, aid: str, action: str, addresses: list[str]) -> dict:
    """``add_addresses`` / ``remove_addresses``: all or nothing, as Neutron."""
    ag = _must(s, "address_group", aid, lock=True)
    have = list(ag.addresses or [])
    if action == "add":
        dup = [a for a in addresses if a in have]
        if dup:
            raise err("AddressesAlreadyExist", 400, f"Addresses {dup} already exist in the "
                                                    f"address group {aid}.")
        ag.addresses = have + addresses
    else:
        missing = [a for a in addresses if a not in have]
        if missing:
            raise err("AddressesNotFound", 404, f"Addresses {missing} not found in the "
                                                f"address group {aid}.")
        ag.addresses = [a for a in have if a not in addresses]
    S.touch(ag)
    s.flush()
    return {"address_group": ag_dict(s, ag)}
