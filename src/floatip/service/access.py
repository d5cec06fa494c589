"""Every API operation as a caller (``policy.Context``) may do it, Neutron's way.

In front of the service functions: a resource the caller may not see is 404 (as if it did not
exist); one it sees but may not change is 403; attributes the caller may not set are 403 on
create/update and hidden on read. The project of a new resource is the caller's (the body may
name another project only if policy allows, i.e. for admins). Lists of routers and floating
IPs are narrowed to the caller's project in SQL; every row is checked before it leaves.
"""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from .. import store as S
from ..core.errors import NeutronError
from . import listing, ports, rbac, resources as svc, routers, sg_access as sgrefs, tags
from .common import bad, body_project as _body_project, err, not_found
from .qos import Qos
from .policy import Context, Policy
from .quotas import Quotas
from .subnetpools import SubnetPools
from .views import FACTS, SERIALIZERS, facts

# Values that count as "not explicitly set" on create (Neutron checks only set attributes).
DEFAULTS = {
    "network": {"shared": False, "router:external": False, "is_default": False,
                "port_security_enabled": True},
    "router": {"distributed": False, "ha": False},
    "port": {"binding:profile": {}, "binding:host_id": "", "binding:vnic_type": "normal",
             "device_id": "", "device_owner": ""},
    "subnet": {}, "floatingip": {},
    "security_group": {}, "security_group_rule": {}, "address_group": {},
}
for _d in DEFAULTS.values():
    _d["tags"] = []
SG_PROJECT = "security_group:project_id"  # what ``target`` adds to a rule: its group's project
# What ``target`` adds to a subnet or port: the facts of its network.
NET_FACTS = ("network:project_id", "network:tenant_id", "network:shared",
             "network:router:external")
# The target attributes available without the whole view (``views.FACTS`` plus NET_FACTS).
# A network's ``network:shared`` is read by the networks:shared field check only when its
# ``shared`` is missing; a network's view has no ``network:shared`` either.
FACT_KEYS = {kind: frozenset(cols) | (frozenset(NET_FACTS) if kind in ("subnet", "port")
                                      else frozenset())
             | ({SG_PROJECT} if kind == "security_group_rule" else frozenset())
             | ({"network:shared"} if kind == "network" else frozenset())
             for kind, cols in FACTS.items()}
OWNED_LISTS = ("router", "floatingip")  # visible only to their project: narrowed in SQL
PAGING = ("limit", "marker", "fields", "page_reverse", "sort_key", "sort_dir")
MARKER_404 = ("network", "port", "router")  # marker read by _get_<kind>, not by an object


def _unscoped_create(ctx: Context, kind: str, project: str | None) -> None:
    """A create with a domain- or system-scoped token, as Neutron answers it: its body
    checks first (400), then its project-scope rule (InvalidScope, 403)."""
    if project and "admin" not in ctx.roles:
        raise err("HTTPBadRequest", 400, "Specifying 'project_id' other than the authenticated "
                  "project in request is not allowed for the current user.")
    if not project:
        raise err("HTTPBadRequest", 400, "Running without keystone AuthN requires that "
                  "project_id is specified")
    raise err("InvalidScope", 403, f"create_{kind} requires a scope of ['project'], request "
              f"was made with {ctx.scope} scope.")


