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
from ..service import networks
from ..service.quotas import defaults_from as quota_defaults
from .app import Ctx, app, err
from .config import PRUNE_SCOPES, choice
from .config import interval as check_interval
from .config import load as load_config
from .resources import _fail

# DHCP and metadata options, shared by ``serve`` and ``agent``
DHCP_OPT = typer.Option(True, "--dhcp/--no-dhcp", help="dnsmasq per tenant network with DHCP.")
METADATA_OPT = typer.Option(True, "--metadata/--no-metadata",
                            help="A metadata proxy in each router namespace (port 9697).")
NOVA_OPT = typer.Option(None, "--nova-metadata-url", envvar="FLOATIP_NOVA_METADATA_URL",
                        help="Forward metadata requests to Nova (signed, as Neutron's "
                             "metadata agent); without it floatip answers itself.")
SECRET_OPT = typer.Option("", "--metadata-secret", envvar="FLOATIP_METADATA_SECRET",
                          help="Nova's metadata_proxy_shared_secret.")
FIREWALL_OPT = typer.Option(None, "--firewall/--no-firewall",
                            help="Enforce security groups and port security with OpenFlow "
                                 "flows on the integration bridge (kernel backend; "
                                 "docs/firewall.md), or as OVN port groups and ACLs (OVN "
                                 "backend; docs/ovn.md) [on; config: [securitygroup] "
                                 "firewall_driver = openvswitch | noop].")
RUN_DIR_OPT = typer.Option("/run/floatip", "--run-dir",
                           help="dnsmasq files and the metadata socket.")


def _services(dhcp: bool, metadata: bool, nova: str | None, secret: str, run_dir: str,
              firewall: bool) -> dict:
    return {"dhcp": dhcp, "metadata": metadata, "nova_metadata_url": nova,
            "metadata_secret": secret, "run_dir": run_dir, "firewall": firewall}


def _driver(firewall: bool | None) -> str | None:
    """--firewall/--no-firewall as the config's firewall_driver (None: not given)."""
    return None if firewall is None else ("openvswitch" if firewall else "noop")


@app.command("serve")
def serve(config: Optional[str] = typer.Option(None, "--config", envvar="FLOATIP_CONFIG",
                                               help="INI file like neutron.conf (see "
                                                    "docs/config.md)."),
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
          dhcp: bool = DHCP_OPT, metadata: bool = METADATA_OPT, nova: str = NOVA_OPT,
          secret: str = SECRET_OPT, run_dir: str = RUN_DIR_OPT,
          firewall: Optional[bool] = FIREWALL_OPT,
          backend: str = typer.Option("kernel", "--backend", envvar="FLOATIP_BACKEND",
                                      help="kernel: this host's agent; ovn: OVN Northbound."),
          ovn_nb: str = typer.Option("unix:/var/run/ovn/ovnnb_db.sock", "--ovn-nb",
                                     envvar="FLOATIP_OVN_NB", help="OVN Northbound (ovsdb)."),
          ovn_sb: str = typer.Option("unix:/var/run/ovn/ovnsb_db.sock", "--ovn-sb",
                                     envvar="FLOATIP_OVN_SB", help="OVN Southbound (ovsdb)."),
          ovn_distributed_fip: bool = typer.Option(
              False, "--ovn-distributed-fip",
              help="Floating IPs on the VM's chassis when it maps the external network."),
          ovn_owner: str = typer.Option("", "--ovn-owner",
                                        help="Marker in external_ids (default floatip@HOST).")):
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
                                   ("DEFAULT", "prune"): prune,
                                   ("securitygroup", "firewall_driver"): _driver(firewall)})
        cfg.check()
        choice("--backend", backend, ("kernel", "ovn"))
        auth = cfg.auth()
        firewall = cfg.firewall()
        agent = cfg.bool("DEFAULT", "agent")
        agent_process = cfg.bool("DEFAULT", "agent_process")
        interval = float(cfg.get("DEFAULT", "interval"))
        networks.GLOBAL_PHYSNET_MTU = int(cfg.get("DEFAULT", "global_physnet_mtu"))
        quotas = quota_defaults(cfg.section("quotas"))
    except (NeutronError, ValueError) as e:
        _fail(NeutronError(str(e)))
    if agent and backend == "kernel" and os.geteuid() != 0:
        _fail(NeutronError("the agent changes namespaces, links and OVS: run as root, or "
                           "use --no-agent"))
    logging.getLogger("floatip").setLevel(min(logging.getLogger().level, logging.INFO))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        srv = Server(cfg.get("database", "connection"), cfg.listen, Ctx.config, agent=agent,
                     interval=interval, prune_scope=cfg.get("DEFAULT", "prune"), auth=auth,
                     policy_file=cfg.get("oslo_policy", "policy_file") or None,
                     agent_options=_services(dhcp, metadata, nova, secret, run_dir, firewall),
                     backend=backend, agent_process=agent_process, quotas=quotas,
                     agent_down_time=float(cfg.get("DEFAULT", "agent_down_time")),
                     ovn={"nb": ovn_nb, "sb": ovn_sb, "owner": ovn_owner,
                                           "distributed_fip": ovn_distributed_fip,
                                           "firewall": firewall})
    except NeutronError as e:
        _fail(e)
    err.print(f"floatip API on {srv.url} (db {srv.db.engine.url.render_as_string()})"
              + (f", backend {backend}" if agent else "")
              + (f", firewall {'on' if firewall else 'OFF (every VM port open)'}"
                 if agent and backend == "kernel" else "") + f", auth {auth.strategy}",
              highlight=False)
    srv.run()


@app.command("agent")
def agent_cmd(server: str = typer.Option(..., "--server", help="API endpoint to follow."),
              config: Optional[str] = typer.Option(None, "--config", envvar="FLOATIP_CONFIG",
                                                   help="INI file; [agent] shared_secret."),
              interval: float = typer.Option(30.0, "--interval"),
              prune: str = typer.Option("all", "--prune", help="all or known"),
              dhcp: bool = DHCP_OPT, metadata: bool = METADATA_OPT, nova: str = NOVA_OPT,
              secret: str = SECRET_OPT, run_dir: str = RUN_DIR_OPT,
              firewall: Optional[bool] = FIREWALL_OPT):
    """The agent alone: follows a remote floatip API (long poll + periodic resync)."""
    if os.geteuid() != 0:
        _fail(NeutronError("the agent changes namespaces, links and OVS: run it as root"))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("floatip").setLevel(logging.INFO)
    try:
        cfg = load_config(config, {("securitygroup", "firewall_driver"): _driver(firewall)})
        agent_secret = cfg.get("agent", "shared_secret") or None
        firewall = cfg.firewall()
        choice("--prune", prune, PRUNE_SCOPES)
        check_interval(interval)
    except NeutronError as e:
        _fail(e)
    agent = Agent(RemoteSource(server, secret=agent_secret), Ctx.config, interval=interval,
                  prune_scope=prune, dhcp=dhcp, run_dir=run_dir, firewall=firewall,
                  hooks=metadata_hooks(run_dir, metadata, nova, secret, owner="agent"))
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
