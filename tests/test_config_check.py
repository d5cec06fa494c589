"""Configuration checked at start (issue 26): unknown keys and sections, bad values, the
global options; ``floatip status`` against an agent that never passed; ``--version``, ``-h``.
Every ``floatip`` here is a real process, as an operator runs it."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from floatip.cli.config import load
from floatip.core.errors import NeutronError
from floatip.server import Server, free_port

EXE = os.path.join(os.path.dirname(sys.executable), "floatip")


def floatip(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout)


def refused(r: subprocess.CompletedProcess, *words: str) -> str:
    """Exit non-zero with a message naming ``words``, and no traceback."""
    text = r.stdout + r.stderr
    assert r.returncode != 0, text
    assert "Traceback" not in text, text
    for w in words:
        assert w in text, (w, text)
    return text


def test_unknown_keys_and_sections_stop_serve_before_it_serves(tmp_path):
    db = tmp_path / "floatip.db"
    conf = tmp_path / "floatip.conf"
    conf.write_text(f"[DEFAULT]\nbind_prot = {free_port()}\nagent = false\n"
                    f"[database]\nconnection = sqlite:///{db}\n"
                    "[databse]\nconnection = sqlite:////tmp/elsewhere.db\n"
                    "[keystone_authtoken]\nauth_url = http://127.0.0.1:5000/v3\n"
                    "usrname = floatip\n"
                    "[securitygroup]\nfirewall_drvier = noop\n")
    text = refused(floatip("serve", "--config", str(conf)), "bind_prot", "[databse]",
                   "usrname", "firewall_drvier", "did you mean 'bind_port'",
                   "did you mean 'username'", "did you mean 'firewall_driver'")
    assert "[keystone_authtoken]" in text and "[securitygroup]" in text
    assert not db.exists()  # stopped before it opened (or created) its database


def test_the_keys_neutron_conf_uses_are_accepted(tmp_path):
    conf = tmp_path / "floatip.conf"
    conf.write_text("[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = 9797\nauth_strategy = "
                    "keystone\nagent = yes\nagent_process = off\ninterval = 2.5\nprune = known\n"
                    "[database]\nconnection = sqlite:////tmp/x.db\n"
                    "[keystone_authtoken]\nwww_authenticate_uri = http://k:5000/v3\n"
                    "auth_url = http://k:5000/v3\nauth_type = password\nusername = floatip\n"
                    "password = p\nproject_name = service\nuser_domain_name = Default\n"
                    "project_domain_name = Default\nregion_name = RegionOne\n"
                    "memcached_servers = 127.0.0.1:11211\nservice_token_roles_required = true\n"
                    "[agent]\nshared_secret = s\n[oslo_policy]\npolicy_file =\n"
                    "[securitygroup]\nfirewall_driver = noop\n"
                    "[quotas]\nquota_network = 5\nquota_security_group_rule = -1\n")
    cfg = load(str(conf))
    cfg.check()
    assert cfg.auth().keystone_authtoken["region_name"] == "RegionOne"
    assert not cfg.bool("DEFAULT", "agent_process") and cfg.bool("DEFAULT", "agent")
    # another auth plugin has its own options
    conf.write_text("[keystone_authtoken]\nauth_type = v3applicationcredential\n"
                    "auth_url = http://k:5000/v3\napplication_credential_id = a\n"
                    "application_credential_secret = s\n")
    load(str(conf))
    conf.write_text("[keystone_authtoken]\nauth_type = password\napplication_credential_id = a\n")
    with pytest.raises(NeutronError, match="application_credential_id"):
        load(str(conf))


@pytest.mark.parametrize("args, words", [
    (["serve", "--prune", "nown"], ["prune", "'nown'", "did you mean 'known'"]),
    (["serve", "--listen", "127.0.0.1:99999"], ["bind_port", "99999", "1-65535"]),
    (["--bridge-mapping", "physnet1:br-ex", "--bridge-mapping", "physnet1:br-ex2", "serve"],
     ["physnet1", "already mapped"]),
    (["--nat-driver", "pf", "serve"], ["--nat-driver", "'pf'"]),
    (["serve", "--backend", "kernl"], ["backend = 'kernl'", "did you mean 'kernel'"]),
])
def test_bad_option_values_are_refused_at_start(tmp_path, args, words):
    """``--prune nown`` used to give an API that served while its agent crash-looped; the
    others served, or failed later with a traceback."""
    db = tmp_path / "floatip.db"
    listen = [] if "--listen" in args else ["--listen", f"127.0.0.1:{free_port()}"]
    refused(floatip(*args, "--db", f"sqlite:///{db}", "--no-agent", *listen), *words)
    assert not db.exists()


def test_a_bad_value_in_the_config_file_stops_serve(tmp_path):
    db = tmp_path / "floatip.db"
    conf = tmp_path / "floatip.conf"
    conf.write_text(f"[DEFAULT]\nbind_port = {free_port()}\nagent = maybe\n"
                    f"[database]\nconnection = sqlite:///{db}\n")
    refused(floatip("serve", "--config", str(conf)), "[DEFAULT] agent", "'maybe'", "boolean")
    assert not db.exists()


@pytest.mark.parametrize("line, words", [
    ("agent_process = 2", "agent_process = '2': not a boolean"),
    ("bind_port = 0", "bind_port = '0': a port number, 1-65535"),
    ("bind_port = http", "bind_port = 'http'"),
    ("interval = -5", "interval = '-5': seconds, more than 0"),
    ("interval = nan", "interval = 'nan'"),
    ("auth_strategy = keystnoe", "did you mean 'keystone'"),
    ("global_physnet_mtu = 15OO", "global_physnet_mtu = '15OO': an MTU, 68-9216"),
    ("dns_domain = bad_domain", "dns_domain = 'bad_domain': 'bad_domain' not a valid PQDN"),
])
def test_bad_values_in_the_config_file_are_named(tmp_path, line, words):
    conf = tmp_path / "floatip.conf"
    conf.write_text(f"[DEFAULT]\n{line}\n")
    with pytest.raises(NeutronError) as e:
        load(str(conf)).check()
    assert words in str(e.value)


def test_agent_command_refuses_a_bad_prune():
    refused(floatip("agent", "--server", "http://127.0.0.1:9", "--prune", "nown"), "nown")


def test_status_of_an_agent_that_never_passed(tmp_path):
    """``floatip status`` used to crash (KeyError: 'last_pass_at') while the agent process
    had not reported a pass: here it never does (it stops at start, as a bad prune scope
    given to the server itself makes it)."""
    srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}", agent=True,
                 agent_process=True, prune_scope="nown", interval=3600,
                 agent_options={"dhcp": False, "metadata": False,
                                "run_dir": str(tmp_path / "run")}).start()
    try:
        deadline = time.monotonic() + 60
        while srv.backend.restarts < 1:  # the agent process died at least once
            assert time.monotonic() < deadline
            time.sleep(0.2)
        r = floatip("status", "--url", srv.url)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
        assert "last pass never" in r.stdout and "0 passes" in r.stdout, r.stdout
        r = floatip("status", "--url", srv.url, "--json")
        assert r.returncode == 0 and '"agent"' in r.stdout, r.stderr
    finally:
        srv.close()


def test_version_and_short_help():
    r = floatip("--version")
    assert r.returncode == 0 and r.stdout.startswith("floatip ") and r.stdout.split()[1][0] \
        .isdigit(), r.stdout + r.stderr
    for args in (["-h"], ["serve", "-h"], ["network", "create", "-h"]):
        r = floatip(*args)
        assert r.returncode == 0 and "Usage:" in r.stdout and "--help" in r.stdout, (args, r)
