"""Neutron 29's default policy for the resources floatip has, through oslo.policy.

The rules are Neutron's registered defaults ("new defaults", every API rule of project
scope as with Neutron's default ``enforce_scope``), check string for check string:
tests/test_policy_neutron.py compares them with neutron's ``list_rules()`` (the table in
tests/data/neutron_policy_defaults.json); docs/policy.md lists the differences. Names and
meanings are Neutron's, so an operator's Neutron policy file (YAML or JSON) overrides them
the same way (``[oslo_policy] policy_file``). Neutron's ``field:`` check is registered here
(``FieldCheck``), reading floatip's targets.
"""
from __future__ import annotations

import functools
import os
import re
import time
from dataclasses import dataclass
from typing import Callable

from oslo_config import cfg
from oslo_policy import _checks as checks, policy as oslo

from ..core.errors import NeutronError
from .sg_policy import SG_RULES


@dataclass(frozen=True)
class Context:
    """The caller, as the policy engine sees it (oslo.policy's creds)."""
    project_id: str = ""
    user_id: str = ""
    roles: frozenset = frozenset({"admin", "member", "reader"})
    agent: bool = False  # authenticated for /floatip/v1/* by the shared secret
    # the token's scope: "project", "domain", "system" (or "none": unscoped). Every rule is
    # a project-scope rule (Neutron's scope_types): other scopes pass none of them.
    scope: str = "project"
    service_roles: frozenset = frozenset()  # of a service token sent along (Nova's)

    @property
    def is_admin(self) -> bool:
        # Neutron's context.is_admin is also true for a domain/system-scoped admin, but its
        # rules then refuse that token (InvalidScope): nothing is visible either way
        return "admin" in self.roles and self.scope == "project"

    def creds(self) -> dict:
        out = {"user_id": self.user_id, "roles": sorted(self.roles)}
        if self.project_id:  # absent, not "": "" in a target never matches a caller
            out["project_id"] = out["tenant_id"] = self.project_id
        if self.service_roles:
            out["service_roles"] = sorted(self.service_roles)
        return out


ADMIN = Context(project_id="", user_id="floatip",
                roles=frozenset({"admin", "member", "reader", "service"}))

# Neutron 29's rules, verbatim (neutron/conf/policies/*.py; its check strings, so that
# tests/test_policy_neutron.py compares them with neutron's list_rules() one by one).
ADM = "rule:admin_only"
P_MEMBER = "(rule:admin_only) or (role:member and project_id:%(project_id)s)"
P_READER = "(rule:admin_only) or (role:reader and project_id:%(project_id)s)"
P_MANAGER = "(rule:admin_only) or (role:manager and project_id:%(project_id)s)"
ADM_SVC = "(rule:admin_only) or (rule:service_api)"
NET_MEMBER_SVC = f"{ADM_SVC} or role:member and rule:network_owner"
NET_MEMBER_SVC_SHARED = f"{NET_MEMBER_SVC} or rule:shared"
P_OR_NET_MEMBER = ("role:member and project_id:%(project_id)s or (rule:admin_only) or "
                   "(role:member and rule:network_owner)")
P_MEMBER_SVC = f"{P_MEMBER} or rule:service_api"
SVC_P_MEMBER = f"{ADM_SVC} or role:member and project_id:%(project_id)s"
P_MEMBER_ADVSVC = f"{P_MEMBER} or rule:context_is_advsvc"
NET_DEVICE_OWNER = f"not rule:network_device or {NET_MEMBER_SVC}"
OWNER_OR_NET_OWNER = "(role:member and rule:network_owner or role:member and project_id:%(project_id)s)"

