"""A throw-away PostgreSQL server for the test session: ``initdb`` and ``pg_ctl`` in a
temporary directory, listening on 127.0.0.1 at a free port, removed at the end. As root the
server runs as the ``postgres`` system user (PostgreSQL refuses to run as root)."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def missing() -> str | None:
    for tool in ("initdb", "pg_ctl"):
        if _bin(tool) is None:
            return f"{tool} not installed (run `make install`)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no postgres system user to run PostgreSQL as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, synchronous_commit: bool = False):
        """``synchronous_commit``: a commit is in the write-ahead log when it returns, so a
        crash of the server (``restart``) loses none (the tests' default trades it away)."""
        self.synchronous_commit = synchronous_commit
        self.dir = tempfile.mkdtemp(prefix="floatip-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = _free_port()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.url = f"postgresql+psycopg2://floatip@127.0.0.1:{self.port}/postgres"

    def _run(self, argv: list[str]) -> None:
        kw = {"user": self.user} if os.geteuid() == 0 else {}
        r = subprocess.run(argv, capture_output=True, text=True, cwd=self.dir, **kw)
        if r.returncode:
            raise RuntimeError(f"{os.path.basename(argv[0])} failed: {r.stderr.strip()[-500:]}")

    def start(self) -> "PgServer":
        if os.geteuid() == 0:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run([_bin("initdb"), "-D", self.data, "-U", "floatip", "--auth=trust",
                   "-E", "UTF8", "--no-sync"])
        self._start()
        return self

    def _start(self) -> None:
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.dir} -c fsync=off "
                f"-c synchronous_commit={'on' if self.synchronous_commit else 'off'} "
                "-c full_page_writes=off -c max_connections=300")
        self._run([_bin("pg_ctl"), "-D", self.data, "-o", opts, "-w", "-t", "60",
                   "-l", os.path.join(self.dir, "log"), "start"])

    def restart(self, down: float = 0.0, while_down=None) -> None:
        """Stopped at once (every connection cut, as a crash), ``down`` seconds (and until
        ``while_down()`` returns: what must be seen while it is down), started."""
        import time
        self._run([_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"])
        time.sleep(down)
        try:
            if while_down is not None:
                while_down()
        finally:
            self._start()

    def stop(self) -> None:
        try:
            if os.path.exists(os.path.join(self.data, "postmaster.pid")):
                self._run([_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def fresh_database(admin_url: str):
    """A new, empty database on the server of ``admin_url``; dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    name = "floatip_test_" + uuid.uuid4().hex[:10]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
