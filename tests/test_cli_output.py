"""The native CLI as scripts and people use it (issue 26): a client command imports no server
code, ``-f table|value|json|csv|yaml`` and ``-c COLUMN`` as the openstack CLI, nothing wrapped
or cut when piped, messages that name names, ``floating-ip create --wait``, help on every
option. Each call is the installed ``floatip`` with its output piped, as a script runs it."""
from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest
import yaml

from floatip.server import Server, free_port

EXE = os.path.join(os.path.dirname(sys.executable), "floatip")
# what a client command must not load: the server, its web and database stacks, the kernel's
SERVER_STACK = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "pyroute2",
                "ovsdbapp", "keystonemiddleware", "oslo_policy", "floatip.server",
                "floatip.api", "floatip.store", "floatip.service", "floatip.dataplane",
                "floatip.agent", "floatip.backends",
                # nor what only some commands need, each a tenth of a call or more (<= 0.3 s):
                # pydantic (typer >= 0.26 coerces through it), httpx, yaml (-f yaml),
                # importlib.metadata (--version), the state model (local commands)
                "pydantic", "httpx", "httpcore", "yaml", "importlib.metadata",
                "floatip.core.layout", "floatip.core.model")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("cl-out") / "floatip.db"
    srv = Server(f"sqlite:///{db}", f"127.0.0.1:{free_port()}", agent=False).start()
    yield srv
    srv.close()


def uniq(prefix: str) -> str:
    return f"cl{prefix}-{uuid.uuid4().hex[:8]}"


def floatip(server, *args, code: int = 0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # a pipe, no width given
    r = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120,
                       env={**env, "FLOATIP_URL": server.url})
    assert r.returncode == code, f"{args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def out(server, *args) -> str:
    return floatip(server, *args).stdout


@pytest.fixture(scope="module")
def ext(server):
    """An external network with a long name and an IPv4 and an IPv6 subnet."""
    name = uniq("ext") + "-" + "x" * 70
    out(server, "network", "create", name, "--external", "--provider-network-type", "flat",
        "--provider-physical-network", "physnet1")
    v4 = json.loads(out(server, "subnet", "create", uniq("e4"), "--network", name,
                        "--subnet-range", "203.0.113.0/24", "-f", "json"))
    v6 = json.loads(out(server, "subnet", "create", uniq("e6"), "--network", name,
                        "--subnet-range", "2001:db8:cafe:beef::/64", "--ip-version", "6",
                        "-f", "json"))
    net = json.loads(out(server, "network", "show", name, "-f", "json"))
    return {"net": net, "v4": v4, "v6": v6}


def test_a_client_command_imports_no_server_code(server):
    """`floatip network list` took 2.7 s: it imported the server, FastAPI, SQLAlchemy and
    pyroute2; then 0.4 s: httpx, pydantic, yaml. Its help and a call against the API load
    none of them."""
    typer = tuple(int(x) for x in importlib.metadata.version("typer").split(".")[:2])
    assert typer < (0, 26), "typer >= 0.26 imports pydantic: `pip install -e .` (pyproject pins it)"
    probe = ("import json, sys\n"
             "from floatip.cli.main import main\n"
             "sys.argv = ['floatip'] + sys.argv[1:]\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             f"bad = [m for m in sys.modules if m.startswith({SERVER_STACK!r})]\n"
             "print(json.dumps(bad), file=sys.stderr)\n")
    for args in (["network", "list", "--help"], ["network", "list"],
                 ["router", "list", "-f", "json"], ["port", "show", "nothing", "-f", "value"],
                 ["floating-ip", "create", "--help"], ["security-group", "rule", "list"],
                 ["subnet", "show", "nothing-by-this-name"], ["status", "--help"],
                 ["events", "--help"]):
        r = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                           text=True, timeout=60, env={**os.environ, "FLOATIP_URL": server.url})
        loaded = json.loads(r.stderr.strip().splitlines()[-1])
        assert loaded == [], f"floatip {' '.join(args)} imported {loaded}"


def test_list_in_every_format_parses(server, ext):
    net = ext["net"]
    rows = json.loads(out(server, "network", "list", "-f", "json"))
    mine = [r for r in rows if r["id"] == net["id"]]
    assert mine and mine[0]["name"] == net["name"] and mine[0]["router:external"] is True
    assert sorted(mine[0]["subnets"]) == sorted([ext["v4"]["id"], ext["v6"]["id"]])
    assert yaml.safe_load(out(server, "network", "list", "-f", "yaml")) == rows
    table = list(csv.DictReader(io.StringIO(out(server, "network", "list", "-f", "csv"))))
    assert {r["id"]: r["name"] for r in table}[net["id"]] == net["name"]
    assert list(table[0])[:2] == ["id", "name"]
    lines = out(server, "network", "list", "-f", "value", "-c", "id", "-c", "name").splitlines()
    assert f"{net['id']} {net['name']}" in lines


