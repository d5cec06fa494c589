"""The database: engine (SQLite or PostgreSQL), migrations (Alembic), one transaction per
request, and the in-process change notification that wakes the agent."""
from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .queries import bump_generation


# ---------------------------------------------------------------------------------------
# Engine, migrations, transactions

def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=20, max_overflow=20)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _rec):
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (pysqlite quirk)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            # Writers serialize at BEGIN: no read-then-upgrade deadlock between transactions.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        return engine
    return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """``alembic upgrade head`` with a Config built in code."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    def __init__(self, url: str, migrate_schema: bool = True):
        self.url = url
        self.engine = make_engine(url)
        if migrate_schema:
            migrate(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        event.listen(self.sessions, "after_flush",
                     lambda sess, _ctx: sess.info.__setitem__("wrote", True))
        self.changed = threading.Condition()
        self.generation = 0
        self.listeners: list = []          # told after every committed change
        self.resync_listeners: list = []   # asked for a full resync (POST /floatip/v1/sync?full=true)

    @contextlib.contextmanager
    def tx(self, notify: bool = True) -> Iterator[Session]:
        """One transaction: committed if the block returns, rolled back if it raises.
        After a committed change the in-process listeners (the agent) are told at once;
        ``notify=False`` is for reads and for the agent's own status reports."""
        with self.sessions() as s:
            with s.begin():
                yield s
                if notify and (s.new or s.dirty or s.deleted or s.info.get("wrote")):
                    bump_generation(s)
                    s.info["bumped"] = True
            bumped = s.info.get("bumped", False)
        if bumped:
            self.notify()

    def notify(self) -> None:
        with self.changed:
            self.generation += 1
            self.changed.notify_all()
        for fn in list(self.listeners):
            fn()

    def wait(self, generation: int, timeout: float) -> int:
        with self.changed:
            self.changed.wait_for(lambda: self.generation != generation, timeout)
            return self.generation

    def close(self) -> None:
        self.engine.dispose()
