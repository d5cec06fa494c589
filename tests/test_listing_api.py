"""Lists as Neutron's ``sorting``, ``pagination``, ``filter-validation`` and
``empty-string-filtering`` extensions answer them, for an admin (sorted and paged in SQL) and
for a project's member (rows checked one by one, then sorted and paged): repeatable
``sort_key``/``sort_dir`` then id; ``limit``/``marker``/``page_reverse`` and the
``<collection>_links`` hrefs, followed forward and back; Neutron's refusals. Bulk create is
all or nothing, its items checked by policy one by one. openstacksdk pages through them.

The server is the real one (uvicorn, agent off), noauth: X-Project-Id / X-Roles make the
caller a project's member; SQLite and PostgreSQL."""
from __future__ import annotations

import uuid

import pytest

from cloud import ok, refused, served_api

NAMES = ("test1", "abc1", "test10", "123test", "test1")  # neutron-tempest-plugin's


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request, tmp_path_factory):
    yield from served_api(request, tmp_path_factory, "sb-api")


def project() -> dict:
    return {"X-Project-Id": uuid.uuid4().hex, "X-Roles": "member,reader"}


@pytest.fixture
def nets(api):
    """A project's five networks (one down); the member's headers; the admin's (none)."""
    h = project()
    made = [ok(api.post("/v2.0/networks", headers=h, json={"network": {
        "name": n, "admin_state_up": i != 2}}), 201)["network"] for i, n in enumerate(NAMES)]
    return h, made


def callers(h: dict) -> list[tuple[str, dict]]:
    return [("member", h), ("admin", {})]


def expected(made: list[dict], *keys: tuple[str, bool]) -> list[str]:
    """The ids in Neutron's order: the keys, then id ascending."""
    out = sorted(made, key=lambda d: d["id"])
    for key, asc in reversed(keys):
        out = sorted(out, key=lambda d: d[key], reverse=not asc)
    return [d["id"] for d in out]


def listed(api, h: dict, params: list | dict, coll: str = "networks") -> list[str]:
    key = coll.split("/")[-1]
    return [d["id"] for d in ok(api.get(f"/v2.0/{coll}", headers=h, params=params))[key]]


def test_sorted_by_the_keys_then_id_for_a_member_and_an_admin(api, nets):
    h, made = nets
    pid = h["X-Project-Id"]
    for who, caller in callers(h):
        for d in ("asc", "desc"):
            got = listed(api, caller, {"project_id": pid, "sort_key": "name", "sort_dir": d})
            assert got == expected(made, ("name", d == "asc")), (who, d)
        two = [("project_id", pid), ("sort_key", "admin_state_up"), ("sort_dir", "asc"),
               ("sort_key", "name"), ("sort_dir", "desc")]
        assert listed(api, caller, two) == expected(
            made, ("admin_state_up", True), ("name", False)), who
    # a filter that is no column (router:external): sorted all the same, also for the admin
    for who, caller in callers(h):
        got = listed(api, caller, {"project_id": pid, "router:external": "False",
                                   "shared": "False", "sort_key": "name", "sort_dir": "desc"})
        assert got == expected(made, ("name", False)), who


def _links(body: dict, coll: str = "networks") -> dict:
    return {link["rel"]: link["href"] for link in body.get(f"{coll}_links", [])}


