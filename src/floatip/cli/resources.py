"""The native CLI over the API: ``floatip network|subnet|port|router|floating-ip ...``,
``floatip port plug|unplug`` (security groups: security_groups.py).

Tables by default, ``--json`` for scripts. Resources are named by id or by unique name
(floating IPs also by address), as with the openstack CLI.
"""
from __future__ import annotations

import json
import os
import time
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..agent import binding
from ..client import DEFAULT_URL, Client
from ..core.errors import NeutronError
from .app import app
from .config import load as load_config

out = Console()
err = Console(stderr=True)
URL = typer.Option(DEFAULT_URL, "--url", envvar="FLOATIP_URL", help="floatip API endpoint.")
JSON = typer.Option(False, "--json", help="Print JSON.")

COLUMNS = {
    "network": ("id", "name", "router:external", "provider:network_type",
                "provider:physical_network", "provider:segmentation_id", "subnets"),
    "subnet": ("id", "name", "network_id", "cidr", "gateway_ip", "allocation_pools"),
    "port": ("id", "name", "network_id", "mac_address", "fixed_ips", "device_owner", "status",
             "binding:host_id"),
    "router": ("id", "name", "status", "admin_state_up", "external_gateway_info"),
    "floatingip": ("id", "floating_ip_address", "fixed_ip_address", "port_id", "router_id",
                   "status"),
}


LABELS = {"router:external": "external", "provider:network_type": "type",
          "provider:physical_network": "physnet", "provider:segmentation_id": "segment",
          "floating_ip_address": "floating ip", "fixed_ip_address": "fixed ip",
          "binding:host_id": "host", "external_gateway_info": "gateway",
          "admin_state_up": "up", "allocation_pools": "pools", "device_owner": "owner"}


def _fail(e: Exception) -> None:
    # escaped: messages name config sections ([DEFAULT]), not markup; unwrapped for grep
    err.print(f"[red]error[/red] {getattr(e, 'type', type(e).__name__)}: {escape(str(e))}",
              highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _fmt(v) -> str:
    if isinstance(v, list):
        return "\n".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return "" if v is None else str(v)


def _print_list(kind: str, items: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(items, indent=2))
        return
    t = Table()
    for c in COLUMNS[kind]:
        t.add_column(LABELS.get(c, c), overflow="fold")
    for d in items:
        t.add_row(*(_fmt(d.get(c)) for c in COLUMNS[kind]))
    out.print(t)


def _print_one(obj, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2))
        return
    t = Table("Field", "Value")
    t.columns[1].overflow = "fold"
    for k, v in sorted(obj.items()):
        t.add_row(k, _fmt(v))
    out.print(t)


def _call(fn):
    try:
        return fn()
    except NeutronError as e:
        _fail(e)


def _kv(items: list[str], what: str) -> list[dict]:
    """``subnet=X,ip-address=Y`` -> {"subnet": X, "ip-address": Y}."""
    out_ = []
    for item in items:
        d = {}
        for part in item.split(","):
            k, sep, v = part.partition("=")
            if not sep:
                raise typer.BadParameter(f"{what}: {item!r} is not KEY=VALUE[,KEY=VALUE]")
            d[k.strip()] = v.strip()
        out_.append(d)
    return out_


def _fixed_ips(c: Client, items: list[str]) -> list[dict]:
    res = []
    for d in _kv(items, "--fixed-ip"):
        f = {}
        if "subnet" in d:
            f["subnet_id"] = c.find("subnet", d["subnet"])["id"]
        if "ip-address" in d or "ip_address" in d:
            f["ip_address"] = d.get("ip-address") or d.get("ip_address")
        res.append(f)
    return res


def _sub_app(kind: str, label: str) -> typer.Typer:
    app = typer.Typer(help=f"{label}s through the API.", no_args_is_help=True)

    @app.command("list")
    def list_(filter_: list[str] = typer.Option([], "--filter", help="FIELD=VALUE (repeatable)"),
              url: str = URL, as_json: bool = JSON):
        """List them (filters as in the API: name=, router:external=True, port_id= ...)."""
        params = {}
        for f in filter_:
            k, _, v = f.partition("=")
            params[k] = v
        with Client(url) as c:
            _print_list(kind, _call(lambda: c.list(kind, **params)), as_json)

    @app.command("show")
    def show(ref: str, url: str = URL, as_json: bool = JSON):
        """Show one, by id or name."""
        with Client(url) as c:
            _print_one(_call(lambda: c.find(kind, ref)), as_json)

    @app.command("delete")
    def delete(refs: list[str], url: str = URL):
        """Delete them, by id or name."""
        with Client(url) as c:
            for ref in refs:
                _call(lambda: c.delete(kind, c.find(kind, ref)["id"]))
                out.print(f"deleted {label.lower()} {ref}")
    return app


