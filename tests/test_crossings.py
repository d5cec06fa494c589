"""Issue 21: the checks Neutron makes in code beside its policy, through a real Keystone
(conftest's ``keystone``) as a hostile project would try them: a list ``marker`` of another
project's object, another project named in a body, a port whose ``device_id`` is another
project's router, a shared subnet's gateway taken by ``add_router_interface``, the existence of
another project's subnet told by a different error, and where a floating IP is placed
(Neutron's ``get_router_for_floatingip``; the kernel side is test_crossings_kernel.py).
Every expected answer is Neutron 29's (type, message, code)."""
from __future__ import annotations

import uuid

import httpx
import pytest

from floatip.api.auth import AuthSettings
from floatip.server import Server, free_port

from test_keystone import AGENT_SECRET, User, ok

pytestmark = [pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def cloud(keystone, tmp_path_factory):
    """floatip behind Keystone; admin; project A (member), project B (member); an external
    network; each project a network, subnet, router (gateway + interface) and port."""
    d = tmp_path_factory.mktemp("ick-ks")
    srv = Server(f"sqlite:///{d}/floatip.db", f"127.0.0.1:{free_port()}", agent=False,
                 auth=AuthSettings("keystone", keystone.authtoken(), AGENT_SECRET)).start()
    sfx = uuid.uuid4().hex[:6]
    users = {"a": User(keystone, f"ick-a-{sfx}", f"ick-pa-{sfx}", ["member"]),
             "b": User(keystone, f"ick-b-{sfx}", f"ick-pb-{sfx}", ["member"])}
    admin = httpx.Client(base_url=srv.url, headers={"X-Auth-Token": keystone.token()},
                         timeout=30)
    ext = ok(admin.post("/v2.0/networks", json={"network": {
        "name": f"ick-ext-{sfx}", "router:external": True}}), 201)["network"]
    ok(admin.post("/v2.0/subnets", json={"subnet": {
        "network_id": ext["id"], "cidr": "203.0.113.0/24", "ip_version": 4,
        "gateway_ip": "203.0.113.1",
        "allocation_pools": [{"start": "203.0.113.10", "end": "203.0.113.99"}]}}), 201)
    clients = {k: u.client(srv.url) for k, u in users.items()}
    own = {k: _project(clients[k], ext["id"], cidr)
           for k, cidr in (("a", "198.51.100.0/26"), ("b", "198.51.100.64/26"))}
    yield {"srv": srv, "users": users, "admin": admin, "ext": ext, "own": own,
           "a": clients["a"], "b": clients["b"]}
    for c in clients.values():
        c.close()
    admin.close()
    srv.close()


def _project(c: httpx.Client, ext_id: str, cidr: str) -> dict:
    net = ok(c.post("/v2.0/networks", json={"network": {"name": "ick-n"}}), 201)["network"]
    sub = ok(c.post("/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": cidr, "ip_version": 4}}), 201)["subnet"]
    router = ok(c.post("/v2.0/routers", json={"router": {
        "name": "ick-secret-name", "external_gateway_info": {"network_id": ext_id}}}),
        201)["router"]
    ok(c.put(f"/v2.0/routers/{router['id']}/add_router_interface",
             json={"subnet_id": sub["id"]}))
    port = ok(c.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}), 201)["port"]
    fip = ok(c.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext_id, "port_id": port["id"]}}), 201)["floatingip"]
    return {"network": net, "subnet": sub, "router": router, "port": port, "floatingip": fip}


def error(r: httpx.Response, code: int) -> tuple[str, str]:
    assert r.status_code == code, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    e = r.json()["NeutronError"]
    return e["type"], e["message"]


def ids(r: httpx.Response, collection: str) -> list[str]:
    return [x["id"] for x in ok(r)[collection]]


# -- 1. a list marker is read in the caller's scope ------------------------------------------

@pytest.mark.parametrize("kind,label", [("router", "Router"), ("network", "Network"),
                                        ("port", "Port")])
