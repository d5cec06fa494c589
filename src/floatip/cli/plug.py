"""``floatip port plug|unplug``: a port into a network namespace, on this host's integration
bridge. A module of its own: OVS's library loads only for these two commands."""
from __future__ import annotations

import json
import os
import time
from typing import Optional

import typer

from ..agent import binding
from ..client import Client
from ..core.errors import NeutronError
from .app import out
from .config import load as load_config
from .output import label
from .resources import JSON, URL, _call, _fail, port_app


@port_app.command("plug")
def port_plug(ref: str, netns: str = typer.Option(..., "--netns", help="Network namespace."),
              ifname: str = typer.Option("eth0", "--ifname",
                                         help="Interface name in the namespace."),
              wait: float = typer.Option(10.0, "--wait", help="Seconds to wait for ACTIVE (0: "
                                                             "do not wait)."),
              config: Optional[str] = typer.Option(None, "--config", envvar="FLOATIP_CONFIG",
                                                   help="The host's config file ([ovs] "
                                                        "integration_bridge), as serve's."),
              url: str = URL, as_json: bool = JSON):
    """Plug PORT into a network namespace (a container): veth on the integration bridge with
    iface-id, MAC, fixed IP, default route via the subnet gateway."""
    try:
        cfg = load_config(config)
        cfg.check()  # the whole file, as serve checks it
        bridge = cfg.host().integration_bridge
    except NeutronError as e:
        _fail(e)
    if os.geteuid() != 0:
        _fail(NeutronError("plugging changes links and OVS: run it as root"))
    with Client(url) as c:
        def go():
            port = c.find("port", ref)
            subnets = {f["subnet_id"]: c.show("subnet", f["subnet_id"]) for f in port["fixed_ips"]}
            tap = binding.plug(port, subnets, netns, bridge, ifname)
            c.sync()
            deadline = time.monotonic() + wait
            while wait and time.monotonic() < deadline:
                port = c.show("port", port["id"])
                if port["status"] == "ACTIVE":
                    break
                time.sleep(0.05)
            return tap, port
        tap, port = _call(go)
        if as_json:
            print(json.dumps({"device": tap, "port": port}, indent=2))
        else:
            out.print(f"plugged port {label('port', port)} into {netns} ({tap} on "
                      f"{bridge}); status {port['status']}")
        if wait and port["status"] != "ACTIVE":
            raise typer.Exit(1)


@port_app.command("unplug")
def port_unplug(ref: str, url: str = URL):
    """Remove the veth and OVS port that ``port plug`` made for PORT."""
    if os.geteuid() != 0:
        _fail(NeutronError("unplugging changes links and OVS: run it as root"))
    with Client(url) as c:
        port = _call(lambda: c.find("port", ref))
        found = binding.unplug(port["id"])
        try:
            c.sync()
        except NeutronError:
            pass
    out.print(f"unplugged port {label('port', port)}" if found
              else f"port {label('port', port)} was not plugged", highlight=False)