network_app = _sub_app("network", "Network")
subnet_app = _sub_app("subnet", "Subnet")
port_app = _sub_app("port", "Port")
router_app = _sub_app("router", "Router")
fip_app = _sub_app("floatingip", "Floating IP")


@network_app.command("create")
def network_create(name: str, external: bool = typer.Option(False, "--external"),
                   network_type: Optional[str] = typer.Option(None, "--provider-network-type",
                                                              help="flat, vlan or local"),
                   physnet: Optional[str] = typer.Option(None, "--provider-physical-network"),
                   segment: Optional[int] = typer.Option(None, "--provider-segment"),
                   mtu: Optional[int] = typer.Option(None, "--mtu"),
                   url: str = URL, as_json: bool = JSON):
    """Create a network (tenant networks: local or vlan; external: flat or vlan)."""
    body = {"name": name, "router:external": external}
    for k, v in (("provider:network_type", network_type), ("provider:physical_network", physnet),
                 ("provider:segmentation_id", segment), ("mtu", mtu)):
        if v is not None:
            body[k] = v
    with Client(url) as c:
        _print_one(_call(lambda: c.create("network", **body)), as_json)


@network_app.command("set")
def network_set(ref: str, name: Optional[str] = typer.Option(None, "--name"),
                mtu: Optional[int] = typer.Option(None, "--mtu"),
                enable: Optional[bool] = typer.Option(None, "--enable/--disable"),
                url: str = URL, as_json: bool = JSON):
    """Change name, MTU or admin state."""
    body = {k: v for k, v in (("name", name), ("mtu", mtu), ("admin_state_up", enable))
            if v is not None}
    with Client(url) as c:
        _print_one(_call(lambda: c.update("network", c.find("network", ref)["id"], **body)),
                   as_json)


@subnet_app.command("create")
def subnet_create(name: str, network: str = typer.Option(..., "--network"),
                  cidr: str = typer.Option(..., "--subnet-range"),
                  gateway: Optional[str] = typer.Option(None, "--gateway",
                                                        help="IP, or 'none'"),
                  pools: list[str] = typer.Option([], "--allocation-pool",
                                                  help="start=IP,end=IP (repeatable)"),
                  dhcp: bool = typer.Option(True, "--dhcp/--no-dhcp"),
                  ip_version: int = typer.Option(4, "--ip-version", help="4 or 6"),
                  ra_mode: Optional[str] = typer.Option(
                      None, "--ipv6-ra-mode", help="slaac, dhcpv6-stateful, dhcpv6-stateless"),
                  address_mode: Optional[str] = typer.Option(
                      None, "--ipv6-address-mode",
                      help="slaac, dhcpv6-stateful, dhcpv6-stateless"),
                  url: str = URL, as_json: bool = JSON):
    """Create a subnet (IPv4, or IPv6 with its RA and address modes)."""
    with Client(url) as c:
        def go():
            body = {"name": name, "network_id": c.find("network", network)["id"],
                    "cidr": cidr, "ip_version": ip_version, "enable_dhcp": dhcp}
            for key, value in (("ipv6_ra_mode", ra_mode), ("ipv6_address_mode", address_mode)):
                if value is not None:
                    body[key] = value
            if gateway is not None:
                body["gateway_ip"] = None if gateway.lower() == "none" else gateway
            if pools:
                body["allocation_pools"] = _kv(pools, "--allocation-pool")
            return c.create("subnet", **body)
        _print_one(_call(go), as_json)


@subnet_app.command("set")
def subnet_set(ref: str, name: Optional[str] = typer.Option(None, "--name"),
               dhcp: Optional[bool] = typer.Option(None, "--dhcp/--no-dhcp"),
               url: str = URL, as_json: bool = JSON):
    """Change name or DHCP flag."""
    body = {k: v for k, v in (("name", name), ("enable_dhcp", dhcp)) if v is not None}
    with Client(url) as c:
        _print_one(_call(lambda: c.update("subnet", c.find("subnet", ref)["id"], **body)),
                   as_json)


def port_security_body(c: Client, groups: list[str], no_group: bool,
                       port_security: Optional[bool], allowed: list[dict]) -> dict:
    """``floatip port create|set`` options -> the port's body: groups by id or name,
    ``--no-security-group`` (none), port security on or off, allowed address pairs."""
    body: dict = {}
    if no_group and groups:
        raise NeutronError("--security-group and --no-security-group exclude each other")
    if no_group:
        body["security_groups"] = []
    elif groups:
        body["security_groups"] = list(dict.fromkeys(c.find("security_group", g)["id"]
                                                     for g in groups))
    if port_security is not None:
        body["port_security_enabled"] = port_security
    if allowed:
        body["allowed_address_pairs"] = [
            {"ip_address": a.get("ip-address") or a.get("ip_address"),
             **({"mac_address": a.get("mac-address") or a.get("mac_address")}
                if a.get("mac-address") or a.get("mac_address") else {})} for a in allowed]
    return body


