"""Daemons floatip starts in namespaces (dnsmasq, radvd): started without a shell
(``nsenter`` then the program, an argv list) with a marker in their environment, found
again through their pid files, signalled and ended by pid only. PID 1 may not reap them
here: a zombie counts as gone."""
from __future__ import annotations

import os
import signal
import subprocess
import time

from .netns import NETNS_DIR, DataplaneError


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): a pid and its start time name one
    process, never a later one that reuses the pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def pid_from_file(path: str, marker: bytes) -> int | None:
    """The pid in ``path`` when that process runs and its command line holds ``marker``
    (a pid reused by another program is not ours)."""
    try:
        with open(path) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if marker not in f.read():
                return None
    except (OSError, ValueError):
        return None
    return pid if running(pid) else None


def argv_of(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        return None


def start(ns: str, argv: list[str], env: dict[str, str], what: str) -> None:
    """Run ``argv`` in ``ns``; it daemonizes (the call returns when its parent exits)."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env}
    r = subprocess.run(["nsenter", f"--net={NETNS_DIR}/{ns}", "--", *argv],
                       capture_output=True, text=True, env=env, timeout=30)
    if r.returncode != 0:
        raise DataplaneError(f"{what} did not start: {(r.stderr or r.stdout).strip()}")


def kill(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``timeout``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not running(pid):
            return
        time.sleep(0.01)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def write_if_changed(path: str, text: str, mode: int = 0o644) -> bool:
    """Replace ``path`` atomically when its text differs; True when it was written."""
    try:
        with open(path) as f:
            if f.read() == text:
                return False
    except OSError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True
