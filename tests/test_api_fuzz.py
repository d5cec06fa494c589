"""Schemathesis against live ``floatip serve --no-agent`` servers, one on SQLite and one on
PostgreSQL, fuzzed side by side: requests generated from ``/openapi.json`` (every path, body and
query filter, valid and invalid values). None may get a 5xx, and every answer must be one the
document declares (status code, content type, body schema): the document describes the API for
real.

Server and schemathesis are separate processes, as a user runs them. Item paths get the ids
of a real topology (GET and PUT) so the generated bodies reach the service rules instead of
stopping at 404; DELETE gets generated ids. FLOATIP_FUZZ_EXAMPLES (default 5) sets the examples
per operation of the fuzzing phase; FLOATIP_FUZZ_SEED repeats a run.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from floatip.server import free_port
from pgserver import fresh_database
from test_api import Topo, ok

EXAMPLES = int(os.environ.get("FLOATIP_FUZZ_EXAMPLES", "5"))
MIN_CASES = 500  # per database: at least 1,000 in all
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")
BIN = os.path.dirname(sys.executable)


@pytest.fixture
def servers(tmp_path, pg_url):
    """``floatip serve --no-agent`` on SQLite and on a fresh PostgreSQL database."""
    procs, urls = [], {}
    with fresh_database(pg_url) as pg:
        try:
            for name, db in (("sqlite", f"sqlite:///{tmp_path}/floatip.db"), ("postgresql", pg)):
                url = f"http://127.0.0.1:{free_port()}"
                log = open(tmp_path / f"serve-{name}.log", "w")
                procs.append(subprocess.Popen(
                    [f"{BIN}/floatip", "serve", "--no-agent", "--db", db, "--listen",
                     url.removeprefix("http://")], stdout=log, stderr=subprocess.STDOUT))
                urls[name] = url
            for url in urls.values():
                wait_for(url)
            yield urls
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def wait_for(url: str) -> None:
    deadline = time.monotonic() + 90  # two servers start beside other test files
    while True:
        try:
            httpx.get(url, timeout=2).raise_for_status()
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def config_for(url: str) -> str:
    """``schemathesis.toml``: the ids of a topology for the item paths."""
    with httpx.Client(base_url=url, timeout=30) as c:
        t = Topo(c, tenant_cidr="100.64.50.0/24", pool=("203.0.113.90", "203.0.113.99"))
        vm = t.port()
        fip = ok(t.fip(port_id=vm["id"]), 201)["floatingip"]
        # made once and kept by the server: schemathesis' own 10 s load then never times out
        # on a busy machine (the schema took 15 s beside a full suite)
        c.get("/openapi.json", timeout=120).raise_for_status()
    ids = {"networks": t.net["id"], "subnets": t.subnet["id"], "ports": vm["id"],
           "routers": t.router["id"], "floatingips": fip["id"]}
    return "\n".join(f'[[operations]]\ninclude-path-regex = "^/v2.0/{coll}/"\n'
                     f'include-method = ["GET", "PUT"]\nparameters = {{ rid = "{rid}" }}\n'
                     for coll, rid in ids.items()) + (
        # the long poll answers at once, not after up to 55 s of an unchanged generation
        '\n[[operations]]\ninclude-path = "/floatip/v1/changes"\n'
        'parameters = { timeout = 0 }\n'
        # an undocumented method is 405, except POST on /v2.0/quotas: 501, as Neutron answers
        '\n[[operations]]\ninclude-path = "/v2.0/quotas"\n'
        'phases.coverage.unexpected-methods = ["PUT", "DELETE", "PATCH"]\n')


def test_no_server_errors_and_answers_as_documented(servers, tmp_path):
    seed = os.environ.get("FLOATIP_FUZZ_SEED")
    runs = {}
    for name, url in servers.items():
        config = tmp_path / f"schemathesis-{name}.toml"
        config.write_text(config_for(url))
        cmd = [f"{BIN}/schemathesis", "--no-color", "--config-file", str(config), "run",
               f"{url}/openapi.json", "--checks", CHECKS,
               # the stateful phase would double the time for little: item paths get real ids
               "--phases", "coverage,fuzzing", "--max-examples", str(EXAMPLES),
               # one worker: schemathesis' generator is not reliably thread-safe here
               "--workers", "1", "--request-timeout", "30", "--suppress-health-check", "all",
               *(["--seed", seed] if seed else [])]
        runs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, cwd=tmp_path)
    outputs = {}
    try:
        for name, proc in runs.items():
            outputs[name] = proc.communicate(timeout=900)[0]
    finally:
        for proc in runs.values():  # a failed or timed-out wait leaves no fuzzer behind
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    total = 0
    for name, out in outputs.items():
        log = (tmp_path / f"serve-{name}.log").read_text()
        assert runs[name].returncode == 0, \
            f"{name}:\n{out[-20000:]}\nserver log:\n{log[-5000:]}"
        cases = re.search(r"(\d+) generated", out)
        assert cases and int(cases.group(1)) >= MIN_CASES, out[-3000:]
        assert "request failed" not in log, log[-5000:]
        total += int(cases.group(1))
        print(f"\nschemathesis against {name}: {cases.group(0)}")
    assert total >= 1000