def test_pages_follow_the_links_forward_and_back(api, nets):
    h, made = nets
    pid = h["X-Project-Id"]
    order = expected(made, ("name", True))
    for who, caller in callers(h):
        body = ok(api.get("/v2.0/networks", headers=caller, params={
            "project_id": pid, "sort_key": "name", "sort_dir": "asc", "limit": 2}))
        pages = [[d["id"] for d in body["networks"]]]
        assert "previous" in _links(body) and "next" in _links(body), body
        while "next" in _links(body):
            href = _links(body)["next"]
            assert href.startswith(str(api.base_url).rstrip("/") + "/v2.0/networks?"), href
            body = ok(api.get(href, headers=caller))
            pages.append([d["id"] for d in body["networks"]])
        # 2 + 2 + 1: the short page has no next
        assert pages == [order[:2], order[2:4], order[4:]], who
        back = []
        while "previous" in _links(body):
            body = ok(api.get(_links(body)["previous"], headers=caller))
            back = [d["id"] for d in body["networks"]] + back
        assert back == order[:4], who  # the pages before the last one, in order
        # page_reverse from a marker: the page before it (as the plugin's page_reverse test)
        three = listed(api, caller, {"project_id": pid, "sort_key": "name", "sort_dir": "desc",
                                     "limit": 3})
        assert listed(api, caller, {"project_id": pid, "sort_key": "name", "sort_dir": "desc",
                                    "limit": 2, "marker": three[-1],
                                    "page_reverse": "True"}) == three[:2], who
        # a marker the filters leave out still places the page (keyset, as Neutron's SQL)
        abc1 = next(d["id"] for d in made if d["name"] == "abc1")
        assert listed(api, caller, [("project_id", pid), ("name", "test1"), ("name", "test10"),
                                    ("sort_key", "name"), ("sort_dir", "asc"), ("limit", 10),
                                    ("marker", abc1)]) == \
            [i for i in order if i != abc1 and i != order[0]], who
        # fields without id: no id in the body, the links still name the marker
        body = ok(api.get("/v2.0/networks", headers=caller, params={
            "project_id": pid, "sort_key": "name", "sort_dir": "asc", "limit": 2,
            "fields": "name"}))
        assert body["networks"] == [{"name": "123test"}, {"name": "abc1"}], body
        assert f"marker={order[1]}" in _links(body)["next"], body
        # limit 0 is no limit, and no links
        body = ok(api.get("/v2.0/networks", headers=caller, params={"project_id": pid,
                                                                      "limit": 0}))
        assert len(body["networks"]) == 5 and "networks_links" not in body, who


NOTHING_CHANGED = "a refused list changes nothing"


@pytest.mark.parametrize("query,type_,message", [
    ("sort_key=name", "HTTPBadRequest", "The number of sort_keys and sort_dirs must be same"),
    ("sort_key=name&sort_dir=asc&sort_key=id", "HTTPBadRequest",
     "The number of sort_keys and sort_dirs must be same"),
    ("sort_key=created_at&sort_dir=asc", "HTTPBadRequest",
     "['created_at'] is invalid attribute for sort_keys"),
    ("sort_key=name&sort_dir=up", "HTTPBadRequest",
     "['up'] is invalid value for sort_dirs, valid value is 'asc' and 'desc'"),
    ("limit=-1", "BadRequest",
     "Bad limit request: Limit must be an integer 0 or greater and not '-1'."),
    ("limit=two", "BadRequest",
     "Bad limit request: Limit must be an integer 0 or greater and not 'two'."),
    ("unknown_filter=value", "HTTPBadRequest",
     "['unknown_filter'] is invalid attribute for filtering"),
    ("name=x&foo=1&bar=2", "HTTPBadRequest", "['foo', 'bar'] is invalid attribute for filtering"),
])
def test_refusals_as_neutron(api, query, type_, message):
    h = project()
    for caller in (h, {}):
        assert refused(api.get(f"/v2.0/networks?{query}", headers=caller), 400,
                       type_) == message


@pytest.mark.parametrize("coll", ["networks", "subnets", "ports", "routers", "floatingips",
                                  "security-groups", "security-group-rules",
                                  "address-groups"])
def test_every_collection_validates_its_filters(api, coll):
    h = project()
    assert refused(api.get(f"/v2.0/{coll}?unknown_filter=value", headers=h), 400,
                   "HTTPBadRequest") == "['unknown_filter'] is invalid attribute for filtering"
    ok(api.get(f"/v2.0/{coll}?id={uuid.uuid4()}&description=&project_id=x", headers=h))
    ok(api.get(f"/v2.0/{coll}?limit=1&sort_key=id&sort_dir=desc", headers=h))


def test_an_empty_string_filter_matches_empty_names_and_the_extensions_say_so(api):
    h = project()
    blank = ok(api.post("/v2.0/networks", headers=h, json={"network": {"name": ""}}),
               201)["network"]
    ok(api.post("/v2.0/networks", headers=h, json={"network": {"name": "x"}}), 201)
    assert listed(api, h, {"name": ""}) == [blank["id"]]
    aliases = {e["alias"] for e in ok(api.get("/v2.0/extensions"))["extensions"]}
    assert {"sorting", "pagination", "filter-validation", "empty-string-filtering"} <= aliases
    ok(api.get("/v2.0/extensions/pagination"))


