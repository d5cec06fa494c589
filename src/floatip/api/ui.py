"""The live topology page: ``/ui/`` (static files: the page, its script, and Cytoscape.js,
which ``make install`` copies from the npm registry's package into ``static/vendor``), and
the data it reads behind the API's own auth: ``/floatip/v1/topology`` (what the caller may
see, through the same policy as ``/v2.0``), ``/floatip/v1/feed`` (server-sent events: one
after every committed change or status report), and ``/floatip/v1/trace`` (admins: the
trace of a floating IP from what this host has programmed)."""
from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..core.errors import NeutronError
from ..core.trace import ApiFip, Query as TraceQuery, build
from ..dataplane.trace import gather
from ..service.access import Access
from ..service.policy import ADMIN
from ..store import events as E
from ..store.database import Database
from ..store.queries import generation
from .agents import Waiters

STATIC = Path(__file__).resolve().parent / "static"
FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css",
         "vendor/cytoscape.min.js": "text/javascript"}
KINDS = ("network", "subnet", "port", "router", "floatingip")
STREAM_SECONDS = 10.0  # a feed ends after this (the page reconnects): shutdown never waits long


def router(db: Database, access: Access) -> APIRouter:
    api = APIRouter(include_in_schema=False)
    waiters = Waiters(db)

    @api.get("/ui")
    def ui_root():
        return RedirectResponse("/ui/")

    @api.get("/ui/{name:path}")
    def ui_file(name: str):
        name = name or "index.html"
        if name not in FILES:  # a fixed list: no path from the request reaches the disk
            raise NeutronError(f"/ui/{name} could not be found", "HTTPNotFound", 404)
        path = STATIC / name
        if not path.is_file():
            raise NeutronError(f"{name} is not installed: run make install", "HTTPNotFound",
                               404)
        return FileResponse(path, media_type=FILES[name],
                            headers={"Cache-Control": "no-cache"})

    @api.get("/floatip/v1/topology")
    def topology(request: Request):
        """Every object of the page's kinds the caller may see, as ``/v2.0`` shows them."""
        ctx = getattr(request.state, "ctx", ADMIN)
        with db.read() as s:
            out = {f"{k}s": access.list(s, ctx, k, []) for k in KINDS}
            out["generation"] = generation(s)
        return out

    def mark() -> tuple[int, int]:
        with db.read() as s:
            return generation(s), E.newest(s)

    @api.get("/floatip/v1/feed")
    async def feed(request: Request):
        """``text/event-stream``: an event ``change`` when something committed or a status
        changed (the page then reads the topology again)."""
        async def stream():
            last = None
            end = time.monotonic() + STREAM_SECONDS
            while time.monotonic() < end and not await request.is_disconnected():
                now = await run_in_threadpool(mark)
                if now != last:
                    last = now
                    yield f"event: change\ndata: {json.dumps(list(now))}\n\n"
                # status reports commit without notifying: look again at least twice a second
                await waiters.wait(0.5)
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @api.get("/floatip/v1/trace")
    async def trace(request: Request, address: str = Query(..., max_length=15),
                    port: int | None = Query(None, ge=1, le=65535)):
        """The hops of a TCP packet from upstream to ``address`` on this host (admins)."""
        ctx = getattr(request.state, "ctx", ADMIN)
        if not ctx.is_admin:
            raise NeutronError("Only admins may trace (it reads the host)",
                               "PolicyNotAuthorized", 403)
        try:
            ip = str(ipaddress.IPv4Address(address))
        except ValueError:
            raise NeutronError(f"{address!r} is not an IPv4 address", "HTTPBadRequest",
                               400) from None
        def traced():
            # the API's own floating IP names its router: another instance's router on this
            # host holding the same address is never the one traced
            with db.read() as s:
                found = access.list(s, ctx, "floatingip", [("floating_ip_address", ip)])
            f = found[0] if found else {}
            api_fip = ApiFip(f["id"], f.get("status", ""), f.get("fixed_ip_address"),
                             f.get("router_id"), f.get("port_id")) if f else None
            return build(gather(TraceQuery("upstream", ip, "tcp", port), api=api_fip))
        return (await run_in_threadpool(traced)).to_dict()

    return api