def test_columns_pick_fields_by_name_or_heading(server, ext):
    net = ext["net"]
    rows = json.loads(out(server, "network", "list", "-f", "json", "-c", "name", "-c", "external",
                          "-c", "mtu"))
    assert all(list(r) == ["name", "router:external", "mtu"] for r in rows)
    assert {"name": net["name"], "router:external": True, "mtu": net["mtu"]} in rows
    shown = json.loads(out(server, "subnet", "show", ext["v4"]["name"], "-f", "json",
                           "-c", "cidr", "-c", "gateway_ip"))
    assert shown == {"cidr": "203.0.113.0/24", "gateway_ip": "203.0.113.1"}
    assert out(server, "subnet", "show", ext["v6"]["id"], "-f", "value", "-c", "cidr") == \
        "2001:db8:cafe:beef::/64\n"
    one = list(csv.reader(io.StringIO(out(server, "network", "show", net["id"], "-f", "csv",
                                          "-c", "id", "-c", "subnets"))))
    assert one[0] == ["id", "subnets"] and one[1][0] == net["id"]
    assert sorted(one[1][1].split(", ")) == sorted([ext["v4"]["id"], ext["v6"]["id"]])
    assert yaml.safe_load(out(server, "network", "show", net["name"], "-f", "yaml"))["id"] == \
        net["id"]
    bad = floatip(server, "network", "list", "-c", "nosuchcolumn", code=2)
    assert "nosuchcolumn" in bad.stderr and "router:external" in bad.stderr
    floatip(server, "network", "list", "-f", "xml", code=2)


def test_piped_tables_keep_long_values_whole(server, ext):
    """Piped, a table neither wraps nor cuts: grep finds a whole UUID and name on one line."""
    net, v4, v6 = ext["net"], ext["v4"], ext["v6"]
    lines = out(server, "network", "list").splitlines()
    # a cell's values are one per line: the network's first subnet shares its line
    assert any(net["id"] in ln and net["name"] in ln and (v4["id"] in ln or v6["id"] in ln)
               for ln in lines), lines
    assert any(v4["id"] in ln for ln in lines) and any(v6["id"] in ln for ln in lines)
    lines = out(server, "subnet", "list").splitlines()
    assert any(v6["id"] in ln and "2001:db8:cafe:beef::/64" in ln and v6["network_id"] in ln
               for ln in lines)
    shown = out(server, "network", "show", net["name"]).splitlines()
    assert any(net["name"] in ln for ln in shown) and any(net["id"] in ln for ln in shown)


def test_tables_print_names_as_typed(server):
    """A name with what rich reads as markup or an emoji code is printed as it is (a table
    showed "[b]x[/b] :smile:" as a bold "x" and an emoji)."""
    name = uniq("mk") + " [b]x[/b] :smile:"
    net = json.loads(out(server, "network", "create", name, "-f", "json"))
    lines = out(server, "network", "list", "--filter", f"name={name}").splitlines()
    assert any(net["id"] in ln and name in ln for ln in lines), lines
    assert any(name in ln for ln in out(server, "network", "show", net["id"]).splitlines())


def test_messages_name_what_the_user_named(server, ext):
    name = uniq("gone")
    net = json.loads(out(server, "network", "create", name, "-f", "json"))
    said = out(server, "network", "delete", name)
    assert said.strip() == f"deleted network '{name}' ({net['id']})"
    fip = json.loads(out(server, "floating-ip", "create", ext["net"]["id"], "-f", "json"))
    said = out(server, "floating-ip", "delete", fip["floating_ip_address"])
    assert said.strip() == f"deleted floating ip '{fip['floating_ip_address']}' ({fip['id']})"


def test_messages_and_errors_print_names_as_typed(server):
    """A message or an error naming what the user named prints it as typed: "[/]" in a
    name made the delete message crash after the delete (rich read it as a closing tag)."""
    name = uniq("mk") + " [/] [red]x[/red]"
    net = json.loads(out(server, "network", "create", name, "-f", "json"))
    assert out(server, "network", "delete", name).strip() == \
        f"deleted network {name!r} ({net['id']})"
    said = floatip(server, "network", "show", name, code=1).stderr
    assert name in said and said.startswith("error "), said


