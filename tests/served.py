"""``floatip`` as an operator runs it: a real process, its output kept in a file for the test
to read (test_config_host, test_signals)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from cloud import stop_process

EXE = os.path.join(os.path.dirname(sys.executable), "floatip")


def floatip(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout)


def refused(r: subprocess.CompletedProcess, *words: str) -> None:
    text = r.stdout + r.stderr
    assert r.returncode != 0, text
    assert "Traceback" not in text, text
    for w in words:
        assert w in text, (w, text)


def wait_for(fn, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Served:
    """``floatip [GLOBAL...] serve --config FILE``, a real process; its output in a file."""

    def __init__(self, tmp_path, conf, *global_args: str, extra=()):
        self.path = tmp_path / "serve.log"
        with open(self.path, "w") as out:  # the child's own file offset: read by path
            self.proc = subprocess.Popen([EXE, *global_args, "serve", "--config", str(conf),
                                          *extra], stdout=out, stderr=subprocess.STDOUT)

    def up(self, url: str, timeout: float = 60) -> None:
        def answers():
            assert self.proc.poll() is None, self.output()
            try:
                return httpx.get(url + "/", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        wait_for(answers, timeout, "the server")

    def output(self) -> str:
        return self.path.read_text()

    def lines(self, *words: str) -> list[str]:
        """The output's lines holding every one of ``words``."""
        return [ln for ln in self.output().splitlines() if all(w in ln for w in words)]

    def stop(self) -> None:
        stop_process(self.proc, 30)
