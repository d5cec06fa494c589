"""Subnet pools (Neutron's subnet_allocation, subnetpool-prefix-ops, default-subnetpools):
``/v2.0/subnetpools``, ``.../add_prefixes``, ``.../remove_prefixes``, and subnets whose CIDR a
pool hands out (``subnetpool_id`` with ``prefixlen`` or a CIDR inside the pool,
``use_default_subnetpool``). A pool's allocations are the subnets naming it; an allocation
locks the pool's row, so two requests never get overlapping prefixes. Checks, errors and
policy rules are Neutron's (db_base_plugin_v2, ipam/subnet_alloc)."""
from __future__ import annotations

import ipaddress

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .. import store as S
from ..core.errors import NeutronError
from . import tags
from .address_scopes import AddressScopes, gettable, listed, params_of, seen_as
from .common import bad, created_project, err, new_id, not_found, ts
from .listing import select_fields
from .policy import Context, Policy

FILTERS = ("id", "name", "description", "project_id", "tenant_id", "ip_version",
           "default_prefixlen", "min_prefixlen", "max_prefixlen", "default_quota",
           "is_default", "shared", "address_scope_id", "revision_number", "created_at",
           "updated_at")
BITS = {4: 32, 6: 128}
MIN_DEFAULT = {4: 8, 6: 64}  # Neutron's SubnetPoolHelper default min_prefixlen
QUOTA_UNIT = {4: 32, 6: 64}  # default_quota counts /32s (IPv4) or /64s (IPv6)


def pool_not_found(pid: str) -> NeutronError:
    return not_found("subnetpool", pid)


def pool_dict(p: S.SubnetPool) -> dict:
    return {"id": p.id, "name": p.name, "description": p.description,
            "project_id": p.project_id, "tenant_id": p.project_id,
            "ip_version": p.ip_version, "prefixes": list(p.prefixes),
            # strings, as Neutron's _make_subnetpool_dict has them
            "default_prefixlen": str(p.default_prefixlen),
            "min_prefixlen": str(p.min_prefixlen), "max_prefixlen": str(p.max_prefixlen),
            "default_quota": p.default_quota,
            "is_default": p.is_default, "shared": p.shared,
            "address_scope_id": p.address_scope_id, "tags": [],
            "revision_number": p.revision_number, "created_at": ts(p.created_at),
            "updated_at": ts(p.updated_at)}


def _nets(prefixes) -> list:
    return [ipaddress.ip_network(str(x), strict=False) for x in prefixes]


def compact(nets) -> list:
    """Neutron's IPSet.compact: overlapping and adjacent prefixes merged, sorted."""
    out = []
    for v in (4, 6):
        out += ipaddress.collapse_addresses(n for n in nets if n.version == v)
    return out


def _without(nets, used) -> list:
    """The part of ``nets`` outside every prefix of ``used``."""
    out = list(nets)
    for u in used:
        rest = []
        for n in out:
            if n.version != u.version or not n.overlaps(u):
                rest.append(n)
            elif not u.supernet_of(n):
                rest += n.address_exclude(u)
        out = rest
    return compact(out)


def _bounds(d: dict, version: int) -> tuple[int, int, int]:
    """Neutron's SubnetPoolReader prefix bounds: defaults and their order."""
    lo = d.get("min_prefixlen", MIN_DEFAULT[version])
    hi = d.get("max_prefixlen", BITS[version])
    default = d.get("default_prefixlen", lo)

    def illegal(kind, n, base_kind, base):
        return err("IllegalSubnetPoolPrefixBounds", 400, f"Illegal prefix bounds: {kind}={n}, "
                                                          f"{base_kind}={base}.")
    if lo > hi:
        raise illegal("min_prefixlen", lo, "max_prefixlen", hi)
    if hi > BITS[version]:
        raise illegal("max_prefixlen", hi, "ip_version_max", BITS[version])
    if default < lo:
        raise illegal("default_prefixlen", default, "min_prefixlen", lo)
    if default > hi:
        raise illegal("default_prefixlen", default, "max_prefixlen", hi)
    return lo, hi, default


