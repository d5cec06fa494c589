"""Issue 27: PostgreSQL restarted under load. Requests in flight get a clear 503 (never a
500 or a hang), the server reconnects by itself, nothing it answered 201 for is lost, and its
LISTEN/NOTIFY connection comes back: another process' commit wakes it again. A PostgreSQL of
its own (the session's is shared by other tests)."""
from __future__ import annotations

import threading
import time
import uuid

import httpx

from floatip import store as S
from floatip.server import Server, free_port
from floatip.store.database import Database
from pgserver import PgServer


def test_postgresql_restart_under_load():
    # its database is this test's alone; a commit answered is in its log
    pg = PgServer(synchronous_commit=True).start()
    try:
        srv = Server(pg.url, f"127.0.0.1:{free_port()}", agent=False).start()
        try:
            _run(pg, srv, pg.url)
        finally:
            srv.close()
    finally:
        pg.stop()


def _run(pg: PgServer, srv: Server, url: str) -> None:
    made: list[str] = []
    codes: dict[int, int] = {}
    stop = threading.Event()
    lock = threading.Lock()

    def client(i: int) -> None:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            while not stop.is_set():
                r = c.post("/v2.0/networks", json={"network": {"name": f"fp-rs-{i}"}})
                with lock:
                    codes[r.status_code] = codes.get(r.status_code, 0) + 1
                    if r.status_code == 201:
                        made.append(r.json()["network"]["id"])
                    else:
                        assert r.json()["NeutronError"]["type"] == "ServiceUnavailable", r.text
    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)

        def a_request_refused() -> None:  # on a busy machine 1 s may see no request end
            deadline = time.monotonic() + 30
            while not codes.get(503):
                assert time.monotonic() < deadline, "no request answered while it was down"
                time.sleep(0.05)
        pg.restart(down=0.5, while_down=a_request_refused)
        # the server serves again by itself
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            while c.get("/v2.0/networks", params={"limit": 1}).status_code != 200:
                assert time.monotonic() < deadline, "the server did not reconnect"
                time.sleep(0.1)
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads), "a request hung"
    print(f"answers during a restart: {codes}")
    assert set(codes) <= {201, 503}, codes
    assert codes.get(503), "the restart was not seen"
    # nothing answered 201 is lost
    with srv.db.read() as s:
        have = {n.id for n in S.list_all(s, S.Network)}
    assert set(made) <= have
    # LISTEN/NOTIFY is back: another process' commit wakes this one
    deadline = time.monotonic() + 30
    while not srv.db.notifier.connected.is_set():
        assert time.monotonic() < deadline, "LISTEN did not reconnect"
        time.sleep(0.05)
    woken = threading.Event()
    srv.db.listeners.append(woken.set)
    other = Database(url, migrate_schema=False)
    try:
        time.sleep(0.1)
        woken.clear()
        with other.tx() as s:
            s.add(S.Network(id=str(uuid.uuid4()), name="fp-rs-other"))
        assert woken.wait(10)
    finally:
        srv.db.listeners.remove(woken.set)
        other.close()
