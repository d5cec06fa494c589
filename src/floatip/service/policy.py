"""Neutron's default policy for the resources floatip has, through oslo.policy.

The rules are Neutron's "new defaults" (neutron/conf/policies/*.py, project scope): admin,
project member, project reader; the ``service`` role where Neutron grants it. Names and
meanings are Neutron's, so an operator's Neutron policy file (YAML or JSON) overrides them
the same way (``[oslo_policy] policy_file``). Neutron's ``field:networks:shared=True`` check
is written ``True:%(shared)s`` here (oslo.policy's generic check), with the same effect.

Left out, because floatip has no such resource or attribute: segments, QoS, RBAC
(``access_as_shared``), address scopes, port forwardings, DVR/HA internals, ``manager`` role
only where Neutron uses it (``create_floatingip:floating_ip_address``).
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
from .tag_policy import TAG_RULES


@dataclass(frozen=True)
class Context:
    """The caller, as the policy engine sees it (oslo.policy's creds)."""
    project_id: str = ""
    user_id: str = ""
    roles: frozenset = frozenset({"admin", "member", "reader"})
    agent: bool = False  # authenticated for /floatip/v1/* by the shared secret

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def creds(self) -> dict:
        return {"project_id": self.project_id, "tenant_id": self.project_id,
                "user_id": self.user_id, "roles": sorted(self.roles)}


ADMIN = Context(project_id="", user_id="floatip",
                roles=frozenset({"admin", "member", "reader", "service"}))

ADM = "rule:context_is_admin"
MEMBER = "(role:member and rule:owner)"
READER = "(role:reader and rule:owner)"
A_MEMBER = f"{ADM} or {MEMBER}"
A_READER = f"{ADM} or {READER}"
SERVICE = "role:service"
NET_MEMBER = "(role:member and rule:network_owner)"
NET_READER = "(role:reader and rule:network_owner)"

BASE = {
    "context_is_admin": "role:admin",
    "admin_only": "rule:context_is_admin",
    "service_api": "role:service",
    "owner": "project_id:%(project_id)s",
    "admin_or_owner": "rule:context_is_admin or rule:owner",
    "network_owner": "project_id:%(network:project_id)s",
    "admin_or_network_owner": "rule:context_is_admin or rule:network_owner",
    "shared": "True:%(shared)s",
    "external": "True:%(router:external)s",
    "shared_network": "True:%(network:shared)s",
    "external_network": "True:%(network:router:external)s",
    "default": "rule:admin_or_owner",
}

RULES = {
    **BASE,
    # networks
    "create_network": A_MEMBER,
    "create_network:shared": ADM,
    "create_network:router:external": ADM,
    "create_network:is_default": ADM,
    "create_network:provider:network_type": ADM,
    "create_network:provider:physical_network": ADM,
    "create_network:provider:segmentation_id": ADM,
    "get_network": f"{A_READER} or {SERVICE} or rule:shared or rule:external",
    "get_network:provider:network_type": ADM,
    "get_network:provider:physical_network": ADM,
    "get_network:provider:segmentation_id": ADM,
    "update_network": A_MEMBER,
    "update_network:shared": ADM,
    "update_network:router:external": ADM,
    "update_network:is_default": ADM,
    "update_network:provider:network_type": ADM,
    "update_network:provider:physical_network": ADM,
    "update_network:provider:segmentation_id": ADM,
    "delete_network": A_MEMBER,
    # subnets
    "create_subnet": f"{ADM} or {NET_MEMBER}",
    "create_subnet:segment_id": ADM,
    "create_subnet:service_types": ADM,
    "get_subnet": f"{READER} or rule:shared_network or rule:external_network or {ADM} or "
                  f"{NET_READER} or {SERVICE}",
    "update_subnet": f"{MEMBER} or {ADM} or {NET_MEMBER}",
    "delete_subnet": f"{MEMBER} or {ADM} or {NET_MEMBER}",
    # ports
    "create_port": f"{ADM} or {SERVICE} or {NET_MEMBER} or rule:shared_network",
    "create_port:device_owner": f"{ADM} or {SERVICE} or {NET_MEMBER}",
    "create_port:mac_address": f"{ADM} or {SERVICE} or {NET_MEMBER}",
    "create_port:fixed_ips:ip_address": f"{ADM} or {SERVICE} or {NET_MEMBER}",
    "create_port:binding:host_id": f"{ADM} or {SERVICE}",
    "create_port:binding:profile": f"{ADM} or {SERVICE}",
    "get_port": f"{A_READER} or {SERVICE} or {NET_READER}",
    "get_port:binding:vif_type": f"{ADM} or {SERVICE}",
    "get_port:binding:vif_details": f"{ADM} or {SERVICE}",
    "get_port:binding:host_id": f"{ADM} or {SERVICE}",
    "get_port:binding:profile": f"{ADM} or {SERVICE}",
    "update_port": f"{A_MEMBER} or {SERVICE} or {NET_MEMBER}",
    "update_port:device_owner": f"{ADM} or {SERVICE} or {NET_MEMBER}",
    "update_port:mac_address": f"{ADM} or {SERVICE}",
    "update_port:fixed_ips:ip_address": f"{ADM} or {SERVICE} or {NET_MEMBER}",
    "update_port:binding:host_id": f"{ADM} or {SERVICE}",
    "update_port:binding:profile": f"{ADM} or {SERVICE}",
    "delete_port": f"{A_MEMBER} or {SERVICE} or {NET_MEMBER}",
    # routers
    "create_router": A_MEMBER,
    "create_router:external_gateway_info:enable_snat": ADM,
    "create_router:external_gateway_info:external_fixed_ips": ADM,
    "create_router:distributed": ADM,
    "create_router:ha": ADM,
    "get_router": A_READER,
    "get_router:distributed": ADM,
    "get_router:ha": ADM,
    "update_router": A_MEMBER,
    "update_router:external_gateway_info:enable_snat": ADM,
    "update_router:external_gateway_info:external_fixed_ips": ADM,
    "update_router:distributed": ADM,
    "update_router:ha": ADM,
    "delete_router": A_MEMBER,
    "add_router_interface": A_MEMBER,
    "remove_router_interface": A_MEMBER,
    # floating IPs
    "create_floatingip": A_MEMBER,
    "create_floatingip:floating_ip_address": f"{ADM} or (role:manager and rule:owner)",
    "get_floatingip": A_READER,
    "update_floatingip": A_MEMBER,
    "delete_floatingip": A_MEMBER,
    # agents (GET /v2.0/agents): admins; others get an empty list, as from Neutron
    "get_agent": ADM,
    "update_agent": ADM,
    "delete_agent": ADM,
    # security groups, address groups, port security (issue 22)
    **SG_RULES,
    **TAG_RULES,  # standard-attr-tag (issue 24)
    # quotas: checked with the caller's own project as the target (Neutron's validate_policy)
    "get_quota": f"{ADM} or (role:manager and rule:owner)",
    "update_quota": ADM,
    "delete_quota": ADM,
}


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
        self.enforcer.register_defaults([oslo.RuleDefault(k, v) for k, v in RULES.items()])
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