def test_bulk_create_is_all_or_nothing_and_checked_per_item(api):
    h = project()
    net = ok(api.post("/v2.0/networks", headers=h, json={"network": {"name": "sb-b"}}),
             201)["network"]
    ok(api.post("/v2.0/subnets", headers=h, json={"subnet": {
        "network_id": net["id"], "cidr": "100.64.70.0/24", "ip_version": 4}}), 201)
    # the second port's network does not exist: no port at all
    refused(api.post("/v2.0/ports", headers=h, json={"ports": [
        {"network_id": net["id"], "name": "p1"},
        {"network_id": str(uuid.uuid4()), "name": "p2"}]}), 404, "NetworkNotFound")
    assert listed(api, h, {"network_id": net["id"], "device_owner": ""}, "ports") == []
    # a member may not make an external network: the policy refuses the one item, all go
    refused(api.post("/v2.0/networks", headers=h, json={"networks": [
        {"name": "sb-ok"}, {"name": "sb-ext", "router:external": True}]}), 403,
            "PolicyNotAuthorized")
    assert listed(api, h, {"name": "sb-ok"}) == []
    made = ok(api.post("/v2.0/ports", headers=h, json={"ports": [
        {"network_id": net["id"], "name": "p1"}, {"network_id": net["id"], "name": "p2"}]}),
        201)["ports"]
    assert [p["name"] for p in made] == ["p1", "p2"]
    # each item in its own envelope, as neutron-tempest-plugin sends security groups
    groups = ok(api.post("/v2.0/security-groups", headers=h, json={"security_groups": [
        {"security_group": {"name": "sb-g1"}},
        {"security_group": {"name": "sb-g2", "stateful": False}}]}), 201)["security_groups"]
    assert [(g["name"], g["stateful"]) for g in groups] == [("sb-g1", True), ("sb-g2", False)]
    assert sorted(listed(api, h, {"network_id": net["id"], "device_owner": ""}, "ports")) == \
        sorted(p["id"] for p in made)


def test_openstacksdk_pages_through_more_than_a_limit(api, nets):
    import openstack
    h, made = nets
    conn = openstack.connect(auth_type="none", auth={"endpoint": str(api.base_url)},
                             region_name="")
    got = [n.id for n in conn.network.networks(project_id=h["X-Project-Id"], limit=2,
                                               sort_key="name", sort_dir="desc")]
    assert got == expected(made, ("name", False))


def test_qos_policies_sort_and_page_as_the_networks(api):
    """The plugin's QosSearchCriteriaTest: an admin lists policies by description."""
    tag = f"sb-{uuid.uuid4().hex[:6]}"
    made = [ok(api.post("/v2.0/qos/policies", json={"policy": {
        "name": n, "description": tag}}), 201)["policy"] for n in NAMES]
    order = expected(made, ("name", False))
    q = {"description": tag, "sort_key": "name", "sort_dir": "desc"}
    assert listed(api, {}, q, "qos/policies") == order
    body = ok(api.get("/v2.0/qos/policies", params={**q, "limit": 3}))
    assert [d["id"] for d in body["policies"]] == order[:3]
    body = ok(api.get(_links(body, "policies")["next"]))
    assert [d["id"] for d in body["policies"]] == order[3:]
    assert "next" not in _links(body, "policies")
    assert refused(api.get("/v2.0/qos/policies?sort_key=rules&sort_dir=asc"), 400,
                   "HTTPBadRequest") == "['rules'] is invalid attribute for sort_keys"
    assert refused(api.get("/v2.0/qos/policies?unknown_filter=1"), 400,
                   "HTTPBadRequest") == "['unknown_filter'] is invalid attribute for filtering"


def test_rbac_policies_page_and_have_no_sort_key(api):
    """Neutron's RBAC attributes have no sort key: any is refused; limit pages with links."""
    h = project()
    net = ok(api.post("/v2.0/networks", headers=h, json={"network": {"name": "sb-r"}}),
             201)["network"]
    made = [ok(api.post("/v2.0/rbac-policies", headers=h, json={"rbac_policy": {
        "object_type": "network", "object_id": net["id"], "action": "access_as_shared",
        "target_tenant": uuid.uuid4().hex}}), 201)["rbac_policy"]["id"] for _ in range(3)]
    body = ok(api.get("/v2.0/rbac-policies", headers=h, params={"limit": 2}))
    first = [d["id"] for d in body["rbac_policies"]]
    body = ok(api.get(_links(body, "rbac_policies")["next"], headers=h))
    assert sorted(first + [d["id"] for d in body["rbac_policies"]]) == sorted(made)
    assert refused(api.get("/v2.0/rbac-policies?sort_key=id&sort_dir=asc", headers=h), 400,
                   "HTTPBadRequest") == "['id'] is invalid attribute for sort_keys"