# neutron_lib's and Neutron's base rules (no scope: they are parts of the others)
BASE = {
    "context_is_admin": "role:admin",
    "context_is_advsvc": "role:advsvc",
    "context_with_global_access": "!",
    "context_can_set_project_id": "!",
    "service_api": "role:service",
    "admin_only": "rule:context_is_admin",
    "regular_user": "",
    "default": "rule:admin_or_owner",
    "owner": "project_id:%(project_id)s",
    "admin_or_owner": "rule:context_is_admin or rule:owner",
    "network_owner": "project_id:%(network:project_id)s",
    "admin_or_network_owner": "rule:context_is_admin or project_id:%(network:project_id)s",
    "admin_owner_or_network_owner": "rule:owner or rule:admin_or_network_owner",
    "admin_or_data_plane_int": "rule:context_is_admin or role:data_plane_integrator",
    "ext_parent_owner": "project_id:%(ext_parent:project_id)s",
    "admin_or_ext_parent_owner": "rule:context_is_admin or project_id:%(ext_parent:project_id)s",
    "sg_owner": "project_id:%(security_group:project_id)s",
    "admin_or_sg_owner": "rule:context_is_admin or project_id:%(security_group:project_id)s",
    "admin_owner_or_sg_owner": "rule:owner or rule:admin_or_sg_owner",
    "shared": "field:networks:shared=True",
    "external": "field:networks:router:external=True",
    "external_network": "field:subnets:router:external=True",
    "shared_security_group": "field:security_groups:shared=True",
    "shared_address_groups": "field:address_groups:shared=True",
    "shared_address_scopes": "field:address_scopes:shared=True",
    "shared_subnetpools": "field:subnetpools:shared=True",
    "shared_qos_policy": "field:policies:shared=True",
    "network_device": "field:port:device_owner=~^network:",
    "compute_device": "field:port:device_owner=~^compute:",
    "baremetal_device": "field:port:device_owner=~^baremetal:",
    "manila_device": "field:port:device_owner=~^manila:",
    "restrict_wildcard": "(not field:rbac_policy:target_tenant=* and not "
                         "field:rbac_policy:target_project=*) or rule:admin_only",
    "rule_default_sg": "field:security_group_rules:belongs_to_default_sg=True",
}

