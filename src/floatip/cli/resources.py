"""The native CLI over the API: ``floatip network|subnet|port|router|floating-ip ...``,
``floatip port plug|unplug`` (security groups: security_groups.py).

Tables by default, ``-f value|json|csv|yaml`` and ``-c COLUMN`` for scripts (output.py).
Resources are named by id or by unique name (floating IPs also by address), as with the
openstack CLI.
"""
from __future__ import annotations

import time
from typing import Optional

import typer

from ..client import DEFAULT_URL, Client
from ..core.errors import NeutronError
from .app import app, fail, out
from .output import COLUMN, FORMAT, Format, label, print_list, print_one
from .tagging import ANY_TAGS, NO_TAG, NOT_TAGS, TAG, TAGS, tag_filters, updated, with_tags

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


def _fail(e: Exception, code: int = 1) -> None:
    fail(e, code)  # exit 1 here: the API refused


def _print_list(kind: str, items: list[dict], fmt: Format, columns: list[str]) -> None:
    try:
        print_list(items, COLUMNS[kind], LABELS, fmt, columns)
    except NeutronError as e:  # a -c that names no column
        _fail(e, 2)


def _print_one(obj: dict, fmt: Format, columns: list[str]) -> None:
    try:
        print_one(obj, fmt, columns)
    except NeutronError as e:
        _fail(e, 2)


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


def _sub_app(kind: str, what: str) -> typer.Typer:
    app = typer.Typer(help=f"{what}s through the API.", no_args_is_help=True)

    @app.command("list")
    def list_(filter_: list[str] = typer.Option([], "--filter", help="FIELD=VALUE (repeatable)"),
              tags: Optional[str] = TAGS, any_tags: Optional[str] = ANY_TAGS,
              not_tags: Optional[str] = NOT_TAGS, url: str = URL, fmt: Format = FORMAT,
              columns: list[str] = COLUMN):
        """List them (filters as in the API: name=, router:external=True, port_id= ...)."""
        params = tag_filters(tags, any_tags, not_tags)
        for f in filter_:
            k, _, v = f.partition("=")
            params[k] = v
        with Client(url) as c:
            _print_list(kind, _call(lambda: c.list(kind, **params)), fmt, columns)

    @app.command("show")
    def show(ref: str, url: str = URL, fmt: Format = FORMAT,
             columns: list[str] = COLUMN):
        """Show one, by id or name."""
        with Client(url) as c:
            _print_one(_call(lambda: c.find(kind, ref)), fmt, columns)

    @app.command("delete")
    def delete(refs: list[str], url: str = URL):
        """Delete them, by id or name."""
        with Client(url) as c:
            for ref in refs:
                obj = _call(lambda: c.find(kind, ref))
                _call(lambda: c.delete(kind, obj["id"]))
                out.print(f"deleted {what.lower()} {label(kind, obj)}", highlight=False)
    return app


network_app = _sub_app("network", "Network")
subnet_app = _sub_app("subnet", "Subnet")
port_app = _sub_app("port", "Port")
router_app = _sub_app("router", "Router")
fip_app = _sub_app("floatingip", "Floating IP")


@network_app.command("create")
def network_create(name: str,
                   external: bool = typer.Option(False, "--external",
                                                 help="An external network (floating IPs, "
                                                      "router gateways)."),
                   network_type: Optional[str] = typer.Option(None, "--provider-network-type",
                                                              help="flat, vlan or local"),
                   physnet: Optional[str] = typer.Option(None, "--provider-physical-network",
                                                         help="Physical network (flat, vlan): "
                                                              "a name of --bridge-mapping."),
                   segment: Optional[int] = typer.Option(None, "--provider-segment",
                                                         help="VLAN id (vlan networks)."),
                   mtu: Optional[int] = typer.Option(None, "--mtu",
                                                     help="MTU [the physical network's]."),
                   tags: list[str] = TAG,
                   url: str = URL, fmt: Format = FORMAT,
                   columns: list[str] = COLUMN):
    """Create a network (tenant networks: local or vlan; external: flat or vlan)."""
    body = {"name": name, "router:external": external}
    for k, v in (("provider:network_type", network_type), ("provider:physical_network", physnet),
                 ("provider:segmentation_id", segment), ("mtu", mtu)):
        if v is not None:
            body[k] = v
    with Client(url) as c:
        _print_one(_call(lambda: c.create("network", **with_tags(body, tags))), fmt, columns)


