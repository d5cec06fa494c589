"""``floatip serve --config FILE``: an INI file like ``neutron.conf``.

Precedence: command-line flag, then environment variable, then the file, then the default.
Secrets (``[keystone_authtoken] password``, ``[agent] shared_secret``) come from the file
(mode 0600) or the environment, never from a flag, so they do not show in ``ps``.

    [DEFAULT]
    bind_host = 127.0.0.1          # FLOATIP_BIND_HOST
    bind_port = 9696               # FLOATIP_BIND_PORT
    auth_strategy = noauth         # FLOATIP_AUTH_STRATEGY: noauth (loopback only) | keystone
    agent = true                   # run this host's agent beside the API
    agent_process = true           # ... in a process of its own (false: a thread of the API's)
    interval = 30                  # full resync every N seconds
    prune = all                    # all | known
    global_physnet_mtu = 1500      # the physical networks' MTU: no network's may be larger

    [database]
    connection = sqlite:////var/lib/floatip/floatip.db     # FLOATIP_DB

    [keystone_authtoken]           # keystonemiddleware's options, as in neutron.conf
    www_authenticate_uri = http://keystone:5000/v3
    auth_url = http://keystone:5000/v3
    auth_type = password
    username = floatip
    password = ...                 # FLOATIP_KEYSTONE_PASSWORD
    project_name = service
    user_domain_name = Default
    project_domain_name = Default

    [agent]
    shared_secret = ...            # FLOATIP_AGENT_SECRET: agents' Authorization: Bearer
    # bridges and the NAT driver: the global flags (--integration-bridge, FLOATIP_*)

    [oslo_policy]
    policy_file =                  # FLOATIP_POLICY_FILE: Neutron-style rule overrides

    [securitygroup]                # as in Neutron's agent config
    firewall_driver = openvswitch  # security groups and port security as OpenFlow flows on
                                   # the integration bridge (kernel agent); noop: none, every
                                   # VM port open (--firewall/--no-firewall)

    [quotas]                       # default limits per project, as neutron.conf's (-1: none)
    quota_network = 100
    quota_subnet = 100
    quota_port = 500
    quota_router = 10
    quota_floatingip = 50
    quota_security_group = 10
    quota_security_group_rule = 100
    quota_router_route = 30        # routes of one router
"""
from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field

from ..api.auth import AuthSettings
from ..core.errors import NeutronError

DEFAULTS = {
    ("DEFAULT", "bind_host"): "127.0.0.1",
    ("DEFAULT", "bind_port"): "9696",
    ("DEFAULT", "auth_strategy"): "noauth",
    ("DEFAULT", "agent"): "true",
    ("DEFAULT", "agent_process"): "true",
    ("DEFAULT", "interval"): "30",
    ("DEFAULT", "prune"): "all",
    ("DEFAULT", "global_physnet_mtu"): "1500",
    ("database", "connection"): "sqlite:////var/lib/floatip/floatip.db",
    ("agent", "shared_secret"): "",
    ("oslo_policy", "policy_file"): "",
    ("securitygroup", "firewall_driver"): "openvswitch",
}
FIREWALL_DRIVERS = ("openvswitch", "noop")
ENV = {
    ("DEFAULT", "bind_host"): "FLOATIP_BIND_HOST",
    ("DEFAULT", "bind_port"): "FLOATIP_BIND_PORT",
    ("DEFAULT", "auth_strategy"): "FLOATIP_AUTH_STRATEGY",
    ("database", "connection"): "FLOATIP_DB",
    ("agent", "shared_secret"): "FLOATIP_AGENT_SECRET",
    ("oslo_policy", "policy_file"): "FLOATIP_POLICY_FILE",
    ("keystone_authtoken", "password"): "FLOATIP_KEYSTONE_PASSWORD",
}


@dataclass
class Config:
    values: dict = field(default_factory=dict)
    authtoken: dict = field(default_factory=dict)

    def get(self, section: str, key: str) -> str:
        return self.values.get((section, key), DEFAULTS.get((section, key), ""))

    def section(self, section: str) -> dict[str, str]:
        """The keys the file (or the environment) set in ``section``."""
        return {k: v for (sec, k), v in self.values.items() if sec == section}

    def bool(self, section: str, key: str) -> bool:
        return self.get(section, key).strip().lower() in ("1", "true", "yes", "on")

    def firewall(self) -> bool:
        """The kernel agent's firewall: on unless ``firewall_driver = noop``."""
        driver = self.get("securitygroup", "firewall_driver").strip().lower()
        if driver not in FIREWALL_DRIVERS:
            raise NeutronError(f"[securitygroup] firewall_driver = {driver}: openvswitch "
                               "or noop")
        return driver == "openvswitch"

    @property
    def listen(self) -> str:
        return f"{self.get('DEFAULT', 'bind_host')}:{self.get('DEFAULT', 'bind_port')}"

    def auth(self) -> AuthSettings:
        strategy = self.get("DEFAULT", "auth_strategy").strip()
        if strategy == "keystone":
            need = [k for k in ("auth_url", "username", "password") if not self.authtoken.get(k)]
            if need:
                raise NeutronError("auth_strategy = keystone needs, in the keystone_authtoken section: "
                                   + ", ".join(need))
        return AuthSettings(strategy, dict(self.authtoken),
                            self.get("agent", "shared_secret"))


def load(path: str | None, overrides: dict | None = None) -> Config:
    """The file (if any), then the environment, then ``overrides`` (the flags that were given;
    None values are ignored)."""
    cfg = Config()
    if path:
        p = configparser.ConfigParser(interpolation=None)
        try:
            with open(path) as f:
                p.read_file(f)
        except OSError as e:
            raise NeutronError(f"config file {path}: {e.strerror}") from None
        except configparser.Error as e:
            raise NeutronError(f"config file {path}: {e}") from None
        for key, value in p.defaults().items():
            cfg.values[("DEFAULT", key)] = value
        for section in p.sections():
            for key, value in p.items(section, raw=True):
                if key in p.defaults() and section != "DEFAULT":
                    continue
                if section == "keystone_authtoken":
                    cfg.authtoken[key] = value
                else:
                    cfg.values[(section, key)] = value
    for (section, key), var in ENV.items():
        if os.environ.get(var):
            if section == "keystone_authtoken":
                cfg.authtoken[key] = os.environ[var]
            else:
                cfg.values[(section, key)] = os.environ[var]
    for (section, key), value in (overrides or {}).items():
        if value is not None:
            cfg.values[(section, key)] = str(value)
    return cfg
