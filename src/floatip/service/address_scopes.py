"""Address scopes (Neutron's address-scope): ``/v2.0/address-scopes``. Subnet pools name one
by ``address_scope_id``; pools of one scope never overlap (``subnetpools``), and a network
shows the scope of its subnets' pools as ``ipv4_address_scope``/``ipv6_address_scope``.
Checks, errors and policy rules are Neutron's address_scope_db and policies."""
from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .. import store as S
from ..core.errors import NeutronError
from .common import created_project, err, new_id
from .listing import listed, select_fields
from .policy import Context, Policy

FILTERS = ("id", "name", "project_id", "tenant_id", "shared", "ip_version")


def shared_with(s: Session, otype: str, project: str, ids=None) -> set[str]:
    """The pools (``subnetpool``) or scopes (``address_scope``) an RBAC entry shares with
    ``project`` or with every project (``pool_rbac``)."""
    T = S.SubnetPoolRbac if otype == "subnetpool" else S.AddressScopeRbac
    q = select(T.object_id).where(T.target_project.in_([project, "*"]))
    if ids is not None:
        q = q.where(T.object_id.in_(list(ids)))
    return {o for o, in s.execute(q)}


def seen_as(s: Session, ctx: Context, otype: str, bodies: list[dict]) -> list[dict]:
    """The bodies as the caller sees them: ``shared`` for an object an entry shares with
    its project (Neutron's is_shared_with_project)."""
    if ctx.is_admin or not bodies:
        return bodies
    others = {d["id"] for d in bodies if not d["shared"] and d["project_id"] != ctx.project_id}
    if others:
        shared = shared_with(s, otype, ctx.project_id, others)
        for d in bodies:
            if d["id"] in shared:
                d["shared"] = True
    return bodies


def gettable(s: Session, ctx: Context, policy: Policy, otype: str, model, as_dict, missing,
             oid: str, lock: bool = False):
    """Row ``oid`` of ``model``, a pool (``subnetpool``) or a scope (``address_scope``), if the
    caller may get it (the ``get_<otype>`` rule on its body as ``seen_as`` shows it), else
    ``missing(oid)``: one it may not see answers as one that does not exist."""
    row = S.get(s, model, oid, lock=lock) if isinstance(oid, str) else None
    if row is None or not policy.check(ctx, f"get_{otype}",
                                       seen_as(s, ctx, otype, [as_dict(row)])[0]):
        raise missing(oid)
    return row


def scope_not_found(sid: str) -> NeutronError:
    return err("AddressScopeNotFound", 404, f"Address scope {sid} could not be found.")


def scope_dict(a: S.AddressScope) -> dict:
    return {"id": a.id, "name": a.name, "project_id": a.project_id, "tenant_id": a.project_id,
            "shared": a.shared, "ip_version": a.ip_version}


def params_of(query: list[tuple[str, str]]) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for k, v in query:
        params.setdefault(k, []).append(v)
    return params


class AddressScopes:
    """The API's operations as a caller may do them: a scope the caller may not get (its
    project's, or shared) answers as one that does not exist."""

    def __init__(self, policy: Policy):
        self.policy = policy

    def get(self, s: Session, ctx: Context, sid: str, lock: bool = False) -> S.AddressScope:
        return gettable(s, ctx, self.policy, "address_scope", S.AddressScope, scope_dict,
                        scope_not_found, sid, lock)

    def list(self, s: Session, ctx: Context, query: list[tuple[str, str]]) -> list[dict]:
        rows = s.execute(select(S.AddressScope).order_by(S.AddressScope.id)).scalars()
        seen = self.policy.checker(ctx, "get_address_scope")
        bodies = seen_as(s, ctx, "address_scope", list(map(scope_dict, rows)))
        return listed("address_scope", [d for d in bodies if seen(d)], params_of(query),
                      FILTERS)

    def show(self, s: Session, ctx: Context, sid: str, fields: list[str] | None) -> dict:
        return select_fields(seen_as(s, ctx, "address_scope", [scope_dict(
            self.get(s, ctx, sid))])[0], fields)

    def create(self, s: Session, ctx: Context, d: dict) -> dict:
        project = created_project(ctx, d)
        target = {"project_id": project, "tenant_id": project,
                  "shared": d.get("shared", False)}
        self.policy.require(ctx, "create_address_scope", target)
        if d.get("shared"):
            self.policy.require(ctx, "create_address_scope:shared", target)
        a = S.AddressScope(id=new_id(), project_id=project, name=d.get("name", ""),
                           shared=d.get("shared", False), ip_version=d["ip_version"])
        S.add(s, a)
        if a.shared:
            self._star(s, a)
        return scope_dict(a)

    @staticmethod
    def _star(s: Session, a: S.AddressScope) -> None:
        """``shared``: the '*' entry, as Neutron keeps it (rbac-address-scope)."""
        S.add(s, S.AddressScopeRbac(id=new_id(), project_id=a.project_id, object_id=a.id,
                                    action="access_as_shared", target_project="*"))

    def update(self, s: Session, ctx: Context, sid: str, d: dict) -> dict:
        a = self.get(s, ctx, sid, lock=True)
        target = {**scope_dict(a), **d}
        self.policy.require(ctx, "update_address_scope", target)
        if "shared" in d:
            self.policy.require(ctx, "update_address_scope:shared", target)
            if a.shared and not d["shared"]:
                raise err("AddressScopeUpdateError", 400,
                          f"Unable to update address scope {a.id} : Shared address scope "
                          "can't be unshared.")
        if d.get("shared") and not a.shared:
            self._star(s, a)
        for key in ("name", "shared"):
            if key in d:
                setattr(a, key, d[key])
        s.flush()
        return scope_dict(a)

    def delete(self, s: Session, ctx: Context, sid: str) -> None:
        a = self.get(s, ctx, sid, lock=True)
        self.policy.require(ctx, "delete_address_scope", scope_dict(a))
        if s.execute(select(S.SubnetPool.id).where(
                S.SubnetPool.address_scope_id == a.id)).first():
            raise err("AddressScopeInUse", 409,
                      f"Unable to complete operation on address scope {a.id}. There are one "
                      "or more subnet pools in use on the address scope.")
        # one statement before the row it names (a loaded RBAC row deleted by the unit of
        # work after its object's cascade matched nothing: SAWarning)
        s.execute(delete(S.AddressScopeRbac).where(S.AddressScopeRbac.object_id == a.id))
        S.delete(s, a)

