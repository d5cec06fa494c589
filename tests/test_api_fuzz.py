"""Schemathesis against the live server (``serve --no-agent``: ``Server(agent=False)``) on SQLite
and PostgreSQL: requests generated from ``/openapi.json`` (every path, body and query filter,
valid and invalid values), none may get a 5xx.

The schemathesis command runs as a client in a subprocess, as against any server. Item paths
get the ids of a real topology (GET and PUT) so the generated bodies reach the service rules
instead of stopping at 404; DELETE gets generated ids. FLOATIP_FUZZ_EXAMPLES (default 12) sets
the examples per operation and phase, FLOATIP_FUZZ_SEED repeats a run.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx

from test_api import Topo, db_url, ok, server  # noqa: F401 (fixtures)

EXAMPLES = int(os.environ.get("FLOATIP_FUZZ_EXAMPLES", "12"))
MIN_CASES = 500  # per database: at least 1,000 in all


def schemathesis() -> str:
    return os.path.join(os.path.dirname(sys.executable), "schemathesis")


def config_for(server) -> str:
    """``schemathesis.toml``: the ids of a topology for the item paths."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        t = Topo(c, tenant_cidr="100.64.50.0/24", pool=("203.0.113.90", "203.0.113.99"))
        vm = t.port()
        fip = ok(t.fip(port_id=vm["id"]), 201)["floatingip"]
    ids = {"networks": t.net["id"], "subnets": t.subnet["id"], "ports": vm["id"],
           "routers": t.router["id"], "floatingips": fip["id"]}
    return "\n".join(f'[[operations]]\ninclude-path-regex = "^/v2.0/{coll}/"\n'
                     f'include-method = ["GET", "PUT"]\nparameters = {{ rid = "{rid}" }}\n'
                     for coll, rid in ids.items())


def test_no_server_errors(server, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(config_for(server))
    seed = os.environ.get("FLOATIP_FUZZ_SEED")
    cmd = [schemathesis(), "--no-color", "--config-file", str(config), "run",
           f"{server.url}/openapi.json", "--checks", "not_a_server_error",
           "--phases", "coverage,fuzzing", "--max-examples", str(EXAMPLES),
           # one worker: schemathesis' generator is not reliably thread-safe here
           "--workers", "1", "--request-timeout", "30", "--suppress-health-check", "all",
           *(["--seed", seed] if seed else [])]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-20000:]
    cases = re.search(r"(\d+) generated", out)
    assert cases and int(cases.group(1)) >= MIN_CASES, out[-3000:]
    print(f"\nschemathesis: {cases.group(0)} against {server.db.engine.dialect.name}")
