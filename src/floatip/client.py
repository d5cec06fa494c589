"""A small httpx client for floatip's API: the native CLI and remote agents use it."""
from __future__ import annotations

import os
import uuid
from typing import Any

import httpx

from .core.errors import NeutronError

DEFAULT_URL = os.environ.get("FLOATIP_URL", "http://127.0.0.1:9696")
COLLECTIONS = {"network": "networks", "subnet": "subnets", "port": "ports", "router": "routers",
               "floatingip": "floatingips", "security_group": "security-groups",
               "security_group_rule": "security-group-rules", "address_group": "address-groups",
               "subnetpool": "subnetpools"}
LABELS = {"floatingip": "FloatingIP", "security_group": "SecurityGroup", "subnetpool": "SubnetPool",
          "security_group_rule": "SecurityGroupRule", "address_group": "AddressGroup"}


class Client:
    def __init__(self, url: str = DEFAULT_URL, timeout: float = 30.0,
                 secret: str | None = None, agent_host: str | None = None):
        self.url = url.rstrip("/")
        # FLOATIP_TOKEN: a Keystone token for a server with auth_strategy = keystone;
        # secret: the agents' shared secret ([agent] shared_secret)
        headers = {"X-Auth-Token": os.environ.get("FLOATIP_TOKEN") or "notused"}
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        if agent_host:  # an agent following this server: listed by GET /v2.0/agents
            headers["X-Floatip-Agent-Host"] = agent_host
        # plain http needs no CA bundle: loading it is a third of a CLI call's time
        self.http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers,
                                 verify=not self.url.startswith("http://"))

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, method: str, path: str, **kw) -> Any:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise NeutronError(f"cannot reach floatip at {self.url}: {e}", "ConnectionFailed",
                               503) from None
        if r.status_code >= 400:
            try:
                ne = r.json()["NeutronError"]
                raise NeutronError(ne["message"], ne["type"], r.status_code)
            except (ValueError, KeyError, TypeError):
                raise NeutronError(r.text or r.reason_phrase, "HTTPError", r.status_code) \
                    from None
        return r.json() if r.content else None

    # -- resources --------------------------------------------------------------------
    def list(self, kind: str, **filters) -> list[dict]:
        coll = COLLECTIONS[kind]
        return self.request("GET", f"/v2.0/{coll}", params=filters)[coll.replace("-", "_")]

    def show(self, kind: str, rid: str) -> dict:
        return self.request("GET", f"/v2.0/{COLLECTIONS[kind]}/{rid}")[kind]

    def create(self, kind: str, **attrs) -> dict:
        return self.request("POST", f"/v2.0/{COLLECTIONS[kind]}", json={kind: attrs})[kind]

    def update(self, kind: str, rid: str, **attrs) -> dict:
        return self.request("PUT", f"/v2.0/{COLLECTIONS[kind]}/{rid}", json={kind: attrs})[kind]

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