SG_OPT = typer.Option([], "--security-group", help="By id or name (repeatable).")
PSEC_OPT = typer.Option(None, "--enable-port-security/--disable-port-security")
PAIR_OPT = typer.Option([], "--allowed-address",
                        help="ip-address=IP[/LEN][,mac-address=MAC] (repeatable)")


@port_app.command("create")
def port_create(name: str, network: str = typer.Option(..., "--network"),
                fixed_ip: list[str] = typer.Option([], "--fixed-ip",
                                                   help="subnet=SUBNET,ip-address=IP"),
                mac: Optional[str] = typer.Option(None, "--mac-address"),
                device_owner: str = typer.Option("compute:floatip", "--device-owner"),
                device_id: str = typer.Option("", "--device-id"),
                security_group: list[str] = SG_OPT,
                no_security_group: bool = typer.Option(False, "--no-security-group"),
                port_security: Optional[bool] = PSEC_OPT,
                allowed_address: list[str] = PAIR_OPT,
                url: str = URL, as_json: bool = JSON):
    """Create a port (a VM's or a container's NIC); without --security-group it gets the
    project's default group."""
    with Client(url) as c:
        def go():
            body = {"name": name, "network_id": c.find("network", network)["id"],
                    "device_owner": device_owner, "device_id": device_id}
            if fixed_ip:
                body["fixed_ips"] = _fixed_ips(c, fixed_ip)
            if mac:
                body["mac_address"] = mac
            body.update(port_security_body(c, security_group, no_security_group, port_security,
                                           _kv(allowed_address, "--allowed-address")))
            return c.create("port", **body)
        _print_one(_call(go), as_json)


@port_app.command("set")
def port_set(ref: str, name: Optional[str] = typer.Option(None, "--name"),
             device_id: Optional[str] = typer.Option(None, "--device-id"),
             host: Optional[str] = typer.Option(None, "--host"),
             enable: Optional[bool] = typer.Option(None, "--enable/--disable"),
             security_group: list[str] = SG_OPT,
             no_security_group: bool = typer.Option(False, "--no-security-group",
                                                    help="Remove its groups (with the ones "
                                                         "given: set exactly those)."),
             port_security: Optional[bool] = PSEC_OPT,
             allowed_address: list[str] = PAIR_OPT,
             no_allowed_address: bool = typer.Option(False, "--no-allowed-address"),
             url: str = URL, as_json: bool = JSON):
    """Change name, device id, binding host, admin state, groups, port security or allowed
    address pairs (--security-group adds to its groups, as the openstack CLI does)."""
    body = {k: v for k, v in (("name", name), ("device_id", device_id),
                              ("binding:host_id", host), ("admin_state_up", enable))
            if v is not None}
    with Client(url) as c:
        def go():
            port = c.find("port", ref)
            groups = list(security_group)
            if groups and not no_security_group:  # openstack port set adds to the groups
                groups = port.get("security_groups", []) + groups
            body.update(port_security_body(c, groups, no_security_group and not groups,
                                           port_security, _kv(allowed_address,
                                                              "--allowed-address")))
            if no_allowed_address:
                body["allowed_address_pairs"] = []
            return c.update("port", port["id"], **body)
        _print_one(_call(go), as_json)


