"""A throw-away Keystone for tests and ``make tempest``: PyPI ``keystone`` in its own
virtualenv (``make keystone-venv``), SQLite and fernet keys in a temp dir, served by gunicorn
on a free loopback port; ``keystone-manage bootstrap`` (admin/member/reader roles, admin
user), a ``service`` project with the floatip service user (roles service), and the
``network`` service with endpoints at the floatip server under test.

One gunicorn worker process: Keystone's cache (dogpile's in-process memory) is coherent only
within a process; a second worker kept serving a catalog cached before the network endpoint
was added. On SQLite also one thread: SQLite answers "database is locked" to concurrent writes.
Passwords are random, written only to files mode 0600 in the temp dir, never on a command line.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
KVENV = Path(os.environ.get("FLOATIP_KEYSTONE_VENV", ROOT / ".venv-keystone"))

WSGI = '''"""keystone under gunicorn: hide gunicorn's argv from oslo.config."""
import sys
_saved = sys.argv
sys.argv = ["keystone-wsgi-public"]
try:
    from keystone.wsgi.api import application  # noqa
finally:
    sys.argv = _saved
'''


def missing() -> str | None:
    for tool in ("keystone-manage", "gunicorn", "openstack"):
        if not (KVENV / "bin" / tool).exists():
            return f"{KVENV}/bin/{tool} missing: run `make keystone-venv`"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Keystone:
    REGION = "RegionOne"

    def __init__(self, db_url: str | None = None, threads: int = 1):
        """``db_url``: a PostgreSQL database for Keystone (then ``threads`` may be more than
        1); default SQLite in the temp dir, served by one thread."""
        self.db_url = db_url
        self.threads = threads
        self.dir = Path(tempfile.mkdtemp(prefix="fk-keystone-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v3"
        self.admin_password = secrets.token_urlsafe(16)
        self.service_user = "floatip"
        self.service_password = secrets.token_urlsafe(16)
        self.proc: subprocess.Popen | None = None
        self._token: str | None = None
        self.ids: dict[str, str] = {}

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> "Keystone":
        d = self.dir
        for sub in ("fernet-keys", "credential-keys", "log"):
            (d / sub).mkdir(mode=0o700)
        (d / "keystone.conf").write_text(f"""[DEFAULT]
log_file = {d}/log/keystone.log
[database]
connection = {self.db_url or f"sqlite:///{d}/keystone.db"}
[token]
provider = fernet
expiration = 86400
[fernet_tokens]
key_repository = {d}/fernet-keys
[fernet_receipts]
key_repository = {d}/fernet-keys
[credential]
key_repository = {d}/credential-keys
[cache]
# dogpile's in-process memory: token validation, role assignments, catalog and revocation
# events otherwise cost several queries on every request
enabled = True
backend = dogpile.cache.memory
[identity]
# the cheapest bcrypt: Tempest creates users and projects for every test class
password_hash_rounds = 4
""")
        (d / "keystone_wsgi.py").write_text(WSGI)
        km = [str(KVENV / "bin/keystone-manage"), "--config-file", str(d / "keystone.conf")]
        import grp
        import pwd
        user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        env.pop("OS_CLOUD", None)
        for args in (["db_sync"], ["fernet_setup", "--keystone-user", user, "--keystone-group",
                                   group],
                     ["credential_setup", "--keystone-user", user, "--keystone-group", group]):
            self._run(km + args, env)
        # bootstrap reads the admin password from the environment, not argv
        self._run(km + ["bootstrap", "--bootstrap-region-id", self.REGION,
                        "--bootstrap-admin-url", self.url, "--bootstrap-internal-url", self.url,
                        "--bootstrap-public-url", self.url],
                  {**env, "OS_BOOTSTRAP_PASSWORD": self.admin_password})
        genv = {**env, "OS_KEYSTONE_CONFIG_DIR": str(d), "OS_KEYSTONE_CONFIG_FILES":
                "keystone.conf"}
        log = open(d / "log" / "gunicorn.log", "ab")
        self.proc = subprocess.Popen(
            [str(KVENV / "bin/gunicorn"), "--chdir", str(d), "--bind", f"127.0.0.1:{self.port}",
             "--workers", "1", "--threads", str(self.threads),
             "--timeout", "120", "--access-logfile", str(d / "log" / "access.log"),
             "--access-logformat", "%(m)s %(U)s %(s)s %(M)s",
             "keystone_wsgi:application"],
            env=genv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"keystone did not start on {self.url}; see "
                                   f"{d}/log/gunicorn.log")
            time.sleep(0.3)
        self._setup()
        return self

    def _run(self, cmd: list[str], env: dict) -> None:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"{' '.join(cmd[:3])} failed: {r.stderr[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        if not os.environ.get("FLOATIP_KEEP_KEYSTONE"):
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- admin API ------------------------------------------------------------------------
    def token(self, user: str = "admin", password: str | None = None,
              project: str = "admin") -> str:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"},
            "password": password if password is not None else self.admin_password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        r = httpx.post(f"{self.url}/auth/tokens", json=body, timeout=30)
        r.raise_for_status()
        return r.headers["X-Subject-Token"]

    def api(self, method: str, path: str, **kw) -> dict:
        if self._token is None:
            self._token = self.token()
        r = httpx.request(method, f"{self.url}{path}", headers={"X-Auth-Token": self._token},
                          timeout=30, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"keystone {method} {path}: {r.status_code} {r.text}")
        return r.json() if r.content else {}

    def role_id(self, name: str) -> str:
        roles = self.api("GET", "/roles", params={"name": name})["roles"]
        if roles:
            return roles[0]["id"]
        return self.api("POST", "/roles", json={"role": {"name": name}})["role"]["id"]

    def project(self, name: str) -> str:
        found = self.api("GET", "/projects", params={"name": name})["projects"]
        if found:
            return found[0]["id"]
        return self.api("POST", "/projects", json={"project": {
            "name": name, "domain_id": "default"}})["project"]["id"]

    def user(self, name: str, password: str, project: str, roles: list[str]) -> str:
        pid = self.project(project)
        uid = self.api("POST", "/users", json={"user": {
            "name": name, "password": password, "domain_id": "default",
            "default_project_id": pid}})["user"]["id"]
        for role in roles:
            self.api("PUT", f"/projects/{pid}/users/{uid}/roles/{self.role_id(role)}")
        return uid

    def _setup(self) -> None:
        self.user(self.service_user, self.service_password, "service", ["service"])
        sid = self.api("POST", "/services", json={"service": {
            "name": "floatip", "type": "network"}})["service"]["id"]
        self.ids["network_service"] = sid

    def set_network_endpoint(self, url: str) -> None:
        sid = self.ids["network_service"]
        for ep in self.api("GET", "/endpoints", params={"service_id": sid})["endpoints"]:
            self.api("DELETE", f"/endpoints/{ep['id']}")
        for iface in ("public", "internal", "admin"):
            self.api("POST", "/endpoints", json={"endpoint": {
                "service_id": sid, "interface": iface, "url": url, "region_id": self.REGION}})

    # -- floatip's side -------------------------------------------------------------------
    def authtoken(self) -> dict:
        """floatip's ``[keystone_authtoken]``, the keys Neutron's has."""
        return {"www_authenticate_uri": self.url, "auth_url": self.url,
                "auth_type": "password", "username": self.service_user,
                "password": self.service_password, "project_name": "service",
                "user_domain_name": "Default", "project_domain_name": "Default",
                "region_name": self.REGION, "memcached_servers": ""}

    def osc_env(self, user: str, password: str, project: str) -> dict:
        """The environment the ``openstack`` CLI reads for this user (no clouds.yaml)."""
        env = {**os.environ, "OS_AUTH_URL": self.url, "OS_USERNAME": user,
               "OS_PASSWORD": password, "OS_PROJECT_NAME": project,
               "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
               "OS_REGION_NAME": self.REGION, "OS_IDENTITY_API_VERSION": "3",
               "OS_INTERFACE": "public", "PYTHONWARNINGS": "ignore"}
        env.pop("OS_CLOUD", None)
        return env

    def cloud(self, user: str, password: str, project: str) -> dict:
        """A clouds.yaml entry (openstacksdk / the openstack CLI)."""
        return {"auth_type": "password", "region_name": self.REGION, "interface": "public",
                "identity_api_version": 3,
                "auth": {"auth_url": self.url, "username": user, "password": password,
                         "project_name": project, "user_domain_name": "Default",
                         "project_domain_name": "Default"}}