def test_a_marker_the_caller_cannot_see_is_404(cloud, kind, label):
    """Neutron's get_marker_obj reads it with _get_<kind> in the caller's scope: another
    project's router as marker was an ordering oracle (sort_key=name: page after page told
    whether its name sorts before or after a name of one's own)."""
    theirs = cloud["own"]["b"][kind]["id"]
    for query in (f"limit=1&marker={theirs}",
                  f"limit=5&marker={theirs}&sort_key=name&sort_dir=asc",
                  f"limit=5&marker={theirs}&sort_key=name&sort_dir=desc&page_reverse=true"):
        assert error(cloud["a"].get(f"/v2.0/{kind}s?{query}"), 404) == (
            f"{label}NotFound", f"{label} {theirs} could not be found.")
    # one that does not exist answers the same; the admin sees it, so pages after it
    gone = str(uuid.uuid4())
    assert error(cloud["a"].get(f"/v2.0/{kind}s?limit=1&marker={gone}"), 404)[0] == \
        f"{label}NotFound"
    ok(cloud["admin"].get(f"/v2.0/{kind}s?limit=1&marker={theirs}"))
    # without a limit Neutron reads no marker at all
    assert ids(cloud["a"].get(f"/v2.0/{kind}s?marker={theirs}"), f"{kind}s") == \
        ids(cloud["a"].get(f"/v2.0/{kind}s"), f"{kind}s")


@pytest.mark.parametrize("kind", ["subnet", "floatingip"])
def test_an_object_list_pages_as_without_a_marker_the_caller_cannot_see(cloud, kind):
    """Subnets and floating IPs are Neutron objects: their Pager reads the marker in the
    caller's scope and, finding none, pages from the start."""
    theirs = cloud["own"]["b"][kind]["id"]
    c = cloud["a"]
    by_id = "sort_key=id&sort_dir=asc"
    assert ids(c.get(f"/v2.0/{kind}s?limit=5&marker={theirs}&{by_id}"), f"{kind}s") == \
        ids(c.get(f"/v2.0/{kind}s?limit=5&{by_id}"), f"{kind}s")
    assert cloud["own"]["a"][kind]["id"] in ids(c.get(f"/v2.0/{kind}s?limit=5&marker={theirs}"),
                                                f"{kind}s")


# -- 2. another project in a non-admin body -------------------------------------------------

PROJECT_IN_BODY = ("HTTPBadRequest", "Specifying 'project_id' other than the authenticated "
                   "project in request is not allowed for the current user.")


def _bodies(cloud) -> dict:
    a = cloud["own"]["a"]
    return {"networks": {"network": {"name": "ick-x"}},
            "subnets": {"subnet": {"network_id": a["network"]["id"], "cidr": "192.0.2.0/28",
                                   "ip_version": 4}},
            "ports": {"port": {"network_id": a["network"]["id"]}},
            "routers": {"router": {"name": "ick-x"}},
            "floatingips": {"floatingip": {"floating_network_id": cloud["ext"]["id"]}},
            "security-groups": {"security_group": {"name": "ick-x"}}}


@pytest.mark.parametrize("key", ["project_id", "tenant_id"])
def test_a_body_naming_another_project_is_400_and_creates_nothing(cloud, key):
    b = cloud["users"]["b"].project_id
    before = {c: len(ok(cloud["admin"].get(f"/v2.0/{c}"))[c.replace("-", "_")])
              for c in _bodies(cloud)}
    for collection, body in _bodies(cloud).items():
        (item,) = body.values()
        r = cloud["a"].post(f"/v2.0/{collection}", json={next(iter(body)): {**item, key: b}})
        assert error(r, 400) == PROJECT_IN_BODY, collection
        # naming one's own project is fine
        if collection in ("routers", "security-groups"):
            mine = ok(cloud["a"].post(f"/v2.0/{collection}", json={next(iter(body)): {
                **item, key: cloud["users"]["a"].project_id}}), 201)
            created = next(iter(mine.values()))
            ok(cloud["a"].delete(f"/v2.0/{collection}/{created['id']}"), 204)
    after = {c: len(ok(cloud["admin"].get(f"/v2.0/{c}"))[c.replace("-", "_")])
             for c in _bodies(cloud)}
    assert after == before


def test_a_port_for_another_project_on_a_shared_network_is_400(cloud):
    """With Nova forwarding, such a port read another project's user data."""
    shared = ok(cloud["admin"].post("/v2.0/networks", json={"network": {
        "name": "ick-shared", "shared": True}}), 201)["network"]
    try:
        ok(cloud["admin"].post("/v2.0/subnets", json={"subnet": {
            "network_id": shared["id"], "cidr": "192.0.2.64/28", "ip_version": 4}}), 201)
        r = cloud["a"].post("/v2.0/ports", json={"port": {
            "network_id": shared["id"], "project_id": cloud["users"]["b"].project_id}})
        assert error(r, 400) == PROJECT_IN_BODY
        assert not ok(cloud["admin"].get(f"/v2.0/ports?network_id={shared['id']}"
                                         "&device_owner="))["ports"]
        # the admin may
        p = ok(cloud["admin"].post("/v2.0/ports", json={"port": {
            "network_id": shared["id"], "project_id": cloud["users"]["b"].project_id}}),
            201)["port"]
        ok(cloud["admin"].delete(f"/v2.0/ports/{p['id']}"), 204)
    finally:
        for p in ok(cloud["admin"].get(f"/v2.0/ports?network_id={shared['id']}"))["ports"]:
            cloud["admin"].delete(f"/v2.0/ports/{p['id']}")
        ok(cloud["admin"].delete(f"/v2.0/networks/{shared['id']}"), 204)


