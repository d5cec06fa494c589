"""``floatip ovn-metadata --server URL --ovn-sb DB``: metadata on an OVN chassis, and the drop
of its VMs' router advertisements on br-int, run beside ``ovn-controller``
(backends/ovn/metadata.py, raguard.py; docs/ovn.md)."""
from __future__ import annotations

import logging
import os
import re
import signal
import time
from typing import Optional

import typer

from ..backends.ovn.metadata import NS_PREFIX, OvnMetadataAgent
from ..backends.remote import RemoteSource
from ..core.errors import NeutronError
from .app import app
from .config import load as load_config
from .resources import _fail
from .serve import NOVA_OPT, RUN_DIR_OPT

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


@app.command("ovn-metadata")
def ovn_metadata(
        server: str = typer.Option(..., "--server", help="The floatip API to follow."),
        sb: str = typer.Option(..., "--ovn-sb", envvar="FLOATIP_OVN_SB",
                               help="OVN Southbound, e.g. tcp:10.0.0.5:6642."),
        config: Optional[str] = typer.Option(None, "--config", envvar="FLOATIP_CONFIG",
                                             help="INI file: \\[agent] shared_secret, "
                                                  "run_dir, \\[metadata] (docs/config.md)."),
        ovs: Optional[str] = typer.Option(None, "--ovs-db",
                                          help="The local Open vSwitch database "
                                               "[ovs-vsctl's default]."),
        chassis: Optional[str] = typer.Option(None, "--chassis",
                                              help="This chassis' name [OVS system-id]."),
        ovs_netns: Optional[str] = typer.Option(
            None, "--ovs-netns", help="The namespace Open vSwitch runs in when not this one "
                                      "(a lab's chassis)."),
        prefix: str = typer.Option(NS_PREFIX, "--namespace-prefix",
                                   help="The metadata namespaces' names: PREFIX<network id> "
                                        "(several lab chassis on one machine)."),
        run_dir: Optional[str] = RUN_DIR_OPT,
        interval: float = typer.Option(30.0, "--interval",
                                       help="Seconds between full passes (drift repair)."),
        nova: Optional[str] = NOVA_OPT):
    """Per network with VMs on this chassis: a namespace ovnmeta-<network> on br-int as the
    network's localport, with a proxy on 169.254.169.254:80 to floatip's metadata service;
    and no router advertisement from a VM with port security (a drop on br-int)."""
    if os.geteuid() != 0:
        _fail(NeutronError("ovn-metadata makes namespaces, links and OVS ports: run it as root"))
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("floatip").setLevel(logging.INFO)
    for what, name in (("--ovs-netns", ovs_netns or "x"), ("--namespace-prefix", prefix)):
        if not NAME.fullmatch(name):   # names of files in /run/netns
            _fail(NeutronError(f"{what} {name!r}: letters, digits, '.', '_', '-' (at most 40)"))
    try:
        # Nova's secret from the file or FLOATIP_METADATA_SECRET, never a flag
        cfg = load_config(config, {("agent", "run_dir"): run_dir,
                                   ("metadata", "nova_metadata_url"): nova})
        cfg.check()
        services = cfg.services()
        agent_secret = cfg.get("agent", "shared_secret") or None
        agent = OvnMetadataAgent(RemoteSource(server, secret=agent_secret), sb,
                                 services["run_dir"], ovs=ovs, ovs_netns=ovs_netns,
                                 chassis=chassis, ns_prefix=prefix, interval=interval,
                                 nova_url=services["nova_metadata_url"],
                                 secret=services["metadata_secret"]).start()
    except (NeutronError, RuntimeError, OSError) as e:
        _fail(NeutronError(str(e)))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        agent.stop(remove=False)   # VMs keep their metadata path while the agent restarts