@network_app.command("set")
def network_set(ref: str, name: Optional[str] = typer.Option(None, "--name", help="New name."),
                mtu: Optional[int] = typer.Option(None, "--mtu", help="New MTU."),
                enable: Optional[bool] = typer.Option(None, "--enable/--disable",
                                                      help="Admin state up or down."),
                tags: list[str] = TAG, no_tag: bool = NO_TAG,
                url: str = URL, fmt: Format = FORMAT,
                columns: list[str] = COLUMN):
    """Change name, MTU or admin state."""
    body = {k: v for k, v in (("name", name), ("mtu", mtu), ("admin_state_up", enable))
            if v is not None}
    with Client(url) as c:
        _print_one(_call(lambda: updated(c, "network", c.find("network", ref)["id"], body,
                                         tags, no_tag)),
                   fmt, columns)


@subnet_app.command("create")
def subnet_create(name: str, network: str = typer.Option(..., "--network",
                                                        help="Its network, by id or name."),
                  cidr: Optional[str] = typer.Option(None, "--subnet-range",
                                                     help="CIDR (with --subnet-pool: in it)."),
                  pool: Optional[str] = typer.Option(None, "--subnet-pool",
                                                     help="Take the CIDR from this pool."),
                  prefixlen: Optional[int] = typer.Option(None, "--prefix-length",
                                                          help="Of the pool's CIDR."),
                  gateway: Optional[str] = typer.Option(None, "--gateway",
                                                        help="IP, or 'none'"),
                  pools: list[str] = typer.Option([], "--allocation-pool",
                                                  help="start=IP,end=IP (repeatable)"),
                  dhcp: bool = typer.Option(True, "--dhcp/--no-dhcp",
                                            help="Addresses by DHCP (dnsmasq)."),
                  ip_version: int = typer.Option(4, "--ip-version", help="4 or 6"),
                  ra_mode: Optional[str] = typer.Option(
                      None, "--ipv6-ra-mode", help="slaac, dhcpv6-stateful, dhcpv6-stateless"),
                  address_mode: Optional[str] = typer.Option(
                      None, "--ipv6-address-mode",
                      help="slaac, dhcpv6-stateful, dhcpv6-stateless"),
                  tags: list[str] = TAG,
                  url: str = URL, fmt: Format = FORMAT,
                  columns: list[str] = COLUMN):
    """Create a subnet (IPv4, or IPv6 with its RA and address modes)."""
    with Client(url) as c:
        def go():
            body = {"name": name, "network_id": c.find("network", network)["id"],
                    "ip_version": ip_version, "enable_dhcp": dhcp}
            if pool is not None:
                body["subnetpool_id"] = c.find("subnetpool", pool)["id"]
            for key, value in (("ipv6_ra_mode", ra_mode), ("ipv6_address_mode", address_mode),
                               ("cidr", cidr), ("prefixlen", prefixlen)):
                if value is not None:
                    body[key] = value
            if gateway is not None:
                body["gateway_ip"] = None if gateway.lower() == "none" else gateway
            if pools:
                body["allocation_pools"] = _kv(pools, "--allocation-pool")
            return c.create("subnet", **with_tags(body, tags))
        _print_one(_call(go), fmt, columns)


