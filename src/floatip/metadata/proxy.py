"""The metadata proxy of each router namespace, in-process: one asyncio loop in one thread;
per router a listening socket on 0.0.0.0:9697 opened inside the router's namespace (a socket
belongs to the namespace it was created in, so nothing else of the process moves). The same
proxies serve OVN's per-network metadata namespaces (``ovnmeta-<network>``, port 80, the
network in ``X-OVN-Network-ID``).

The router's NAT redirects ``169.254.169.254:80`` arriving on ``qr-`` here. For each request
the proxy drops every identity header the VM sent (``X-Forwarded-For``, ``X-Neutron-*``,
``X-Instance-ID*``, ``X-Tenant-ID``), sets ``X-Forwarded-For`` to the address the connection
came from and ``X-Neutron-Router-ID`` to its router, and relays it over the service's unix
socket: a VM cannot claim to be another.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading

from ..dataplane.netns import NETNS_DIR, run_in_netns
from .http import BadRequest, read_request, response

log = logging.getLogger("floatip.metadata")
PORT = 9697
NS_PREFIX = "qrouter-"
STRIP = {"x-forwarded-for", "x-neutron-router-id", "x-neutron-network-id", "x-ovn-network-id",
         "x-instance-id",
         "x-tenant-id", "x-instance-id-signature", "connection", "keep-alive",
         "proxy-connection", "x-forwarded-host", "forwarded"}


class Loop:
    """An asyncio loop in a daemon thread; ``call`` runs a coroutine there and waits."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="floatip-metadata",
                                       daemon=True)
        self.thread.start()

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


def _listen(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(128)
    s.setblocking(False)
    return s


def _ns_inode(ns: str) -> int | None:
    try:
        return os.stat(os.path.join(NETNS_DIR, ns)).st_ino
    except OSError:
        return None


class MetadataProxies:
    def __init__(self, loop: Loop, socket_path: str, port: int = PORT, timeout: float = 30,
                 ns_prefix: str = NS_PREFIX, header: str = "X-Neutron-Router-ID"):
        """One proxy per key (a router, or an OVN network) in namespace ``ns_prefix`` + key,
        telling the service the key in ``header``."""
        self.loop, self.socket_path, self.port, self.timeout = loop, socket_path, port, timeout
        self.ns_prefix, self.header = ns_prefix, header
        # key -> (server, its namespace's inode)
        self.servers: dict[str, tuple[asyncio.AbstractServer, int]] = {}

    def sync(self, routers: set[str]) -> dict[str, str]:
        """A proxy in each of ``routers``' namespaces, none elsewhere; a namespace made anew
        (another inode) gets a new listener. Returns {router id: error}."""
        errors = {}
        for rid in list(self.servers):
            server, ino = self.servers[rid]
            if rid not in routers or _ns_inode(self.ns_prefix + rid) != ino:
                self._close(rid)
        for rid in sorted(routers - set(self.servers)):
            ns = self.ns_prefix + rid
            ino = _ns_inode(ns)
            if ino is None:
                continue
            try:
                sock = run_in_netns(ns, _listen, self.port)
                server = self.loop.call(self._serve(rid, sock))
            except OSError as e:
                errors[rid] = f"metadata proxy: {e}"
                log.error("metadata proxy in %s: %s", ns, e)
                continue
            self.servers[rid] = (server, ino)
        return errors

    async def _serve(self, rid: str, sock: socket.socket) -> asyncio.AbstractServer:
        return await asyncio.start_server(lambda r, w: self._relay(rid, r, w), sock=sock,
                                          limit=16 * 1024)

    def _close(self, rid: str) -> None:
        server, _ = self.servers.pop(rid)

        async def close():
            server.close()
            await server.wait_closed()
        try:
            self.loop.call(close(), timeout=5)
        except Exception:  # noqa: BLE001 - open connections end on their own timeout
            pass

    def close(self) -> None:
        for rid in list(self.servers):
            self._close(rid)

    async def _relay(self, rid: str, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        try:
            try:
                req = await asyncio.wait_for(read_request(reader), 10)
            except (BadRequest, asyncio.TimeoutError) as e:
                writer.write(response(400, f"Bad Request: {e}".encode()))
                await writer.drain()
                return
            req.headers = [(k, v) for k, v in req.headers if k.lower() not in STRIP]
            req.headers += [("X-Forwarded-For", peer), (self.header, rid),
                            ("Connection", "close")]
            try:
                up_r, up_w = await asyncio.wait_for(
                    asyncio.open_unix_connection(self.socket_path), 5)
            except (OSError, asyncio.TimeoutError):
                writer.write(response(502, b"Metadata service unavailable"))
                await writer.drain()
                return
            try:
                up_w.write(req.encode())
                await up_w.drain()
                while chunk := await asyncio.wait_for(up_r.read(65536), self.timeout):
                    writer.write(chunk)
                    await writer.drain()
            finally:
                up_w.close()
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
