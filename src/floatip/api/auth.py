"""Who is calling: ``auth_strategy`` ``noauth`` or ``keystone``, as an ASGI middleware.

keystone: keystonemiddleware's ``AuthProtocol`` validates the token (its own cache, its own
service-user session to Keystone, the same ``[keystone_authtoken]`` options as Neutron's). It
is a WSGI middleware; we call only its request half (``process_request``) on a WSGI environ
built from the ASGI headers, in a worker thread because validation may call Keystone, and take
the project, user and roles from the validated token. The app never sees the token headers.

noauth (loopback only, refused elsewhere by the server): every caller is an admin, like
Neutron's noauth; ``X-Project-Id`` names the caller's project (the default for created
resources) and ``X-Roles`` may narrow the roles (tests use it to act as a member or reader).

``/floatip/v1/*`` (agents on other hosts): a shared secret from the config file
(``Authorization: Bearer SECRET``) or, in keystone mode, a token with the ``service`` or
``admin`` role. Anyone else gets 401/403 there.

Scope: a domain- or system-scoped token is taken as such (``Context.scope``), never as a
project; Neutron's rules are project-scope rules, so such a token sees nothing and may
change nothing (as Neutron with its default ``enforce_scope``).
"""
from __future__ import annotations

import hmac
import io
import json
import logging
from dataclasses import dataclass, field

import webob.exc
from keystonemiddleware import auth_token
from keystonemiddleware.auth_token import _request
from starlette.concurrency import run_in_threadpool

from ..service.policy import ADMIN, Context

log = logging.getLogger("floatip.auth")

STRATEGIES = ("noauth", "keystone")
PUBLIC_PATHS = ("/", "/openapi.json")
# the users' paths under /floatip/v1 (the rest is the agents'): each caller sees its own
USER_PATHS = ("/floatip/v1/events", "/floatip/v1/topology", "/floatip/v1/feed",
              "/floatip/v1/trace")


@dataclass
class AuthSettings:
    strategy: str = "noauth"
    keystone_authtoken: dict = field(default_factory=dict)  # [keystone_authtoken] verbatim
    agent_secret: str = ""

    def __repr__(self) -> str:  # never print the passwords
        return f"AuthSettings(strategy={self.strategy!r}, agent_secret={'***' if self.agent_secret else ''!r})"


def _environ(scope: dict) -> dict:
    env = {"REQUEST_METHOD": scope.get("method", "GET"), "PATH_INFO": scope.get("path", "/"),
           "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
           "SERVER_NAME": "floatip", "SERVER_PORT": "0", "SERVER_PROTOCOL": "HTTP/1.1",
           "wsgi.url_scheme": scope.get("scheme", "http"), "wsgi.input": io.BytesIO(),
           "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0), "wsgi.multithread": True,
           "wsgi.multiprocess": False, "wsgi.run_once": False}
    for k, v in scope.get("headers", []):
        name = k.decode("latin-1").upper().replace("-", "_")
        if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            env["HTTP_" + name] = v.decode("latin-1")
    return env


class KeystoneValidator:
    """keystonemiddleware's token validation without its WSGI pipeline."""

    def __init__(self, conf: dict):
        self._req_class = _request._AuthTokenRequest
        self._http_exc = webob.exc.HTTPException
        # The app argument is never called: we use process_request only.
        # Given as a dict, the auth plugin's options (username, password, ...) are read by the
        # plugin loader, yet keystonemiddleware warns they are "not known": mute that one.
        noisy = logging.getLogger("keystonemiddleware._common.config")
        level = noisy.level
        noisy.setLevel(logging.ERROR)
        try:
            self._mw = auth_token.AuthProtocol(None, conf)
        finally:
            noisy.setLevel(level)

    def validate(self, scope: dict) -> Context | tuple[int, list, bytes]:
        req = self._req_class(_environ(scope))
        try:
            resp = self._mw.process_request(req)
        except self._http_exc as e:
            resp = e
        if resp is not None:
            resp = self._mw.process_response(resp) if resp.status_int == 401 else resp
            headers = [(k.lower().encode(), v.encode()) for k, v in resp.headerlist
                       if k.lower() in ("www-authenticate", "content-type")]
            return resp.status_int, headers, resp.body
        user = req.token_auth.user
        roles = frozenset(r.lower() for r in (user.role_names or []))
        scope = ("project" if user.project_scoped else "system" if user.system_scoped
                 else "domain" if user.domain_scoped else "none")
        # a service token sent along (X-Service-Token, as Nova does): Neutron's delete_port
        # lets a project delete its compute ports only through such a service
        service = req.token_auth.service if req.token_auth.has_service_token else None
        return Context(project_id=(user.project_id or "") if scope == "project" else "",
                       user_id=user.user_id or "", roles=roles, scope=scope,
                       service_roles=frozenset(r.lower() for r in service.role_names)
                       if service is not None else frozenset())


