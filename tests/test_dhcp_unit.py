"""The pure parts of DHCP and metadata: specs and dnsmasq's files from the desired state, the
EC2 and OpenStack trees, the lookup that decides who is who, the remote agent's JSON."""
from __future__ import annotations

import json

from floatip.core.dhcp import dhcp_specs, dnsmasq_argv, hostname, render_hosts, render_opts
from floatip.core.model import (FloatingIP, Gateway, Interface, Network, Port, Router, State,
                                Subnet, state_from_json, state_to_json)
from floatip.metadata.content import answer, find_instance

NET, EXT, SUB, EXTSUB = ("11111111-0000-4000-8000-00000000000" + c for c in "1234")
DHCP, VM4, VM5, RTR, FIP = ("22222222-0000-4000-8000-00000000000" + c for c in "12345")
KEY = "ssh-ed25519 AAAAC3Nza fd@unit"


def state(**port_changes) -> State:
    nets = {NET: Network(NET, "ten", local_vlan=3, mtu=1450),
            EXT: Network(EXT, "ext", external=True, network_type="flat",
                         physical_network="physnet1")}
    subs = {SUB: Subnet(SUB, NET, "198.51.100.0/24", "198.51.100.1", enable_dhcp=True,
                        dns_nameservers=("192.0.2.53", "192.0.2.54"),
                        host_routes=(("192.0.2.0/24", "198.51.100.254"),)),
            EXTSUB: Subnet(EXTSUB, EXT, "203.0.113.0/24", "203.0.113.1")}
    ports = {DHCP: Port(DHCP, NET, ((SUB, "198.51.100.2"),), "fa:16:3e:00:00:02",
                        device_owner="network:dhcp"),
             VM4: Port(VM4, NET, ((SUB, "198.51.100.84"),), "fa:16:3e:00:00:84", "vm4",
                       "compute:nova", "inst-4", "proj", "#cloud-config\n", (("k", KEY),)),
             VM5: Port(VM5, NET, ((SUB, "198.51.100.85"),), "FA:16:3E:00:00:85", "Not a label!",
                       "compute:nova")}
    ports.update(port_changes)
    router = Router(RTR, "r", Gateway(EXT, "33333333-0000-4000-8000-000000000001", EXTSUB,
                                      "203.0.113.11", "fa:16:3e:00:01:11"),
                    (Interface("33333333-0000-4000-8000-000000000002", SUB, "198.51.100.1",
                               "fa:16:3e:00:01:01"),))
    return State(nets, subs, ports, {RTR: router},
                 {FIP: FloatingIP(FIP, "203.0.113.84", EXT, VM4, "198.51.100.84")})


def test_spec_hosts_and_options():
    [spec] = dhcp_specs(state(), "br-int").values()
    assert spec.namespace == f"qdhcp-{NET}" and spec.device == "tap" + DHCP[:11]
    assert spec.tag == 3 and spec.addresses == ("198.51.100.2/24",)
    assert render_hosts(spec) == ("fa:16:3e:00:00:84,vm4,198.51.100.84\n"
                                  "fa:16:3e:00:00:85,host-198-51-100-85,198.51.100.85\n")
    tag = f"tag:subnet-{SUB}"
    assert render_opts(spec).splitlines() == [
        f"{tag},option:dns-server,192.0.2.53,192.0.2.54",
        f"{tag},option:classless-static-route,192.0.2.0/24,198.51.100.254,0.0.0.0/0,198.51.100.1",
        f"{tag},249,192.0.2.0/24,198.51.100.254,0.0.0.0/0,198.51.100.1",
        f"{tag},option:router,198.51.100.1",
        f"{tag},option:mtu,1450"]
    argv = dnsmasq_argv(spec, "/run/x")
    assert f"--dhcp-range=set:subnet-{SUB},198.51.100.0,static,255.255.255.0,86400s" in argv
    assert "--port=0" in argv and f"--interface={spec.device}" in argv


def test_no_spec_without_dhcp_port_or_dhcp_subnet():
    s = state()
    assert dhcp_specs(State(s.networks, s.subnets, {VM4: s.ports[VM4]}), "br-int") == {}
    off = {SUB: Subnet(SUB, NET, "198.51.100.0/24", "198.51.100.1", enable_dhcp=False)}
    assert dhcp_specs(State(s.networks, off, s.ports), "br-int") == {}


def test_nothing_odd_reaches_dnsmasq_files():
    evil = Port("22222222-0000-4000-8000-000000000009", NET, ((SUB, "198.51.100.9"),),
                "fa:16:3e:00:00:09\n--dhcp-script=/bin/x", "x")
    [spec] = dhcp_specs(state(**{evil.id: evil}), "br-int").values()
    assert "dhcp-script" not in render_hosts(spec)
    assert hostname("web-1", "198.51.100.9") == "web-1"
    assert hostname("a,b", "198.51.100.9") == "host-198-51-100-9"


def test_metadata_trees_for_the_right_port_only():
    s = state()
    inst = find_instance(s, RTR, "198.51.100.84")
    assert inst.instance_id == "inst-4" and inst.public_ipv4 == "203.0.113.84"
    assert answer(inst, "/latest/meta-data/public-ipv4") == (200, "text/plain", b"203.0.113.84")
    assert answer(inst, "/latest/meta-data/public-keys/")[2] == b"0=k"
    assert answer(inst, "/2009-04-04/meta-data/public-keys/0/openssh-key")[2] == KEY.encode()
    listing = answer(inst, "/latest/meta-data/")[2].decode().splitlines()
    assert {"instance-id", "local-ipv4", "public-ipv4", "public-keys/", "placement/"} <= set(listing)
    md = json.loads(answer(inst, "/openstack/latest/meta_data.json")[2])
    assert md["uuid"] == "inst-4" and md["public_keys"] == {"k": KEY} and md["hostname"] == "vm4"
    assert answer(inst, "/openstack/latest/user_data")[2] == b"#cloud-config\n"
    assert answer(inst, "/openstack")[2].decode().splitlines()[-1] == "latest"
    assert answer(inst, "/nope")[0] == 404
    vm5 = find_instance(s, RTR, "198.51.100.85")
    assert vm5.public_ipv4 is None and answer(vm5, "/latest/meta-data/public-ipv4")[0] == 404
    assert answer(vm5, "/latest/user-data")[0] == 404
    # not a port's address, the DHCP port's, or another router: nobody
    assert find_instance(s, RTR, "198.51.100.99") is None
    assert find_instance(s, RTR, "198.51.100.2") is None
    assert find_instance(s, "33333333-0000-4000-8000-00000000000f", "198.51.100.84") is None


def test_remote_agent_json_keeps_the_new_fields():
    s = state()
    back = state_from_json(json.loads(json.dumps(state_to_json(s))))
    assert back.subnets == s.subnets and back.ports == s.ports