# -- 3. device_id naming another project's router -------------------------------------------

def _device_id_error(router_id: str) -> tuple[str, str]:
    return ("DeviceIDNotOwnedByTenant", f"The following device_id {router_id} is not owned by "
            "your project or matches another project router.")


def test_a_port_labelled_an_interface_of_another_projects_router_is_409(cloud):
    a, theirs = cloud["own"]["a"], cloud["own"]["b"]["router"]["id"]
    c = cloud["a"]
    label = {"network_id": a["network"]["id"], "device_owner": "network:router_interface"}
    r = c.post("/v2.0/ports", json={"port": {**label, "device_id": theirs}})
    assert error(r, 409) == _device_id_error(theirs)
    # a label naming one's own router is what Neutron lets through (and then keeps: a
    # port labelled an interface of a live router is not deleted by the port API)
    ok(c.post("/v2.0/ports", json={"port": {**label, "device_id": a["router"]["id"]}}), 201)
    # update: an unlabelled port labelled so, and the label with another project's router
    p = ok(c.post("/v2.0/ports", json={"port": {"network_id": a["network"]["id"]}}), 201)["port"]
    try:
        for body in ({"device_owner": "network:router_interface", "device_id": theirs},
                     {"device_owner": "network:router_interface_distributed",
                      "device_id": theirs}):
            assert error(c.put(f"/v2.0/ports/{p['id']}", json={"port": body}), 409) == \
                _device_id_error(theirs)
        after = ok(c.get(f"/v2.0/ports/{p['id']}"))["port"]
        assert (after["device_owner"], after["device_id"]) == ("", "")
        # an admin is not held by it (Neutron's context.is_admin)
        ok(cloud["admin"].put(f"/v2.0/ports/{p['id']}", json={"port": {"device_id": theirs}}))
    finally:
        ok(cloud["admin"].delete(f"/v2.0/ports/{p['id']}"), 204)


def test_add_router_interface_with_another_projects_port_is_409(cloud):
    """The network owner sees (and may update) a port of another project on its network;
    attaching it to its router makes it the router's by update_port: Neutron's check."""
    a, b = cloud["own"]["a"], cloud["users"]["b"].project_id
    port = ok(cloud["admin"].post("/v2.0/ports", json={"port": {
        "network_id": a["network"]["id"], "project_id": b}}), 201)["port"]
    rid = a["router"]["id"]
    try:
        r = cloud["a"].put(f"/v2.0/routers/{rid}/add_router_interface",
                           json={"port_id": port["id"]})
        assert error(r, 409) == _device_id_error(rid)
        assert ok(cloud["admin"].get(f"/v2.0/ports/{port['id']}"))["port"]["device_id"] == ""
    finally:
        ok(cloud["admin"].delete(f"/v2.0/ports/{port['id']}"), 204)


def test_a_floating_ip_for_another_projects_port_is_400(cloud):
    """The network owner sees a port of another project on its network; Neutron's
    _internal_fip_assoc_data refuses it (an invisible port stays 404)."""
    a, b = cloud["own"]["a"], cloud["users"]["b"].project_id
    port = ok(cloud["admin"].post("/v2.0/ports", json={"port": {
        "network_id": a["network"]["id"], "project_id": b}}), 201)["port"]
    want = ("BadRequest", "Bad floatingip request: Cannot process floating IP association "
            f"with Port {port['id']}, since that port is owned by a different project.")
    try:
        r = cloud["a"].post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": cloud["ext"]["id"], "port_id": port["id"]}})
        assert error(r, 400) == want
        r = cloud["a"].put(f"/v2.0/floatingips/{a['floatingip']['id']}",
                           json={"floatingip": {"port_id": port["id"]}})
        assert error(r, 400) == want
        assert ok(cloud["a"].get(f"/v2.0/floatingips/{a['floatingip']['id']}"))[
            "floatingip"]["port_id"] == a["port"]["id"]
    finally:
        ok(cloud["admin"].delete(f"/v2.0/ports/{port['id']}"), 204)


