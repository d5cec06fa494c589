"""Quotas behind a real Keystone: who may read and set limits (Neutron 29's get_quota,
update_quota, delete_quota and the details check), and the operator's way, the
``openstack`` CLI: ``openstack quota set --networks 2 PROJECT`` as admin, then a member
of that project gets Neutron's OverQuota from ``openstack network create``."""
from __future__ import annotations

import json
import subprocess
import uuid

import httpx
import pytest

from cloud import BIN, served

pytestmark = [pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

class User:
    def __init__(self, ks, project: str, roles: list[str]):
        self.name, self.project = f"fq-{uuid.uuid4().hex[:8]}", project
        self.password = uuid.uuid4().hex
        ks.user(self.name, self.password, project, roles)
        self.project_id = ks.project(project)
        self.token = ks.token(self.name, self.password, project)

    def client(self, url: str) -> httpx.Client:
        return httpx.Client(base_url=url, headers={"X-Auth-Token": self.token}, timeout=60)


@pytest.fixture(scope="module")
def cloud(keystone, tmp_path_factory):
    sfx = uuid.uuid4().hex[:6]
    pa, pb = f"fq-pa-{sfx}", f"fq-pb-{sfx}"
    with served(tmp_path_factory.mktemp("fq-ks"), keystone) as srv, httpx.Client(
            base_url=srv.url, headers={"X-Auth-Token": keystone.token()}, timeout=60) as admin:
        users = {"member": User(keystone, pa, ["member"]),
                 "reader": User(keystone, pa, ["reader"]),
                 "manager": User(keystone, pa, ["manager", "member", "reader"]),
                 "other": User(keystone, pb, ["member"])}
        yield {"srv": srv, "ks": keystone, "users": users, "admin": admin}


def status(r: httpx.Response, code: int, type_: str | None = None) -> dict:
    assert r.status_code == code, f"{r.request.method} {r.request.url}: {r.text}"
    body = r.json() if r.content else {}
    if type_:
        assert body["NeutronError"]["type"] == type_, body
    return body


def test_who_may_read_and_set_quotas(cloud):
    u, admin = cloud["users"], cloud["admin"]
    a, b = u["member"].project_id, u["other"].project_id
    status(admin.put(f"/v2.0/quotas/{b}", json={"quota": {"router": 3}}), 200)
    for who in ("member", "reader", "manager"):
        with u[who].client(cloud["srv"].url) as c:
            # one's own project: no rule (Neutron checks get_quota for another project only)
            assert status(c.get(f"/v2.0/quotas/{a}"), 200)["quota"]["network"] == 100
            assert status(c.get(f"/v2.0/quotas/{a}/details"), 200)["quota"]["network"] == {
                "limit": 100, "used": 0, "reserved": 0}
            assert status(c.get("/v2.0/quotas/project"), 200) == {"project": {"project_id": a}}
            # details of another project: admins only, Neutron's AdminRequired
            status(c.get(f"/v2.0/quotas/{b}/details"), 403, "AdminRequired")
            # setting and resetting limits: admins only
            status(c.put(f"/v2.0/quotas/{a}", json={"quota": {"network": 1000}}), 403,
                   "PolicyNotAuthorized")
            status(c.delete(f"/v2.0/quotas/{b}"), 403, "PolicyNotAuthorized")
            if who == "manager":
                # Neutron 29's get_quota is admin or project manager, checked against the
                # caller's own project: a manager reads other projects' limits
                assert status(c.get(f"/v2.0/quotas/{b}"), 200)["quota"]["router"] == 3
                assert b in {q["project_id"] for q in status(c.get("/v2.0/quotas"),
                                                             200)["quotas"]}
            else:
                status(c.get(f"/v2.0/quotas/{b}"), 403, "PolicyNotAuthorized")
                status(c.get(f"/v2.0/quotas/{b}/default"), 403, "PolicyNotAuthorized")
                status(c.get("/v2.0/quotas"), 403, "PolicyNotAuthorized")
    assert status(admin.get(f"/v2.0/quotas/{b}"), 200)["quota"]["router"] == 3
    assert status(admin.get(f"/v2.0/quotas/{b}/details"), 200)["quota"]["router"]["limit"] == 3
    status(admin.delete(f"/v2.0/quotas/{b}"), 204)


def _env(ks, user: str, password: str, project: str) -> dict:
    env = ks.osc_env(user, password, project)
    return env


def osc(env: dict, *args, ok: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([f"{BIN}/openstack", *args], env=env, capture_output=True, text=True,
                       timeout=180)
    assert (r.returncode == 0) == ok, f"openstack {' '.join(args)}: {r.stdout} {r.stderr}"
    return r


def limits(out: str, column: str = "Limit") -> dict:
    """``openstack quota show -f json``: rows of Resource and Limit (or In Use...)."""
    rows = json.loads(out)
    return {r["Resource"]: r[column] for r in rows} if isinstance(rows, list) else rows


def test_openstack_quota_set_then_a_member_is_over_quota(cloud):
    ks, m = cloud["ks"], cloud["users"]["member"]
    admin = _env(ks, "admin", ks.admin_password, "admin")
    member = _env(ks, m.name, m.password, m.project)
    osc(admin, "quota", "set", "--networks", "2", "--routers", "5", m.project)
    shown = limits(osc(admin, "quota", "show", "--network", m.project, "-f", "json").stdout)
    assert shown["networks"] == 2 and shown["routers"] == 5 and shown["ports"] == 500, shown
    listed = json.loads(osc(admin, "quota", "list", "--network", "-f", "json").stdout)
    assert any(q.get("Project ID") == m.project_id and q.get("Networks") == 2
               for q in listed), listed
    for i in range(2):
        osc(member, "network", "create", f"fq-cli-{i}")
    r = osc(member, "network", "create", "fq-cli-2", ok=False)
    assert "Quota exceeded for resources: ['network']" in r.stderr, r.stderr
    out = osc(member, "quota", "show", "--network", "--usage", "-f", "json").stdout
    assert limits(out, "In Use")["networks"] == 2 and limits(out)["networks"] == 2, out
    osc(admin, "quota", "delete", "--network", m.project)
    osc(member, "network", "create", "fq-cli-2")
