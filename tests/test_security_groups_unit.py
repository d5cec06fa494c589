"""Security groups in the agents' model: pure logic, no root."""
from __future__ import annotations

import json

from floatip.core.model import (AddressGroup, Port, SecurityGroup, SecurityGroupRule, State,
                                objects_from_json, objects_to_json, state_from_json,
                                state_to_json)

SG = "11111111-1111-1111-1111-111111111111"


def _state() -> State:
    rules = (SecurityGroupRule("r1", "egress", "IPv4"),
             SecurityGroupRule("r2", "ingress", "IPv6", 58, 128, None, None, SG),
             SecurityGroupRule("r3", "ingress", "IPv4", 6, 22, 22, "203.0.113.0/24"),
             SecurityGroupRule("r4", "ingress", "IPv4", 17, None, None, None, None, "ag"))
    port = Port("p1", "n1", (("s1", "192.0.2.5"),), "fa:16:3e:00:00:01", project_id="t",
                security_groups=(SG,), port_security_enabled=True,
                allowed_address_pairs=(("192.0.2.64/26", "fa:16:3e:00:00:01"),))
    return State(ports={"p1": port},
                 security_groups={SG: SecurityGroup(SG, "t", False, rules)},
                 address_groups={"ag": AddressGroup("ag", "t", ("198.51.100.0/24",))})


def test_groups_and_port_security_survive_the_agents_json():
    st = _state()
    assert state_from_json(json.loads(json.dumps(state_to_json(st)))) == st
    ups = {"security_groups": st.security_groups, "ports": st.ports}
    assert objects_from_json(json.loads(json.dumps(objects_to_json(ups)))) == ups


def test_a_server_without_groups_gives_unfiltered_ports():
    """An agent reading an older server's JSON: no groups, ports not filtered."""
    doc = state_to_json(_state())
    del doc["security_groups"], doc["address_groups"]
    for p in doc["ports"].values():
        for k in ("security_groups", "port_security_enabled", "allowed_address_pairs"):
            del p[k]
    st = state_from_json(doc)
    assert st.security_groups == {} and st.address_groups == {}
    assert st.ports["p1"].port_security_enabled is False
    assert st.ports["p1"].security_groups == () and st.ports["p1"].allowed_address_pairs == ()


def test_port_fields_are_appended_after_the_old_ones():
    """The agents' JSON is positional: the port-security fields come right after
    admin_state_up, and the later ones (DHCP options, DNS) after them."""
    names = list(Port.__dataclass_fields__)
    at = names.index("admin_state_up")
    assert names[at:at + 6] == ["admin_state_up", "security_groups", "port_security_enabled",
                                "allowed_address_pairs", "extra_dhcp_opts", "dns_name"]
    assert names[at + 6:] == []
