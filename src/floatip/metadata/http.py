"""The little HTTP/1.x the proxy and the service need: one request per connection (the
answer closes it), a head of at most 16 KiB, a body only with Content-Length."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 500: "Internal Server Error", 502: "Bad Gateway",
           504: "Gateway Timeout"}


class BadRequest(Exception):
    pass


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def encode(self) -> bytes:
        head = f"{self.method} {self.target} {self.version}\r\n" + \
            "".join(f"{k}: {v}\r\n" for k, v in self.headers) + "\r\n"
        return head.encode("latin-1") + self.body


async def read_request(reader: asyncio.StreamReader) -> Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too long") from None
    except asyncio.IncompleteReadError:
        raise BadRequest("connection closed") from None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise BadRequest("bad request line") from None
    if not target.startswith("/") or not version.startswith("HTTP/1."):
        raise BadRequest("bad request line")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        k, sep, v = line.partition(":")
        if not sep or not k or k != k.strip():
            raise BadRequest("bad header")
        headers.append((k, v.strip()))
    req = Request(method, target, version, headers)
    length = req.header("content-length")
    if length:
        if not length.isdigit() or int(length) > MAX_BODY:
            raise BadRequest("bad content length")
        req.body = await reader.readexactly(int(length))
    return req


def response(status: int, body: bytes, content_type: str = "text/plain") -> bytes:
    return (f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body
