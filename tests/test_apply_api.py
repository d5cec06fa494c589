"""``floatip apply FILE`` through the API as a ``kubectl apply`` user expects: the whole file
checked first (every error listed, nothing changed), a failure mid-way undone, ``diff`` and
``apply --dry-run`` that print the plan and change nothing, ``delete -f FILE`` that removes
the file's objects and nothing else. A real server on a throw-away SQLite database, the real
CLI in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import httpx
import pytest
import yaml

from floatip.server import Server, free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("ap-apply") / "floatip.db"
    srv = Server(f"sqlite:///{db}", f"127.0.0.1:{free_port()}", agent=False).start()
    yield srv
    srv.close()


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def tag() -> str:
    return f"ap{uuid.uuid4().hex[:6]}"


def cli(server, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLOATIP_URL": server.url, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "floatip.cli.main", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def write(tmp_path, doc) -> str:
    f = tmp_path / f"{tag()}.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(f)


def names(api, t: str) -> dict[str, list[str]]:
    """Every object whose name carries the test's tag, and the floating IPs."""
    out = {}
    for coll in ("networks", "subnets", "ports", "routers", "security-groups"):
        items = api.get(f"/v2.0/{coll}").json()[coll.replace("-", "_")]
        out[coll] = sorted(o["name"] for o in items if t in (o.get("name") or ""))
    out["floatingips"] = sorted(f["floating_ip_address"]
                                for f in api.get("/v2.0/floatingips").json()["floatingips"])
    return out


def external(api, t: str, cidr: str, pool: tuple[str, str]) -> dict:
    net = api.post("/v2.0/networks", json={"network": {
        "name": f"{t}-ext", "router:external": True}}).json()["network"]
    base = cidr.rsplit(".", 1)[0]
    r = api.post("/v2.0/subnets", json={"subnet": {
        "name": f"{t}-extsub", "network_id": net["id"], "cidr": cidr, "ip_version": 4,
        "gateway_ip": f"{base}.1", "allocation_pools": [{"start": pool[0], "end": pool[1]}]}})
    assert r.status_code == 201, r.text
    return net


def seed(t: str, octet: int) -> dict:
    """A tenant network behind a router on the test's external network, a VM port with a
    floating IP, a security group."""
    return {
        "networks": [{"name": f"{t}-net"}],
        "subnets": [{"name": f"{t}-sub", "network": f"{t}-net",
                     "cidr": f"100.64.{octet}.0/24"}],
        "security_groups": [{"name": f"{t}-web", "rules": [{"protocol": "tcp",
                                                             "dst_port": "8080"}]}],
        "ports": [{"name": f"{t}-vm", "network": f"{t}-net", "fixed_ip": f"100.64.{octet}.5",
                   "security_groups": [f"{t}-web"]}],
        "routers": [{"name": f"{t}-r", "external_gateway_info": {"network": f"{t}-ext"},
                     "interfaces": [f"{t}-sub"]}],
        "floatingips": [{"floating_ip_address": f"203.0.113.{octet}", "port": f"{t}-vm",
                         "floating_network": f"{t}-ext"}],
    }


def broken(t: str, octet: int, defect: str) -> dict:
    doc = seed(t, octet)
    if defect == "duplicate fixed IP":
        doc["ports"].append({"name": f"{t}-vm2", "network": f"{t}-net",
                             "fixed_ip": f"100.64.{octet}.5"})
    elif defect == "misspelt reference":
        doc["ports"][0]["network"] = f"{t}-nte"
    elif defect == "overlapping subnets":
        doc["subnets"].append({"name": f"{t}-sub2", "network": f"{t}-net",
                               "cidr": f"100.64.{octet}.128/25"})
    elif defect == "misspelt key":
        doc["subnets"][0]["cdir"] = doc["subnets"][0].pop("cidr")
    return doc


EXPECTED = {"duplicate fixed IP": ["IpAddressAlreadyAllocated", "100.64.{o}.5"],
            "misspelt reference": ["'{t}-nte'", "did you mean '{t}-net'"],
            "overlapping subnets": ["100.64.{o}.128/25", "overlaps with another subnet"],
            "misspelt key": ["unknown key 'cdir'", "did you mean 'cidr'", "subnets[0]"]}


@pytest.mark.parametrize("defect", list(EXPECTED))
def test_a_half_done_file_changes_nothing(server, api, tmp_path, defect):
    """Each file the issue found leaving resources behind: exit 2, the error named with its
    place, and not one of the file's objects in the API."""
    t, octet = tag(), 30 + list(EXPECTED).index(defect)
    external(api, t, "203.0.113.0/24", ("203.0.113.200", "203.0.113.220"))
    before = names(api, t)
    r = cli(server, "apply", write(tmp_path, broken(t, octet, defect)))
    assert names(api, t) == before, r.stdout + r.stderr
    assert r.returncode == 2, r.stdout + r.stderr
    for text in EXPECTED[defect]:
        assert text.format(t=t, o=octet) in r.stderr, r.stderr
    assert "nothing was changed" in r.stderr


