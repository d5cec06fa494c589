"""Network RBAC policies (Neutron's rbac-policies, object type ``network``):
``/v2.0/rbac-policies``.

``access_as_shared`` lets the target project see the network (its subnets too) and create
ports on it; ``access_as_external`` lets it use the external network (router gateways,
floating IPs). ``*`` targets every project: ``shared``/``router:external`` on a network are
those ``*`` entries (kept in step both ways, as Neutron's plugin does). An external network
with entries for chosen projects only is hidden from the others. Checks, errors and policy
rules are Neutron's rbac_db_mixin and network RBAC callbacks.
"""
from __future__ import annotations

import uuid

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .. import store as S
from ..core.errors import NeutronError
from . import listing, pool_rbac, resources as svc
from .common import created_project, err, new_id
from .policy import Context, Policy

SHARED, EXTERNAL = "access_as_shared", "access_as_external"
ACTIONS = (EXTERNAL, SHARED)
KINDS = ("network", "subnet", "port")  # whose visibility follows a network's entries
FILTERS = ("id", "object_type", "object_id", "action", "target_tenant", "project_id",
           "tenant_id")
R = S.NetworkRbac
TABLES = {"network": R, **pool_rbac.TABLES}  # object_type -> its entries
OTYPE = {t: o for o, t in TABLES.items()}


def not_found(rid: str, otype: str = "unknown") -> NeutronError:
    return err("RbacPolicyNotFound", 404,
               f"RBAC policy of type {otype} with ID {rid} not found")


def invalid(message: str) -> NeutronError:
    return err("InvalidInput", 400, f"Invalid input for operation: {message}.")


def in_use(nid: str) -> NeutronError:
    return err("RbacPolicyInUse", 409,
               f"RBAC policy on object {nid} cannot be removed because other objects depend "
               f"on it.\nDetails: Unable to reconfigure sharing settings for network {nid}. "
               "Multiple tenants are using it.")


def view(r: S.NetworkRbac) -> dict:
    return {"id": r.id, "project_id": r.project_id, "tenant_id": r.project_id,
            "object_type": OTYPE[type(r)], "object_id": r.object_id, "action": r.action,
            "target_tenant": r.target_project}  # Neutron's API name of target_project


class Grants:
    """What one project may do with the networks of others, read once (one query)."""

    def __init__(self, s: Session, project: str):
        self.project = project
        self.shared: set[str] = set()      # '*' is networks.shared itself
        self.external: set[str] = set()    # external for this project ('*' or its own)
        self.restricted: set[str] = set()  # external networks with access_as_external rows
        q = select(R.object_id, R.action, R.target_project).where(
            or_(R.target_project == project, R.action == EXTERNAL))
        for nid, action, target in s.execute(q):
            if action == SHARED:
                self.shared.add(nid)
            else:
                self.restricted.add(nid)
                if target in (project, "*"):
                    self.external.add(nid)

    def narrow(self, kind: str, t: dict) -> None:
        """The target's ``shared``/``router:external`` as this project has them (its
        network's, for a subnet or port). A network without external entries (made
        outside the API) stays external for all."""
        net, pre = (t.get("id"), "") if kind == "network" else (t.get("network_id"), "network:")
        owner = t.get("project_id") if kind == "network" else t.get("network:project_id")
        if owner == self.project or not isinstance(net, str):
            return
        if f"{pre}shared" in t and net in self.shared:
            t[f"{pre}shared"] = True
        if t.get(f"{pre}router:external") and net in self.restricted \
                and net not in self.external:
            t[f"{pre}router:external"] = False


def shared_filter(query: list[tuple[str, str]]) -> set[bool] | None:
    """The values of a network list's ``shared`` filter, when all are booleans (else None:
    the list's own filter answers them, 400 for a bad one)."""
    vals = [v.strip().lower() for k, v in query if k == "shared"]
    if not vals or not all(v in ("true", "1", "false", "0") for v in vals):
        return None
    return {v in ("true", "1") for v in vals}


