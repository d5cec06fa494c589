"""The table the agent hands its metadata process (``content.instance_table``) answers as
``find_instance`` does, for every address of every router, and its cache says when it
changed: an unchanged state is not handed over again, a changed port is."""
from __future__ import annotations

import dataclasses

from floatip.metadata.content import find_instance, instance_from, instance_table
from test_dhcp_unit import RTR, VM4, state


def test_the_table_answers_as_find_instance():
    s = state()
    cache: dict = {}
    table = instance_table(s, {RTR}, cache)
    assert cache["changed"]
    for ip in ("198.51.100.84", "198.51.100.85", "198.51.100.2", "198.51.100.99"):
        want = find_instance(s, RTR, ip)
        got = table[RTR].get(ip)
        assert (instance_from(got) if got is not None else None) == want, ip
    assert set(table[RTR]) == {"198.51.100.84", "198.51.100.85"}  # no DHCP port
    assert instance_table(s, {"no-such-router"}) == {}

    instance_table(s, {RTR}, cache)
    assert not cache["changed"]
    vm4 = dataclasses.replace(s.ports[VM4], name="renamed")
    s2 = dataclasses.replace(s, ports={**s.ports, VM4: vm4})
    table = instance_table(s2, {RTR}, cache)
    assert cache["changed"] and table[RTR]["198.51.100.84"]["name"] == "renamed"
    assert instance_from(table[RTR]["198.51.100.84"]) == find_instance(s2, RTR, "198.51.100.84")
    instance_table(s2, set(), cache)
    assert cache["changed"]   # the router went
