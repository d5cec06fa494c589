"""The two-chassis OVN lab itself, driven with ovsdbapp directly (no floatip backend): one
logical switch, a VM on each chassis, ping across chassis over Geneve; then teardown leaves
nothing behind."""
from __future__ import annotations

import os

import pytest

from floatip import lab as L

pytestmark = [pytest.mark.kernel, pytest.mark.ovn]


def test_ping_across_chassis_over_geneve(ovn_lab, ovn_nb):
    nb = ovn_nb
    macs = {"p1": "fa:16:3e:00:00:01", "p2": "fa:16:3e:00:00:02"}
    ips = {"p1": "192.0.2.11", "p2": "192.0.2.12"}
    names = {p: f"{ovn_lab.tag}-{p}" for p in macs}
    with nb.transaction(check_error=True) as txn:
        txn.add(nb.ls_add(f"{ovn_lab.tag}-ls"))
        for p, name in names.items():
            txn.add(nb.lsp_add(f"{ovn_lab.tag}-ls", name))
            txn.add(nb.lsp_set_addresses(name, [f"{macs[p]} {ips[p]}"]))
    vm1 = ovn_lab.vm("vm1", 0, names["p1"], macs["p1"], f"{ips['p1']}/24")
    vm2 = ovn_lab.vm("vm2", 1, names["p2"], macs["p2"], f"{ips['p2']}/24")
    assert L.ping_until(vm1, ips["p2"], tries=40)
    # the ports really are bound on two chassis, and the packets crossed the tunnel
    sb = L.sh("ovn-sbctl", f"--db={ovn_lab.sb}", "--bare", "--columns=logical_port,chassis",
              "find", "Port_Binding", "type=\"\"").stdout
    assert names["p1"] in sb and names["p2"] in sb
    tunnels = ovn_lab.chassis[1].vsctl("--bare", "--columns=name", "find", "Interface",
                                       "type=geneve").stdout.split()
    assert tunnels
    # TCP too (checksum offload is off on every veth)
    srv = ovn_lab.serve(vm2, port=8080)
    try:
        assert L.tcp_source(vm1, ips["p2"], 8080) == ips["p1"]
    finally:
        srv.close()


def test_teardown_leaves_nothing(tmp_path):
    from floatip.ovnlab import OvnLab
    lab = OvnLab("fo", base=str(tmp_path)).start()
    namespaces = list(lab.namespaces)
    pids = [p.pid for p in lab.procs]
    assert lab.close() == []
    listed = L.sh("ip", "netns", "list").stdout
    assert not any(ns in listed for ns in namespaces)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert not os.path.exists(lab.dir)