def _fip_and_port(server, ext) -> tuple[str, str]:
    """A port on a tenant subnet behind a router with the external gateway."""
    net, sub, router, port = uniq("tn"), uniq("ts"), uniq("r"), uniq("vm")
    out(server, "network", "create", net)
    out(server, "subnet", "create", sub, "--network", net, "--subnet-range", "100.64.26.0/24")
    out(server, "router", "create", router, "--external-gateway", ext["net"]["id"])
    out(server, "router", "add-interface", router, "--subnet", sub)
    pid = json.loads(out(server, "port", "create", port, "--network", net, "-f", "json"))["id"]
    return pid, router


def _report_when_created(server, address: str, status: dict) -> threading.Thread:
    """Play the agent: report ``status`` for the floating IP ``address`` once it exists."""
    def run():
        with httpx.Client(base_url=server.url, timeout=10) as c:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                found = c.get("/v2.0/floatingips",
                              params={"floating_ip_address": address}).json()["floatingips"]
                if found:
                    c.post("/floatip/v1/status",
                           json={"floatingips": {found[0]["id"]: status}}).raise_for_status()
                    return
                time.sleep(0.05)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_floating_ip_create_waits_for_the_agent(server, ext):
    net = ext["net"]["id"]
    port, _ = _fip_and_port(server, ext)
    # without a port it would wait forever: refused before anything is created
    r = floatip(server, "floating-ip", "create", net, "--wait", code=2)
    assert "--port" in r.stderr
    # no agent: DOWN until the timeout, exit 1 naming it
    r = floatip(server, "floating-ip", "create", net, "--port", port, "--wait", "--timeout",
                "1", "--floating-ip-address", "203.0.113.61", code=1)
    assert "'203.0.113.61'" in r.stderr and "still DOWN after 1 s" in r.stderr
    floatip(server, "floating-ip", "delete", "203.0.113.61")
    # the agent says ACTIVE: the floating IP is printed, ACTIVE
    t = _report_when_created(server, "203.0.113.62", "ACTIVE")
    f = json.loads(out(server, "floating-ip", "create", net, "--port", port, "--wait",
                       "--floating-ip-address", "203.0.113.62", "-f", "json"))
    t.join()
    assert f["status"] == "ACTIVE" and f["floating_ip_address"] == "203.0.113.62"
    floatip(server, "floating-ip", "delete", "203.0.113.62")
    # ERROR: exit 1 with the agent's reason
    t = _report_when_created(server, "203.0.113.63",
                             {"status": "ERROR", "reason": "cl: no route to the gateway"})
    r = floatip(server, "floating-ip", "create", net, "--port", port, "--wait",
                "--floating-ip-address", "203.0.113.63", code=1)
    t.join()
    assert "is ERROR: cl: no route to the gateway" in r.stderr and "203.0.113.63" in r.stderr


def test_every_option_has_help():
    """A test walks every command's options: none without help text."""
    import typer

    from floatip.cli.main import app
    missing = []

    def walk(cmd, path: str) -> None:
        for p in cmd.params:
            if p.param_type_name == "option" and not p.hidden and not (p.help or "").strip():
                missing.append(f"{path} {p.opts[-1]}")
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}")
    walk(typer.main.get_command(app), "floatip")
    assert not missing, "options without help:\n" + "\n".join(sorted(missing))


def test_the_lazy_loader_knows_the_commands_and_global_options():
    """main.MODULES names only commands that exist, and each command path loads the module
    that registers it; VALUED is every global option that takes a value (else its value would
    be read as a command name and the call would load every module: slow, not wrong)."""
    import typer

    from floatip.cli import main as M
    root = typer.main.get_command(M.app)
    for path, module in M.MODULES.items():
        group, _, sub = path.partition(" ")
        assert group in root.commands, f"MODULES names {path!r}: no such command"
        assert not sub or sub in root.commands[group].commands, path
        assert M.modules_for([*path.split(), "ARG", "--help"]) == {module}
    assert M.modules_for(["port"]) == {"resources", "plug"}
    assert M.modules_for(["--nat-driver", "iptables", "network", "show", "x"]) == {"resources"}
    valued = {p.opts[0] for p in root.params if p.param_type_name == "option" and not p.is_flag}
    assert valued == set(M.VALUED)