def wildcards(s: Session, net: dict) -> None:
    """The ``*`` entries of a network after a create or update through the API:
    ``shared`` is a ``*`` access_as_shared entry, ``router:external`` a ``*``
    access_as_external one (unset: every access_as_external entry goes, as in Neutron)."""
    rows = list(s.execute(select(R).where(R.object_id == net["id"])).scalars())
    star = {r.action: r for r in rows if r.target_project == "*"}
    for action, on in ((SHARED, net["shared"]), (EXTERNAL, net["router:external"])):
        if on and action not in star:
            S.add(s, R(id=new_id(), project_id=net["project_id"], object_id=net["id"],
                       action=action, target_project="*"))
        elif not on:
            for r in rows:
                if r.action == action and (r.target_project == "*" or action == EXTERNAL):
                    if action == SHARED and users_losing(s, r):  # Neutron's update_network
                        raise err("InvalidSharedSetting", 409, "Unable to reconfigure sharing "
                                  f"settings for network {net['id']}. Multiple tenants are "
                                  "using it.")
                    s.delete(r)
    s.flush()


def forget(s: Session, nid: str) -> None:
    for r in s.execute(select(R).where(R.object_id == nid)).scalars():
        s.delete(r)
    s.flush()


def _target_project(v) -> str:
    if v == "*":
        return v
    try:
        uuid.UUID(str(v))
    except ValueError:
        raise invalid(f"'{v}' is not a valid target project ID; expected a UUID or '*'")
    return str(v)