RULES = {
    **BASE,
    # networks
    "create_network": P_MEMBER,
    "create_network:tags": P_MEMBER,
    "create_network:shared": ADM,
    "create_network:router:external": ADM,
    "create_network:is_default": ADM,
    "create_network:provider:network_type": ADM,
    "create_network:provider:physical_network": ADM,
    "create_network:provider:segmentation_id": ADM,
    "get_network": f"{P_READER} or rule:service_api or rule:shared or rule:external or "
                   "rule:context_is_advsvc",
    "get_network:tags": f"{P_READER} or rule:shared or rule:external or rule:context_is_advsvc",
    "get_network:provider:network_type": ADM,
    "get_network:provider:physical_network": ADM,
    "get_network:provider:segmentation_id": ADM,
    "update_network": P_MEMBER,
    "update_network:tags": P_MEMBER,
    "update_network:shared": ADM,
    "update_network:router:external": ADM,
    "update_network:is_default": ADM,
    "update_network:provider:network_type": ADM,
    "update_network:provider:physical_network": ADM,
    "update_network:provider:segmentation_id": ADM,
    "delete_network": P_MEMBER,
    "delete_network:tags": P_MEMBER,
    # subnets
    "create_subnet": "(rule:admin_only) or (role:member and rule:network_owner)",
    "create_subnet:tags": P_OR_NET_MEMBER,
    "create_subnet:segment_id": ADM,
    "create_subnet:service_types": ADM,
    "get_subnet": "role:reader and project_id:%(project_id)s or rule:shared or "
                  "rule:external_network or (rule:admin_only) or "
                  "(role:reader and rule:network_owner) or rule:service_api",
    "get_subnet:tags": "role:reader and project_id:%(project_id)s or rule:shared or "
                       "rule:external_network or (rule:admin_only) or "
                       "(role:reader and rule:network_owner)",
    "get_subnet:segment_id": ADM,
    "update_subnet": P_OR_NET_MEMBER,
    "update_subnet:tags": P_OR_NET_MEMBER,
    "update_subnet:segment_id": ADM,
    "update_subnet:service_types": ADM,
    "delete_subnet": P_OR_NET_MEMBER,
    "delete_subnet:tags": P_OR_NET_MEMBER,
    # ports (port security and address pairs: sg_policy)
    "create_port": NET_MEMBER_SVC_SHARED,
    "create_port:tags": P_MEMBER_ADVSVC,
    "create_port:device_id": P_MEMBER_SVC,
    "create_port:device_owner": NET_DEVICE_OWNER,
    "create_port:mac_address": NET_MEMBER_SVC,
    "create_port:fixed_ips": NET_MEMBER_SVC_SHARED,
    "create_port:fixed_ips:ip_address": NET_MEMBER_SVC,
    "create_port:fixed_ips:subnet_id": NET_MEMBER_SVC_SHARED,
    "create_port:binding:host_id": ADM_SVC,
    "create_port:binding:profile": "rule:service_api",
    "create_port:binding:vnic_type": P_MEMBER_SVC,
    "get_port": "(rule:admin_only) or (rule:service_api) or role:reader and "
                "rule:network_owner or role:reader and project_id:%(project_id)s",
    "get_port:tags": "rule:context_is_advsvc or (rule:admin_only) or (role:reader and "
                     "rule:network_owner) or role:reader and project_id:%(project_id)s",
    "get_port:binding:vif_type": ADM_SVC,
    "get_port:binding:vif_details": ADM_SVC,
    "get_port:binding:host_id": ADM_SVC,
    "get_port:binding:profile": ADM_SVC,
    "update_port": SVC_P_MEMBER,
    "update_port:tags": P_MEMBER_ADVSVC,
    "update_port:device_id": P_MEMBER_SVC,
    "update_port:device_owner": NET_DEVICE_OWNER,
    "update_port:mac_address": f"{ADM_SVC} or role:manager and rule:network_owner",
    "update_port:fixed_ips": NET_MEMBER_SVC,
    "update_port:fixed_ips:ip_address": NET_MEMBER_SVC,
    "update_port:fixed_ips:subnet_id": NET_MEMBER_SVC_SHARED,
    "update_port:binding:host_id": ADM_SVC,
    "update_port:binding:profile": "rule:service_api",
    "update_port:binding:vnic_type": SVC_P_MEMBER,
    "delete_port": f"{ADM_SVC} or (service_roles:service and {OWNER_OR_NET_OWNER}) or "
                   "(not rule:compute_device and not rule:baremetal_device and not "
                   f"rule:manila_device and {OWNER_OR_NET_OWNER})",
    "delete_port:tags": "rule:context_is_advsvc or role:member and project_id:%(project_id)s "
                        "or (rule:admin_only) or (role:member and rule:network_owner)",
    # routers
    "create_router": P_MEMBER,
    "create_router:tags": P_MEMBER,
    "create_router:external_gateway_info": P_MEMBER,
    "create_router:external_gateway_info:network_id": P_MEMBER,
    "create_router:external_gateway_info:enable_snat": ADM,
    "create_router:external_gateway_info:external_fixed_ips": ADM,
    "create_router:distributed": ADM,
    "create_router:ha": ADM,
    "get_router": P_READER,
    "get_router:tags": P_READER,
    "get_router:distributed": ADM,
    "get_router:ha": ADM,
    "update_router": P_MEMBER,
    "update_router:tags": P_MEMBER,
    "update_router:external_gateway_info": P_MEMBER,
    "update_router:external_gateway_info:network_id": P_MEMBER,
    "update_router:external_gateway_info:enable_snat": ADM,
    "update_router:external_gateway_info:external_fixed_ips": ADM,
    "update_router:distributed": ADM,
    "update_router:ha": ADM,
    "delete_router": P_MEMBER,
    "delete_router:tags": P_MEMBER,
    "add_router_interface": P_MEMBER,
    "remove_router_interface": P_MEMBER,
    # floating IPs
    "create_floatingip": P_MEMBER,
    "create_floatingip:tags": P_MEMBER,
    "create_floatingip:floating_ip_address": P_MANAGER,
    "get_floatingip": P_READER,
    "get_floatingip:tags": P_READER,
    "update_floatingip": P_MEMBER,
    "update_floatingip:tags": P_MEMBER,
    "delete_floatingip": P_MEMBER,
    "delete_floatingip:tags": P_MEMBER,
    # floating IP port forwardings: the floating IP is the parent (ext_parent)
    # QoS policies and their bandwidth limit rules (neutron/conf/policies/qos.py)
    "get_policy": f"{P_READER} or rule:shared_qos_policy",
    "create_policy": P_MANAGER,
    "update_policy": P_MANAGER,
    "delete_policy": P_MANAGER,
    "get_policy:tags": f"{P_READER} or rule:shared_qos_policy",
    **{f"{a}_policy:tags": P_MANAGER for a in ("create", "update", "delete")},
    "get_rule_type": "role:reader",  # a reader lists them; showing one is an admin's (qos.py)
    "get_policy_bandwidth_limit_rule": "(rule:admin_only) or (role:reader and "
                                       "rule:ext_parent_owner)",
    **{f"{a}_policy_bandwidth_limit_rule": "(rule:admin_only) or (role:manager and "
                                           "rule:ext_parent_owner)"
       for a in ("create", "update", "delete")},
    "create_floatingip_port_forwarding": "(rule:admin_only) or (role:member and "
                                         "rule:ext_parent_owner)",
    "get_floatingip_port_forwarding": "(rule:admin_only) or (role:reader and "
                                      "rule:ext_parent_owner)",
    "update_floatingip_port_forwarding": "(rule:admin_only) or (role:member and "
                                         "rule:ext_parent_owner)",
    "delete_floatingip_port_forwarding": "(rule:admin_only) or (role:member and "
                                         "rule:ext_parent_owner)",
    # network RBAC policies (neutron/conf/policies/rbac.py): '*' is an admin's
    "create_rbac_policy": P_MEMBER,
    "get_rbac_policy": P_READER,
    "update_rbac_policy": P_MEMBER,
    "delete_rbac_policy": P_MEMBER,
    **{f"{a}_rbac_policy:target_tenant": "rule:admin_only or (not field:rbac_policy:"
       "target_tenant=* and not field:rbac_policy:target_project=*)" for a in ("create", "update")},
    **{f"{a}_rbac_policy:target_project": "rule:admin_only or not field:rbac_policy:"
       "target_project=*" for a in ("create", "update")},
    # subnet pools and address scopes (neutron/conf/policies/subnetpool.py, address_scope.py)
    "create_subnetpool": P_MEMBER,
    "create_subnetpool:shared": ADM,
    "create_subnetpool:is_default": ADM,
    "create_subnetpool:tags": P_MEMBER,
    "get_subnetpool": f"{P_READER} or rule:shared_subnetpools",
    "get_subnetpool:tags": f"{P_READER} or rule:shared_subnetpools",
    "update_subnetpool": P_MEMBER,
    "update_subnetpool:is_default": ADM,
    "update_subnetpool:tags": P_MEMBER,
    "delete_subnetpool": P_MEMBER,
    "delete_subnetpool:tags": P_MEMBER,
    "add_prefixes": P_MEMBER,
    "remove_prefixes": P_MEMBER,
    "create_address_scope": P_MEMBER,
    "create_address_scope:shared": ADM,
    "get_address_scope": "rule:admin_only or role:reader and project_id:%(project_id)s or "
                         "rule:shared_address_scopes",
    "update_address_scope": P_MEMBER,
    "update_address_scope:shared": ADM,
    "delete_address_scope": P_MEMBER,
    # agents (GET /v2.0/agents: others get an empty list, as from Neutron); quotas
    "get_agent": ADM,
    "get_network_ip_availability": ADM_SVC,   # network_ip_availability.py
    # trunks (trunk.py): the trunk's project; tags as the trunk
    **{f"{a}_trunk": P_READER if a == "get" else P_MEMBER
       for a in ("create", "get", "update", "delete")},
    **{f"{a}_trunk:tags": P_READER if a == "get" else P_MEMBER
       for a in ("create", "get", "update", "delete")},
    **{f"{a}_trunks_tags": P_READER if a == "get" else P_MEMBER
       for a in ("create", "get", "update", "delete")},
    "get_subports": P_READER,
    "add_subports": P_MEMBER,
    "remove_subports": P_MEMBER,
    "create_agent": ADM,
    "update_agent": ADM,
    "delete_agent": ADM,
    # quotas: checked with the caller's own project as the target (Neutron's validate_policy)
    "get_quota": P_MANAGER,
    "update_quota": ADM,
    "delete_quota": ADM,
    # floatip's own attributes (no Neutron rule): the port's metadata is its project's only
    # (the owner of a shared network sees and changes the port, never what its VM boots
    # with); the status reason is read as its object
    **{f"{a}_port:floatip:{x}": (P_READER if a == "get" else P_MEMBER)
       for a in ("create", "get", "update") for x in ("user_data", "public_keys")},
    "get_router:status_reason": P_READER,
    "get_floatingip:status_reason": P_READER,
    # security groups, address groups, port security (issue 22)
    **SG_RULES,
}


