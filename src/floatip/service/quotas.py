"""Quotas as Neutron's (``quotas`` and ``quota_details`` extensions, DbQuotaDriver): a limit
per project and resource, the configured default unless an admin set one, -1 unlimited.

A create beyond the limit is ``OverQuota`` (409). The check counts the project's rows in
the transaction that inserts the new one, under a lock of that project and resource
(``store.lock_quota``), so that clients racing for the last units never get one more;
other projects and resources do not wait. As Neutron, only the resource the request
creates is checked (ports a router or a floating IP makes for itself are not), a request
without a project is not, and everything the project owns counts (its default security
group and that group's rules too)."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from .. import store as S
from .common import err
from .policy import Context, Policy
from .security_groups import ensure_default

# Neutron 29's defaults (neutron/conf/quota.py), settable in the [quotas] section of the
# configuration file as quota_<resource>
DEFAULTS = {"network": 100, "subnet": 100, "port": 500, "router": 10, "floatingip": 50,
            "security_group": 10, "security_group_rule": 100, "rbac_policy": 10,
            "router_route": 30}
# router_route (extraroute) limits the routes of one router, checked against the routes a
# request sets (Neutron's limit_check); its "used" is always 0, as Neutron reports it
PER_ROUTER = ("router_route",)
COUNTED = {**S.MODELS, "rbac_policy": S.NetworkRbac}  # the rows each resource counts
UNLIMITED = -1
MAX_LIMIT = 2147483647  # Neutron's DB_INTEGER_MAX_VALUE


def _bad(message: str) -> Exception:
    """What Neutron raises as webob's HTTPBadRequest for this API."""
    return err("HTTPBadRequest", 400, message)


def over_quota(resources: list[str]) -> Exception:
    return err("OverQuota", 409, f"Quota exceeded for resources: {sorted(resources)}.")


def defaults_from(section: dict[str, str]) -> dict[str, int]:
    """The defaults from a ``[quotas]`` section (``quota_network = 10``); refuses what
    Neutron's options would (an unknown ``quota_*`` key, a value that is not an integer)."""
    out = dict(DEFAULTS)
    for key, value in section.items():
        if not key.startswith("quota_"):
            continue
        name = key[len("quota_"):]
        if name not in DEFAULTS:
            raise ValueError(f"[quotas] {key}: floatip has no resource {name!r} "
                             f"(known: {', '.join('quota_' + k for k in DEFAULTS)})")
        try:
            out[name] = int(value)
        except ValueError:
            raise ValueError(f"[quotas] {key}: {value!r} is not an integer") from None
    return out


