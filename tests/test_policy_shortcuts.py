"""The shortcuts of the API's access checks give the answers of the long way: a write's
policy target taken from the row's columns (``views.FACTS``) equals that part of the whole
view; the policy's kept answers equal oslo.policy's own; an edit of the operator's policy
file is seen (the kept answers go)."""
from __future__ import annotations

import itertools

from floatip import store as S
from floatip.service.access import Access
from floatip.service.policy import ADMIN, Context, Policy
from floatip.service.views import FACTS, SERIALIZERS, facts
from floatip.store.database import Database


def test_facts_are_the_views_columns(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/f.db")
    access = Access(Policy())
    with db.tx() as s:
        ext = access.create(s, ADMIN, "network", {"name": "e", "router:external": True,
                                                  "shared": True})
        access.create(s, ADMIN, "subnet", {"network_id": ext["id"], "cidr": "203.0.113.0/24",
                                           "ip_version": 4, "enable_dhcp": False})
        net = access.create(s, ADMIN, "network", {"name": "n", "project_id": "p1"})
        sub = access.create(s, ADMIN, "subnet", {"network_id": net["id"], "ip_version": 4,
                                                 "cidr": "198.51.100.0/24", "name": "s"})
        r = access.create(s, ADMIN, "router", {"name": "r", "project_id": "p1",
                                               "external_gateway_info": {"network_id": ext["id"]}})
        access.router_interface(s, ADMIN, "add", r["id"], {"subnet_id": sub["id"]})
        port = access.create(s, ADMIN, "port", {"network_id": net["id"], "name": "p",
                                                "binding:host_id": "h1", "project_id": "p1"})
        fip = access.create(s, ADMIN, "floatingip", {"floating_network_id": ext["id"],
                                                     "port_id": port["id"],
                                                     "project_id": "p1"})
    made = {"network": [ext["id"], net["id"]], "subnet": [sub["id"]], "port": [port["id"]],
            "router": [r["id"]], "floatingip": [fip["id"]]}
    with db.read() as s:
        for kind, ids in made.items():
            for rid in ids:
                row = S.get(s, S.MODELS[kind], rid)
                view = SERIALIZERS[kind](s, row)
                assert facts(kind, row) == {k: view[k] for k in FACTS[kind]}, kind
    assert fip["port_id"] == port["id"] and fip["fixed_ip_address"]
    db.close()


def test_kept_answers_are_oslo_policys_and_a_policy_file_edit_is_seen(tmp_path):
    f = tmp_path / "policy.yaml"
    f.write_text('"delete_floatingip": "rule:context_is_admin or rule:owner"\n')
    policy = Policy(str(f))
    callers = [ADMIN, Context("p1", "u1", frozenset({"member", "reader"})),
               Context("p2", "u2", frozenset({"reader"})), Context("p1", "u3", frozenset())]
    targets = [{"project_id": p, "tenant_id": p, "network:project_id": n, "shared": sh,
                "network:shared": sh}
               for p, n, sh in itertools.product(("p1", "p2"), ("p1", "p3"), (True, False))]
    actions = ["get_port", "delete_port", "update_port:mac_address", "get_network",
               "delete_floatingip", "get_subnet", "create_port"]
    for _ in range(2):  # the second round answers from what was kept
        for ctx, t, a in itertools.product(callers, targets, actions):
            assert policy.check(ctx, a, t) == bool(policy.enforcer.enforce(a, t, ctx.creds()))
    owner = Context("p1", "u1", frozenset({"member"}))
    target = {"project_id": "p1", "tenant_id": "p1"}
    assert policy.check(owner, "delete_floatingip", target)
    f.write_text('"delete_floatingip": "rule:context_is_admin"\n'
                 '"delete_floatingip:tags": "rule:context_is_admin"\n')
    policy._next_reload = 0  # look at the file on the next check, not up to RELOAD_S later
    assert not policy.check(owner, "delete_floatingip", target)
    assert policy.reads("delete_floatingip") == frozenset()
    assert policy.reads("get_port", "update_port") >= {"project_id", "network:project_id"}


def test_settled_answers_are_those_of_every_target(tmp_path):
    """``Policy.settled``: where it answers without a target (an admin: no read of a
    port's network), every target gets that answer from oslo.policy; an operator's rule
    that reads the target for admins too is not settled."""
    f = tmp_path / "policy.yaml"
    f.write_text('"delete_port": "role:admin and project_id:%(project_id)s"\n')
    policy = Policy(str(f))
    callers = [ADMIN, Context("p1", "u1", frozenset({"member", "reader"})),
               Context("p2", "u2", frozenset({"reader"})), Context("p1", "u3", frozenset()),
               Context("p1", "svc", frozenset({"service"})),
               Context("", "sys", frozenset({"admin"}), scope="system")]
    targets = [{"project_id": p, "tenant_id": p, "network:project_id": n,
                "network:tenant_id": n, "shared": sh, "network:shared": sh,
                "router:external": sh, "device_owner": o}
               for p, n, sh, o in itertools.product(("p1", "p2"), ("p1", "p3"), (True, False),
                                                    ("", "network:router_interface"))]
    settled = 0
    for ctx, a in itertools.product(callers, sorted(policy.enforcer.rules)):
        answer = policy.settled(ctx, a)
        if answer is not None:
            settled += 1
            assert all(policy.check(ctx, a, t) == answer for t in targets), (ctx, a)
    assert settled > len(policy.enforcer.rules)  # admins, system scope: most rules
    assert policy.settled(ADMIN, "get_port") is True
    assert policy.settled(ADMIN, "delete_port") is None  # the file's rule reads the target
    assert policy.settled(callers[1], "get_port") is None
