"""Floating IP port forwardings: create and update bodies, the response (Neutron's
floating-ip-port-forwarding with its description and port-range extensions)."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, WithJsonSchema

from .base import UUID, IPAddress, Resource, Str255, answer, reason, request, shown

ATTRS = frozenset({"id", "project_id", "tenant_id", "protocol", "internal_port_id",
                   "internal_ip_address", "internal_port", "external_port",
                   "internal_port_range", "external_port_range", "description"})
PROTOCOLS = ("tcp", "udp")  # what the agents forward (Neutron lists every iptables name)


def _protocol(v: Any) -> Any:
    if not isinstance(v, str) or v.lower() not in PROTOCOLS:
        raise reason(f"'{shown(v)}' is not in {list(PROTOCOLS)}")
    return v.lower()


def _port(v: Any) -> Any:
    """neutron-lib's convert_to_int and range (1, 65535); None: not set."""
    if v is None:
        return None
    try:
        n = int(v) if not isinstance(v, bool) and isinstance(v, (int, str)) else None
    except ValueError:
        n = None
    if n is None:
        raise reason(f"'{shown(v)}' is not an integer")
    if n < 1:
        raise reason(f"'{n}' is too small - must be at least '1'")
    if n > 65535:
        raise reason(f"'{n}' is too large - must be no larger than '65535'")
    return n


def _port_range(v: Any) -> Any:
    """neutron-lib's validate_port_range_or_none with (1, 65535): "N" or "N:M", N <= M."""
    if v is None:
        return None
    ports = str(v).split(":")
    if len(ports) > 2 or any(not p for p in ports):
        raise reason("Port range must be two integers separated by a colon")
    for p in ports:
        if not p.isdigit() or int(p) > 65535:
            raise reason(f"Invalid port: {shown(p)}")
        if int(p) < 1:
            raise reason(f"Invalid port: {p}, the port must be in the range [1, 65535]")
    if len(ports) > 1 and int(ports[0]) > int(ports[1]):
        raise reason("First port in a port range must be lower than the second port")
    return ":".join(str(int(p)) for p in ports)


Protocol = Annotated[str, BeforeValidator(_protocol),
                     WithJsonSchema({"type": "string", "enum": list(PROTOCOLS)})]
Port = Annotated[int | None, BeforeValidator(_port),
                 WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 65535})]
PortRange = Annotated[str | None, BeforeValidator(_port_range),
                      WithJsonSchema({"type": "string", "pattern": r"^\d+(:\d+)?$",
                                      "examples": ["8000:8010"]})]


class PortForwardingUpdate(Resource):
    ATTRS = ATTRS
    METHOD = "PUT"
    protocol: Protocol | None = None
    internal_port_id: UUID | None = None
    internal_ip_address: IPAddress | None = None
    internal_port: Port = None
    external_port: Port = None
    internal_port_range: PortRange = None
    external_port_range: PortRange = None
    description: Str255 = ""


class PortForwardingCreate(PortForwardingUpdate):
    METHOD = "POST"
    project_id: Str255 = ""
    tenant_id: Str255 = ""
    protocol: Protocol
    internal_port_id: UUID


CreatePortForwardingRequest = request("CreatePortForwardingRequest", "port_forwarding",
                                      PortForwardingCreate)
UpdatePortForwardingRequest = request("UpdatePortForwardingRequest", "port_forwarding",
                                      PortForwardingUpdate)


class PortForwarding(BaseModel):
    id: str
    protocol: str
    internal_ip_address: str
    internal_port_id: str
    internal_port: int | None
    external_port: int | None
    internal_port_range: str
    external_port_range: str
    description: str


PortForwardingOne = answer("PortForwardingOne", "port_forwarding", PortForwarding)
PortForwardingList = answer("PortForwardingList", "port_forwardings", PortForwarding, many=True)