@subnet_app.command("set")
def subnet_set(ref: str, name: Optional[str] = typer.Option(None, "--name", help="New name."),
               dhcp: Optional[bool] = typer.Option(None, "--dhcp/--no-dhcp",
                                                   help="Turn DHCP on or off."),
               tags: list[str] = TAG, no_tag: bool = NO_TAG,
               url: str = URL, fmt: Format = FORMAT,
               columns: list[str] = COLUMN):
    """Change name or DHCP flag."""
    body = {k: v for k, v in (("name", name), ("enable_dhcp", dhcp)) if v is not None}
    with Client(url) as c:
        _print_one(_call(lambda: updated(c, "subnet", c.find("subnet", ref)["id"], body,
                                         tags, no_tag)),
                   fmt, columns)


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
QOS_OPT = typer.Option(None, "--qos-policy", help="A QoS policy, by id or name.")
NO_QOS_OPT = typer.Option(False, "--no-qos-policy", help="Remove its QoS policy.")


def _qos(c: Client, body: dict, policy: Optional[str], none: bool) -> dict:
    """``--qos-policy P`` / ``--no-qos-policy`` into a floating IP's or gateway's body."""
    if policy is not None or none:
        body["qos_policy_id"] = None if none else c.find("qos_policy", policy)["id"]
    return body
PSEC_OPT = typer.Option(None, "--enable-port-security/--disable-port-security",
                        help="Security groups and anti-spoofing on or off.")
PAIR_OPT = typer.Option([], "--allowed-address",
                        help="ip-address=IP[/LEN][,mac-address=MAC] (repeatable)")


@port_app.command("create")
def port_create(name: str, network: str = typer.Option(..., "--network",
                                                      help="Its network, by id or name."),
                fixed_ip: list[str] = typer.Option([], "--fixed-ip",
                                                   help="subnet=SUBNET,ip-address=IP"),
                mac: Optional[str] = typer.Option(None, "--mac-address",
                                                  help="MAC [a random one]."),
                device_owner: str = typer.Option("compute:floatip", "--device-owner",
                                                 help="What uses it (as Neutron's)."),
                device_id: str = typer.Option("", "--device-id",
                                              help="The id of what uses it (a VM's)."),
                security_group: list[str] = SG_OPT,
                no_security_group: bool = typer.Option(False, "--no-security-group",
                                                       help="No group (not the default)."),
                port_security: Optional[bool] = PSEC_OPT,
                allowed_address: list[str] = PAIR_OPT,
                tags: list[str] = TAG,
                url: str = URL, fmt: Format = FORMAT,
                columns: list[str] = COLUMN):
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
            return c.create("port", **with_tags(body, tags))
        _print_one(_call(go), fmt, columns)


@port_app.command("set")
def port_set(ref: str, name: Optional[str] = typer.Option(None, "--name", help="New name."),
             device_id: Optional[str] = typer.Option(None, "--device-id",
                                                     help="The id of what uses it."),
             host: Optional[str] = typer.Option(None, "--host", help="Binding host."),
             enable: Optional[bool] = typer.Option(None, "--enable/--disable",
                                                   help="Admin state up or down."),
             security_group: list[str] = SG_OPT,
             no_security_group: bool = typer.Option(False, "--no-security-group",
                                                    help="Remove its groups (with the ones "
                                                         "given: set exactly those)."),
             port_security: Optional[bool] = PSEC_OPT,
             allowed_address: list[str] = PAIR_OPT,
             no_allowed_address: bool = typer.Option(False, "--no-allowed-address",
                                                     help="Remove its allowed address pairs."),
             tags: list[str] = TAG, no_tag: bool = NO_TAG,
             url: str = URL, fmt: Format = FORMAT,
             columns: list[str] = COLUMN):
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
            return updated(c, "port", port["id"], body, tags, no_tag)
        _print_one(_call(go), fmt, columns)


def _gateway_body(c: Client, network: str, fixed_ip: list[str], snat: Optional[bool]) -> dict:
    gw = {"network_id": c.find("network", network)["id"]}
    if fixed_ip:
        gw["external_fixed_ips"] = _fixed_ips(c, fixed_ip)
    if snat is not None:
        gw["enable_snat"] = snat
    return gw


