"""The DHCP agent's pass: desired state -> DHCP specs -> observe -> ensure each network,
remove what is no longer wanted. A network that fails does not stop the others; a dead
dnsmasq is started again by the next pass."""
from __future__ import annotations

import logging

from ..core.dhcp import DhcpSpec, dhcp_specs
from ..core.model import State
from ..dataplane.dhcp import STATE_DIR, DhcpDataplane

log = logging.getLogger("floatip.dhcp")


class DhcpAgent:
    def __init__(self, integration_bridge: str, state_dir: str = STATE_DIR,
                 prune_scope: str = "all", dp: DhcpDataplane | None = None,
                 instance: str | None = None):
        """``prune_scope``: ``all`` removes every floatip DHCP namespace it does not want;
        ``known`` only those of networks this agent has served (other servers and tests on
        the same host keep theirs) and those marked with this server's ``instance`` (one
        whose network went while the agent was down); never another instance's."""
        self.bridge = integration_bridge
        self.dp = dp or DhcpDataplane(state_dir, instance=instance)
        self.prune_scope = prune_scope
        self.known: set[str] = set()
        self.specs: dict[str, DhcpSpec] = {}
        self.errors: dict[str, str] = {}

    def sync(self, state: State, full: bool = True) -> dict[str, str]:
        """One pass; returns {network id: error} for the networks that failed. Not ``full``:
        a network whose spec did not change since it was last ensured, and whose dnsmasq
        lives, is not looked at further."""
        specs = dhcp_specs(state, self.bridge)
        self.known |= set(specs)
        observed = self.dp.observe()
        errors = {}
        for nid, spec in specs.items():
            facts = observed.get(nid)
            if not full and self.specs.get(nid) == spec and nid not in self.errors \
                    and facts is not None and facts.namespace and facts.pid:
                continue
            try:
                self.dp.ensure(spec, facts)
            except Exception as e:  # noqa: BLE001 - one network must not stop the others
                log.error("DHCP for network %s: %s", nid, e)
                errors[nid] = str(e)
        for nid, facts in observed.items():
            mine = facts.instance is not None and facts.instance == self.dp.instance
            theirs = facts.instance is not None and not mine
            if nid in specs or theirs or (self.prune_scope == "known" and nid not in self.known
                                          and not mine):
                continue
            try:
                self.dp.remove(facts)
                self.known.discard(nid)
            except Exception as e:  # noqa: BLE001
                log.error("removing DHCP for network %s: %s", nid, e)
                errors[nid] = str(e)
        self.specs, self.errors = specs, errors
        return errors

    def close(self) -> None:
        self.dp.close()