class Access:
    def __init__(self, policy: Policy, quotas: Quotas | None = None):
        self.policy = policy
        self.quotas = quotas or Quotas(policy)

    # -- targets and visibility ---------------------------------------------------------
    def _net_facts(self, s: Session, nid: str | None) -> dict:
        net = S.get(s, S.Network, nid) if isinstance(nid, str) else None
        if net is None:
            return {}
        return dict(zip(NET_FACTS, (net.project_id, net.project_id, net.shared, net.external)))

    def target(self, s: Session, kind: str, d: dict, ctx: Context | None = None,
               grants: rbac.Grants | None = None) -> dict:
        """``ctx``: the network's ``shared``/``router:external`` as the caller's RBAC
        entries make them (``grants``: read once for a list)."""
        t = dict(d)
        if kind in ("subnet", "port"):
            t.update(self._net_facts(s, d.get("network_id")))
        if ctx is not None and not ctx.is_admin and kind in rbac.KINDS:
            (grants or rbac.Grants(s, ctx.project_id)).narrow(kind, t)
        if kind == "subnet":  # a Neutron subnet has its network's shared and router:external
            for attr in ("shared", "router:external"):
                t.setdefault(attr, t.get(f"network:{attr}"))
        if kind == "security_group_rule":
            sg = S.get(s, S.SecurityGroup, d["security_group_id"]) \
                if isinstance(d.get("security_group_id"), str) else None
            t[SG_PROJECT] = sg.project_id if sg is not None else None
        return t

    def visible(self, s: Session, ctx: Context, kind: str, d: dict) -> bool:
        # an admin's answer needs no target (for a port: no read of its network)
        ok = self.policy.settled(ctx, f"get_{kind}")
        return self.policy.check(ctx, f"get_{kind}", self.target(s, kind, d, ctx)) \
            if ok is None else ok

    def _strippers(self, ctx: Context, kind: str) -> list:
        return [(a, self.policy.checker(ctx, f"get_{kind}:{a}"))
                for a in self.policy.attributes(f"get_{kind}")]

    def _strip(self, s: Session, ctx: Context, kind: str, d: dict, strippers=None,
               target: dict | None = None) -> dict:
        """``d`` without the attributes the caller may not read (``get_<kind>:<attr>``)."""
        strippers = self._strippers(ctx, kind) if strippers is None else strippers
        if any(attr in d for attr, _ in strippers):
            t = self.target(s, kind, d) if target is None else target
            for attr, allowed in strippers:
                if attr in d and not allowed(t):
                    del d[attr]
        return d

    def _seen(self, s: Session, ctx: Context, kind: str, rid: str,
              then: tuple[str, ...] | None = None, lock: bool = False) -> dict:
        """The resource as the caller may see it, or 404. ``then``: the rules (with their
        attribute rules) that are checked on the answer next; when they and ``get_<kind>``
        read only columns (``FACT_KEYS``), the answer is those columns, not the whole view
        (which looks up other rows). None: the whole view. ``lock``: the row is read locked
        (an update or delete: the service's locked read of it is then no query)."""
        reads = None if then is None else self.policy.reads(f"get_{kind}", *then)
        cheap = reads is not None and reads <= FACT_KEYS[kind]
        row = S.get(s, S.MODELS[kind], rid, lock=lock, related=not cheap)
        if row is None:
            raise not_found(kind, rid)
        d = facts(kind, row) if cheap else SERIALIZERS[kind](s, row)
        if not self.visible(s, ctx, kind, d):
            raise not_found(kind, rid)
        return d

    def _must_see(self, s: Session, ctx: Context, kind: str, rid: Any,
                  then: tuple[str, ...] = ()) -> dict | None:
        """A referenced resource the caller must see (``_seen``; its project is read from
        the answer); None for a malformed id (the service then answers 400 with Neutron's
        message)."""
        try:
            rid = str(uuid.UUID(str(rid)))
        except ValueError:
            return None
        return self._seen(s, ctx, kind, rid, then)

    # -- read ---------------------------------------------------------------------------
    def _marker(self, s: Session, ctx: Context, kind: str,
                query: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Neutron's get_marker_obj: a marker counts only with a limit, and is read in the
        caller's scope: one of a network, port or router the caller cannot see is 404 (no
        ordering oracle over other projects' rows); the object lists (subnets, floating IPs,
        groups) then page as if there were no marker."""
        marker = next((v for k, v in query if k == "marker"), None)
        limit = next((v for k, v in query if k == "limit"), "")
        keep = bool(marker) and limit.strip().lstrip("+").isdigit() and int(limit) > 0
        if keep:
            try:
                self._seen(s, ctx, kind, marker, ())
            except NeutronError as e:
                if e.code != 404 or kind in MARKER_404:
                    raise
                keep = False
        return query if keep else [(k, v) for k, v in query if k != "marker"]

    def list(self, s: Session, ctx: Context, kind: str, query: list[tuple[str, str]]) -> list:
        params: dict[str, list[str]] = {}
        for k, v in query:
            params.setdefault(k, []).append(v)
        listing.validate(kind, params)  # before the marker, as Neutron's query hook
        if ctx.scope != "project":
            return []  # Neutron: every row fails its project-scope get_<kind>
        query = self._marker(s, ctx, kind, query)
        params.pop("marker", None)
        params.update({k: [v] for k, v in query if k == "marker"})
        # Where visibility is all in SQL (an admin sees every row; routers and floating IPs
        # are narrowed to the caller's project), limit/marker/sort stay in SQL too; else rows
        # are checked one by one, then sorted and paged.
        in_sql = ctx.is_admin or kind in OWNED_LISTS
        inner = [(k, v) for k, v in query if k != "fields" and (in_sql or k not in PAGING)]
        if (kind in OWNED_LISTS and not ctx.is_admin
                and not any(k in ("project_id", "tenant_id") for k, _ in inner)):
            inner.append(("project_id", ctx.project_id))
        visible = self.policy.checker(ctx, f"get_{kind}")
        strippers = self._strippers(ctx, kind)
        grants = rbac.Grants(s, ctx.project_id) if kind in rbac.KINDS else None
        # ``shared`` of a network is the caller's (its RBAC entries): filtered after them
        shared = rbac.shared_filter(inner) if kind == "network" and not ctx.is_admin else None
        if shared is not None:
            inner = [(k, v) for k, v in inner if k != "shared"]
        out = []
        for d in listing.list_resources(s, kind, inner):
            t = self.target(s, kind, d, ctx, grants)
            if visible(t) and (shared is None or t["shared"] in shared):
                if kind == "network":  # Neutron: shared with the caller's project
                    d["shared"] = t["shared"]
                out.append(self._strip(s, ctx, kind, d, strippers, t))
        if not in_sql:
            out = listing.sort_page(s, kind, out, params)
        fields = params.get("fields")
        if fields and listing.limit_of(params):  # the id names the next page's marker
            fields = [*fields, "id"]
        return [listing.select_fields(d, fields) for d in out]

    def show(self, s: Session, ctx: Context, kind: str, rid: str,
             fields: list[str] | None = None) -> dict:
        d = tags.fill(s, kind, [self._seen(s, ctx, kind, rid)])[0]
        if kind == "network":  # Neutron: shared with the caller's project
            d["shared"] = self.target(s, kind, d, ctx)["shared"]
        return listing.select_fields(self._strip(s, ctx, kind, d), fields)

    # -- write --------------------------------------------------------------------------
    def _attrs(self, ctx: Context, action: str, kind: str, d: dict, target: dict,
               create: bool) -> None:
        """``<action>_<kind>:<attr>`` for every attribute the body sets, and as Neutron's
        ``_build_match_rule``: ``...:<attr>:<key>`` for the keys of the gateway's dict and of
        the dicts in a list (``fixed_ips``, ``allowed_address_pairs``). Without a rule: free."""
        for attr, value in d.items():
            if create and attr in DEFAULTS[kind] and value == DEFAULTS[kind][attr]:
                continue
            rule = f"{action}_{kind}:{attr}"
            self.policy.require(ctx, rule, target)
            subs: Any = ()
            if attr == "external_gateway_info" and isinstance(value, dict):
                subs = value
            elif isinstance(value, list):
                subs = dict.fromkeys(k for v in value if isinstance(v, dict) for k in v)
            for sub in subs:
                self.policy.require(ctx, f"{rule}:{sub}", target)

    def _references(self, s: Session, ctx: Context, kind: str, d: dict, project: str) -> None:
        """Resources the body points at must be visible to the caller (404 otherwise); a
        floating IP is associated only with a port of its own project."""
        if kind in ("subnet", "port") and "network_id" in d:
            self._must_see(s, ctx, "network", d["network_id"])
        if kind == "router" and isinstance(d.get("external_gateway_info"), dict):
            nid = d["external_gateway_info"].get("network_id")
            if nid:
                self._must_see(s, ctx, "network", nid)
        if kind == "security_group_rule":
            sgrefs.rule_references(self, s, ctx, d, project)
        gw = d.get("external_gateway_info") if kind == "router" else None
        if kind == "floatingip" or isinstance(gw, dict):  # a policy the caller may not get: 404
            Qos(self.policy).must_see(s, ctx, (gw or d).get("qos_policy_id"))
        if kind == "port" and d.get("security_groups"):
            sgrefs.port_groups(self, s, ctx, d["security_groups"], project)
        # a subnet the caller cannot see answers as one that does not exist
        subnets = [f.get("subnet_id") for f in d.get("fixed_ips") or []
                   if isinstance(f, dict)] if kind == "port" else [d.get("subnet_id")]
        for sid in subnets if kind in ("port", "floatingip") else ():
            if sid:
                self._must_see(s, ctx, "subnet", sid)
        if kind == "floatingip":
            if d.get("floating_network_id"):
                self._must_see(s, ctx, "network", d["floating_network_id"])
            if d.get("port_id"):
                port = self._must_see(s, ctx, "port", d["port_id"])
                if port and not ctx.is_admin and port["project_id"] != project:
                    raise bad(f"Bad floatingip request: Cannot process floating IP association "
                              f"with Port {port['id']}, since that port is owned by a "
                              "different project.")  # Neutron's _internal_fip_assoc_data

    def create(self, s: Session, ctx: Context, kind: str, attrs: dict) -> dict:
        """``attrs``: the validated attributes the request set (``schemas``' ``attrs()``)."""
        d = dict(attrs)
        pid, tid = d.get("project_id"), d.get("tenant_id")
        if pid and tid and pid != tid:
            raise NeutronError("'project_id' and 'tenant_id' do not match", "HTTPBadRequest",
                               400)
        if ctx.scope != "project":
            _unscoped_create(ctx, kind, pid or tid)
        project = pid or tid or ctx.project_id
        _body_project(ctx, d)
        if kind == "port" and not ctx.is_admin:
            ports.check_device_id(s, d.get("device_owner"), d.get("device_id"), project)
        d.pop("tenant_id", None)
        d["project_id"] = project
        self._references(s, ctx, kind, d, project)
        target = self.target(s, kind, {**DEFAULTS[kind], **d, "tenant_id": project}, ctx)
        self.policy.require(ctx, f"create_{kind}", target)
        self._attrs(ctx, "create", kind, {k: v for k, v in d.items() if k != "project_id"},
                    target, create=True)
        self.quotas.check(s, kind, project)  # after policy, before the create: Neutron's order
        if kind == "router" and d.get("routes"):
            self.quotas.limit_check(s, project, "router_route", len(d["routes"]))
        if kind == "subnet":  # a pool's CIDR (subnet_allocation)
            SubnetPools(self.policy).place(s, ctx, d, d["network_id"])
        made = svc.CREATE[kind](s, {k: v for k, v in d.items() if k != "tags"})
        if kind == "network":
            rbac.wildcards(s, made)
        if d.get("tags") and kind in tags.KINDS:
            tags.create_with(s, kind, made["id"], d["tags"])
            made["tags"] = sorted(d["tags"])
        return self._strip(s, ctx, kind, made)

    def update(self, s: Session, ctx: Context, kind: str, rid: str, d: dict) -> dict:
        current = self._seen(s, ctx, kind, rid, then=(f"update_{kind}",), lock=True)
        target = self.target(s, kind, {**current, **d}, ctx)  # the row as it would be
        self.policy.require(ctx, f"update_{kind}", target)
        _body_project(ctx, d)
        self._attrs(ctx, "update", kind, d, target, create=False)
        if kind == "port" and not ctx.is_admin:  # Neutron's _validate_port_for_update
            owner = d.get("device_owner") or current["device_owner"]
            if (owner and d.get("device_id") != current["device_id"]) or "device_owner" in d:
                ports.check_device_id(s, owner, d.get("device_id") or current["device_id"],
                                      current["project_id"])
        self._references(s, ctx, kind, d, current["project_id"])
        if kind == "router" and d.get("routes"):
            self.quotas.limit_check(s, current["project_id"], "router_route", len(d["routes"]))
        made = svc.UPDATE[kind](s, rid, d)
        if kind == "network":
            rbac.wildcards(s, made)
        return self._strip(s, ctx, kind, tags.fill(s, kind, [made])[0])

    def delete(self, s: Session, ctx: Context, kind: str, rid: str) -> None:
        current = self._seen(s, ctx, kind, rid, then=(f"delete_{kind}",), lock=True)
        self.policy.require_with(ctx, f"delete_{kind}",
                                 lambda: self.target(s, kind, current, ctx))
        if kind == "network":
            rbac.forget(s, rid)
        if kind == "security_group":  # its project may not delete its default group
            svc.DELETE[kind](s, rid, admin=ctx.is_admin)
        else:
            svc.DELETE[kind](s, rid)
        tags.forget(s, kind, rid)

    def router_interface(self, s: Session, ctx: Context, action: str, rid: str,
                         body: Any) -> dict:
        r = self._seen(s, ctx, "router", rid)
        self.policy.require(ctx, f"{action}_router_interface", r)
        if not isinstance(body, dict) or ctx.is_admin:
            pass
        elif body.get("subnet_id") and not body.get("port_id"):
            # a subnet the caller cannot see is one that does not exist (the same 404)
            self._must_see(s, ctx, "subnet", body["subnet_id"], ())
        elif body.get("port_id") and action == "add":
            self._must_see(s, ctx, "port", body["port_id"], ())
        # removal by port: RouterInterfaceNotFound unless it is this router's interface
        if action == "remove":
            return routers.remove_router_interface(s, rid, body)
        return routers.add_router_interface(s, rid, body,
                                            None if ctx.is_admin else ctx.project_id)
