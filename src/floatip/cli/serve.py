"""``floatip serve`` (the API and a backend) and ``floatip agent --server URL``."""
from __future__ import annotations

import logging
import os
import signal
import time

import typer

from ..agent.loop import Agent
from ..backends.remote import RemoteSource
from ..core.errors import NeutronError
from ..metadata.agent import metadata_hooks
from ..server import Server
from .app import Ctx, app, err
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
RUN_DIR_OPT = typer.Option("/run/floatip", "--run-dir",
                           help="dnsmasq files and the metadata socket.")


def _services(dhcp: bool, metadata: bool, nova: str | None, secret: str, run_dir: str) -> dict:
    return {"dhcp": dhcp, "metadata": metadata, "nova_metadata_url": nova,
            "metadata_secret": secret, "run_dir": run_dir}


@app.command("serve")
def serve(listen: str = typer.Option("127.0.0.1:9696", "--listen", help="HOST:PORT"),
          db: str = typer.Option("sqlite:////var/lib/floatip/floatip.db", "--db",
                                 envvar="FLOATIP_DB", help="SQLAlchemy URL."),
          agent: bool = typer.Option(True, "--agent/--no-agent",
                                     help="Run the agent in this process."),
          interval: float = typer.Option(30.0, "--interval",
                                         help="Full resync every N seconds."),
          prune: str = typer.Option("all", "--prune",
                                    help="all: remove every floatip router this database does "
                                         "not want; known: only routers it ever had."),
          dhcp: bool = DHCP_OPT, metadata: bool = METADATA_OPT, nova: str = NOVA_OPT,
          secret: str = SECRET_OPT, run_dir: str = RUN_DIR_OPT,
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
    if agent and backend == "kernel" and os.geteuid() != 0:
        _fail(NeutronError("the agent changes namespaces, links and OVS: run as root, or "
                           "use --no-agent"))
    logging.getLogger("floatip").setLevel(min(logging.getLogger().level, logging.INFO))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        srv = Server(db, listen, Ctx.config, agent=agent, interval=interval, prune_scope=prune,
                     agent_options=_services(dhcp, metadata, nova, secret, run_dir),
                     backend=backend, ovn={"nb": ovn_nb, "sb": ovn_sb, "owner": ovn_owner,
                                           "distributed_fip": ovn_distributed_fip})
    except NeutronError as e:
        _fail(e)
    err.print(f"floatip API on {srv.url} (db {srv.db.engine.url.render_as_string()})"
              + (f", backend {backend}" if agent else ""), highlight=False)
    srv.run()


@app.command("agent")
def agent_cmd(server: str = typer.Option(..., "--server", help="API endpoint to follow."),
              interval: float = typer.Option(30.0, "--interval"),
              prune: str = typer.Option("all", "--prune", help="all or known"),
              dhcp: bool = DHCP_OPT, metadata: bool = METADATA_OPT, nova: str = NOVA_OPT,
              secret: str = SECRET_OPT, run_dir: str = RUN_DIR_OPT):
    """The agent alone: follows a remote floatip API (long poll + periodic resync)."""
    if os.geteuid() != 0:
        _fail(NeutronError("the agent changes namespaces, links and OVS: run it as root"))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("floatip").setLevel(logging.INFO)
    agent = Agent(RemoteSource(server), Ctx.config, interval=interval, prune_scope=prune,
                  dhcp=dhcp, run_dir=run_dir,
                  hooks=metadata_hooks(run_dir, metadata, nova, secret))
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
