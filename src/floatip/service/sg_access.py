"""The access rules of security groups and address groups beyond the generic ones: what a
rule or a port names must be the caller's to use (404 otherwise, as Neutron answers for
another project's group), the project's default group made on first read, the address
group actions."""
from __future__ import annotations

from sqlalchemy.orm import Session

from .. import store as S
from .address_groups import change_addresses
from .common import not_found
from .policy import Context
from .security_groups import ensure_default


def _own(access, s: Session, ctx: Context, kind: str, rid: str, project: str) -> None:
    """``rid`` is seen by the caller, and (but for admins) of ``project``."""
    seen = access._must_see(s, ctx, kind, rid)
    if seen is not None and not ctx.is_admin and seen["project_id"] != project:
        raise not_found(kind, rid)


def rule_references(access, s: Session, ctx: Context, d: dict, project: str) -> None:
    access._must_see(s, ctx, "security_group", d.get("security_group_id"))
    if d.get("remote_group_id"):
        _own(access, s, ctx, "security_group", d["remote_group_id"], project)
    if d.get("remote_address_group_id"):
        _own(access, s, ctx, "address_group", d["remote_address_group_id"], project)


def port_groups(access, s: Session, ctx: Context, groups: list[str], project: str) -> None:
    """Neutron's _get_security_groups_on_port: the groups of the port's project (any, for
    an admin); the ones that are not, named in one SecurityGroupNotFound."""
    missing = []
    for gid in dict.fromkeys(groups):
        try:
            _own(access, s, ctx, "security_group", gid, project)
        except Exception as e:  # noqa: BLE001 - a NeutronError 404, collected
            if getattr(e, "code", None) != 404:
                raise
            missing.append(gid)
    if missing:
        raise not_found("security_group", ", ".join(missing))


def ensure_default_for(db, access, ctx: Context) -> None:
    """Before a read of groups: the caller's project gets its default group (Neutron's
    create_default_security_group rule: a reader may cause it). A write only when it is
    missing."""
    project = ctx.project_id
    if not project or not access.policy.check(ctx, "create_default_security_group",
                                              {"project_id": project, "tenant_id": project}):
        return
    with db.read() as s:
        if S.default_group_id(s, project):
            return
    with db.tx() as s:
        ensure_default(s, project)


def address_action(s: Session, access, ctx: Context, action: str, aid: str,
                   addresses: list[str]) -> dict:
    current = access._seen(s, ctx, "address_group", aid)
    access.policy.require(ctx, f"{action}_addresses", current)
    return change_addresses(s, aid, action, addresses)