class Rbac:
    """The API's operations as a caller may do them (``get_rbac_policy``: the entry's
    project's, or an admin's)."""

    def __init__(self, policy: Policy, access):
        self.policy, self.access = policy, access
        self.pools = pool_rbac.SubnetPools(policy)

    def _entry(self, s: Session, ctx: Context, rid: str, lock: bool = False):
        r = next((x for x in (S.get(s, T, rid, lock=lock) for T in TABLES.values())
                  if x is not None), None)
        if r is None or not self.policy.check(ctx, "get_rbac_policy", view(r)):
            raise not_found(rid)
        return r

    def list(self, s: Session, ctx: Context, query: list[tuple[str, str]]) -> list[dict]:
        params: dict[str, list[str]] = {}
        for k, v in query:
            params.setdefault(k, []).append(v)
        rows = []
        for T in TABLES.values():
            q = select(T)
            if not ctx.is_admin:  # Neutron's project filter of the entries
                q = q.where(T.project_id == ctx.project_id)
            rows += s.execute(q).scalars()
        out = []
        for r in sorted(rows, key=lambda r: r.id):
            d = view(r)
            if self.policy.check(ctx, "get_rbac_policy", d) and all(
                    str(d.get(k)) in vs for k, vs in params.items() if k in FILTERS):
                out.append(d)
        return listing.listed("rbac_policy", out, params, FILTERS)  # sorted and paged

    def show(self, s: Session, ctx: Context, rid: str, fields: list[str] | None) -> dict:
        d = view(self._entry(s, ctx, rid))
        return {k: v for k, v in d.items() if k in fields} if fields else d

    def create(self, s: Session, ctx: Context, d: dict) -> dict:
        project = created_project(ctx, d)
        otype = str(d.get("object_type", "")).strip().lower()
        if otype not in TABLES:
            raise invalid(f"'{d.get('object_type')}' is not a valid RBAC object type")
        target = _target_project(d.get("target_tenant"))
        action = d.get("action")
        body = {"project_id": project, "tenant_id": project, "object_type": otype,
                "object_id": d.get("object_id"), "action": action,
                "target_tenant": target}
        self.policy.require(ctx, "create_rbac_policy", body)
        self.policy.require(ctx, "create_rbac_policy:target_tenant", body)
        if otype != "network":
            return view(pool_rbac.create(s, ctx, self.pools, otype, d.get("object_id"), action,
                                         target, project))
        if action not in ACTIONS:
            raise err("InvalidActionForType", 400,
                      f"Invalid action '{action}' for object type 'network'. Valid actions: "
                      f"{list(ACTIONS)}")
        net = self.access._must_see(s, ctx, "network", d.get("object_id"), ())
        if net is None:
            raise invalid(f"'{d.get('object_id')}' is not a valid UUID")
        if not ctx.is_admin and net["project_id"] != ctx.project_id:
            raise invalid("Only admins can manipulate policies on networks they do not own")
        if s.execute(select(R.id).where(R.object_id == net["id"], R.action == action,
                                        R.target_project == target)).first():
            raise err("DuplicateRbacPolicy", 409, "An RBAC policy already exists with those "
                                                  "values.")
        self.access.quotas.check(s, "rbac_policy", project)
        r = R(id=new_id(), project_id=project, object_id=net["id"], action=action,
              target_project=target)
        S.add(s, r)
        s.flush()
        # Neutron: a '*' share makes the network shared; any external entry makes it external
        if action == SHARED and target == "*" and not net["shared"]:
            svc.UPDATE["network"](s, net["id"], {"shared": True})
        if action == EXTERNAL and not net["router:external"]:
            svc.UPDATE["network"](s, net["id"], {"router:external": True})
        return view(r)

    def update(self, s: Session, ctx: Context, rid: str, d: dict) -> dict:
        r = self._entry(s, ctx, rid, lock=True)
        body = {**view(r), **d}
        self.policy.require(ctx, "update_rbac_policy", body)
        if "target_tenant" in d:
            target = _target_project(d["target_tenant"])
            body.update(target_tenant=target)
            self.policy.require(ctx, "update_rbac_policy:target_tenant", body)
            if target != r.target_project:
                self._ensure_unused(s, r, keeps=target)
                r.target_project = target
                s.flush()
        return view(r)

    def delete(self, s: Session, ctx: Context, rid: str) -> None:
        r = self._entry(s, ctx, rid, lock=True)
        self.policy.require(ctx, "delete_rbac_policy", view(r))
        self._ensure_unused(s, r)
        nid, action, target = r.object_id, r.action, r.target_project
        s.delete(r)
        s.flush()
        if not isinstance(r, R):
            pool_rbac.deleted(s, r)
            return
        net = S.get(s, S.Network, nid)
        if action == SHARED and target == "*" and net is not None and net.shared:
            svc.UPDATE["network"](s, nid, {"shared": False})
        if action == EXTERNAL and net is not None and net.external and not s.execute(
                select(R.id).where(R.object_id == nid, R.action == EXTERNAL)).first():
            svc.UPDATE["network"](s, nid, {"router:external": False})

    def _ensure_unused(self, s: Session, r, keeps: str = "") -> None:
        """``keeps``: the project the entry is retargeted to (it loses nothing)."""
        if not isinstance(r, R):
            return pool_rbac.ensure_unused(s, r)
        if users_losing(s, r) - {keeps}:
            raise in_use(r.object_id)


def users_losing(s: Session, r: S.NetworkRbac) -> set[str]:
    """Neutron's ensure_no_project_ports_on_network (and for an external entry, the routers
    of the project losing access): the projects that would lose access and have ports
    (gateways) on the network that no other entry still allows."""
    net = S.get(s, S.Network, r.object_id)
    if net is None or r.target_project == net.project_id:
        return set()
    others = {t for t, in s.execute(select(R.target_project).where(
        R.object_id == r.object_id, R.action == r.action, R.id != r.id))}
    if "*" in others:
        return set()
    if r.action == SHARED:
        q = select(S.Port.project_id).where(S.Port.network_id == r.object_id)
    else:
        q = select(S.Router.project_id).join(S.Port, S.Router.gw_port_id == S.Port.id) \
            .where(S.Port.network_id == r.object_id)
    users = {p for p, in s.execute(q)}
    if r.target_project == "*":
        return users - others - {net.project_id, ""}
    return users & {r.target_project}