class Quotas:
    def __init__(self, policy: Policy, defaults: dict[str, int] | None = None):
        self.policy = policy
        self.defaults = {**DEFAULTS, **(defaults or {})}

    # -- enforcement ----------------------------------------------------------------------
    def limits(self, s: Session, project: str) -> dict[str, int]:
        set_ = S.quota_limits(s, project).get(project, {})
        return {k: set_.get(k, v) for k, v in self.defaults.items()}

    def check(self, s: Session, kind: str, project: str) -> None:
        """Before the insert of one ``kind`` for ``project``, in its transaction."""
        if kind not in self.defaults or kind in PER_ROUTER or not project:
            return
        self._room(s, project, kind, 1)
        if kind == "security_group":
            # as Neutron: the groups are counted before the create makes the project's
            # default group (its rules count later), then the new group's two egress rules
            ensure_default(s, project)
            self._room(s, project, "security_group_rule", 2)

    def _room(self, s: Session, project: str, kind: str, more: int) -> None:
        limit = self.limits(s, project)[kind]
        if limit <= UNLIMITED:
            return
        S.lock_quota(s, project, kind)  # held until this transaction ends
        if S.count_owned(s, COUNTED[kind], project) + more > limit:
            raise over_quota([kind])

    def limit_check(self, s: Session, project: str, resource: str, value: int) -> None:
        """A value limited without counting rows (router_route: the routes of one router)."""
        limit = self.limits(s, project)[resource]
        if UNLIMITED < limit < value:
            raise over_quota([resource])

    @staticmethod
    def used(s: Session, kind: str, project: str) -> int:
        return 0 if kind in PER_ROUTER else S.count_owned(s, COUNTED[kind], project)

    # -- the API ---------------------------------------------------------------------------
    def _require(self, ctx: Context, action: str) -> None:
        # Neutron's validate_policy: the target is the caller's own project
        self.policy.require(ctx, action, {"project_id": ctx.project_id,
                                          "tenant_id": ctx.project_id})

    def list(self, s: Session, ctx: Context) -> list[dict]:
        """The projects with a limit set: every resource's limit (the default where unset)."""
        self._require(ctx, "get_quota")
        return [{**self.defaults, **{k: v for k, v in set_.items() if k in self.defaults},
                 "project_id": pid, "tenant_id": pid}
                for pid, set_ in S.quota_limits(s).items()]

    def show(self, s: Session, ctx: Context, project: str) -> dict:
        if project != ctx.project_id:
            self._require(ctx, "get_quota")
        return self.limits(s, project)

    def default(self, ctx: Context, project: str) -> dict:
        if project != ctx.project_id:
            self._require(ctx, "get_quota")
        return dict(self.defaults)

    def details(self, s: Session, ctx: Context, project: str) -> dict:
        if project != ctx.project_id and not ctx.is_admin:
            raise err("AdminRequired", 403, "User does not have admin privileges: Only admin "
                                            "is authorized to access quotas for another "
                                            "project.")
        return {k: {"limit": v, "used": self.used(s, k, project), "reserved": 0}
                for k, v in self.limits(s, project).items()}

    @staticmethod
    def own_project(ctx: Context, key: str = "project") -> dict:
        """GET /v2.0/quotas/project (and the deprecated /tenant): the caller's project."""
        if not ctx.project_id:
            raise err("QuotaMissingTenant", 400, "Tenant-id was missing from quota request.")
        return {key: {f"{key}_id": ctx.project_id}}

    def update(self, s: Session, ctx: Context, project: str, body: Any) -> dict:
        self._require(ctx, "update_quota")
        limits, force = self._parse(body)
        if force is not True:  # Neutron 29: a limit below what is used needs force
            for kind, limit in limits.items():
                if limit == UNLIMITED:
                    continue
                used = self.used(s, kind, project)
                if used > limit:
                    raise _bad(f"Quota limit {limit} for {kind} must be greater than or equal "
                              f"to already used {used}")
        for kind, limit in limits.items():
            S.set_quota_limit(s, project, kind, limit)
        return self.limits(s, project)

    def delete(self, s: Session, ctx: Context, project: str) -> None:
        self._require(ctx, "delete_quota")
        if S.delete_quota_limits(s, project) < 1:
            raise err("TenantQuotaNotFound", 404, f"Quota for project {project} could not be "
                                                  f"found.")

    def _parse(self, body: Any) -> tuple[dict[str, int], Any]:
        """Neutron's prepare_request_body for ``{"quota": {resource: limit, ...}}``: unknown
        resources, values that are not integers or out of -1..2147483647 are 400."""
        if not body:
            raise _bad("Resource body required")
        if not isinstance(body, dict):
            raise _bad("Body contains invalid data")
        d = body.get("quota")
        if d is None:
            raise _bad("Unable to find 'quota' in request body")
        if not isinstance(d, dict):
            raise _bad("Object 'quota' contains invalid data")
        d = dict(d)
        force = d.pop("force", None)
        d.pop("check_limit", None)  # Neutron: no longer needed, ignored
        unknown = [k for k in d if k not in self.defaults]
        if unknown:
            raise _bad(f"Unrecognized attribute(s) '{', '.join(map(str, unknown))}'")
        out: dict[str, int] = {}
        for kind, value in d.items():
            try:
                if isinstance(value, (dict, list)) or value is None:
                    raise TypeError
                limit = int(value)
            except (ValueError, TypeError):
                raise err("InvalidInput", 400, f"Invalid input for operation: '{value}' is "
                                               f"not an integer.") from None
            if limit < UNLIMITED:
                why = f"'{limit}' is too small - must be at least '{UNLIMITED}'"
            elif limit > MAX_LIMIT:
                why = f"'{limit}' is too large - must be no larger than '{MAX_LIMIT}'"
            else:
                out[kind] = limit
                continue
            raise _bad(f"Invalid input for {kind}. Reason: {why}.")
        return out, force
