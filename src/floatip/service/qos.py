"""QoS policies and their bandwidth limit rules (Neutron's qos, qos-bw-limit-direction,
qos-default, qos-fip, qos-gateway-ip): ``/v2.0/qos/policies``,
``/v2.0/qos/policies/{id}/bandwidth_limit_rules``, ``/v2.0/qos/rule-types``.

A floating IP or a router's gateway names a policy by ``qos_policy_id``; the agents get
each one's limits with it (a rule change reaches them as a change of every floating IP and
router bound to the policy). Checks, errors and policy rules are Neutron's qos_plugin's.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import store as S
from ..core.errors import NeutronError
from . import listing, tags
from .common import created_project, err, new_id, ts
from .policy import Context, Policy

RULE_TYPES = ("bandwidth_limit",)  # what both backends enforce on floating IPs/gateways
DIRECTIONS = ("egress", "ingress")
POLICY_FILTERS = ("id", "name", "description", "shared", "is_default", "project_id",
                  "tenant_id", "revision_number")


def policy_not_found(pid: str) -> NeutronError:
    return err("QosPolicyNotFound", 404, f"QoS policy {pid} could not be found.")


def rule_not_found(rid: str, pid: str) -> NeutronError:
    return err("QosRuleNotFound", 404,
               f"QoS rule {rid} for policy {pid} could not be found.")


def rule_dict(r, with_policy: bool = False) -> dict:
    d = {"id": r.id, "max_kbps": r.max_kbps, "max_burst_kbps": r.max_burst_kbps,
         "direction": r.direction}
    if with_policy:  # as a policy's ``rules`` show them
        d.update(qos_policy_id=r.qos_policy_id, type="bandwidth_limit")
    return d


def _rules(s: Session, pid: str) -> list[S.QosBandwidthLimitRule]:
    q = select(S.QosBandwidthLimitRule).where(S.QosBandwidthLimitRule.qos_policy_id == pid)
    return sorted(s.execute(q).scalars(), key=lambda r: (r.direction, r.id))


def policy_dict(s: Session, p: S.QosPolicy) -> dict:
    return {"id": p.id, "name": p.name, "description": p.description, "shared": p.shared,
            "is_default": p.is_default, "project_id": p.project_id, "tenant_id": p.project_id,
            "rules": [rule_dict(r, True) for r in _rules(s, p.id)], "tags": [],
            "revision_number": p.revision_number, "created_at": ts(p.created_at),
            "updated_at": ts(p.updated_at)}


def _target(p: S.QosPolicy) -> dict:
    return {"id": p.id, "project_id": p.project_id, "tenant_id": p.project_id,
            "shared": p.shared, "name": p.name}


def _fields(d: dict, fields: list[str] | None) -> dict:
    return {k: v for k, v in d.items() if k in fields} if fields else d


def _text(v) -> str:
    return str(v) if not isinstance(v, bool) else ("True" if v else "False")


def _bool_filter(vs: list[str]) -> set[str]:
    return {"True" if v.lower() in ("true", "1") else "False" if v.lower() in ("false", "0")
            else v for v in vs}


class Qos:
    """The API's operations as a caller may do them: a policy the caller may not get
    (``get_policy``: its project's, or shared) answers as one that does not exist."""

    def __init__(self, policy: Policy):
        self.policy = policy

    # -- policies -----------------------------------------------------------------------
    def _policy(self, s: Session, ctx: Context, pid: str, lock: bool = False) -> S.QosPolicy:
        p = S.get(s, S.QosPolicy, pid, lock=lock)
        if p is None or not self.policy.check(ctx, "get_policy", _target(p)):
            raise policy_not_found(pid)
        return p

    def must_see(self, s: Session, ctx: Context, pid: str | None) -> None:
        """``qos_policy_id`` of a floating IP or a gateway: a policy the caller may get."""
        if pid is not None:
            self._policy(s, ctx, pid)

    def list(self, s: Session, ctx: Context, query: list[tuple[str, str]]) -> list[dict]:
        params: dict[str, list[str]] = {}
        for k, v in query:
            params.setdefault(k, []).append(v)
        rows = [p for p in s.execute(select(S.QosPolicy).order_by(
            S.QosPolicy.created_at, S.QosPolicy.id)).scalars()
            if self.policy.check(ctx, "get_policy", _target(p))]
        out = []
        for d in tags.fill(s, "policy", [policy_dict(s, p) for p in rows]):
            if all(_text(d.get(k)) in (_bool_filter(vs) if k in ("shared", "is_default")
                                       else set(vs))
                   for k, vs in params.items() if k in POLICY_FILTERS):
                out.append(d)
        return listing.listed("policy", out, params, POLICY_FILTERS)  # sorted and paged

    def show(self, s: Session, ctx: Context, pid: str, fields: list[str] | None) -> dict:
        return _fields(self._dict(s, self._policy(s, ctx, pid)), fields)

    @staticmethod
    def _dict(s: Session, p: S.QosPolicy) -> dict:
        return tags.fill(s, "policy", [policy_dict(s, p)])[0]

    def create(self, s: Session, ctx: Context, d: dict) -> dict:
        project = created_project(ctx, d)
        self.policy.require(ctx, "create_policy", {"project_id": project, "tenant_id": project,
                                                   "shared": d.get("shared", False)})
        p = S.QosPolicy(id=new_id(), project_id=project, name=d.get("name", ""),
                        description=d.get("description", ""), shared=d.get("shared", False),
                        is_default=False)
        S.add(s, p)
        if d.get("is_default"):
            self._set_default(s, p)
        s.flush()
        if d.get("tags"):
            self.policy.require(ctx, "create_policy:tags", _target(p))
            tags.create_with(s, "policy", p.id, d["tags"])
        return self._dict(s, p)

    def _set_default(self, s: Session, p: S.QosPolicy) -> None:
        """Neutron's qos-default: one default policy per project."""
        q = select(S.QosPolicy.id).where(S.QosPolicy.project_id == p.project_id,
                                         S.QosPolicy.is_default.is_(True),
                                         S.QosPolicy.id != p.id)
        if s.execute(q).first():
            raise err("QoSPolicyDefaultAlreadyExists", 409,
                      f"A default QoS policy exists for project {p.project_id}.")
        p.is_default = True

    def update(self, s: Session, ctx: Context, pid: str, d: dict) -> dict:
        p = self._policy(s, ctx, pid, lock=True)
        self.policy.require(ctx, "update_policy", {**_target(p), **{
            k: v for k, v in d.items() if k in ("shared", "name")}})
        for key in ("name", "description", "shared"):
            if key in d:
                setattr(p, key, d[key])
        if "is_default" in d:
            if d["is_default"]:
                self._set_default(s, p)
            else:
                p.is_default = False
        S.touch(p)
        s.flush()
        return self._dict(s, p)

    def delete(self, s: Session, ctx: Context, pid: str) -> None:
        p = self._policy(s, ctx, pid, lock=True)
        self.policy.require(ctx, "delete_policy", _target(p))
        fids, rids = S.qos_bindings(s, p.id)
        for kind, ids in (("floatingip", fids), ("router", rids)):
            if ids:
                raise err("QosPolicyInUse", 409,
                          f"QoS Policy {p.id} is used by {kind} {ids[0]}.")
        tags.forget(s, "policy", p.id)
        S.delete(s, p)
        s.flush()

    # -- bandwidth limit rules ------------------------------------------------------------
    def _require(self, ctx: Context, action: str, p: S.QosPolicy) -> None:
        self.policy.require(ctx, f"{action}_policy_bandwidth_limit_rule", {
            "project_id": p.project_id, "tenant_id": p.project_id,
            "ext_parent:project_id": p.project_id, "ext_parent:tenant_id": p.project_id})

    def _writable(self, s: Session, ctx: Context, pid: str, action: str) -> S.QosPolicy:
        """The policy a rule write goes to, in Neutron's order: a create checks its own rule
        before the policy's visibility (another project's private policy: 403); an update or
        delete first reads what it changes (not visible: 404), then checks its rule."""
        if action != "create":
            self._policy(s, ctx, pid)
        p = S.get(s, S.QosPolicy, pid, lock=True)
        if p is None:
            raise policy_not_found(pid)
        self._require(ctx, action, p)
        return self._policy(s, ctx, pid)

    def _rule(self, s: Session, p: S.QosPolicy, rid: str) -> S.QosBandwidthLimitRule:
        r = S.get(s, S.QosBandwidthLimitRule, rid)
        if r is None or r.qos_policy_id != p.id:
            raise rule_not_found(rid, p.id)
        return r

    def list_rules(self, s: Session, ctx: Context, pid: str,
                   query: list[tuple[str, str]]) -> list[dict]:
        p = self._policy(s, ctx, pid)
        self._require(ctx, "get", p)
        params: dict[str, list[str]] = {}
        for k, v in query:
            params.setdefault(k, []).append(v)
        out = [d for d in (rule_dict(r) for r in _rules(s, p.id))
               if all(str(d.get(k)) in vs for k, vs in params.items()
                      if k in ("id", "max_kbps", "max_burst_kbps", "direction"))]
        return [_fields(d, params.get("fields")) for d in out]

    def show_rule(self, s: Session, ctx: Context, pid: str, rid: str,
                  fields: list[str] | None) -> dict:
        p = self._policy(s, ctx, pid)
        self._require(ctx, "get", p)
        return _fields(rule_dict(self._rule(s, p, rid)), fields)

    def _conflict(self, s: Session, p: S.QosPolicy, direction: str, but: str = "") -> None:
        for other in _rules(s, p.id):
            if other.direction == direction and other.id != but:
                raise err("QoSRulesConflict", 409,
                          f"Rule bandwidth_limit conflicts with rule {other.id} which "
                          f"already exists in QoS Policy {p.id}.")

    def create_rule(self, s: Session, ctx: Context, pid: str, d: dict) -> dict:
        p = self._writable(s, ctx, pid, "create")
        direction = d.get("direction", "egress")
        self._conflict(s, p, direction)
        r = S.QosBandwidthLimitRule(id=new_id(), qos_policy_id=p.id, max_kbps=d["max_kbps"],
                                    max_burst_kbps=d.get("max_burst_kbps", 0),
                                    direction=direction)
        try:
            with s.begin_nested():
                s.add(r)
                s.flush()
        except IntegrityError:  # a concurrent create of the same direction
            self._conflict(s, p, direction)
            raise
        self._changed(s, p)
        return rule_dict(r)

    def update_rule(self, s: Session, ctx: Context, pid: str, rid: str, d: dict) -> dict:
        p = self._writable(s, ctx, pid, "update")
        r = self._rule(s, p, rid)
        if "direction" in d:
            self._conflict(s, p, d["direction"], but=r.id)
        for key in ("max_kbps", "max_burst_kbps", "direction"):
            if key in d:
                setattr(r, key, d[key])
        s.flush()
        self._changed(s, p)
        return rule_dict(r)

    def delete_rule(self, s: Session, ctx: Context, pid: str, rid: str) -> None:
        p = self._writable(s, ctx, pid, "delete")
        S.delete(s, self._rule(s, p, rid))
        s.flush()
        self._changed(s, p)

    def _changed(self, s: Session, p: S.QosPolicy) -> None:
        """A rule changed: the policy's revision, and the agents' view of its users."""
        S.touch(p)
        S.record_qos_change(s, p.id)

    # -- rule types -----------------------------------------------------------------------
    def rule_types(self, ctx: Context) -> list[dict]:
        # a list shows what the policy lets the caller get (Neutron's list filtering)
        return [{"type": t} for t in RULE_TYPES if self.policy.check(ctx, "get_rule_type", {})]

    def rule_type(self, ctx: Context, name: str) -> dict:
        self.policy.require(ctx, "get_rule_type", {})
        if not ctx.is_admin:  # Neutron's plugin: a rule type's drivers are an admin's to see
            raise err("NotAuthorized", 403, "Not authorized.")
        if name not in RULE_TYPES:
            raise err("QosRuleTypeNotFound", 404, f"QoS rule_type {name} could not be found.")
        return {"type": name, "drivers": [{"name": "floatip", "supported_parameters": [
            {"parameter_name": "max_kbps", "parameter_type": "range",
             "parameter_values": {"start": 0, "end": 2147483647}},
            {"parameter_name": "max_burst_kbps", "parameter_type": "range",
             "parameter_values": {"start": 0, "end": 2147483647}},
            {"parameter_name": "direction", "parameter_type": "choices",
             "parameter_values": list(DIRECTIONS)}]}]}