@checks.register("field")
class FieldCheck(checks.Check):
    """Neutron's ``field:<collection>:<attr>=<value>`` check (neutron/policy.py): the
    target's attribute equals the value (``=~regex``: matches it); ``networks:shared`` of
    a port is its network's (``network:shared`` in floatip's targets)."""

    def __init__(self, kind: str, match: str):
        resource, field_value = match.split(":", 1)
        field, value = field_value.split("=", 1)
        super().__init__(kind, f"{resource}:{field}:{value}")
        self.resource, self.field = resource, field
        self.regex = re.compile(value[1:]) if value.startswith("~") else None
        self.value = {"True": True, "False": False}.get(value, value)  # the booleans' convert_to

    def keys(self) -> set[str]:
        if self.resource == "networks" and self.field == "shared":
            return {self.field, "network:shared"}
        return {self.field}

    def __call__(self, target, creds, enforcer, current_rule=None) -> bool:
        value = target.get(self.field)
        if value is None and self.resource == "networks" and self.field == "shared":
            value = target.get("network:shared")
        if value is None:
            return False
        if self.regex is not None:
            return bool(self.regex.match(str(value)))
        return value == self.value


class Policy:
    """oslo.policy's Enforcer with Neutron's defaults; ``policy_file`` (YAML/JSON, Neutron's
    rule names) overrides rules, as ``[oslo_policy] policy_file`` does for Neutron.

    oslo.policy costs ~0.2 ms a call (``enforce`` looks for the policy file on every call),
    and a request checks several rules: answers are kept per caller, rule and the values of
    the target attributes the rule reads (rows of one project share one answer). Rules with
    checks of other kinds are not kept. The policy file is looked at again (oslo.policy's
    reload when it changed) at most every ``RELOAD_S`` seconds; a change drops the answers."""

    RELOAD_S = 1.0
    MEMO_MAX = 50_000

    def __init__(self, policy_file: str | None = None):
        if policy_file and not os.path.isfile(policy_file):
            raise NeutronError(f"policy file {policy_file} not found")
        conf = cfg.ConfigOpts()
        conf([], project="floatip", default_config_files=[], default_config_dirs=[])
        self.enforcer = oslo.Enforcer(conf, policy_file=policy_file or "floatip-policy.yaml")
        self.enforcer.register_defaults([
            oslo.RuleDefault(k, v, scope_types=None if k in BASE else ["project"])
            for k, v in RULES.items()])
        # (rules, their target keys, answers): replaced as one, threads read it once a call
        self._state: tuple[dict, dict, dict] = ({}, {}, {})
        self._reload()

    def _reload(self) -> None:
        """oslo.policy's load_rules (reads the file again if it changed); the answers kept
        so far go when any rule changed."""
        self._next_reload = time.monotonic() + self.RELOAD_S
        self.enforcer.load_rules()
        rules, old = dict(self.enforcer.rules), self._state[0]
        if rules.keys() != old.keys() or any(v is not old[k] for k, v in rules.items()):
            self._state = (rules, {}, {})

    def check(self, ctx: Context, action: str, target: dict) -> bool:
        if time.monotonic() >= self._next_reload:
            self._reload()
        rules, known, memo = self._state
        if ctx.scope != "project" and action not in BASE:
            return False  # Neutron's enforce_scope: InvalidScope, a refusal
        if action not in rules and action not in RULES:
            return True  # Neutron: an attribute without a rule is unrestricted
        if action in known:
            keys = known[action]
        else:
            keys = known[action] = self._target_keys(action, rules)
        if keys is None:
            return self.enforcer.enforce(action, target, ctx.creds())
        k = (action, ctx, tuple(str(target[x]) if x in target else None for x in keys))
        hit = memo.get(k)
        if hit is None:
            if len(memo) >= self.MEMO_MAX:
                memo.clear()
            hit = memo[k] = bool(self.enforcer.enforce(action, target, ctx.creds()))
        return hit

    def checker(self, ctx: Context, action: str) -> Callable[[dict], bool]:
        """``check`` of one caller and rule, for many targets (a list)."""
        return functools.partial(self.check, ctx, action)

    def attributes(self, action: str) -> tuple[str, ...]:
        """The attributes with a rule of their own: ``<action>:<attr>``."""
        rules, known, _ = self._state
        key = ("attributes", action)
        if key not in known:
            pre = f"{action}:"
            known[key] = tuple(k[len(pre):] for k in rules if k.startswith(pre))
        return known[key]

    def reads(self, *names: str) -> frozenset | None:
        """The target attributes read by the rules ``names`` and by their attribute rules
        (``name:attr``); None when one of them has a check whose inputs are unknown here."""
        rules, known, _ = self._state
        if names in known:
            return known[names]
        out: set[str] | None = set()
        for action in rules:
            if action.split(":", 1)[0] in names:
                keys = self._target_keys(action, rules)
                if keys is None:
                    out = None
                    break
                out.update(keys)
        known[names] = None if out is None else frozenset(out)
        return known[names]

    @staticmethod
    def _target_keys(action: str, rules: dict) -> tuple[str, ...] | None:
        """The target attributes rule ``action`` reads (through the rules it refers to);
        None when it has a check whose inputs are unknown here."""
        keys: set[str] = set()
        seen: set[str] = set()
        todo = [rules.get(action)] if action in rules else []
        while todo:
            c = todo.pop()
            if isinstance(c, (checks.AndCheck, checks.OrCheck)):
                todo += c.rules
            elif isinstance(c, checks.NotCheck):
                todo.append(c.rule)
            elif isinstance(c, checks.RuleCheck):
                if c.match not in seen and c.match in rules:
                    seen.add(c.match)
                    todo.append(rules[c.match])
            elif isinstance(c, FieldCheck):
                keys |= c.keys()
            elif isinstance(c, (checks.GenericCheck, checks.RoleCheck)):
                # kind:match, match formatted by the target
                keys |= set(re.findall(r"%\(([^)]*)\)s", c.match))
            elif not isinstance(c, (checks.TrueCheck, checks.FalseCheck)):
                return None
        return tuple(sorted(keys))

    def require(self, ctx: Context, action: str, target: dict) -> None:
        if not self.check(ctx, action, target):
            raise NeutronError(f"({action}) is disallowed by policy", "PolicyNotAuthorized",
                               403)

    def settled(self, ctx: Context, action: str) -> bool | None:
        """The answer of rule ``action`` for ``ctx`` whatever the target holds (an admin's:
        ``role:admin`` alone answers), or None when it depends on the target. Lets a caller
        skip reading what a target would need (a port's network) when no rule reads it."""
        if time.monotonic() >= self._next_reload:
            self._reload()
        rules, known, _ = self._state
        if ctx.scope != "project" and action not in BASE:
            return False
        if action not in rules:
            return True if action not in RULES else None
        key = ("settled", action, ctx)
        if key not in known:
            known[key] = self._settled(rules[action], rules, ctx.creds(), set())
        return known[key]

    def _settled(self, c, rules: dict, creds: dict, seen: set) -> bool | None:
        """Three-valued evaluation of check ``c``: True, False, or None (reads the target)."""
        if isinstance(c, checks.TrueCheck):
            return True
        if isinstance(c, checks.FalseCheck):
            return False
        if isinstance(c, (checks.AndCheck, checks.OrCheck)):
            stop = isinstance(c, checks.OrCheck)  # the value that decides: True for "or"
            vals = [self._settled(x, rules, creds, seen) for x in c.rules]
            return stop if stop in vals else None if None in vals else not stop
        if isinstance(c, checks.NotCheck):
            v = self._settled(c.rule, rules, creds, seen)
            return None if v is None else not v
        if isinstance(c, checks.RuleCheck):
            if c.match in seen:  # a cycle: leave it to oslo.policy
                return None
            if c.match not in rules:
                return False  # oslo.policy: a missing rule is a refusal
            return self._settled(rules[c.match], rules, creds, seen | {c.match})
        if isinstance(c, (checks.GenericCheck, checks.RoleCheck)) and \
                not isinstance(c, FieldCheck) and "%(" not in c.match:
            return bool(c({}, creds, self.enforcer))  # the caller's credentials only
        return None

    def require_with(self, ctx: Context, action: str, target: Callable[[], dict]) -> None:
        """``require``, the target made (``target()``) only when the answer needs it."""
        ok = self.settled(ctx, action)
        if not (self.check(ctx, action, target()) if ok is None else ok):
            raise NeutronError(f"({action}) is disallowed by policy", "PolicyNotAuthorized",
                               403)
