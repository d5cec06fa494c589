"""Tags (Neutron's standard-attr-tag) through the API, on SQLite and PostgreSQL: the
``/tags`` sub-resource of each taggable resource, ``tags`` in the bodies, the list filters
``tags``, ``tags-any``, ``not-tags``, ``not-tags-any`` (in SQL: with paging too), Neutron's
limits and errors, and its policy (``<action>_<resource>:tags``) for other projects.

The server is the real one (uvicorn, agent off), noauth: X-Project-Id / X-Roles make the
caller a project's member or reader."""
from __future__ import annotations

import uuid

import httpx
import pytest

from cloud import ok, refused, served_api

EXT = "203.0.113"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory):
    yield from served_api(request, tmp_path_factory, "fa-tags")


def member(project: str, role: str = "member") -> dict:
    return {"X-Project-Id": project, "X-Roles": role}


@pytest.fixture(scope="module")
def world(api):
    """One of each taggable resource, of project P."""
    p = {"X-Project-Id": f"tg-{uuid.uuid4().hex[:8]}", "X-Roles": "member,reader"}
    ext = ok(api.post("/v2.0/networks", json={"network": {
        "name": "tg-ext", "router:external": True}}), 201)["network"]
    ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": ext["id"], "cidr": f"{EXT}.0/24", "ip_version": 4}}), 201)
    net = ok(api.post("/v2.0/networks", json={"network": {"name": "tg"}}, headers=p),
             201)["network"]
    sub = ok(api.post("/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "100.64.7.0/24", "ip_version": 4}}, headers=p),
        201)["subnet"]
    port = ok(api.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}, headers=p),
              201)["port"]
    router = ok(api.post("/v2.0/routers", json={"router": {"name": "tg"}}, headers=p),
                201)["router"]
    fip = ok(api.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": ext["id"]}}, headers=p), 201)["floatingip"]
    sg = ok(api.post("/v2.0/security-groups", json={"security_group": {"name": "tg"}},
                     headers=p), 201)["security_group"]
    return {"headers": p, "networks": net, "subnets": sub, "ports": port, "routers": router,
            "floatingips": fip, "security-groups": sg}


COLLECTIONS = ["networks", "subnets", "ports", "routers", "floatingips", "security-groups"]
BODY = {"networks": "network", "subnets": "subnet", "ports": "port", "routers": "router",
        "floatingips": "floatingip", "security-groups": "security_group"}


@pytest.mark.parametrize("coll", COLLECTIONS)
def test_tags_of_each_resource(api, world, coll):
    """Neutron's answers: 201 for a tag put, 204 for a tag found or removed, 404 TagNotFound,
    200 with the tags for a replace; the body's ``tags`` and revision_number follow."""
    h, rid = world["headers"], world[coll]["id"]
    base = f"/v2.0/{coll}/{rid}"

    def shown() -> dict:
        return ok(api.get(base, headers=h))[BODY[coll]]

    rev = shown()["revision_number"]
    assert ok(api.put(f"{base}/tags/red", headers=h), 201) == {}
    assert api.get(f"{base}/tags/red", headers=h).status_code == 204
    assert refused(api.get(f"{base}/tags/blue", headers=h), 404, "TagNotFound") == \
        "Tag blue could not be found."
    assert ok(api.get(f"{base}/tags", headers=h)) == {"tags": ["red"]}
    body = shown()
    assert body["tags"] == ["red"] and body["revision_number"] > rev
    # replace all: 200 and the new set
    got = ok(api.put(f"{base}/tags", json={"tags": ["a", "b", "c"]}, headers=h))
    assert sorted(got["tags"]) == ["a", "b", "c"]
    assert sorted(shown()["tags"]) == ["a", "b", "c"]
    assert api.delete(f"{base}/tags/a", headers=h).status_code == 204
    refused(api.delete(f"{base}/tags/a", headers=h), 404, "TagNotFound")
    assert sorted(ok(api.get(f"{base}/tags", headers=h))["tags"]) == ["b", "c"]
    assert api.delete(f"{base}/tags", headers=h).status_code == 204
    assert shown()["tags"] == []
    # the list shows them too
    ok(api.put(f"{base}/tags/listed", headers=h), 201)
    listed = ok(api.get(f"/v2.0/{coll}", params={"id": rid}, headers=h))
    assert [d["tags"] for d in listed[coll.replace("-", "_")]] == [["listed"]]
    api.delete(f"{base}/tags", headers=h)


def test_list_filters_all_any_not(api):
    """``tags=a,b``: both; ``tags-any=a,b``: one of them; ``not-tags=a,b``: not both;
    ``not-tags-any=a,b``: neither; with paging (SQL) and with another filter."""
    h = member(f"tf-{uuid.uuid4().hex[:8]}", "member,reader")
    sets = {"ab": ["a", "b"], "a": ["a"], "b": ["b"], "c": ["c"], "none": []}
    ids = {}
    for name, tags in sets.items():
        n = ok(api.post("/v2.0/networks", json={"network": {"name": f"tf-{name}"}},
                        headers=h), 201)["network"]
        if tags:
            ok(api.put(f"/v2.0/networks/{n['id']}/tags", json={"tags": tags}, headers=h))
        ids[n["id"]] = name

    def names(**query) -> set[str]:
        nets = ok(api.get("/v2.0/networks", params=query, headers=h))["networks"]
        return {ids[n["id"]] for n in nets if n["id"] in ids}

    assert names(tags="a,b") == {"ab"}
    assert names(tags="a") == {"ab", "a"}
    assert names(**{"tags-any": "a,b"}) == {"ab", "a", "b"}
    assert names(**{"not-tags": "a,b"}) == {"a", "b", "c", "none"}
    assert names(**{"not-tags-any": "a,b"}) == {"c", "none"}
    assert names(tags="a", **{"not-tags": "b"}) == {"a"}
    assert names(**{"tags-any": "a,c"}, name="tf-c") == {"c"}
    # paging in SQL with a tag filter: two pages of the three with a or b
    first = ok(api.get("/v2.0/networks", params={"tags-any": "a,b", "limit": 2},
                       headers=h))["networks"]
    rest = ok(api.get("/v2.0/networks", params={"tags-any": "a,b", "limit": 2,
                                                "marker": first[-1]["id"]},
                      headers=h))["networks"]
    assert len(first) == 2 and {ids[n["id"]] for n in first + rest} == {"ab", "a", "b"}
    # tags given when the network is made
    n = ok(api.post("/v2.0/networks", json={"network": {"name": "tf-made",
                                                        "tags": ["x", "y"]}}, headers=h),
           201)["network"]
    assert sorted(n["tags"]) == ["x", "y"]
    assert [m["id"] for m in ok(api.get("/v2.0/networks", params={"tags": "x,y"},
                                        headers=h))["networks"]] == [n["id"]]


def test_limits_and_bad_bodies_change_nothing(api, world):
    h, rid = world["headers"], world["networks"]["id"]
    base = f"/v2.0/networks/{rid}/tags"
    ok(api.put(base, json={"tags": ["keep"]}, headers=h))
    long = "x" * 256
    assert refused(api.put(f"{base}/{long}", headers=h), 400, "InvalidInput") == \
        f"Invalid input for operation: '{long}' exceeds maximum length of 255."
    assert refused(api.put(base, json={"tags": [f"t{i}" for i in range(51)]}, headers=h),
                   400, "InvalidInput") == ("Invalid input for operation: The number of tags "
                                            "exceed the per-resource limit of 50.")
    assert refused(api.put(base, json={"tags": ["d", "d"]}, headers=h), 400,
                   "InvalidInput") == "Invalid input for operation: Duplicate items in the " \
                                      "list: 'd'."
    assert refused(api.put(base, json={"tag": ["d"]}, headers=h), 400, "InvalidInput") == \
        "Invalid input for operation: Invalid tags body."
    refused(api.put(base, json={"tags": "abc"}, headers=h), 400, "InvalidInput")
    refused(api.put(base, json={"tags": [1]}, headers=h), 400, "InvalidInput")
    ok(api.put(base, json={"tags": [f"t{i}" for i in range(50)]}, headers=h))
    refused(api.put(f"{base}/one-more", headers=h), 400, "InvalidInput")
    assert len(ok(api.get(base, headers=h))["tags"]) == 50
    ok(api.put(base, json={"tags": ["keep"]}, headers=h))
    # the body's tags attribute is read-only on update, as in Neutron
    refused(api.put(f"/v2.0/networks/{rid}", json={"network": {"tags": ["z"]}}, headers=h),
            400, "HTTPBadRequest")
    assert ok(api.get(base, headers=h)) == {"tags": ["keep"]}
    api.delete(base, headers=h)
    # a resource that does not exist: 404 for an admin
    assert refused(api.get(f"/v2.0/networks/{uuid.uuid4()}/tags"), 404,
                   "TagResourceNotFound").startswith("Resource networks ")


def test_policy_other_projects_and_readers(api, world):
    """Neutron's rules: the project's members change its tags, its readers read them;
    another project is refused (403, as Neutron's controller checks on the project without
    hiding the resource); an admin may do anything."""
    h, rid = world["headers"], world["ports"]["id"]
    base = f"/v2.0/ports/{rid}/tags"
    ok(api.put(f"{base}/mine", headers=h), 201)
    reader = member(h["X-Project-Id"], "reader")
    assert ok(api.get(base, headers=reader)) == {"tags": ["mine"]}
    refused(api.put(f"{base}/r", headers=reader), 403, "PolicyNotAuthorized")
    refused(api.delete(base, headers=reader), 403, "PolicyNotAuthorized")
    other = member(f"tp-{uuid.uuid4().hex[:8]}", "member,reader")
    for call in (api.get(base, headers=other), api.put(f"{base}/x", headers=other),
                 api.put(base, json={"tags": []}, headers=other),
                 api.delete(f"{base}/mine", headers=other), api.delete(base, headers=other),
                 api.get(f"{base}/mine", headers=other)):
        assert refused(call, 403, "PolicyNotAuthorized").endswith("is disallowed by policy")
    # ...and the other project's list filter finds nothing of P's
    assert ok(api.get("/v2.0/ports", params={"tags": "mine"}, headers=other))["ports"] == []
    assert ok(api.get(base)) == {"tags": ["mine"]}  # admin
    ok(api.put(f"{base}/admins", headers={}), 201)
    api.delete(base)


def test_deleted_resource_takes_its_tags(api, world):
    h = world["headers"]
    n = ok(api.post("/v2.0/networks", json={"network": {"name": "tg-gone"}}, headers=h),
           201)["network"]
    ok(api.put(f"/v2.0/networks/{n['id']}/tags", json={"tags": ["gone"]}, headers=h))
    assert api.delete(f"/v2.0/networks/{n['id']}", headers=h).status_code == 204
    assert ok(api.get("/v2.0/networks", params={"tags": "gone"}))["networks"] == []
    refused(api.get(f"/v2.0/networks/{n['id']}/tags"), 404, "TagResourceNotFound")
