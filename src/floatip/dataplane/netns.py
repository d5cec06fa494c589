"""Network namespaces: entering them from a long-lived worker thread (a setns, not a thread
start, per call), running programs in them (argv lists, never a shell), sysctl files."""
from __future__ import annotations

import ctypes
import fcntl
import os
import queue
import resource
import socket
import struct
import subprocess
import threading

from ..core.layout import ROUTER_SYSCTLS

NETNS_DIR = "/run/netns"


class DataplaneError(Exception):
    pass


_libc = None


def setns_fd(fd: int, what: str = "") -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        e = ctypes.get_errno()
        raise OSError(e, f"setns {what}: {os.strerror(e)}")


def setns(ns: str) -> None:
    """Move the calling thread into the named network namespace."""
    fd = os.open(os.path.join(NETNS_DIR, ns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns_fd(fd, ns)
    finally:
        os.close(fd)


class _NetnsWorker:
    """One long-lived thread that enters namespaces on request: opening a socket or reading
    /proc/sys inside a namespace costs a setns, not a thread start (100 routers: 300 fewer
    threads on a restart). It runs short calls only, one at a time."""

    def __init__(self):
        self.q: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def run(self, ns: str, fn, args):
        if threading.current_thread() is self.thread:  # nested: we are already the worker
            back = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns(ns)
                return fn(*args)
            finally:
                setns_fd(back, "back")
                os.close(back)
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="netns-worker",
                                               daemon=True)
                self.thread.start()
        done = threading.Event()
        box: list = []
        self.q.put((ns, fn, args, box, done))
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def _loop(self) -> None:
        # Back home after every call: a thread left in a namespace would keep it (and the
        # devices in it) alive after ``ip netns delete``.
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        while True:
            ns, fn, args, box, done = self.q.get()
            try:
                setns(ns)
                box.append((True, fn(*args)))
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                box.append((False, e))
            finally:
                setns_fd(home, "home")
            done.set()


_worker = _NetnsWorker()


def run_in_netns(ns: str, fn, *args):
    """Run ``fn`` in a thread that entered ``ns``: sockets it opens and /proc/sys it reads
    belong to that namespace; the rest of the process stays put."""
    return _worker.run(ns, fn, args)


# libnftables (in process) waits on its socket with select(), which aborts the process on a
# descriptor >= FD_SETSIZE (1024). Each router holds about a dozen descriptors for as long as
# it lives, so about 100 routers used the low range up: those move above it.
FD_SETSIZE = 1024


def keep_high(fd: int) -> int:
    """``fd`` moved to a number >= FD_SETSIZE (the original closed); unchanged when the
    process may not open that many files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * FD_SETSIZE and hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 64 * FD_SETSIZE), hard))
    try:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, FD_SETSIZE)
    except OSError:
        return fd
    os.close(fd)
    return high


def high_socket(family: int, type_: int, proto: int) -> socket.socket:
    """A socket whose descriptor is kept above the select() range (``keep_high``)."""
    s = socket.socket(family, type_, proto)
    return socket.socket(family, type_, proto, fileno=keep_high(s.detach()))


def open_sysctls() -> dict[str, int]:
    out = {}
    for k, _ in ROUTER_SYSCTLS:
        try:
            out[k] = keep_high(os.open("/proc/sys/" + k.replace(".", "/"),
                                       os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            pass
    return out


def write_sysctls(pairs):
    for k, v in pairs:
        with open("/proc/sys/" + k.replace(".", "/"), "w") as f:
            f.write(v)


def nsexec(ns: str, argv: list[str], input: str | None = None, check: bool = True):
    """Run a program in ``ns`` (argv list, never a shell)."""
    cmd = ["nsenter", f"--net={NETNS_DIR}/{ns}", "--", *argv]
    r = subprocess.run(cmd, input=input, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise DataplaneError(f"{' '.join(argv[:2])} in {ns} failed: {r.stderr.strip()}")
    return r


class NamespaceWatch:
    """Whether a named namespace was added, deleted or renamed since the last look: inotify
    on /run/netns (``ip netns add/del`` create and unlink a file there). Looking at every
    router's namespace identity at every pass cost ~0.6 ms per 100 routers; now only after
    an event. Without the directory or inotify, ``changed`` always says yes."""

    EVENTS = 0x100 | 0x200 | 0x40 | 0x80  # IN_CREATE | IN_DELETE | IN_MOVED_FROM | _TO
    GONE = 0x400 | 0x8000 | 0x4000        # IN_DELETE_SELF | IN_IGNORED | IN_Q_OVERFLOW

    def __init__(self):
        self.fd: int | None = None

    def _open(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return
        if libc.inotify_add_watch(fd, NETNS_DIR.encode(), self.EVENTS | 0x400) < 0:
            os.close(fd)
            return
        self.fd = keep_high(fd)

    def changed(self) -> bool:
        if self.fd is None:
            self._open()
            return True
        got = False
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return got
            if not data:
                return got
            got = True
            off = 0
            while off + 16 <= len(data):
                _, mask, _, n = struct.unpack_from("iIII", data, off)
                if mask & self.GONE:  # the directory went away: watch again next time
                    self.close()
                    return True
                off += 16 + n

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