@router_app.command("create")
def router_create(name: str, gateway: Optional[str] = typer.Option(
                      None, "--external-gateway", help="External network, by id or name."),
                  fixed_ip: list[str] = typer.Option([], "--fixed-ip",
                                                     help="subnet=S,ip-address=IP on the "
                                                          "external network"),
                  snat: Optional[bool] = typer.Option(None, "--enable-snat/--disable-snat",
                                                      help="Source NAT to the gateway [on]."),
                  tags: list[str] = TAG,
                  url: str = URL, fmt: Format = FORMAT,
                  columns: list[str] = COLUMN):
    """Create a router, optionally with its external gateway."""
    with Client(url) as c:
        def go():
            body = {"name": name}
            if gateway:
                body["external_gateway_info"] = _gateway_body(c, gateway, fixed_ip, snat)
            return c.create("router", **with_tags(body, tags))
        _print_one(_call(go), fmt, columns)


@router_app.command("set")
def router_set(ref: str, name: Optional[str] = typer.Option(None, "--name", help="New name."),
               gateway: Optional[str] = typer.Option(None, "--external-gateway",
                                                     help="External network, by id or name."),
               no_gateway: bool = typer.Option(False, "--no-external-gateway",
                                               help="Remove the gateway."),
               fixed_ip: list[str] = typer.Option([], "--fixed-ip",
                                                  help="subnet=S,ip-address=IP on the "
                                                       "external network"),
               snat: Optional[bool] = typer.Option(None, "--enable-snat/--disable-snat",
                                                   help="Source NAT to the gateway."),
               enable: Optional[bool] = typer.Option(None, "--enable/--disable",
                                                     help="Admin state up or down."),
               qos: Optional[str] = QOS_OPT, no_qos: bool = NO_QOS_OPT,
               tags: list[str] = TAG, no_tag: bool = NO_TAG,
               url: str = URL, fmt: Format = FORMAT,
               columns: list[str] = COLUMN):
    """Change name, admin state, external gateway or its QoS policy."""
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
            if (qos is not None or no_qos) and not no_gateway:
                gw = body.get("external_gateway_info") or r["external_gateway_info"]
                if not gw:
                    raise NeutronError("router has no external gateway")
                body["external_gateway_info"] = _qos(c, {
                    "network_id": gw["network_id"],
                    **{k: gw[k] for k in ("enable_snat", "external_fixed_ips") if k in gw}},
                    qos, no_qos)
            return updated(c, "router", r["id"], body, tags, no_tag)
        _print_one(_call(go), fmt, columns)


def _interface_body(c: Client, subnet: Optional[str], port: Optional[str]) -> dict:
    """add/remove_router_interface takes a subnet or a port, by name or id."""
    return {"subnet_id": c.find("subnet", subnet)["id"]} if subnet else \
        {"port_id": c.find("port", port)["id"]}


SUBNET_HELP, PORT_HELP = "Subnet, by id or name.", "Port, by id or name."


@router_app.command("add-interface")
def router_add_interface(ref: str, subnet: Optional[str] = typer.Option(None, "--subnet",
                                                                         help=SUBNET_HELP),
                         port: Optional[str] = typer.Option(None, "--port", help=PORT_HELP),
                         url: str = URL, fmt: Format = FORMAT,
                         columns: list[str] = COLUMN):
    """Attach a tenant subnet (the router takes its gateway IP) or an existing port."""
    with Client(url) as c:
        def go():
            body = _interface_body(c, subnet, port)
            return c.add_interface(c.find("router", ref)["id"], **body)
        _print_one(_call(go), fmt, columns)


@router_app.command("remove-interface")
def router_remove_interface(ref: str, subnet: Optional[str] = typer.Option(None, "--subnet",
                                                                            help=SUBNET_HELP),
                            port: Optional[str] = typer.Option(None, "--port",
                                                               help=PORT_HELP),
                            url: str = URL, fmt: Format = FORMAT,
                            columns: list[str] = COLUMN):
    """Detach a subnet or port from the router."""
    with Client(url) as c:
        def go():
            body = _interface_body(c, subnet, port)
            return c.remove_interface(c.find("router", ref)["id"], **body)
        _print_one(_call(go), fmt, columns)


