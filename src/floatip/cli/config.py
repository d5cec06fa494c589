"""``floatip serve --config FILE``: an INI file like ``neutron.conf``.

Precedence: command-line flag, then environment variable, then the file, then the default.
Secrets (``[keystone_authtoken] password``, ``[agent] shared_secret``) come from the file
(mode 0600) or the environment, never from a flag, so they do not show in ``ps``.
``serve``, ``agent`` and ``port plug`` read the same file: the host's settings ([ovs],
[agent]) are in it, and the global flags (``--integration-bridge``, ...) override them.

    [DEFAULT]
    bind_host = 127.0.0.1          # FLOATIP_BIND_HOST
    bind_port = 9696               # FLOATIP_BIND_PORT
    auth_strategy = noauth         # FLOATIP_AUTH_STRATEGY: noauth (loopback only) | keystone
    agent = true                   # run this host's agent beside the API
    agent_process = true           # ... in a process of its own (false: a thread of the API's)
    interval = 30                  # full resync every N seconds
    prune = all                    # all | known
    global_physnet_mtu = 1500      # the physical networks' MTU: no network's may be larger
    dns_domain = openstacklocal    # ports' DNS domain; Neutron's default records no dns_name
    agent_down_time = 75           # no pass finished for so long: the agent is not alive
    backend = kernel               # kernel: this host's agent | ovn ([ovn] below)

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
    nat_driver = nftables          # this host's agent: nftables | iptables (--nat-driver)
    run_dir = /run/floatip         # dnsmasq, radvd and metadata files (--run-dir)
    dhcp = true                    # a dnsmasq per tenant network with DHCP (--dhcp/--no-dhcp)
    metadata = true                # the metadata proxy in each router (--metadata/--no-metadata)

    [ovs]                          # as Neutron's openvswitch_agent.ini
    integration_bridge = br-int    # --integration-bridge
    bridge_mappings = physnet1:br-ex   # --bridge-mapping; PHYSNET:BRIDGE,...

    [metadata]
    nova_metadata_url =            # --nova-metadata-url: forward to Nova, signed
    metadata_proxy_shared_secret = ...   # FLOATIP_METADATA_SECRET: Nova's shared secret

    [ovn]                          # serve --backend ovn, as Neutron's ml2_conf.ini
    ovn_nb_connection = unix:/var/run/ovn/ovnnb_db.sock
    ovn_sb_connection = unix:/var/run/ovn/ovnsb_db.sock
    enable_distributed_floating_ip = false

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
import difflib
import os
from dataclasses import dataclass, field

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import loading
from keystonemiddleware import auth_token

from ..api.auth import AuthSettings
from ..core.errors import NeutronError
from ..core.layout import AgentConfig
from ..core.names import check_ifname, parse_mappings
from .app import NAT_DRIVERS, Ctx
from ..service.dns import configured as dns_configured
from ..service.quotas import DEFAULTS as QUOTA_DEFAULTS

DEFAULTS = {
    ("DEFAULT", "bind_host"): "127.0.0.1",
    ("DEFAULT", "bind_port"): "9696",
    ("DEFAULT", "auth_strategy"): "noauth",
    ("DEFAULT", "agent"): "true",
    ("DEFAULT", "agent_process"): "true",
    ("DEFAULT", "interval"): "30",
    ("DEFAULT", "prune"): "all",
    ("DEFAULT", "global_physnet_mtu"): "1500",
    ("DEFAULT", "dns_domain"): "openstacklocal",
    ("DEFAULT", "agent_down_time"): "75",   # Neutron's: no pass for so long = not alive
    ("database", "connection"): "sqlite:////var/lib/floatip/floatip.db",
    ("agent", "shared_secret"): "",
    ("oslo_policy", "policy_file"): "",
    ("securitygroup", "firewall_driver"): "openvswitch",
    ("DEFAULT", "backend"): "kernel",
    ("agent", "nat_driver"): "nftables",
    ("agent", "run_dir"): "/run/floatip",
    ("agent", "dhcp"): "true",
    ("agent", "metadata"): "true",
    ("ovs", "integration_bridge"): "br-int",
    ("ovs", "bridge_mappings"): "physnet1:br-ex",
    ("metadata", "nova_metadata_url"): "",
    ("metadata", "metadata_proxy_shared_secret"): "",
    ("ovn", "ovn_nb_connection"): "unix:/var/run/ovn/ovnnb_db.sock",
    ("ovn", "ovn_sb_connection"): "unix:/var/run/ovn/ovnsb_db.sock",
    ("ovn", "enable_distributed_floating_ip"): "false",
}
FIREWALL_DRIVERS = ("openvswitch", "noop")
# every key a file may set, per section; [keystone_authtoken] is keystonemiddleware's
KEYS = {sec: set() for sec in ("DEFAULT", "database", "agent", "oslo_policy", "securitygroup",
                                "quotas", "keystone_authtoken", "ovs", "metadata", "ovn")}
for _sec, _key in DEFAULTS:
    KEYS[_sec].add(_key)
KEYS["quotas"] |= {"quota_" + r for r in QUOTA_DEFAULTS}
# as oslo.config's boolean options
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
PRUNE_SCOPES = ("all", "known")
AUTH_STRATEGIES = ("noauth", "keystone")
BACKENDS = ("kernel", "ovn")
ENV = {
    ("DEFAULT", "bind_host"): "FLOATIP_BIND_HOST",
    ("DEFAULT", "bind_port"): "FLOATIP_BIND_PORT",
    ("DEFAULT", "auth_strategy"): "FLOATIP_AUTH_STRATEGY",
    ("database", "connection"): "FLOATIP_DB",
    ("agent", "shared_secret"): "FLOATIP_AGENT_SECRET",
    ("oslo_policy", "policy_file"): "FLOATIP_POLICY_FILE",
    ("keystone_authtoken", "password"): "FLOATIP_KEYSTONE_PASSWORD",
    ("metadata", "metadata_proxy_shared_secret"): "FLOATIP_METADATA_SECRET",
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
        value = self.get(section, key).strip().lower()
        if value not in TRUE + FALSE:
            raise NeutronError(f"[{section}] {key} = {value!r}: not a boolean (true or false)")
        return value in TRUE

    def check(self) -> None:
        """Every value ``serve`` reads, refused at start with the option's name rather than
        failing later in the API or crash-looping in the agent."""
        port = self.get("DEFAULT", "bind_port").strip()
        if not (port.isdigit() and 1 <= int(port) <= 65535):
            raise NeutronError(f"[DEFAULT] bind_port = {port!r}: a port number, 1-65535")
        for key in ("agent", "agent_process"):
            self.bool("DEFAULT", key)
        interval(self.get("DEFAULT", "interval"))
        mtu = self.get("DEFAULT", "global_physnet_mtu").strip()
        if not (mtu.isdigit() and 68 <= int(mtu) <= 9216):  # the range of a network's mtu
            raise NeutronError(f"[DEFAULT] global_physnet_mtu = {mtu!r}: an MTU, 68-9216")
        try:
            dns_configured(self.get("DEFAULT", "dns_domain"))
        except ValueError as e:
            raise NeutronError(str(e)) from None
        down = self.get("DEFAULT", "agent_down_time").strip()
        try:
            if not 1 <= float(down) <= 86400:
                raise ValueError
        except ValueError:
            raise NeutronError(f"[DEFAULT] agent_down_time = {down!r}: seconds, 1-86400") \
                from None
        choice("[DEFAULT] prune", self.get("DEFAULT", "prune"), PRUNE_SCOPES)
        choice("[DEFAULT] auth_strategy", self.get("DEFAULT", "auth_strategy"),
               AUTH_STRATEGIES)
        choice("[DEFAULT] backend", self.get("DEFAULT", "backend"), BACKENDS)
        self.firewall()
        self.host()
        for key in ("dhcp", "metadata"):
            self.bool("agent", key)
        self.bool("ovn", "enable_distributed_floating_ip")
        if not os.path.isabs(self.get("agent", "run_dir").strip()):
            raise NeutronError(f"[agent] run_dir = {self.get('agent', 'run_dir').strip()!r}: "
                               "an absolute path")

    def host(self) -> AgentConfig:
        """This host's bridges and NAT driver (``[ovs]``, ``[agent] nat_driver``)."""
        nat = choice("[agent] nat_driver", self.get("agent", "nat_driver"), NAT_DRIVERS)
        try:
            bridge = check_ifname(self.get("ovs", "integration_bridge").strip())
            mappings = parse_mappings(
                [m.strip() for m in self.get("ovs", "bridge_mappings").split(",") if m.strip()])
        except NeutronError as e:
            raise NeutronError(f"[ovs]: {e.message}") from None
        return AgentConfig(bridge, mappings, nat)

    def services(self) -> dict:
        """The agent's services on this host (``agent.loop.Agent``'s and the metadata hook's
        options)."""
        return {"dhcp": self.bool("agent", "dhcp"), "metadata": self.bool("agent", "metadata"),
                "nova_metadata_url": self.get("metadata", "nova_metadata_url").strip() or None,
                "metadata_secret": self.get("metadata", "metadata_proxy_shared_secret"),
                "run_dir": self.get("agent", "run_dir").strip(), "firewall": self.firewall()}

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


def choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value.strip() not in allowed:
        raise NeutronError(f"{name} = {value.strip()!r}: {' or '.join(allowed)}"
                           + _near(value.strip(), allowed))
    return value.strip()


def interval(value) -> float:
    """A resync interval: seconds, more than 0."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds > 0 or seconds == float("inf"):
        raise NeutronError(f"interval = {str(value).strip()!r}: seconds, more than 0")
    return seconds


def _near(word: str, known) -> str:
    close = difflib.get_close_matches(word, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _authtoken_keys(auth_type: str) -> set[str] | None:
    """keystonemiddleware's options and those of its auth plugin (None: an unknown plugin,
    which keystonemiddleware refuses when it loads it)."""
    keys = {o.dest for _, opts in auth_token.list_opts() for o in opts}
    try:
        keys |= {o.dest for o in loading.get_plugin_loader(auth_type).get_options()}
    except ks_exceptions.NoMatchingPlugin:
        return None
    return keys


def _check_keys(path: str, p: configparser.ConfigParser) -> None:
    """Unknown sections and keys are errors, as oslo.config would never warn about them."""
    errors = []
    for section in p.sections():
        if section not in KEYS:
            errors.append(f"unknown section [{section}]" + _near(section, KEYS))
    for section in ["DEFAULT"] + [s for s in p.sections() if s in KEYS]:
        own = list(p.defaults()) if section == "DEFAULT" else \
            [k for k in p[section] if k not in p.defaults()]
        known = KEYS[section]
        if section == "keystone_authtoken":
            known = _authtoken_keys(p[section].get("auth_type", "password").strip())
            if known is None:
                continue
        for key in own:
            if key not in known:
                errors.append(f"unknown option {key!r} in [{section}]" + _near(key, known))
    if errors:
        raise NeutronError(f"config file {path}: " + "; ".join(errors))


def load(path: str | None, overrides: dict | None = None) -> Config:
    """The file (if any), then the environment, then the global flags that were given, then
    ``overrides`` (the command's flags that were given; None values are ignored)."""
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
        _check_keys(path, p)
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
    for (section, key), value in {**Ctx.flags, **(overrides or {})}.items():
        if value is not None:
            cfg.values[(section, key)] = str(value)
    return cfg
