"""The database: engine (SQLite or PostgreSQL), migrations (Alembic), one transaction per
request, and the change notification that wakes the agent: in-process listeners, and on
PostgreSQL LISTEN/NOTIFY between the processes (API servers, agents) of one database."""
from __future__ import annotations

import contextlib
import logging
import os
import select as selectors
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .queries import bump_generation, changed_keys

log = logging.getLogger("floatip.store")
IDLE_PING = 1.0  # seconds


def _record(sess: Session, _ctx, _instances=None) -> None:
    """before_flush: remember what this transaction changes (read when it commits)."""
    keys = sess.info.setdefault("changed", set())
    for obj in (*sess.new, *sess.dirty, *sess.deleted):
        keys.update(changed_keys(obj))


# ---------------------------------------------------------------------------------------
# Engine, migrations, transactions

def make_engine(url: str, autocheckpoint: bool = True) -> Engine:
    """``autocheckpoint=False``: SQLite never checkpoints its WAL on a commit (a
    ``WalCheckpointer`` does it)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # LIFO: a sequential client keeps getting the connection it last used, whose page
        # cache is warm (SQLite empties a connection's cache when another one committed)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=20, max_overflow=20, pool_use_lifo=True)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _rec):
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (pysqlite quirk)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit is a write, not an fsync
            cur.execute("PRAGMA busy_timeout=30000")
            # pages read from a mapping, not copied by read(): a connection whose cache was
            # emptied by another's commit reads its B-tree pages back cheaply
            cur.execute("PRAGMA mmap_size=268435456")
            if not autocheckpoint:
                cur.execute("PRAGMA wal_autocheckpoint=0")
            # a log started over is cut back to this size (it keeps the size it once grew to)
            cur.execute("PRAGMA journal_size_limit=33554432")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            # Writers serialize at BEGIN: no read-then-upgrade deadlock between transactions.
            # A read (Database.read) takes no lock: WAL gives it one snapshot throughout.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("floatip_read")
                                 else "BEGIN IMMEDIATE")
        return engine
    engine = create_engine(url, pool_size=20, max_overflow=20)

    # A connection back from the pool is tried first (a server restarted since cut it)
    # only when it sat there IDLE_PING seconds: a SELECT 1 before every request was one
    # round trip in ten. One in steady use fails with its request (503) when the server
    # goes; that failure empties the pool (SQLAlchemy drops every older connection).
    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn, rec):
        rec.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, rec, _proxy):
        since = rec.info.pop("idle_since", None)
        if since is not None and time.monotonic() - since > IDLE_PING:
            try:
                alive = engine.dialect.do_ping(dbapi_conn)
            except engine.dialect.loaded_dbapi.Error:
                alive = False
            if not alive:
                raise exc.DisconnectionError()  # the pool connects anew and retries
    return engine


def migrate(engine: Engine) -> None:
    """``alembic upgrade head`` with a Config built in code."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class WalCheckpointer:
    """SQLite copies its write-ahead log back into the database file (a checkpoint, with
    an fsync: 5-10 ms on a quiet disk, more on a busy one) on the connection whose commit
    took the log past 1,000 pages, and the request that made that commit waits for it.
    Here a thread of its own does it, PASSIVE (it waits for no reader or writer), ``every``
    seconds at most while commits come.

    A checkpoint alone does not bound the log: a writer starts it over only if, when it
    begins, every frame is already copied back and no reader is in the log. With commits
    coming all the time, a checkpoint outside the writers' lock is never caught up when the
    next writer begins: 10,000 pairs made by 8 clients left a 945 MB log, every page of it
    written to disk. So once the log is past ``restart_pages``, the thread takes the
    writers' ``lock`` and, if the log is then all copied back, makes the write that starts
    it over (and the fsync of its header) itself, not in a request."""

    def __init__(self, engine: Engine, lock, every: float = 0.5, restart_pages: int = 1000):
        self.engine, self.lock, self.every = engine, lock, every
        self.restart_pages = restart_pages
        self.pending, self.stopping = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="floatip-wal-checkpoint")
        self._thread.start()

    def poke(self) -> None:
        """A commit was made: a checkpoint is due within ``every`` seconds."""
        self.pending.set()

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.pending.wait()
            if self.stopping.wait(self.every):
                break
            self.pending.clear()
            self.checkpoint()

    def checkpoint(self) -> None:
        try:  # the DBAPI connection: no SQLAlchemy transaction (no BEGIN) around the pragmas
            raw = self.engine.raw_connection()
            try:
                conn = raw.driver_connection
                _, frames, _ = self._passive(conn)  # the bulk of the copy, writers going on
                if frames >= self.restart_pages:
                    with self.lock:
                        _, frames, copied = self._passive(conn)  # what came meanwhile
                        if frames == copied:
                            self._restart(conn)
            finally:
                raw.close()
        except Exception as e:  # noqa: BLE001 - the next commit pokes it again
            log.warning("WAL checkpoint failed: %s", e)

    @staticmethod
    def _passive(conn) -> tuple[int, int, int]:
        """(busy, frames in the log, frames copied back)"""
        return tuple(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())

    def _restart(self, conn) -> None:
        """A write of one page, begun with the log all copied back: SQLite starts the log
        over at it (unless a reader is still in the log: then it is appended, and the next
        round tries again)."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA user_version={int(version)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def stop(self) -> None:
        self.stopping.set()
        self.pending.set()
        self._thread.join(timeout=10)
        self.checkpoint()


CHANNEL = "floatip_changes"


class PgNotifier:
    """PostgreSQL LISTEN/NOTIFY on one connection of its own, in one thread: another
    process' commit of a change wakes this one's listeners (``Database.notify``); this
    one's commits are announced (``announce``). The change feed stays the truth: a lost
    notification (a reconnect, a restart) costs latency, never a change; after a
    (re)connection the listeners are woken once to read what they may have missed.

    Announcements are sent after the commit, outside the writer's transaction (a NOTIFY in
    it would queue every committing writer on PostgreSQL's notification lock), and
    coalesced: commits made while one is being sent are announced by the next one. The
    payload is ``token``: a process ignores its own (its listeners were told in-process)."""

    def __init__(self, engine: Engine, wake, token: str):
        self.engine, self.wake, self.token = engine, wake, token
        self.pending = threading.Event()
        self.closing = threading.Event()
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="floatip-pg-notify")
        self._thread.start()

    def announce(self) -> None:
        self.pending.set()
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._w, b"n")

    def _connect(self):
        cargs, cparams = self.engine.dialect.create_connect_args(self.engine.url)
        conn = self.engine.dialect.loaded_dbapi.connect(*cargs, **cparams)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {CHANNEL}")
        return conn

    def _run(self) -> None:
        while not self.closing.is_set():
            conn = None
            try:
                conn = self._connect()
                self.connected.set()
                self.wake()  # whatever was missed while not listening
                self._serve(conn)
            except Exception as e:  # noqa: BLE001 - reconnect: the feed is the truth
                if not self.closing.is_set():
                    log.warning("LISTEN/NOTIFY connection lost: %s; reconnecting", e)
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
            self.closing.wait(1.0)

    def _serve(self, conn) -> None:
        while not self.closing.is_set():
            ready, _, _ = selectors.select([conn, self._r], [], [], 30.0)
            if self._r in ready:
                os.read(self._r, 4096)
            if self.pending.is_set() and not self.closing.is_set():
                self.pending.clear()
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self.token))
            conn.poll()
            if conn.notifies:
                others = any(n.payload != self.token for n in conn.notifies)
                conn.notifies.clear()
                if others:
                    self.wake()

    def close(self) -> None:
        self.closing.set()
        with contextlib.suppress(OSError):
            os.write(self._w, b"x")
        self._thread.join(timeout=10)
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)


class Database:
    def __init__(self, url: str, migrate_schema: bool = True, checkpoints: bool = True,
                 token: str | None = None):
        """``checkpoints``: with a SQLite file, this process checkpoints the WAL in a thread
        of its own (``WalCheckpointer``); a process that only reads says False.
        ``token``: PostgreSQL notifications carrying it are ignored (a child process
        told of its parent's commits by the parent: the parent's token)."""
        self.url = url
        # a database only this process can open
        self.in_memory = url.startswith("sqlite") and ("///" not in url or
                                                       url.endswith(":memory:"))
        background = checkpoints and url.startswith("sqlite") and not self.in_memory
        self.engine = make_engine(url, autocheckpoint=not background)
        # SQLite has one writer at a time, and a writer that finds the lock taken sleeps in
        # SQLite's busy handler (1, 2, 5, 10 ... 100 ms steps) however soon it is freed: under
        # 8 concurrent clients most of a write's time was that sleep. Writers of this process
        # queue on a lock instead and start the moment the previous one commits (writers of
        # other processes still meet the busy timeout).
        self.write_lock = threading.RLock() if self.engine.dialect.name == "sqlite" else None
        self.checkpointer = WalCheckpointer(self.engine, self.write_lock) if background \
            else None
        if migrate_schema:
            migrate(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        event.listen(self.sessions, "after_flush",
                     lambda sess, _ctx: sess.info.__setitem__("wrote", True))
        event.listen(self.sessions, "before_flush", _record)
        self.changed = threading.Condition()
        self.generation = 0
        self.listeners: list = []          # told after every committed change
        self.resync_listeners: list = []   # asked for a full resync (POST /floatip/v1/sync?full=true)
        self.token = token or uuid.uuid4().hex
        self._soon: threading.Timer | None = None
        self.notifier = PgNotifier(self.engine, self.notify, self.token) \
            if self.engine.dialect.name == "postgresql" and \
            self.engine.dialect.driver == "psycopg2" else None

    @contextlib.contextmanager
    def tx(self, notify: bool = True) -> Iterator[Session]:
        """One transaction: committed if the block returns, rolled back if it raises.
        After a committed change the in-process listeners (the agent) are told at once;
        ``notify=False`` is for reads and for the agent's own status reports."""
        with self.write_lock or contextlib.nullcontext(), self.sessions() as s:
            with s.begin():
                yield s
                if notify and (s.new or s.dirty or s.deleted or s.info.get("wrote")):
                    s.flush()
                    bump_generation(s, s.info.get("changed", ()))
                    s.info["bumped"] = True
            bumped = s.info.get("bumped", False)
        if self.checkpointer is not None:  # not every write goes through a flush
            self.checkpointer.poke()
        if bumped:
            if self.notifier is not None:
                self.notifier.announce()
            self.notify()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction on one snapshot of the database, taking no write lock:
        REPEATABLE READ on PostgreSQL (every SELECT sees the same commit), a deferred
        transaction on SQLite (WAL: readers never block writers)."""
        with self.sessions() as s:
            opts = {"floatip_read": True}
            if self.engine.dialect.name == "postgresql":
                opts["isolation_level"] = "REPEATABLE READ"
            s.connection(execution_options=opts)
            try:
                yield s
            finally:
                s.rollback()

    def notify(self) -> None:
        with self.changed:
            self.generation += 1
            self.changed.notify_all()
        for fn in list(self.listeners):
            fn()

    def notify_soon(self, delay: float = 0.02) -> None:
        """Wake the listeners in ``delay`` seconds (one pending at a time): a reader found
        changes held back behind a writer still running (``queries.changes_held``), whose
        commit may not be announced (the agent's own status reports are not)."""
        if self._soon is not None and self._soon.is_alive():
            return
        self._soon = threading.Timer(delay, self.notify)
        self._soon.daemon = True
        self._soon.start()

    def wait(self, generation: int, timeout: float) -> int:
        with self.changed:
            self.changed.wait_for(lambda: self.generation != generation, timeout)
            return self.generation

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close()
        if self._soon is not None:
            self._soon.cancel()
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()
