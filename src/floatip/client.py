"""A small client for floatip's API: the native CLI and remote agents use it. The standard
library's http.client, not httpx: a CLI call is mostly imports, and httpx (with httpcore, its
TLS and its CLI's dependencies) cost a CLI call more CPU than everything it runs (issue 26)."""
from __future__ import annotations

import http.client
import json as jsonlib
import os
import select
import threading
import uuid
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .core.errors import NeutronError

DEFAULT_URL = os.environ.get("FLOATIP_URL", "http://127.0.0.1:9696")
COLLECTIONS = {"network": "networks", "subnet": "subnets", "port": "ports", "router": "routers",
               "floatingip": "floatingips", "security_group": "security-groups",
               "security_group_rule": "security-group-rules", "address_group": "address-groups",
               "subnetpool": "subnetpools", "address_scope": "address-scopes",
               "qos_policy": "qos/policies", "rbac_policy": "rbac-policies"}
BODIES = {"qos_policy": "policy"}  # the body's key where it is not the kind
LABELS = {"floatingip": "FloatingIP", "security_group": "SecurityGroup", "subnetpool": "SubnetPool",
          "security_group_rule": "SecurityGroupRule", "address_group": "AddressGroup",
          "address_scope": "AddressScope", "qos_policy": "QosPolicy", "rbac_policy": "RbacPolicy"}


def _query(params: dict) -> str:
    """Query parameters as httpx wrote them: booleans in lower case, None empty, a list as
    the key repeated."""
    def text(v):
        return str(v).lower() if isinstance(v, bool) else "" if v is None else str(v)
    return urlencode([(k, text(x)) for k, v in params.items()
                      for x in (v if isinstance(v, (list, tuple)) else [v])])


def _readable(sock) -> bool:
    """Data or EOF waiting on an idle connection: the server closed it (poll, not select:
    an agent inside a server may hold file descriptors past select's 1024)."""
    p = select.poll()
    p.register(sock, select.POLLIN)
    return bool(p.poll(0))


