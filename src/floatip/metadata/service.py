"""floatip's metadata service on a unix socket, the far end of the router proxies.

It trusts only the headers the proxy sets (``X-Forwarded-For``: the VM's address as the
router saw it; ``X-Neutron-Router-ID`` from a router's proxy, ``X-OVN-Network-ID`` from an
OVN chassis' per-network proxy), finds the port behind them and either forwards the
request to Nova's metadata API exactly as Neutron's metadata agent does (``X-Instance-ID``,
``X-Tenant-ID``, ``X-Instance-ID-Signature`` = HMAC-SHA256 of the instance id with the shared
secret) or, without a Nova URL, answers from the port itself. An address that is no port's on
that router gets 404. Only the proxy can reach the socket (mode 0600, root).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
import urllib.error
import urllib.request
from typing import Callable

from .content import Instance, answer
from .http import BadRequest, Request, read_request, response

log = logging.getLogger("floatip.metadata")
SOCKET = "/run/floatip/metadata.sock"
NETWORK_HEADER = "X-OVN-Network-ID"   # as Neutron's OVN metadata proxy sends it


def sign(instance_id: str, secret: str) -> str:
    """Neutron's metadata agent: ``X-Instance-ID-Signature``."""
    return hmac.new(secret.encode(), instance_id.encode(), hashlib.sha256).hexdigest()


class MetadataService:
    def __init__(self, lookup: Callable[[str, str], Instance | None], socket_path: str = SOCKET,
                 nova_url: str | None = None, secret: str = "", timeout: float = 10.0,
                 lookup_network: Callable[[str, str], Instance | None] | None = None):
        self.lookup, self.lookup_network = lookup, lookup_network
        self.socket_path = socket_path
        self.nova_url = nova_url.rstrip("/") if nova_url else None
        self.secret = secret
        self.timeout = timeout
        self.server: asyncio.AbstractServer | None = None
        self.answered = 0
        self.first_answer: dict[str, float] = {}   # port id -> monotonic time of its first 200

    async def start(self) -> None:
        os.makedirs(os.path.dirname(self.socket_path), mode=0o755, exist_ok=True)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        old = os.umask(0o077)
        try:
            self.server = await asyncio.start_unix_server(self._handle, path=self.socket_path,
                                                          limit=16 * 1024)
        finally:
            os.umask(old)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        try:
            os.unlink(self.socket_path)
        except OSError:
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                req = await asyncio.wait_for(read_request(reader), 10)
                out = await self._respond(req)
            except (BadRequest, asyncio.TimeoutError) as e:
                out = response(400, f"Bad Request: {e}".encode())
            writer.write(out)
            await writer.drain()
        except Exception:  # noqa: BLE001 - one connection must not stop the service
            log.exception("metadata request failed")
        finally:
            writer.close()

    async def _respond(self, req: Request) -> bytes:
        if req.method not in ("GET", "HEAD") and not self.nova_url:
            return response(405, b"Method Not Allowed")
        ip, router_id = req.header("X-Forwarded-For"), req.header("X-Neutron-Router-ID")
        network_id = req.header(NETWORK_HEADER)
        if network_id is not None and self.lookup_network is not None:
            inst = self.lookup_network(network_id, (ip or "").strip())
        else:
            inst = self.lookup(router_id or "", (ip or "").strip())
        if inst is None:
            log.info("metadata: no port with %s behind router %s / on network %s", ip,
                     router_id, network_id)
            return response(404, b"Not Found")
        if self.nova_url:
            status, ctype, body = await asyncio.get_running_loop().run_in_executor(
                None, self._nova, req, inst, ip)
        else:
            status, ctype, body = answer(inst, req.path)
        if status == 200:
            self.answered += 1
            self.first_answer.setdefault(inst.port_id, time.monotonic())
        return response(status, b"" if req.method == "HEAD" else body, ctype)

    def _nova(self, req: Request, inst: Instance, ip: str) -> tuple[int, str, bytes]:
        headers = {"X-Forwarded-For": ip, "X-Instance-ID": inst.instance_id,
                   "X-Tenant-ID": inst.project_id,
                   "X-Instance-ID-Signature": sign(inst.instance_id, self.secret)}
        ctype = req.header("Content-Type")
        if ctype:
            headers["Content-Type"] = ctype
        r = urllib.request.Request(self.nova_url + req.target, data=req.body or None,
                                   headers=headers, method=req.method)
        try:
            with urllib.request.urlopen(r, timeout=self.timeout) as resp:
                return resp.status, resp.headers.get("Content-Type", "text/plain"), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", "text/plain"), e.read()
        except OSError as e:
            log.error("Nova metadata at %s: %s", self.nova_url, e)
            return 502, "text/plain", b"Remote metadata server unreachable"