@fip_app.command("create")
def fip_create(network: str, address: Optional[str] = typer.Option(
                   None, "--floating-ip-address", help="This address [a free one]."),
               subnet: Optional[str] = typer.Option(None, "--subnet",
                                                    help="From this external subnet."),
               port: Optional[str] = typer.Option(None, "--port",
                                                  help="Associate with this port."),
               fixed_ip: Optional[str] = typer.Option(None, "--fixed-ip-address",
                                                      help="The port's address to use "
                                                           "[its first IPv4]."),
               description: str = typer.Option("", "--description",
                                                help="Free text kept with it."),
               wait: bool = typer.Option(False, "--wait",
                                         help="Wait until the agent made it ACTIVE (needs "
                                              "--port); exit 1 on ERROR, with its reason, or "
                                              "at --timeout."),
               timeout: float = typer.Option(60.0, "--timeout", min=0,
                                             help="Seconds --wait waits."),
               qos: Optional[str] = QOS_OPT, tags: list[str] = TAG,
               url: str = URL, fmt: Format = FORMAT,
               columns: list[str] = COLUMN):
    """Allocate a floating IP on an external NETWORK, optionally associated with a port."""
    if wait and not port:
        _fail(NeutronError("--wait needs --port: a floating IP without a port stays DOWN"), 2)
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
            return c.create("floatingip", **with_tags(_qos(c, body, qos, False), tags))
        fip = _call(go)
        if wait:
            fip = _wait_active(c, fip, timeout)
        _print_one(fip, fmt, columns)


def _wait_active(c: Client, fip: dict, timeout: float) -> dict:
    """Poll until the agent reports the floating IP ACTIVE; ERROR or the timeout: exit 1."""
    deadline = time.monotonic() + timeout
    while fip["status"] != "ACTIVE":
        if fip["status"] == "ERROR":
            _fail(NeutronError(f"floating IP {label('floatingip', fip)} is ERROR: "
                               f"{fip.get('status_reason') or 'no reason given'}",
                               "FloatingIPError", 409))
        if time.monotonic() >= deadline:
            _fail(NeutronError(f"floating IP {label('floatingip', fip)} is still "
                               f"{fip['status']} after {timeout:g} s", "Timeout", 408))
        time.sleep(0.1)
        fip = _call(lambda: c.show("floatingip", fip["id"]))
    return fip


@fip_app.command("set")
def fip_set(ref: str, port: Optional[str] = typer.Option(None, "--port",
                                                          help="Associate with (or move to) "
                                                               "this port."),
            no_port: bool = typer.Option(False, "--no-port", help="Disassociate."),
            fixed_ip: Optional[str] = typer.Option(None, "--fixed-ip-address",
                                                   help="The port's address to use."),
            description: Optional[str] = typer.Option(None, "--description",
                                                      help="New description."),
            qos: Optional[str] = QOS_OPT, no_qos: bool = NO_QOS_OPT,
            tags: list[str] = TAG, no_tag: bool = NO_TAG,
            url: str = URL, fmt: Format = FORMAT,
            columns: list[str] = COLUMN):
    """Associate, move or disassociate a floating IP (by id or address), or change its QoS
    policy."""
    with Client(url) as c:
        def go():
            f = c.find("floatingip", ref)
            body = _qos(c, {}, qos, no_qos)
            if no_port:
                body["port_id"] = None
            elif port:
                body["port_id"] = c.find("port", port)["id"]
                if fixed_ip:
                    body["fixed_ip_address"] = fixed_ip
            if description is not None:
                body["description"] = description
            return updated(c, "floatingip", f["id"], body, tags, no_tag)
        _print_one(_call(go), fmt, columns)


app.add_typer(network_app, name="network")
app.add_typer(subnet_app, name="subnet")
app.add_typer(port_app, name="port")
app.add_typer(router_app, name="router")
app.add_typer(fip_app, name="floating-ip")