def _read_prefixes(prefixes: list) -> tuple[int, list[str]]:
    if not prefixes:
        raise err("EmptySubnetPoolPrefixList", 400, "Empty subnet pool prefix list.")
    nets = _nets(prefixes)
    if len({n.version for n in nets}) > 1:
        raise err("PrefixVersionMismatch", 400,
                  "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
    return nets[0].version, [str(n) for n in compact(nets)]


def _allocated(s: Session, pid: str, project: str | None = None) -> list:
    q = select(S.Subnet.cidr).where(S.Subnet.subnetpool_id == pid)
    if project is not None:
        q = q.where(S.Subnet.project_id == project)
    return _nets(c for c, in s.execute(q))


class SubnetPools:
    """The API's operations as a caller may do them: a pool the caller may not get (its
    project's, or shared) answers as one that does not exist."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.scopes = AddressScopes(policy)

    def get(self, s: Session, ctx: Context, pid: str, lock: bool = False) -> S.SubnetPool:
        return gettable(s, ctx, self.policy, "subnetpool", S.SubnetPool, pool_dict,
                        pool_not_found, pid, lock)

    def list(self, s: Session, ctx: Context, query: list[tuple[str, str]]) -> list[dict]:
        rows = s.execute(select(S.SubnetPool).order_by(S.SubnetPool.created_at,
                                                       S.SubnetPool.id)).scalars()
        seen = self.policy.checker(ctx, "get_subnetpool")
        bodies = seen_as(s, ctx, "subnetpool", list(map(pool_dict, rows)))
        out = tags.fill(s, "subnetpool", [d for d in bodies if seen(d)])
        return listed("subnetpool", out, params_of(query), FILTERS)

    def show(self, s: Session, ctx: Context, pid: str, fields: list[str] | None) -> dict:
        return select_fields(self._dict(s, self.get(s, ctx, pid), ctx), fields)

    def _dict(self, s: Session, p: S.SubnetPool, ctx: Context | None = None) -> dict:
        d = tags.fill(s, "subnetpool", [pool_dict(p)])[0]
        return seen_as(s, ctx, "subnetpool", [d])[0] if ctx is not None else d

    # -- checks shared by create and update --------------------------------------------
    def _default_exists(self, s: Session, version: int, but: str) -> None:
        q = select(S.SubnetPool.id).where(S.SubnetPool.is_default.is_(True),
                                          S.SubnetPool.ip_version == version,
                                          S.SubnetPool.id != but)
        if s.execute(q).first():
            raise err("InvalidInput", 400, "Invalid input for operation: A default subnetpool "
                      "for this IP family has already been set. Only one default may exist "
                      "per IP family.")

    def _scope(self, s: Session, ctx: Context, sid: str | None, pid: str, version: int,
               prefixes: list[str]) -> None:
        """Neutron's _validate_address_scope_id: a scope the caller may use (its own, or
        shared with its project), of the pool's family, whose other pools have none of its
        prefixes; and every subnet of the pool's networks moves with it."""
        if sid is None:
            return
        scope = self.scopes.get(s, ctx, sid)
        if not ctx.is_admin and scope.project_id != ctx.project_id and not seen_as(
                s, ctx, "address_scope", [{"id": sid, "shared": scope.shared,
                                          "project_id": scope.project_id}])[0]["shared"]:
            raise err("IllegalSubnetPoolAssociationToAddressScope", 400,
                      f"Illegal subnetpool association: subnetpool {pid} cannot be associated "
                      f"with address scope {sid}.")
        if scope.ip_version != version:
            raise err("IllegalSubnetPoolIpVersionAssociationToAddressScope", 400,
                      f"Illegal subnetpool association: subnetpool {pid} cannot associate with "
                      f"address scope {sid} because subnetpool ip_version is not "
                      f"{scope.ip_version}.")
        mine = select(S.Subnet.id, S.Subnet.network_id).where(S.Subnet.subnetpool_id == pid)
        moved = {i: n for i, n in s.execute(mine)}
        if moved:
            q = select(S.Subnet.id).where(S.Subnet.network_id.in_(set(moved.values())),
                                          S.Subnet.ip_version == version)
            if {i for i, in s.execute(q)} - set(moved):
                raise err("NetworkAddressScopeAffinityError", 400,
                          "Subnets of the same address family hosted on the same network "
                          "must all participate in the same address scope.")
        new = _nets(prefixes)
        others = select(S.SubnetPool).where(S.SubnetPool.address_scope_id == sid,
                                            S.SubnetPool.id != pid)
        for other in s.execute(others).scalars():
            if any(a.overlaps(b) for a in new for b in _nets(other.prefixes)):
                raise err("AddressScopePrefixConflict", 409,
                          "Failed to associate address scope: subnetpools within an address "
                          "scope must have unique prefixes.")

    # -- create, update, delete ---------------------------------------------------------
    def create(self, s: Session, ctx: Context, d: dict) -> dict:
        project = created_project(ctx, d)
        target = {"project_id": project, "tenant_id": project,
                  "shared": d.get("shared", False), "is_default": d.get("is_default", False)}
        self.policy.require(ctx, "create_subnetpool", target)
        for attr in ("shared", "is_default"):
            if d.get(attr):
                self.policy.require(ctx, f"create_subnetpool:{attr}", target)
        version, prefixes = _read_prefixes(d["prefixes"])
        lo, hi, default = _bounds(d, version)
        p = S.SubnetPool(id=new_id(), project_id=project, name=d["name"],
                         description=d.get("description", ""), ip_version=version,
                         prefixes=prefixes, min_prefixlen=lo, max_prefixlen=hi,
                         default_prefixlen=default, default_quota=d.get("default_quota"),
                         shared=d.get("shared", False), is_default=d.get("is_default", False),
                         address_scope_id=d.get("address_scope_id"))
        if p.is_default:
            self._default_exists(s, version, p.id)
        self._scope(s, ctx, p.address_scope_id, p.id, version, prefixes)
        S.add(s, p)
        if p.shared:  # the '*' entry, as Neutron keeps it (rbac-subnetpool)
            S.add(s, S.SubnetPoolRbac(id=new_id(), project_id=project, object_id=p.id,
                                      action="access_as_shared", target_project="*"))
        if d.get("tags"):
            self.policy.require(ctx, "create_subnetpool:tags", target)
            tags.create_with(s, "subnetpool", p.id, d["tags"])
        return self._dict(s, p)

    def update(self, s: Session, ctx: Context, pid: str, d: dict) -> dict:
        p = self.get(s, ctx, pid, lock=True)
        target = {**pool_dict(p), **d}
        self.policy.require(ctx, "update_subnetpool", target)
        if "is_default" in d:
            self.policy.require(ctx, "update_subnetpool:is_default", target)
        # Neutron's update answers the lengths as numbers (its show: as strings)
        return {**self._dict(s, self._update(s, ctx, p, d)), **{
            k: getattr(p, k) for k in ("default_prefixlen", "min_prefixlen", "max_prefixlen")}}

    def _update(self, s: Session, ctx: Context, p: S.SubnetPool, d: dict) -> S.SubnetPool:
        """Neutron's update_subnetpool: new prefixes hold the old ones; the bounds as on
        create; a pool in another project's scope is that project's (or an admin's)."""
        prefixes = list(p.prefixes)
        if "prefixes" in d:
            new = compact(_nets(d["prefixes"]) if d["prefixes"] else [])
            if _without(_nets(p.prefixes), new):
                raise err("IllegalSubnetPoolPrefixUpdate", 400, "Illegal update to prefixes: "
                          "Existing prefixes must be a subset of the new prefixes.")
            prefixes = [str(n) for n in new]
        version, prefixes = _read_prefixes(prefixes)
        merged = {"min_prefixlen": p.min_prefixlen, "max_prefixlen": p.max_prefixlen,
                  "default_prefixlen": p.default_prefixlen, **d}
        lo, hi, default = _bounds(merged, version)
        scope = d.get("address_scope_id", p.address_scope_id)
        if d.get("is_default") and not p.is_default:
            self._default_exists(s, version, p.id)
        if p.address_scope_id and not ctx.is_admin and \
                self.scopes.get(s, ctx, p.address_scope_id).project_id != ctx.project_id:
            raise err("IllegalSubnetPoolUpdate", 400, f"Illegal subnetpool update : "
                      f"subnetpool {p.id} cannot be updated when associated with shared "
                      f"address scope {p.address_scope_id}.")
        self._scope(s, ctx, scope, p.id, version, prefixes)
        p.prefixes, p.min_prefixlen, p.max_prefixlen, p.default_prefixlen = \
            prefixes, lo, hi, default
        p.address_scope_id = scope
        for key in ("name", "description", "default_quota", "is_default"):
            if key in d:
                setattr(p, key, d[key])
        S.touch(p)
        s.flush()
        return p

    def delete(self, s: Session, ctx: Context, pid: str) -> None:
        p = self.get(s, ctx, pid, lock=True)
        self.policy.require(ctx, "delete_subnetpool", pool_dict(p))
        if s.execute(select(S.Subnet.id).where(S.Subnet.subnetpool_id == p.id)).first():
            raise err("SubnetPoolDeleteError", 400, "Unable to delete subnet pool: Subnet pool "
                                                    "has existing allocations.")
        tags.forget(s, "subnetpool", p.id)
        # one statement before the row it names (a loaded RBAC row deleted by the unit of
        # work after its object's cascade matched nothing: SAWarning)
        s.execute(delete(S.SubnetPoolRbac).where(S.SubnetPoolRbac.object_id == p.id))
        S.delete(s, p)

    # -- subnetpool-prefix-ops ----------------------------------------------------------
    def add_prefixes(self, s: Session, ctx: Context, pid: str, prefixes: list[str]) -> dict:
        p = self.get(s, ctx, pid, lock=True)
        self.policy.require(ctx, "add_prefixes", pool_dict(p))
        if prefixes:
            self._update(s, ctx, p, {"prefixes": list(p.prefixes) + prefixes})
        return {"prefixes": list(p.prefixes)}

    def remove_prefixes(self, s: Session, ctx: Context, pid: str, prefixes: list[str]) -> dict:
        p = self.get(s, ctx, pid, lock=True)
        self.policy.require(ctx, "remove_prefixes", pool_dict(p))
        gone, have = _nets(prefixes), _nets(p.prefixes)
        if not any(a.overlaps(b) for a in gone for b in have):
            return {"prefixes": list(p.prefixes)}  # nothing of the pool's: no change
        if any(a.overlaps(b) for a in gone for b in _allocated(s, p.id)):
            raise err("IllegalSubnetPoolPrefixUpdate", 400, "Illegal update to prefixes: One or "
                      "more the prefixes to be removed is in use by a subnet.")
        p.prefixes = [str(n) for n in _without(have, gone)]
        S.touch(p)
        s.flush()
        return {"prefixes": list(p.prefixes)}

    # -- subnets from a pool ------------------------------------------------------------
    def place(self, s: Session, ctx: Context, d: dict, network_id: str) -> None:
        """A subnet create's pool (``subnetpool_id``, or the default pool of its family
        with ``use_default_subnetpool``): ``d`` gets the CIDR the pool gives (a free
        ``prefixlen`` block, or the requested CIDR if free) and ``subnetpool_id``."""
        use_default = d.pop("use_default_subnetpool", False)
        prefixlen = d.pop("prefixlen", None)
        has_cidr = d.get("cidr") is not None
        if has_cidr and prefixlen is not None:
            raise bad("Bad subnets request: cidr and prefixlen must not be supplied together.")
        pid = d.get("subnetpool_id")
        if use_default and pid:
            raise bad("Bad subnets request: subnetpool_id and use_default_subnetpool cannot "
                      "both be specified.")
        if use_default:
            version = ipaddress.ip_network(d["cidr"]).version if has_cidr \
                else d.get("ip_version", 4)
            pid = self._default_pool(s, ctx, version)
        self._affinity(s, network_id, pid, d)
        if pid is None:
            return
        if not has_cidr and d.get("allocation_pools"):
            raise bad("Bad subnets request: allocation_pools allowed only for specific subnet "
                      "requests.")
        p = self.get(s, ctx, pid, lock=True)  # one allocation at a time per pool
        if "ip_version" in d and d["ip_version"] != p.ip_version:
            raise bad(f"Bad subnets request: Cannot allocate IPv{d['ip_version']} subnet from "
                      f"IPv{p.ip_version} subnet pool.")
        want = ipaddress.ip_network(d["cidr"]) if has_cidr else None
        length = want.prefixlen if want else (prefixlen or p.default_prefixlen)
        if length > p.max_prefixlen:
            raise err("MaxPrefixSubnetAllocationError", 400, f"Unable to allocate subnet with "
                      f"prefix length {length}, maximum allowed prefix is {p.max_prefixlen}.")
        if length < p.min_prefixlen:
            raise err("MinPrefixSubnetAllocationError", 400, f"Unable to allocate subnet with "
                      f"prefix length {length}, minimum allowed prefix is {p.min_prefixlen}.")
        self._quota(s, p, d.get("project_id") or p.project_id, length)
        free = _without(_nets(p.prefixes), _allocated(s, p.id))
        # 409 where Neutron answers 500: the pool's state refuses the request, not a fault
        if want is not None:
            if not any(f.supernet_of(want) for f in free if f.version == want.version):
                raise err("SubnetAllocationError", 409, "Failed to allocate subnet: Cannot "
                          "allocate requested subnet from the available set of prefixes.")
        else:
            fits = sorted((f for f in free if f.prefixlen <= length),
                          key=lambda f: -f.prefixlen)  # the smallest free block first
            if not fits:
                raise err("SubnetAllocationError", 409, f"Failed to allocate subnet: "
                          f"Insufficient prefix space to allocate subnet size /{length}.")
            want = next(fits[0].subnets(new_prefix=length))
            d["cidr"] = str(want)
            if d.get("gateway_ip") is not None and \
                    ipaddress.ip_address(d["gateway_ip"]) not in want:
                raise bad(f"Invalid input for operation: Gateway IP {d['gateway_ip']} is not "
                          f"a host address of {want}.")
        d["ip_version"] = p.ip_version
        d["subnetpool_id"] = p.id

    def _default_pool(self, s: Session, ctx: Context, version: int) -> str:
        q = select(S.SubnetPool).where(S.SubnetPool.is_default.is_(True),
                                       S.SubnetPool.ip_version == version)
        for p in s.execute(q).scalars():
            if self.policy.check(ctx, "get_subnetpool", pool_dict(p)):
                return p.id
        raise bad(f"Bad subnets request: No default subnetpool found for IPv{version}.")

    def _affinity(self, s: Session, network_id: str, pid: str | None, d: dict) -> None:
        """Neutron's _validate_network_subnetpools: a network's subnets of one family all
        come from one pool, or all from pools of one address scope, or none from a pool."""
        pool = S.get(s, S.SubnetPool, pid) if pid else None
        if pid and pool is None:
            return  # get() answers 404 next
        version = pool.ip_version if pool else ipaddress.ip_network(d["cidr"]).version
        subnets = S.subnets_of(s, network_id)
        used = {sn.subnetpool_id for sn in subnets if sn.ip_version == version
                and sn.subnetpool_id}
        scope = next((p.address_scope_id for p in S.load_many(s, S.SubnetPool, used, plain=True)
                      if p.address_scope_id), None) if used else None
        if scope and (pool is None or pool.address_scope_id != scope):
            raise err("NetworkAddressScopeAffinityError", 400, "Subnets of the same address "
                      "family hosted on the same network must all participate in the same "
                      "address scope.")
        for sn in subnets:
            if sn.ip_version != version:
                continue
            if (pool is not None and sn.subnetpool_id != pool.id and not scope) or \
                    (pool is None and sn.subnetpool_id):
                raise err("NetworkSubnetPoolAffinityError", 400, "Subnets hosted on the same "
                          "network must be allocated from the same subnet pool.")

    def _quota(self, s: Session, p: S.SubnetPool, project: str, length: int) -> None:
        """Neutron's per-project pool quota: ``default_quota`` units (/32s or /64s) the
        project's subnets from the pool take, with this one."""
        if not p.default_quota:
            return
        unit = QUOTA_UNIT[p.ip_version]
        used = sum(2 ** (unit - n.prefixlen) for n in _allocated(s, p.id, project))
        if used + 2 ** (unit - length) > p.default_quota:
            raise err("SubnetPoolQuotaExceeded", 409,
                      "Per-project subnet pool prefix quota exceeded.")
