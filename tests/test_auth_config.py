"""Auth without Keystone: the config file, noauth's loopback rule, ``X-Project-Id``/``X-Roles``
under Neutron's policy, an operator's policy file, and the agents' shared secret. The server
is the real one (uvicorn on a free 127.0.0.1 port, agent off)."""
from __future__ import annotations

import httpx
import pytest

from floatip.api.auth import AuthSettings
from floatip.cli.config import load
from floatip.core.errors import NeutronError
from floatip.server import Server, free_port


def test_config_file_environment_and_flags(tmp_path, monkeypatch):
    f = tmp_path / "floatip.conf"
    f.write_text("[DEFAULT]\nbind_port = 9797\nauth_strategy = keystone\n"
                 "[database]\nconnection = sqlite:////tmp/x.db\n"
                 "[keystone_authtoken]\nauth_url = http://127.0.0.1:5000/v3\n"
                 "username = floatip\npassword = from-file\n"
                 "[agent]\nshared_secret = s3\n")
    cfg = load(str(f))
    assert cfg.listen == "127.0.0.1:9797"
    assert cfg.get("database", "connection") == "sqlite:////tmp/x.db"
    auth = cfg.auth()
    assert auth.strategy == "keystone" and auth.keystone_authtoken["password"] == "from-file"
    assert "from-file" not in repr(auth) and "s3" not in repr(auth)
    monkeypatch.setenv("FLOATIP_KEYSTONE_PASSWORD", "from-env")
    monkeypatch.setenv("FLOATIP_BIND_PORT", "9898")
    cfg = load(str(f), {("DEFAULT", "bind_host"): "127.0.0.2", ("DEFAULT", "bind_port"): None})
    assert cfg.listen == "127.0.0.2:9898"  # flag > env > file; None = flag not given
    assert cfg.auth().keystone_authtoken["password"] == "from-env"
    f.write_text("[DEFAULT]\nauth_strategy = keystone\n")
    monkeypatch.delenv("FLOATIP_KEYSTONE_PASSWORD")
    with pytest.raises(NeutronError, match="auth_url, username, password"):
        load(str(f)).auth()
    with pytest.raises(NeutronError, match="No such file"):
        load(str(tmp_path / "missing.conf"))


def test_noauth_only_on_loopback(tmp_path):
    for host in ("0.0.0.0", "192.0.2.1", "[::]"):
        with pytest.raises(NeutronError, match="only on a loopback address"):
            Server(f"sqlite:///{tmp_path}/x.db", f"{host}:{free_port()}", agent=False)


@pytest.fixture
def noauth(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text('"create_router": "rule:context_is_admin"\n')
    srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}", agent=False,
                 auth=AuthSettings("noauth", {}, "agent-secret"),
                 policy_file=str(policy)).start()
    yield srv
    srv.close()


def test_noauth_projects_roles_policy_file_and_agent_secret(noauth):
    def as_(project: str, roles: str = "member,reader") -> httpx.Client:
        return httpx.Client(base_url=noauth.url, timeout=30,
                            headers={"X-Project-Id": project, "X-Roles": roles})

    with as_("p1") as p1, as_("p2") as p2, as_("p1", "reader") as r1, \
            httpx.Client(base_url=noauth.url, timeout=30) as admin:
        net = p1.post("/v2.0/networks", json={"network": {"name": "n1"}})
        assert net.status_code == 201 and net.json()["network"]["project_id"] == "p1"
        nid = net.json()["network"]["id"]
        assert p2.get(f"/v2.0/networks/{nid}").status_code == 404
        assert p2.put(f"/v2.0/networks/{nid}", json={"network": {"name": "x"}}).status_code == 404
        assert nid not in {n["id"] for n in p2.get("/v2.0/networks").json()["networks"]}
        assert r1.get(f"/v2.0/networks/{nid}").status_code == 200
        assert r1.delete(f"/v2.0/networks/{nid}").status_code == 403
        # the operator's policy file: only admins create routers
        assert p1.post("/v2.0/routers", json={"router": {"name": "r"}}).status_code == 403
        r = admin.post("/v2.0/routers", json={"router": {"name": "r", "project_id": "p1"}})
        assert r.status_code == 201, r.text
        assert p1.get(f"/v2.0/routers/{r.json()['router']['id']}").status_code == 200
        # agents' API: the shared secret, nothing else
        assert admin.get("/floatip/v1/state").status_code == 401
        assert admin.get("/floatip/v1/state",
                         headers={"Authorization": "Bearer agent-secret"}).status_code == 200