# -- 4. a shared subnet's gateway; another project's subnet by id ---------------------------

def test_a_shared_subnet_gateway_is_taken_only_by_its_project(cloud):
    """Neutron's _add_interface_by_subnet: on a (globally) shared network another project
    attaches a port of its own, never the subnet's gateway address (LP #1757482)."""
    admin, c = cloud["admin"], cloud["a"]
    shared = ok(admin.post("/v2.0/networks", json={"network": {
        "name": "ick-shared-gw", "shared": True}}), 201)["network"]
    sub = ok(admin.post("/v2.0/subnets", json={"subnet": {
        "network_id": shared["id"], "cidr": "192.0.2.128/28", "ip_version": 4}}),
        201)["subnet"]
    router = ok(c.post("/v2.0/routers", json={"router": {"name": "ick-r"}}), 201)["router"]
    try:
        r = c.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                  json={"subnet_id": sub["id"]})
        assert error(r, 400) == ("BadRequest", "Bad router request: Cannot add interface to "
                                 f"router because subnet {sub['id']} is not owned by project "
                                 "making the request.")
        assert not ok(admin.get(f"/v2.0/ports?network_id={shared['id']}"
                                "&device_owner=network:router_interface"))["ports"]
        # a port of one's own on the shared network is the way in: not the gateway address
        port = ok(c.post("/v2.0/ports", json={"port": {"network_id": shared["id"]}}),
                  201)["port"]
        ok(c.put(f"/v2.0/routers/{router['id']}/add_router_interface",
                 json={"port_id": port["id"]}))
        assert port["fixed_ips"][0]["ip_address"] != sub["gateway_ip"]
        ok(c.put(f"/v2.0/routers/{router['id']}/remove_router_interface",
                 json={"port_id": port["id"]}))
    finally:
        ok(c.delete(f"/v2.0/routers/{router['id']}"), 204)
        ok(admin.delete(f"/v2.0/networks/{shared['id']}"), 204)


def test_another_projects_subnet_answers_as_one_that_does_not_exist(cloud):
    """Every request of A naming B's (private) subnet gets the answer of a subnet id that
    does not exist, the id aside."""
    c, a = cloud["a"], cloud["own"]["a"]
    rid = a["router"]["id"]
    theirs, gone = cloud["own"]["b"]["subnet"]["id"], str(uuid.uuid4())
    asks = [("PUT", f"/v2.0/routers/{rid}/add_router_interface", lambda s: {"subnet_id": s}),
            ("PUT", f"/v2.0/routers/{rid}/remove_router_interface", lambda s: {"subnet_id": s}),
            ("GET", "/v2.0/subnets/{}", None), ("PUT", "/v2.0/subnets/{}",
                                                lambda s: {"subnet": {"name": "x"}}),
            ("DELETE", "/v2.0/subnets/{}", None),
            ("POST", "/v2.0/floatingips", lambda s: {"floatingip": {
                "floating_network_id": cloud["ext"]["id"], "subnet_id": s}}),
            ("POST", "/v2.0/ports", lambda s: {"port": {
                "network_id": a["network"]["id"], "fixed_ips": [{"subnet_id": s}]}})]
    for method, path, body in asks:
        answers = []
        for sid in (theirs, gone):
            r = c.request(method, path.format(sid), json=body(sid) if body else None)
            answers.append((r.status_code, r.text.replace(sid, "<id>")))
        assert answers[0] == answers[1], (method, path, answers)
        assert answers[0][0] in (400, 404), (method, path, answers)
    # nothing changed: B's subnet is as it was, A got no port
    assert ok(cloud["b"].get(f"/v2.0/subnets/{theirs}"))["subnet"]["name"] == ""
    assert len(ok(c.get(f"/v2.0/ports?network_id={a['network']['id']}"))["ports"]) == \
        len(ok(cloud["admin"].get(f"/v2.0/ports?network_id={a['network']['id']}"))["ports"])


# -- 5. floating IP placement: the router holding the subnet's gateway ----------------------