def _error(status: int, typ: str, message: str) -> tuple[int, list, bytes]:
    body = json.dumps({"NeutronError": {"type": typ, "message": message, "detail": ""}})
    return status, [(b"content-type", b"application/json")], body.encode()


def _outside_policy(path: str, ctx: Context) -> Context | tuple[int, list, bytes]:
    """The paths no Neutron rule covers: ``/metrics`` (the host's figures) is for admins;
    floatip's own user paths need a project-scoped token, as every Neutron rule does."""
    if path == "/metrics" and not ctx.is_admin:
        return _error(403, "PolicyNotAuthorized", "Only admins may read the metrics.")
    if path in USER_PATHS and ctx.scope != "project":
        return _error(403, "PolicyNotAuthorized", "A project-scoped token is required.")
    return ctx


class AuthMiddleware:
    """Puts the caller's ``Context`` in ``request.state.ctx``, or answers 401/403."""

    def __init__(self, app, settings: AuthSettings):
        if settings.strategy not in STRATEGIES:
            raise ValueError(f"auth_strategy {settings.strategy!r}: one of {STRATEGIES}")
        self.app = app
        self.settings = settings
        self.keystone = (KeystoneValidator(settings.keystone_authtoken)
                         if settings.strategy == "keystone" else None)

    def _secret_ok(self, headers: dict) -> bool:
        secret = self.settings.agent_secret
        got = headers.get("authorization", "")
        return bool(secret) and hmac.compare_digest(got.encode(),
                                                    f"Bearer {secret}".encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "/")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        agent_path = path.startswith("/floatip/v1/") and path not in USER_PATHS
        result: Context | tuple
        if agent_path and self._secret_ok(headers):
            result = Context(user_id="agent", roles=frozenset({"service"}), agent=True)
        elif path in PUBLIC_PATHS or path == "/ui" or path.startswith("/ui/"):
            # the page's static files hold no data; what it reads goes through the auth
            result = Context(roles=frozenset())
        elif self.keystone is not None:
            result = await run_in_threadpool(self.keystone.validate, scope)
        else:
            result = self._noauth(headers)
        if isinstance(result, Context) and agent_path and not result.agent:
            if self.settings.agent_secret and self.keystone is None:
                result = _error(401, "HTTPUnauthorized", "Agents authenticate with the shared "
                                "secret of the [agent] section.")
            elif self.keystone is not None and (not result.roles & {"service", "admin"}
                                                or result.scope != "project"):
                result = _error(403, "PolicyNotAuthorized", "Only the service user and admins "
                                "may use the agents' API.")
        elif isinstance(result, Context) and not result.agent:
            result = _outside_policy(path, result)
        if not isinstance(result, Context):
            status, hdrs, body = result
            await send({"type": "http.response.start", "status": status,
                        "headers": hdrs + [(b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})["ctx"] = result
        await self.app(scope, receive, send)

    @staticmethod
    def _noauth(headers: dict) -> Context:
        roles = ADMIN.roles
        if headers.get("x-roles"):
            roles = frozenset(r.strip().lower() for r in headers["x-roles"].split(",")
                              if r.strip())
        return Context(project_id=headers.get("x-project-id", "").strip(),
                       user_id=headers.get("x-user-id", "").strip(), roles=roles)
