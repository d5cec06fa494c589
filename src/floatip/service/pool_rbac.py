"""RBAC entries for subnet pools and address scopes (Neutron's rbac-subnetpool,
rbac-address-scope), through ``/v2.0/rbac-policies`` with ``object_type`` ``subnetpool`` or
``address_scope``: ``access_as_shared`` lets the target project see and use the pool (take
subnets from it) or the scope (put its pools in it); ``*`` is the object's ``shared``.
Checks and errors are Neutron's rbac_db_mixin and its subnet pool / address scope
callbacks."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import store as S
from .common import err, new_id
from .policy import Context
from .subnetpools import SubnetPools

SHARED = "access_as_shared"
TABLES = {"subnetpool": S.SubnetPoolRbac, "address_scope": S.AddressScopeRbac}
OBJECTS = {"subnetpool": S.SubnetPool, "address_scope": S.AddressScope}


def invalid(message: str):
    return err("InvalidInput", 400, f"Invalid input for operation: {message}.")


def _in_use(otype: str, oid: str):
    return err("RbacPolicyInUse", 409, f"RBAC policy on object {oid} cannot be removed "
                                       f"because other objects depend on it.\nDetails: "
                                       f"{otype} {oid} is in use by another project.")


def create(s: Session, ctx: Context, pools: SubnetPools, otype: str, oid, action: str,
           target: str, project: str):
    """A new entry on a pool or scope the caller sees (and owns, unless an admin)."""
    if action != SHARED:
        raise err("InvalidActionForType", 400, f"Invalid action '{action}' for object type "
                                               f"'{otype}'. Valid actions: ['{SHARED}']")
    try:
        obj = (pools.get if otype == "subnetpool" else pools.scopes.get)(s, ctx, str(oid))
    except Exception:  # noqa: BLE001 - not seen: as Neutron, an invalid object id
        raise invalid(f"'{oid}' is not a valid UUID") from None
    if not ctx.is_admin and obj.project_id != ctx.project_id:
        raise invalid(f"Only admins can manipulate policies on {otype}s they do not own")
    if otype == "subnetpool" and obj.address_scope_id and \
            not _scope_open_to(s, obj.address_scope_id, target):
        raise invalid(f"The address scope {obj.address_scope_id} of subnet pool {obj.id} is "
                      f"not shared with {target}")
    T = TABLES[otype]
    if s.execute(select(T.id).where(T.object_id == obj.id, T.action == action,
                                    T.target_project == target)).first():
        raise err("DuplicateRbacPolicy", 409, "An RBAC policy already exists with those "
                                              "values.")
    r = T(id=new_id(), project_id=project, object_id=obj.id, action=action,
          target_project=target)
    S.add(s, r)
    if target == "*":
        obj.shared = True
        s.flush()
    return r


def _scope_open_to(s: Session, sid: str, target: str) -> bool:
    scope = S.get(s, S.AddressScope, sid)
    if scope is None or scope.shared or scope.project_id == target:
        return True
    T = S.AddressScopeRbac
    return s.execute(select(T.id).where(T.object_id == sid, T.target_project.in_(
        [target] if target == "*" else [target, "*"]))).first() is not None


def ensure_unused(s: Session, r) -> None:
    """The project(s) losing access use nothing of the object that another entry does
    not still allow: subnets from the pool, pools in the scope."""
    otype = "subnetpool" if isinstance(r, S.SubnetPoolRbac) else "address_scope"
    obj = S.get(s, OBJECTS[otype], r.object_id)
    if obj is None or r.target_project == obj.project_id:
        return
    T = TABLES[otype]
    others = {t for t, in s.execute(select(T.target_project).where(
        T.object_id == r.object_id, T.id != r.id))}
    if "*" in others:
        return
    if otype == "subnetpool":
        q = select(S.Subnet.project_id).where(S.Subnet.subnetpool_id == obj.id)
    else:
        q = select(S.SubnetPool.project_id).where(S.SubnetPool.address_scope_id == obj.id)
    users = {p for p, in s.execute(q)} - others - {obj.project_id}
    if users if r.target_project == "*" else r.target_project in users:
        raise _in_use(otype, obj.id)


def deleted(s: Session, r) -> None:
    """The ``*`` entry gone: the object is no longer shared."""
    otype = "subnetpool" if isinstance(r, S.SubnetPoolRbac) else "address_scope"
    obj = S.get(s, OBJECTS[otype], r.object_id)
    if r.target_project == "*" and obj is not None:
        obj.shared = False
        s.flush()


def forget(s: Session, otype: str, oid: str) -> None:
    """The entries of a deleted pool or scope."""
    T = TABLES[otype]
    for r in s.execute(select(T).where(T.object_id == oid)).scalars():
        s.delete(r)
    s.flush()