def test_a_floating_ip_is_carried_by_the_router_holding_the_subnet_gateway(cloud):
    """Neutron's get_router_for_floatingip: of the routers with an interface on the port's
    subnet and a gateway on the floating network, the one whose interface is the subnet's
    gateway address; B's older router on A's shared subnet does not take A's traffic."""
    admin, a, b = cloud["admin"], cloud["a"], cloud["b"]
    ext = cloud["ext"]["id"]
    older = ok(b.post("/v2.0/routers", json={"router": {
        "name": "ick-older", "external_gateway_info": {"network_id": ext}}}), 201)["router"]
    net = ok(admin.post("/v2.0/networks", json={"network": {
        "name": "ick-victim", "shared": True,
        "project_id": cloud["users"]["a"].project_id}}), 201)["network"]
    try:
        sub = ok(a.post("/v2.0/subnets", json={"subnet": {
            "network_id": net["id"], "cidr": "192.0.2.192/28", "ip_version": 4}}),
            201)["subnet"]
        mine = ok(a.post("/v2.0/routers", json={"router": {
            "name": "ick-mine", "external_gateway_info": {"network_id": ext}}}),
            201)["router"]
        ok(a.put(f"/v2.0/routers/{mine['id']}/add_router_interface",
                 json={"subnet_id": sub["id"]}))
        # B attaches its older router to the shared subnet with a port of its own
        bport = ok(b.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}),
                   201)["port"]
        ok(b.put(f"/v2.0/routers/{older['id']}/add_router_interface",
                 json={"port_id": bport["id"]}))
        vm = ok(a.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}), 201)["port"]
        fip = ok(a.post("/v2.0/floatingips", json={"floatingip": {
            "floating_network_id": ext, "port_id": vm["id"]}}), 201)["floatingip"]
        assert fip["router_id"] == mine["id"]
        # so after a disassociation and a new association by update
        ok(a.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": None}}))
        again = ok(a.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {
            "port_id": vm["id"]}}))["floatingip"]
        assert again["router_id"] == mine["id"]
        # the agent's view names the same router
        from floatip.core.model import fip_routers
        from floatip.service.agent_view import desired_state
        with cloud["srv"].db.read() as s:
            assert fip_routers(desired_state(s))[fip["id"]] == mine["id"]
        ok(a.delete(f"/v2.0/floatingips/{fip['id']}"), 204)
        ok(b.put(f"/v2.0/routers/{older['id']}/remove_router_interface",
                 json={"port_id": bport["id"]}))
        ok(a.put(f"/v2.0/routers/{mine['id']}/remove_router_interface",
                 json={"subnet_id": sub["id"]}))
        ok(a.delete(f"/v2.0/routers/{mine['id']}"), 204)
    finally:  # what is left after a failure, as far as it goes
        b.delete(f"/v2.0/routers/{older['id']}")
        for p in ok(admin.get(f"/v2.0/ports?network_id={net['id']}"))["ports"]:
            admin.delete(f"/v2.0/ports/{p['id']}")
        admin.delete(f"/v2.0/networks/{net['id']}")


def test_the_desired_state_places_as_neutron_and_as_the_api_named():
    """core.model: without a router named (a file applied), Neutron's choice (the router
    holding the subnet's gateway address, not the older one); with one named by the API,
    that router, or none when it does not connect the port (never another)."""
    from dataclasses import replace
    from floatip.core.model import (FloatingIP, Gateway, Interface, Network, Port, Router,
                                    State, Subnet, fip_routers)
    gw = Gateway(network_id="ext", port_id="g", subnet_id="exts", ip_address="203.0.113.5",
                 mac_address="fa:16:3e:00:00:01")
    older = Router(id="older", gateway=gw, interfaces=(
        Interface("p-older", "sn", "192.0.2.5", "fa:16:3e:00:00:02"),))
    holder = Router(id="holder", gateway=replace(gw, ip_address="203.0.113.6"), interfaces=(
        Interface("p-holder", "sn", "192.0.2.1", "fa:16:3e:00:00:03"),))
    st = State(networks={"ext": Network("ext", external=True), "n": Network("n")},
               subnets={"sn": Subnet("sn", "n", "192.0.2.0/24", gateway_ip="192.0.2.1")},
               ports={"vm": Port("vm", "n", (("sn", "192.0.2.10"),))},
               routers={"older": older, "holder": holder},
               floatingips={"f": FloatingIP("f", "203.0.113.20", "ext", "vm")})
    assert st.router_for_fip(st.floatingips["f"]).id == "holder"
    assert fip_routers(st) == {"f": "holder"}
    named = replace(st, floatingips={"f": FloatingIP("f", "203.0.113.20", "ext", "vm",
                                                     router_id="older")})
    assert fip_routers(named) == {"f": "older"}
    astray = replace(st, floatingips={"f": FloatingIP("f", "203.0.113.20", "ext", "vm",
                                                      router_id="elsewhere")})
    assert fip_routers(astray) == {} and astray.router_for_fip(astray.floatingips["f"]) is None
