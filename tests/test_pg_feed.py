"""Issue 27, writes without hot spots on PostgreSQL: a writer no longer queues behind
another's open transaction (no generation counter row, no address being inserted by
another), and the change feed's readers cannot miss a change committed out of order: a
transaction held open while later ones commit is read when it commits, not skipped. And
changes reach other processes through LISTEN/NOTIFY. Real PostgreSQL (tests/pgserver.py)."""
from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest

from floatip import store as S
from floatip.backends.local import LocalSource
from floatip.server import Server, free_port
from floatip.service import ipam
from floatip.store.database import Database
from pgserver import fresh_database


@pytest.fixture(scope="module")
def pg(request):
    with fresh_database(request.getfixturevalue("pg_url")) as url:
        yield url


@pytest.fixture(scope="module")
def server(pg):
    srv = Server(pg, f"127.0.0.1:{free_port()}", agent=False).start()
    yield srv
    srv.close()


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def _post(api, kind: str, body: dict, timeout: float = 60) -> dict:
    r = api.post(f"/v2.0/{kind}s", json={kind: body}, timeout=timeout)
    assert r.status_code == 201, r.text
    return r.json()[kind]


class Held:
    """A transaction that writes, then stays open until released."""

    def __init__(self, db: Database, write):
        self.written, self.release = threading.Event(), threading.Event()
        self.error = None
        self.out = None

        def run():
            try:
                with db.tx() as s:
                    self.out = write(s)
                    s.flush()
                    self.written.set()
                    assert self.release.wait(60)
            except BaseException as e:  # noqa: BLE001 - reported by the test
                self.error = e
                self.written.set()
        self.thread = threading.Thread(target=run)
        self.thread.start()
        assert self.written.wait(30) and self.error is None, self.error

    def commit(self) -> None:
        self.release.set()
        self.thread.join(30)
        assert self.error is None, self.error


def test_an_open_transaction_is_not_skipped_by_the_feed(server, api):
    """The agent's reads (LocalSource.delta) while an older writer is open: a later commit
    goes through at once (no counter row to wait on), is held back, not skipped past the
    open one; once it commits, the next read has both, each once."""
    src = LocalSource(server.db)
    _post(api, "network", {"name": "fp-warm"})  # the server's first request, not timed
    with server.db.read() as s:
        pos0 = S.feed_position(s)
    held_id = str(uuid.uuid4())
    held = Held(server.db, lambda s: s.add(S.Network(id=held_id, name="fp-held")))
    try:
        t0 = time.monotonic()
        later = _post(api, "network", {"name": "fp-later"}, timeout=10)
        took = time.monotonic() - t0
        d1 = src.delta(pos0)
        assert not d1["full"]
        seen1 = set(d1["upserts"]["networks"])
        assert held_id not in seen1 and later["id"] not in seen1
        assert d1["held"] and d1["generation"] == pos0  # not past the open writer
    finally:
        held.commit()
    d2 = src.delta(d1["generation"])
    seen2 = set(d2["upserts"]["networks"])
    assert {held_id, later["id"]} <= seen2 and not d2["held"]
    d3 = src.delta(d2["generation"])  # read: nothing again
    assert not d3["upserts"]["networks"] and d3["generation"] == d2["generation"]
    print(f"a write beside an open writer: {took * 1000:.0f} ms")


def test_allocation_skips_an_address_another_transaction_is_taking(server, api):
    """Another server's request is inserting the next free address and has not committed:
    a floating IP create takes the next one at once instead of waiting for it."""
    ext = _post(api, "network", {"name": "fp-ext", "router:external": True})
    sub = _post(api, "subnet", {"network_id": ext["id"], "cidr": "203.0.113.0/24",
                                "ip_version": 4, "enable_dhcp": False,
                                "allocation_pools": [{"start": "203.0.113.10",
                                                      "end": "203.0.113.20"}]})

    def take(s):
        net = S.get(s, S.Network, ext["id"])
        port = ipam._new_port(s, net, owner="network:floatingip", device_id="fp-held")
        return port.fixed_ips[0].ip_address
    held = Held(server.db, take)
    try:
        assert held.out == "203.0.113.10"
        ipam._next.pop(sub["id"], None)  # a second server: its own cursor starts over
        t0 = time.monotonic()
        fip = _post(api, "floatingip", {"floating_network_id": ext["id"]}, timeout=10)
        took = time.monotonic() - t0
        assert fip["floating_ip_address"] == "203.0.113.11"
    finally:
        held.commit()
    print(f"allocation beside an open one: {took * 1000:.0f} ms")


def test_a_commit_through_another_database_wakes_the_listeners(server, pg):
    """LISTEN/NOTIFY: a change committed through another process' database (here another
    Database, as a second API server has) wakes this one's listeners; its own commits do
    not come back to it twice."""
    other = Database(pg, migrate_schema=False)
    woken = threading.Event()
    mine = threading.Event()
    server.db.listeners.append(woken.set)
    other.listeners.append(mine.set)
    try:
        deadline = time.monotonic() + 10
        while not (server.db.notifier.connected.is_set() and other.notifier.connected.is_set()):
            assert time.monotonic() < deadline, "LISTEN connections"
            time.sleep(0.01)
        time.sleep(0.05)
        woken.clear()
        t0 = time.monotonic()
        with other.tx() as s:
            s.add(S.Network(id=str(uuid.uuid4()), name="fp-other"))
        assert woken.wait(5), "not woken by the other process' commit"
        print(f"NOTIFY from another database: {(time.monotonic() - t0) * 1000:.1f} ms")
    finally:
        server.db.listeners.remove(woken.set)
        other.close()
