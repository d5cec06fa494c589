"""``floatip serve`` (the API and a backend) and ``floatip agent --server URL``."""
from __future__ import annotations

import logging
import os
import signal
import time
from typing import Optional

import typer

from ..agent.loop import Agent
from ..backends.remote import RemoteSource
from ..core.errors import NeutronError
from ..metadata.agent import metadata_hooks
from ..server import Server
from ..service import dns, networks
from ..service.quotas import defaults_from as quota_defaults
from .app import app, err
from .config import load as load_config
from .resources import _fail

# the host's services, shared by ``serve`` and ``agent``: None when not given, so the config
# file's [agent]/[metadata] keys apply. Nova's shared secret is never a flag (it would show in
# ``ps``): [metadata] metadata_proxy_shared_secret or FLOATIP_METADATA_SECRET.
DHCP_OPT = typer.Option(None, "--dhcp/--no-dhcp",
                        help="dnsmasq per tenant network with DHCP [on; config: \\[agent] dhcp].")
METADATA_OPT = typer.Option(None, "--metadata/--no-metadata",
                            help="A metadata proxy in each router namespace (port 9697) [on; "
                                 "config: \\[agent] metadata].")
NOVA_OPT = typer.Option(None, "--nova-metadata-url", envvar="FLOATIP_NOVA_METADATA_URL",
                        help="Forward metadata requests to Nova (signed, as Neutron's "
                             "metadata agent); without it floatip answers itself [config: "
                             "\\[metadata] nova_metadata_url].")
FIREWALL_OPT = typer.Option(None, "--firewall/--no-firewall",
                            help="Enforce security groups and port security with OpenFlow "
                                 "flows on the integration bridge (kernel backend; "
                                 "docs/firewall.md), or as OVN port groups and ACLs (OVN "
                                 "backend; docs/ovn.md) [on; config: \\[securitygroup] "
                                 "firewall_driver = openvswitch | noop].")
RUN_DIR_OPT = typer.Option(None, "--run-dir",
                           help="dnsmasq, radvd and metadata files [/run/floatip; config: "
                                "\\[agent] run_dir].")
CONFIG_OPT = typer.Option(None, "--config", envvar="FLOATIP_CONFIG",
                          help="INI file like neutron.conf (see docs/config.md).")


def _host_flags(dhcp, metadata, nova, run_dir, firewall) -> dict:
    """The host's flags as config keys (None: not given)."""
    return {("agent", "dhcp"): dhcp, ("agent", "metadata"): metadata,
            ("metadata", "nova_metadata_url"): nova, ("agent", "run_dir"): run_dir,
            ("securitygroup", "firewall_driver"): _driver(firewall)}


def _driver(firewall: bool | None) -> str | None:
    """--firewall/--no-firewall as the config's firewall_driver (None: not given)."""
    return None if firewall is None else ("openvswitch" if firewall else "noop")