class Client:
    def __init__(self, url: str = DEFAULT_URL, timeout: float = 30.0,
                 secret: str | None = None, agent_host: str | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        # FLOATIP_TOKEN: a Keystone token for a server with auth_strategy = keystone;
        # secret: the agents' shared secret ([agent] shared_secret)
        self.headers = {"X-Auth-Token": os.environ.get("FLOATIP_TOKEN") or "notused",
                        "Accept": "application/json"}
        if secret:
            self.headers["Authorization"] = f"Bearer {secret}"
        if agent_host:  # an agent following this server: listed by GET /v2.0/agents
            self.headers["X-Floatip-Agent-Host"] = agent_host
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()  # one keep-alive connection, one request at a time

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        """The kept connection unless the server closed it meanwhile (readable while idle:
        EOF), else a new one. https verifies the server's certificate against the system's
        CAs (SSL_CERT_FILE/SSL_CERT_DIR to use others)."""
        if self._conn is not None and (self._conn.sock is None or _readable(self._conn.sock)):
            self._drop()
        if self._conn is None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise http.client.InvalidURL("not an http:// or https:// URL")
            cls = http.client.HTTPSConnection if parts.scheme == "https" else \
                http.client.HTTPConnection
            self._conn = cls(parts.hostname, parts.port, timeout=timeout)
            self._conn.connect()
        self._conn.sock.settimeout(timeout)  # per request: connect, and each read or write
        return self._conn

    def request(self, method: str, path: str, params: dict | None = None, json: Any = None,
                timeout: float | None = None, headers: dict | None = None) -> Any:
        """The answer's JSON (None when empty); an error answer as the NeutronError it
        carries; no answer (refused, timed out, cut) as ConnectionFailed (503)."""
        # percent-encoded as httpx did (a space or non-ASCII character in a path segment)
        target = quote(urlsplit(self.url).path + path, safe="/%:@!$&'()*+,;=?~")
        if params:
            target += ("&" if "?" in target else "?") + _query(params)
        hdrs = {**self.headers, **(headers or {})}
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            hdrs["Content-Type"] = "application/json"
        with self._lock:
            try:
                conn = self._connection(self.timeout if timeout is None else timeout)
                conn.request(method, target, body=body, headers=hdrs)
                r = conn.getresponse()
                content = r.read()
                if r.will_close:
                    self._drop()
            except (OSError, ValueError, http.client.HTTPException) as e:  # ValueError: port
                self._drop()
                raise NeutronError(f"cannot reach floatip at {self.url}: "
                                   f"{str(e) or type(e).__name__}", "ConnectionFailed",
                                   503) from None
        if r.status >= 400:
            try:
                ne = jsonlib.loads(content)["NeutronError"]
                raise NeutronError(ne["message"], ne["type"], r.status)
            except (ValueError, KeyError, TypeError):
                raise NeutronError(content.decode(errors="replace") or r.reason, "HTTPError",
                                   r.status) from None
        return jsonlib.loads(content) if content else None

    # -- resources --------------------------------------------------------------------
    def list(self, kind: str, **filters) -> list[dict]:
        coll = COLLECTIONS[kind]
        return self.request("GET", f"/v2.0/{coll}", params=filters)[
            coll.rsplit("/", 1)[-1].replace("-", "_")]

    def show(self, kind: str, rid: str) -> dict:
        key = BODIES.get(kind, kind)
        return self.request("GET", f"/v2.0/{COLLECTIONS[kind]}/{rid}")[key]

    def create(self, kind: str, **attrs) -> dict:
        key = BODIES.get(kind, kind)
        return self.request("POST", f"/v2.0/{COLLECTIONS[kind]}", json={key: attrs})[key]

    def update(self, kind: str, rid: str, **attrs) -> dict:
        key = BODIES.get(kind, kind)
        return self.request("PUT", f"/v2.0/{COLLECTIONS[kind]}/{rid}", json={key: attrs})[key]

    def set_tags(self, kind: str, rid: str, tags: list[str]) -> list[str]:
        """Replace the object's tags (standard-attr-tag)."""
        return self.request("PUT", f"/v2.0/{COLLECTIONS[kind]}/{rid}/tags",
                            json={"tags": list(tags)})["tags"]

    def delete(self, kind: str, rid: str) -> None:
        self.request("DELETE", f"/v2.0/{COLLECTIONS[kind]}/{rid}")

    def find(self, kind: str, ref: str) -> dict:
        """By id, else by unique name (as the openstack CLI does)."""
        try:
            uuid.UUID(ref)
            return self.show(kind, ref)
        except ValueError:
            pass
        key = "floating_ip_address" if kind == "floatingip" else "name"
        found = self.list(kind, **{key: ref})
        if not found:
            label = LABELS.get(kind, kind.capitalize())
            raise NeutronError(f"{label} {ref} could not be found.", f"{label}NotFound", 404)
        if len(found) > 1:
            raise NeutronError(f"More than one {kind} is named {ref}; use its id", "Conflict",
                               409)
        return found[0]

    def add_interface(self, router_id: str, **body) -> dict:
        return self.request("PUT", f"/v2.0/routers/{router_id}/add_router_interface", json=body)

    def remove_interface(self, router_id: str, **body) -> dict:
        return self.request("PUT", f"/v2.0/routers/{router_id}/remove_router_interface",
                            json=body)

    # -- agent ------------------------------------------------------------------------
    def agent_state(self) -> dict:
        return self.request("GET", "/floatip/v1/state")

    def changes(self, generation: int, timeout: float = 30.0) -> int:
        return self.request("GET", "/floatip/v1/changes",
                            params={"generation": generation, "timeout": timeout},
                            timeout=timeout + 10)["generation"]

    def delta(self, generation: int, timeout: float = 0.0) -> dict:
        """What changed after ``generation`` (waiting up to ``timeout`` seconds for it)."""
        return self.request("GET", "/floatip/v1/changes",
                            params={"generation": generation, "timeout": timeout,
                                    "objects": "true"}, timeout=timeout + 30)

    def report(self, **statuses) -> dict:
        return self.request("POST", "/floatip/v1/status", json=statuses)

    def sync(self, full: bool = False) -> None:
        self.request("POST", "/floatip/v1/sync", params={"full": "true"} if full else None)
