"""The kernel backend's security groups: the state's groups and ports -> core.firewall ->
OpenFlow flows on the integration bridge (dataplane.firewall), once per agent pass.

An incremental pass compiles only the ports whose firewall input changed (a rule change
reaches only the ports of its group; a member change only the member flows) and sends
what differs in one bundle; a full pass also compares the bridge's flows with the wanted
ones by cookie and repairs what was deleted or added by hand. A port whose rules cannot be
expressed fails alone (it keeps its anti-spoofing and drops the rest) with its reason."""
from __future__ import annotations

import logging

from ..core.firewall import FwPort, base_flows, compile_port, fw_ports, member_flows, \
    member_owners, used_conjunctions
from ..dataplane.firewall import OpenFlowFirewall

log = logging.getLogger("floatip.firewall")


class FirewallAgent:
    def __init__(self, bridge: str):
        self.of = OpenFlowFirewall(bridge)
        self.ports: dict[str, FwPort] = {}     # as last compiled
        self.flows: dict[str, list] = {}      # owner -> flows, as last compiled
        self.errors: dict[str, str] = {}
        self._members: tuple | None = None
        self.cache: dict = {}   # fw_ports' record: unchanged ports are not converted again

    def sync(self, state, ofports: dict[str, int], full: bool) -> dict[str, str]:
        """Returns {port id: why its rules are not enforced} for ports that failed."""
        ports, members = fw_ports(state, ofports, self.cache)
        wanted = {p.id: p for p in ports}
        changed: dict[str, list] = {}
        if "base" not in self.flows:
            changed["base"] = base_flows()
        for pid, p in wanted.items():
            old = self.ports.get(pid)
            if old is not p and old != p:
                changed[f"port:{pid}"], err = compile_port(p)
                if err:
                    self.errors[pid] = err
                else:
                    self.errors.pop(pid, None)
        for pid in set(self.ports) - set(wanted):
            changed[f"port:{pid}"] = []
            self.errors.pop(pid, None)
        used = used_conjunctions(ports)
        mem = {g: tuple(m) for g, m in members.items()}
        if self._members is None or used != self._members[0]:
            new = member_flows(members, used)    # what the rules refer to changed: all
            owners = {o for o in self.flows if o.startswith(("member:", "conj:"))} | set(new)
        else:   # only the addresses of the groups whose members changed
            old = self._members[1]
            touched: set[str] = set()
            for g in set(mem) | set(old):
                if mem.get(g) != old.get(g):
                    touched |= set(mem.get(g, ())) ^ set(old.get(g, ()))
            new = member_flows(members, used, touched) if touched else {}
            owners = {o for a in touched for o in member_owners(a)}
        for owner in owners:
            if self.flows.get(owner) != new.get(owner):
                changed[owner] = new.get(owner, [])
        self._members = (used, mem)
        self.ports = wanted
        for owner, fl in changed.items():
            if fl:
                self.flows[owner] = fl
            else:
                self.flows.pop(owner, None)
        if full:
            res = self.of.sync(self.flows)
        else:
            res = self.of.apply(changed)
        if res.added or res.removed:
            log.info("firewall: %d flow(s) added, %d removed%s", res.added, res.removed,
                     " (full pass)" if full else "")
        errors = {pid: f"security groups not applied: {e}" for pid, e in self.errors.items()}
        for owner, e in res.errors.items():
            errors[owner.partition(":")[2] or owner] = f"flows refused by OVS: {e}"
            self.flows.pop(owner, None)   # tried again next pass
            self.ports.pop(owner.partition(":")[2], None)
        return errors

    def close(self) -> None:
        """Flows stay: VMs stay protected while the agent restarts (as Neutron's do)."""
        self.of.close()
