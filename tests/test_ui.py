"""The topology page in headless Chromium (Debian's chromium and chromedriver, Selenium from
PyPI): it loads, draws the seed's objects, a floating IP created through the API appears
within 2 s (the change feed), an ERROR router shows its reason. A screenshot is kept in
``artifacts/`` (``FLOATIP_ARTIFACTS`` overrides). The data behind it honours the policy: a
project sees its own objects only, tracing is for admins."""
from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import httpx
import pytest

from floatip.client import Client
from floatip.server import Server, free_port

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("FLOATIP_ARTIFACTS",
                                Path(__file__).resolve().parent.parent / "artifacts"))
LIB = Path(__file__).resolve().parent.parent / "src/floatip/api/static/vendor/cytoscape.min.js"
try:
    import selenium  # noqa: F401
except ImportError:
    selenium = None
# make install provides all three (CI runs it first); a tree without them says so
needs_browser = pytest.mark.skipif(not (CHROMIUM and DRIVER and LIB.is_file() and selenium),
                                reason="needs chromium, chromium-driver, selenium and "
                                       "Cytoscape.js in the package: run make install")


@pytest.fixture
def server(tmp_path):
    srv = Server(f"sqlite:///{tmp_path}/floatip.db", f"127.0.0.1:{free_port()}",
                 agent=False).start()
    yield srv
    srv.close()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield d
    finally:
        d.quit()


def seed(c: Client, project: str) -> dict:
    """The seed's objects in ``project``: external network, router, tenant network, a VM port."""
    hdr = {"X-Project-Id": project, "X-Roles": "member,reader"}
    ext = c.create("network", name="ext-net", **{"router:external": True,
                                                  "provider:network_type": "flat",
                                                  "provider:physical_network": "physnet1"})
    c.create("subnet", network_id=ext["id"], cidr="203.0.113.0/24", ip_version=4,
             enable_dhcp=False)
    post = lambda kind, body: c.request("POST", f"/v2.0/{kind}s", json={kind: body},  # noqa: E731
                                        headers=hdr)[kind]
    net = post("network", {"name": "tenant-net"})
    sub = post("subnet", {"network_id": net["id"], "cidr": "198.51.100.0/24",
                          "ip_version": 4, "enable_dhcp": False})
    router = post("router", {"name": "router02", "external_gateway_info":
                             {"network_id": ext["id"]}})
    c.request("PUT", f"/v2.0/routers/{router['id']}/add_router_interface",
              json={"subnet_id": sub["id"]}, headers=hdr)
    vm = post("port", {"name": "vm4", "network_id": net["id"],
                       "fixed_ips": [{"ip_address": "198.51.100.84"}]})
    return {"ext": ext, "net": net, "router": router, "vm": vm, "hdr": hdr}


def js_until(d, script: str, timeout: float, *args):
    """Poll ``script`` in the page until it is truthy; (value, seconds)."""
    t0 = time.monotonic()
    while True:
        v = d.execute_script(script, *args)
        if v or time.monotonic() - t0 > timeout:
            return v, time.monotonic() - t0
        time.sleep(0.05)


@needs_browser
def test_page_shows_topology_follows_changes_and_errors(server, browser):
    c = Client(server.url)
    s = seed(c, uuid.uuid4().hex)
    rid = s["router"]["id"]
    why = "No bridge mapped for physical network physnet1 (bridge mappings: {})"
    c.report(routers={rid: {"status": "ERROR", "reason": why}})
    browser.get(server.url + "/ui/")
    ids = [s["ext"]["id"], s["net"]["id"], rid, s["vm"]["id"]]
    seen, _ = js_until(browser, "return window.cy && arguments[0].every("
                                "id => cy.getElementById(id).length === 1)", 15, ids)
    assert seen, "the page did not draw the seed's objects"
    assert browser.execute_script("return arguments[0].every(id => cy.getElementById(id)"
                                  ".length === 1)", ids)
    # the router's interface and gateway are edges; the ERROR router shows its reason
    assert browser.execute_script(f"return cy.getElementById('{rid}').connectedEdges()"
                                  ".length") == 2
    assert browser.execute_script(f"return cy.getElementById('{rid}').data('label')") \
        .endswith(why)
    row = browser.find_element("css selector", f"#objects tr[data-id='{rid}']")
    assert "ERROR" in row.text and why in row.text
    # a floating IP created through the API appears within 2 s
    fip = c.create("floatingip", floating_network_id=s["ext"]["id"], port_id=s["vm"]["id"])
    shown, took = js_until(browser, f"return cy.getElementById('{fip['id']}').length === 1", 5)
    assert shown and took < 2.0, f"the floating IP appeared after {took:.2f} s"
    assert browser.execute_script(f"return cy.getElementById('{fip['id']}')"
                                  f".connectedEdges().length") == 1  # to its port
    # the trace view of a floating IP (no agent here: no router on this host holds it)
    browser.find_element("css selector", f"#objects tr[data-id='{fip['id']}']").click()
    browser.find_element("css selector", "#detail button").click()
    said, _ = js_until(browser, "return document.getElementById('trace').textContent"
                                ".includes('NOT delivered')", 10)
    assert said, browser.find_element("css selector", "#trace").text
    assert "no floatip router on this host" in browser.find_element("css selector",
                                                                      "#trace").text
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "ui.png"))
    assert (ARTIFACTS / "ui.png").stat().st_size > 10_000
    c.close()


def test_page_data_honours_the_policy(server):
    c = Client(server.url)
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    s = seed(c, a)
    with httpx.Client(base_url=server.url, timeout=30) as h:
        other = {"X-Project-Id": b, "X-Roles": "member,reader"}
        t = h.get("/floatip/v1/topology", headers=other).json()
        assert t["routers"] == [] and t["ports"] == []
        assert [n["id"] for n in t["networks"]] == [s["ext"]["id"]]  # external: everyone's
        mine = h.get("/floatip/v1/topology", headers=s["hdr"]).json()
        assert [r["id"] for r in mine["routers"]] == [s["router"]["id"]]
        r = h.get("/floatip/v1/trace", params={"address": "203.0.113.5"}, headers=other)
        assert r.status_code == 403 and r.json()["NeutronError"]["type"] == "PolicyNotAuthorized"
        r = h.get("/floatip/v1/trace", params={"address": "x;reboot"})
        assert r.status_code == 400 and "NeutronError" in r.json()
        assert h.get("/ui/../../etc/passwd").status_code == 404
        assert h.get("/ui/").headers["content-type"].startswith("text/html")
    c.close()