@app.command("serve")
def serve(config: Optional[str] = CONFIG_OPT,
          listen: Optional[str] = typer.Option(None, "--listen",
                                               help="HOST:PORT [127.0.0.1:9696]"),
          db: Optional[str] = typer.Option(None, "--db", help="SQLAlchemy URL [sqlite:////var/"
                                           "lib/floatip/floatip.db]; env FLOATIP_DB."),
          auth_strategy: Optional[str] = typer.Option(None, "--auth-strategy",
                                                      help="noauth (loopback only) or keystone; "
                                                           "env FLOATIP_AUTH_STRATEGY."),
          policy_file: Optional[str] = typer.Option(None, "--policy-file",
                                                    help="Neutron-style policy overrides; env "
                                                         "FLOATIP_POLICY_FILE."),
          agent: Optional[bool] = typer.Option(None, "--agent/--no-agent",
                                               help="Run the agent on this host [agent]."),
          agent_process: Optional[bool] = typer.Option(
              None, "--agent-process/--agent-thread",
              help="The kernel agent in a process of its own, so its passes do not hold up "
                   "API requests; or a thread of the API's process [agent-process]."),
          interval: Optional[float] = typer.Option(None, "--interval",
                                                   help="Full resync every N seconds [30]."),
          prune: Optional[str] = typer.Option(None, "--prune",
                                              help="all: remove every floatip router this "
                                                   "database does not want; known: only "
                                                   "routers it ever had [all]."),
          dhcp: Optional[bool] = DHCP_OPT, metadata: Optional[bool] = METADATA_OPT,
          nova: Optional[str] = NOVA_OPT, run_dir: Optional[str] = RUN_DIR_OPT,
          firewall: Optional[bool] = FIREWALL_OPT,
          backend: Optional[str] = typer.Option(None, "--backend", envvar="FLOATIP_BACKEND",
                                                help="kernel: this host's agent; ovn: OVN "
                                                     "Northbound [kernel; config: \\[DEFAULT] "
                                                     "backend]."),
          ovn_nb: Optional[str] = typer.Option(None, "--ovn-nb", envvar="FLOATIP_OVN_NB",
                                               help="OVN Northbound (ovsdb) [config: \\[ovn] "
                                                    "ovn_nb_connection]."),
          ovn_sb: Optional[str] = typer.Option(None, "--ovn-sb", envvar="FLOATIP_OVN_SB",
                                               help="OVN Southbound (ovsdb) [config: \\[ovn] "
                                                    "ovn_sb_connection]."),
          ovn_distributed_fip: Optional[bool] = typer.Option(
              None, "--ovn-distributed-fip",
              help="Floating IPs on the VM's chassis when it maps the external network "
                   "[config: \\[ovn] enable_distributed_floating_ip]."),
          ovn_owner: str = typer.Option("", "--ovn-owner",
                                        help="Marker in external_ids (default floatip@HOST)."),
          workers: int = typer.Option(1, "--workers", min=1,
                                      help="API processes on this port (PostgreSQL): this "
                                           "one, with the agent, and N-1 without [1]."),
          worker: bool = typer.Option(False, "--worker", hidden=True)):
    """The Neutron v2.0 API and a backend (the agent, or OVN), in one process."""
    host, _, port = (listen or "").rpartition(":") if listen else (None, None, None)
    try:
        cfg = load_config(config, {("DEFAULT", "bind_host"): host or None,
                                   ("DEFAULT", "bind_port"): port or None,
                                   ("database", "connection"): db,
                                   ("DEFAULT", "auth_strategy"): auth_strategy,
                                   ("oslo_policy", "policy_file"): policy_file,
                                   ("DEFAULT", "agent"): agent, ("DEFAULT", "interval"): interval,
                                   ("DEFAULT", "agent_process"): agent_process,
                                   ("DEFAULT", "prune"): prune, ("DEFAULT", "backend"): backend,
                                   ("ovn", "ovn_nb_connection"): ovn_nb,
                                   ("ovn", "ovn_sb_connection"): ovn_sb,
                                   ("ovn", "enable_distributed_floating_ip"):
                                       ovn_distributed_fip,
                                   **_host_flags(dhcp, metadata, nova, run_dir, firewall)})
        cfg.check()
        backend = cfg.get("DEFAULT", "backend").strip()
        auth = cfg.auth()
        host = cfg.host()
        services = cfg.services()
        firewall = services["firewall"]
        agent = cfg.bool("DEFAULT", "agent") and not worker  # --workers' others: the API
        agent_process = cfg.bool("DEFAULT", "agent_process")
        interval = float(cfg.get("DEFAULT", "interval"))
        networks.GLOBAL_PHYSNET_MTU = int(cfg.get("DEFAULT", "global_physnet_mtu"))
        dns.DNS_DOMAIN = dns.configured(cfg.get("DEFAULT", "dns_domain"))
        quotas = quota_defaults(cfg.section("quotas"))
    except (NeutronError, ValueError) as e:
        _fail(NeutronError(str(e)))
    if workers > 1 and not cfg.get("database", "connection").startswith("postgresql"):
        _fail(NeutronError("--workers needs PostgreSQL: SQLite has one writer at a time"))
    if agent and backend == "kernel" and os.geteuid() != 0:
        _fail(NeutronError("the agent changes namespaces, links and OVS: run as root, or "
                           "use --no-agent"))
    logging.getLogger("floatip").setLevel(min(logging.getLogger().level, logging.INFO))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        srv = Server(cfg.get("database", "connection"), cfg.listen, host, agent=agent,
                     interval=interval, prune_scope=cfg.get("DEFAULT", "prune"), auth=auth,
                     policy_file=cfg.get("oslo_policy", "policy_file") or None,
                     agent_options=services, backend=backend, agent_process=agent_process,
                     quotas=quotas,
                     agent_down_time=float(cfg.get("DEFAULT", "agent_down_time")),
                     ovn={"nb": cfg.get("ovn", "ovn_nb_connection"),
                          "sb": cfg.get("ovn", "ovn_sb_connection"), "owner": ovn_owner,
                          "distributed_fip": cfg.bool("ovn", "enable_distributed_floating_ip"),
                          "firewall": firewall})
    except NeutronError as e:
        _fail(e)
    if not worker:
        err.print(f"floatip API on {srv.url} (db {srv.db.engine.url.render_as_string()})"
                  + (f", backend {backend}" if agent else "")
                  + (f", firewall {'on' if firewall else 'OFF (every VM port open)'}"
                     if agent and backend == "kernel" else "") + f", auth {auth.strategy}"
                  + (f", {workers} API processes" if workers > 1 else ""), highlight=False)
    srv.run(workers=workers, worker=worker)


@app.command("agent")
def agent_cmd(server: str = typer.Option(..., "--server", help="API endpoint to follow."),
              config: Optional[str] = CONFIG_OPT,
              interval: Optional[float] = typer.Option(None, "--interval",
                                                       help="Full resync every N seconds [30; "
                                                            "config: \\[DEFAULT] interval]."),
              prune: Optional[str] = typer.Option(None, "--prune",
                                                  help="all or known [all; config: \\[DEFAULT] "
                                                       "prune]."),
              dhcp: Optional[bool] = DHCP_OPT, metadata: Optional[bool] = METADATA_OPT,
              nova: Optional[str] = NOVA_OPT, run_dir: Optional[str] = RUN_DIR_OPT,
              firewall: Optional[bool] = FIREWALL_OPT):
    """The agent alone: follows a remote floatip API (long poll + periodic resync)."""
    try:
        cfg = load_config(config, {("DEFAULT", "interval"): interval,
                                   ("DEFAULT", "prune"): prune,
                                   **_host_flags(dhcp, metadata, nova, run_dir, firewall)})
        cfg.check()
        host = cfg.host()
        services = cfg.services()
    except NeutronError as e:
        _fail(e)
    if os.geteuid() != 0:
        _fail(NeutronError("the agent changes namespaces, links and OVS: run it as root"))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("floatip").setLevel(logging.INFO)
    hooks = metadata_hooks(services["run_dir"], services.pop("metadata"),
                           services.pop("nova_metadata_url"), services.pop("metadata_secret"),
                           owner="agent")
    agent = Agent(RemoteSource(server, secret=cfg.get("agent", "shared_secret") or None), host,
                  interval=float(cfg.get("DEFAULT", "interval")),
                  prune_scope=cfg.get("DEFAULT", "prune").strip(), hooks=hooks, **services)
    agent.start()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        agent.stop()
