"""``make tempest``: OpenStack's Tempest (``tempest.api.network``, IPv4 and IPv6) and Neutron's own
API suite (neutron-tempest-plugin's ``neutron_tempest_plugin.api``) against floatip.

A throw-away Keystone (tests/keystoneserver.py), a floatip server with auth_strategy =
keystone on a free loopback port (SQLite, agent off: these are API tests), the catalog's
``network`` endpoint pointing at it, an external network for Tempest, then ``tempest run``
from its own virtualenv (``make tempest-venv``): both suites in one run, so one Keystone and
one server serve them. Each is told only the extensions floatip lists; tests/tempest/exclude.txt
leaves out (with why) those that run regardless and need what floatip has not got. Prints the
counts per suite; exit status 1 on any failure. ``TEMPEST_REGEX`` narrows the run,
``TEMPEST_EXCLUDE`` leaves more tests out, ``TEMPEST_CONCURRENCY`` (default 3).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent / "src"))

import keystoneserver  # noqa: E402
import pgserver  # noqa: E402
from floatip.api.auth import AuthSettings  # noqa: E402
from floatip.server import Server, free_port  # noqa: E402
from floatip.service import dns  # noqa: E402

TVENV = Path(os.environ.get("FLOATIP_TEMPEST_VENV", HERE.parent.parent / ".venv-tempest"))
REGEX = os.environ.get("TEMPEST_REGEX",
                       r"^(tempest\.api\.network\.|neutron_tempest_plugin\.api\.)")
EXCLUDE = os.environ.get("TEMPEST_EXCLUDE", r"^$")
SUITES = {"tempest": "tempest.api.network.", "neutron-tempest-plugin": "neutron_tempest_plugin."}
RESULT = re.compile(r"^\{\d+\} (?:(?:setUpClass|tearDownClass) \()?(\S+?)\)?(?: \[[^]]*\])? "
                    r"\.\.\. (ok|FAILED|SKIPPED)")


def per_suite(out: str) -> str:
    """passed/failed/skipped of each suite, from `tempest run`'s per-test lines."""
    counts = {name: {"ok": 0, "FAILED": 0, "SKIPPED": 0} for name in SUITES}
    for line in out.splitlines():
        m = RESULT.match(line)
        for name, prefix in SUITES.items():
            if m and m.group(1).startswith(prefix):
                counts[name][m.group(2)] += 1
    return "\n".join(f"{name}: {c['ok']} passed, {c['FAILED']} failed, {c['SKIPPED']} skipped"
                     for name, c in counts.items())


def main() -> int:
    why = keystoneserver.missing()
    if why or not (TVENV / "bin/tempest").exists():
        print(why or f"{TVENV}/bin/tempest missing: run `make tempest-venv`", file=sys.stderr)
        return 2
    ws = Path(tempfile.mkdtemp(prefix="fk-tempest-"))
    t0 = time.monotonic()
    # Keystone on PostgreSQL with several threads: Tempest creates a project and users per
    # test class, and one SQLite writer made Keystone the bottleneck. One process, so that
    # its in-process cache stays coherent (tests/keystoneserver.py)
    pg = pgserver.PgServer().start() if not pgserver.missing() else None
    with contextlib.ExitStack() as stack:
        if pg is not None:
            stack.callback(pg.stop)
            url = stack.enter_context(pgserver.fresh_database(pg.url))
            ks = keystoneserver.Keystone(url, threads=4)
        else:
            ks = keystoneserver.Keystone()
        return run(ws, ks, t0)


def run(ws: Path, ks, t0: float) -> int:
    ks.start()
    srv = None
    # as Neutron's gate ([DEFAULT] dns_domain = openstackgate.local): under the default
    # openstacklocal a port's dns_name is not kept, and the dns-integration tests expect it
    dns.DNS_DOMAIN = "openstackgate.local."
    try:
        srv = Server(f"sqlite:///{ws}/floatip.db", f"127.0.0.1:{free_port()}", agent=False,
                     auth=AuthSettings("keystone", ks.authtoken())).start()
        ks.set_network_endpoint(srv.url)
        admin = httpx.Client(base_url=srv.url, headers={"X-Auth-Token": ks.token()}, timeout=60)
        net = admin.post("/v2.0/networks", json={"network": {
            "name": "public", "router:external": True, "provider:network_type": "flat",
            "provider:physical_network": "physnet1"}}).json()["network"]
        admin.post("/v2.0/subnets", json={"subnet": {
            "network_id": net["id"], "name": "public-subnet", "cidr": "203.0.113.0/24",
            "ip_version": 4, "gateway_ip": "203.0.113.1", "enable_dhcp": False,
            "allocation_pools": [{"start": "203.0.113.10", "end": "203.0.113.250"}]}}
        ).raise_for_status()
        exts = ",".join(sorted(e["alias"] for e in
                               admin.get("/v2.0/extensions").json()["extensions"]))
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        env.pop("OS_CLOUD", None)
        name = ws.name  # tempest init registers workspaces by name in ~/.tempest
        subprocess.run([str(TVENV / "bin/tempest"), "init", "--name", name, str(ws / "ws")],
                       env=env, check=True, capture_output=True)
        conf = (HERE / "tempest.conf.in").read_text()
        for key, value in {"WS": str(ws / "ws"), "ADMIN_PASSWORD": ks.admin_password,
                           "KEYSTONE": ks.url, "PUBLIC_NET_ID": net["id"],
                           "PUBLIC_NET_NAME": "public", "API_EXTENSIONS": exts}.items():
            conf = conf.replace(f"@{key}@", value)
        cf = ws / "ws" / "etc" / "tempest.conf"
        cf.write_text(conf)
        cf.chmod(0o600)
        print(f"setup {time.monotonic() - t0:.0f}s; floatip {srv.url}, keystone {ks.url}; "
              f"extensions {exts}", flush=True)
        t1 = time.monotonic()
        r = subprocess.run([str(TVENV / "bin/tempest"), "run", "--config-file", str(cf),
                            "--regex", REGEX, "--exclude-regex", EXCLUDE,
                            "--exclude-list", str(HERE / "exclude.txt"), "--concurrency",
                            os.environ.get("TEMPEST_CONCURRENCY", "3")],
                           cwd=ws / "ws", env=env, capture_output=True, text=True)
        out = r.stdout + r.stderr
        (ws / "tempest-out.log").write_text(out)
        # per-route latency, to see which floatip endpoint a slow run spent its time in
        (ws / "floatip-metrics.txt").write_text(admin.get("/metrics").text)
        lines = out.splitlines()
        for i, line in enumerate(lines):  # each failure with its traceback, for CI logs
            if line.endswith("... FAILED"):
                print("\n".join(lines[i:i + 60]))
        totals = re.search(r"Totals\n=+\n(.*?)\n\n", out, re.S)
        print(totals.group(1) if totals else out[-3000:])
        print(per_suite(out))
        print(f"tempest run {time.monotonic() - t1:.0f}s (setup {t1 - t0:.0f}s); "
              f"log {ws}/tempest-out.log", flush=True)
        return 0 if r.returncode == 0 else 1
    finally:
        subprocess.run([str(TVENV / "bin/tempest"), "workspace", "remove", "--name", ws.name],
                       capture_output=True)
        if srv is not None:
            srv.close()
        ks.stop()
        if os.environ.get("FLOATIP_KEEP_TEMPEST") is None:
            shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