def test_every_error_of_a_file_is_listed_at_once(server, api, tmp_path):
    t = tag()
    external(api, t, "203.0.113.0/24", ("203.0.113.200", "203.0.113.220"))
    doc = seed(t, 40)
    doc["ports"].append({"name": f"{t}-vm2", "network": f"{t}-net", "fixed_ip": "100.64.40.5"})
    doc["subnets"].append({"name": f"{t}-sub2", "network": f"{t}-net",
                           "cidr": "100.64.40.128/25"})
    doc["routers"][0]["interfaces"] = [f"{t}-sbu"]
    doc["floatingips"][0]["prot"] = doc["floatingips"][0].pop("port")
    before = names(api, t)
    r = cli(server, "apply", write(tmp_path, doc))
    assert r.returncode == 2, r.stdout + r.stderr
    # the keys first: a file whose form is wrong is not read further
    assert "floatingips[0] (203.0.113.40): unknown key 'prot'; did you mean 'port'?" \
        in r.stderr, r.stderr
    del doc["floatingips"][0]["prot"]
    r = cli(server, "apply", write(tmp_path, doc))
    assert r.returncode == 2
    for text in ("IpAddressAlreadyAllocated", "overlaps with another subnet",
                 f"subnet '{t}-sbu' is neither in the file nor in the API; did you mean "
                 f"'{t}-sub'?", "3 error(s)"):
        assert text in r.stderr, r.stderr
    assert names(api, t) == before


def test_a_failure_the_check_cannot_see_is_undone(server, api, tmp_path):
    """The external pool has one free address: the router's gateway takes it, the floating
    IP (its address left to the API) finds none. Everything the run made is undone."""
    t = tag()
    ext = external(api, t, "203.0.113.0/24", ("203.0.113.230", "203.0.113.230"))
    doc = seed(t, 50)
    del doc["floatingips"][0]["floating_ip_address"]
    before = names(api, t)
    r = cli(server, "apply", write(tmp_path, doc))
    assert names(api, t) == before, r.stdout + r.stderr
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ExternalIpAddressExhausted" in r.stderr, r.stderr
    for undone in (f"rolled back: removed router {t}-r interface on subnet {t}-sub",
                   f"rolled back: deleted router {t}-r", f"rolled back: deleted port {t}-vm",
                   f"rolled back: deleted network {t}-net",
                   "everything it created was undone"):
        assert undone in r.stderr, r.stderr
    assert api.get(f"/v2.0/networks/{ext['id']}").status_code == 200


def test_diff_and_dry_run_print_the_plan_and_change_nothing(server, api, tmp_path):
    t = tag()
    external(api, t, "203.0.113.0/24", ("203.0.113.200", "203.0.113.220"))
    doc = seed(t, 60)
    f = write(tmp_path, doc)
    before = names(api, t)
    r = cli(server, "diff", f)
    assert r.returncode == 1, r.stdout + r.stderr
    for line in (f"network {t}-net created (dry run)", f"router {t}-r created (dry run)",
                 "floating IP 203.0.113.60 created (dry run)"):
        assert line in r.stdout, r.stdout
    r = cli(server, "apply", "--dry-run", "--json", f)
    assert r.returncode == 0, r.stdout + r.stderr
    plan = json.loads(r.stdout)
    assert plan["dry_run"] and f"port {t}-vm" in plan["created"] and not plan["unchanged"]
    assert names(api, t) == before
    r = cli(server, "apply", f)
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli(server, "diff", f)
    assert r.returncode == 0 and "created" not in r.stdout and "updated" not in r.stdout, \
        r.stdout + r.stderr
    # a change apply can make is planned, one it cannot is refused as such
    doc["networks"][0]["description"] = "changed"
    r = cli(server, "diff", write(tmp_path, doc))
    assert r.returncode == 1 and f"network {t}-net updated (dry run)" in r.stdout, r.stdout
    net = api.get("/v2.0/networks", params={"name": f"{t}-net"}).json()["networks"][0]
    assert net["description"] == ""
    doc["subnets"][0]["cidr"] = "100.64.61.0/24"
    r = cli(server, "apply", write(tmp_path, doc))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "cidr is '100.64.60.0/24' in the API and '100.64.61.0/24' in the file: apply " \
           "cannot change it" in r.stderr, r.stderr
    sub = api.get("/v2.0/subnets", params={"name": f"{t}-sub"}).json()["subnets"][0]
    assert sub["cidr"] == "100.64.60.0/24"
    assert api.get("/v2.0/networks", params={"name": f"{t}-net"}).json()["networks"][0][
        "description"] == ""


def test_delete_f_removes_what_apply_made_and_nothing_else(server, api, tmp_path):
    t = tag()
    ext = external(api, t, "203.0.113.0/24", ("203.0.113.200", "203.0.113.220"))
    f = write(tmp_path, seed(t, 70))
    r = cli(server, "apply", f)
    assert r.returncode == 0, r.stdout + r.stderr
    other = api.post("/v2.0/networks", json={"network": {"name": f"{t}-other"}}).json()
    made = names(api, t)
    assert made["routers"] == [f"{t}-r"] and "203.0.113.70" in made["floatingips"]
    r = cli(server, "delete", "-f", f)
    assert r.returncode == 0, r.stdout + r.stderr
    left = names(api, t)
    assert left["networks"] == sorted([f"{t}-ext", f"{t}-other"])
    assert left["subnets"] == [f"{t}-extsub"]
    assert not left["ports"] and not left["routers"] and not left["security-groups"]
    assert "203.0.113.70" not in left["floatingips"]
    assert api.get(f"/v2.0/networks/{other['network']['id']}").status_code == 200
    assert api.get(f"/v2.0/networks/{ext['id']}").status_code == 200
    r = cli(server, "delete", "-f", f)  # again: nothing left to delete, nothing fails
    assert r.returncode == 0 and "deleted" not in r.stdout and "not found" in r.stdout