@port_app.command("plug")
def port_plug(ref: str, netns: str = typer.Option(..., "--netns", help="Network namespace."),
              ifname: str = typer.Option("eth0", "--ifname"),
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
            out.print(f"plugged port {port['id']} into {netns} ({tap} on "
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
    out.print(f"unplugged port {port['id']}" if found else f"port {port['id']} was not plugged")


def _gateway_body(c: Client, network: str, fixed_ip: list[str], snat: Optional[bool]) -> dict:
    gw = {"network_id": c.find("network", network)["id"]}
    if fixed_ip:
        gw["external_fixed_ips"] = _fixed_ips(c, fixed_ip)
    if snat is not None:
        gw["enable_snat"] = snat
    return gw


@router_app.command("create")
def router_create(name: str, gateway: Optional[str] = typer.Option(None, "--external-gateway"),
                  fixed_ip: list[str] = typer.Option([], "--fixed-ip",
                                                     help="subnet=S,ip-address=IP on the "
                                                          "external network"),
                  snat: Optional[bool] = typer.Option(None, "--enable-snat/--disable-snat"),
                  url: str = URL, as_json: bool = JSON):
    """Create a router, optionally with its external gateway."""
    with Client(url) as c:
        def go():
            body = {"name": name}
            if gateway:
                body["external_gateway_info"] = _gateway_body(c, gateway, fixed_ip, snat)
            return c.create("router", **body)
        _print_one(_call(go), as_json)


@router_app.command("set")
def router_set(ref: str, name: Optional[str] = typer.Option(None, "--name"),
               gateway: Optional[str] = typer.Option(None, "--external-gateway"),
               no_gateway: bool = typer.Option(False, "--no-external-gateway"),
               fixed_ip: list[str] = typer.Option([], "--fixed-ip"),
               snat: Optional[bool] = typer.Option(None, "--enable-snat/--disable-snat"),
               enable: Optional[bool] = typer.Option(None, "--enable/--disable"),
               url: str = URL, as_json: bool = JSON):
    """Change name, admin state or external gateway."""
    with Client(url) as c:
        def go():
            r = c.find("router", ref)
            body = {k: v for k, v in (("name", name), ("admin_state_up", enable)) if v is not None}
            if no_gateway:
                body["external_gateway_info"] = None
            elif gateway:
                body["external_gateway_info"] = _gateway_body(c, gateway, fixed_ip, snat)
            elif snat is not None:
                gw = r["external_gateway_info"]
                if not gw:
                    raise NeutronError("router has no external gateway")
                body["external_gateway_info"] = {"network_id": gw["network_id"],
                                                 "enable_snat": snat}
            return c.update("router", r["id"], **body)
        _print_one(_call(go), as_json)


def _interface_body(c: Client, subnet: Optional[str], port: Optional[str]) -> dict:
    """add/remove_router_interface takes a subnet or a port, by name or id."""
    return {"subnet_id": c.find("subnet", subnet)["id"]} if subnet else \
        {"port_id": c.find("port", port)["id"]}


@router_app.command("add-interface")
def router_add_interface(ref: str, subnet: Optional[str] = typer.Option(None, "--subnet"),
                         port: Optional[str] = typer.Option(None, "--port"),
                         url: str = URL, as_json: bool = JSON):
    """Attach a tenant subnet (the router takes its gateway IP) or an existing port."""
    with Client(url) as c:
        def go():
            body = _interface_body(c, subnet, port)
            return c.add_interface(c.find("router", ref)["id"], **body)
        _print_one(_call(go), as_json)


@router_app.command("remove-interface")
def router_remove_interface(ref: str, subnet: Optional[str] = typer.Option(None, "--subnet"),
                            port: Optional[str] = typer.Option(None, "--port"),
                            url: str = URL, as_json: bool = JSON):
    """Detach a subnet or port from the router."""
    with Client(url) as c:
        def go():
            body = _interface_body(c, subnet, port)
            return c.remove_interface(c.find("router", ref)["id"], **body)
        _print_one(_call(go), as_json)


@fip_app.command("create")
def fip_create(network: str, address: Optional[str] = typer.Option(None, "--floating-ip-address"),
               subnet: Optional[str] = typer.Option(None, "--subnet"),
               port: Optional[str] = typer.Option(None, "--port"),
               fixed_ip: Optional[str] = typer.Option(None, "--fixed-ip-address"),
               description: str = typer.Option("", "--description"),
               url: str = URL, as_json: bool = JSON):
    """Allocate a floating IP on an external NETWORK, optionally associated with a port."""
    with Client(url) as c:
        def go():
            body = {"floating_network_id": c.find("network", network)["id"],
                    "description": description}
            if address:
                body["floating_ip_address"] = address
            if subnet:
                body["subnet_id"] = c.find("subnet", subnet)["id"]
            if port:
                body["port_id"] = c.find("port", port)["id"]
            if fixed_ip:
                body["fixed_ip_address"] = fixed_ip
            return c.create("floatingip", **body)
        _print_one(_call(go), as_json)


@fip_app.command("set")
def fip_set(ref: str, port: Optional[str] = typer.Option(None, "--port",
                                                          help="Associate with (or move to) "
                                                               "this port."),
            no_port: bool = typer.Option(False, "--no-port", help="Disassociate."),
            fixed_ip: Optional[str] = typer.Option(None, "--fixed-ip-address"),
            description: Optional[str] = typer.Option(None, "--description"),
            url: str = URL, as_json: bool = JSON):
    """Associate, move or disassociate a floating IP (by id or address)."""
    with Client(url) as c:
        def go():
            f = c.find("floatingip", ref)
            body = {}
            if no_port:
                body["port_id"] = None
            elif port:
                body["port_id"] = c.find("port", port)["id"]
                if fixed_ip:
                    body["fixed_ip_address"] = fixed_ip
            if description is not None:
                body["description"] = description
            return c.update("floatingip", f["id"], **body)
        _print_one(_call(go), as_json)


app.add_typer(network_app, name="network")
app.add_typer(subnet_app, name="subnet")
app.add_typer(port_app, name="port")
app.add_typer(router_app, name="router")
app.add_typer(fip_app, name="floating-ip")
