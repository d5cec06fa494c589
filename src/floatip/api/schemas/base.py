"""Neutron's attribute rules as pydantic types (neutron-lib's ``api/validators``).

A refusal is a pydantic error of one of two kinds, turned into Neutron's body by
``errors.from_validation``:
- ``reason(...)``: the attribute's own value is wrong; the answer is Neutron's
  ``HTTPBadRequest`` "Invalid input for <attribute>. Reason: <reason>.";
- ``refuse(...)``: a whole-body rule with its own Neutron type, code and message
  (``InvalidInput``, ``OverlappingAllocationPools``, ...).
Strings are valid Unicode without NUL: PostgreSQL cannot store NUL, UTF-8 cannot encode a
lone surrogate.
"""
from __future__ import annotations

import ipaddress
import re
import uuid
from typing import Annotated, Any, ClassVar

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field,
                      WithJsonSchema, create_model, model_validator)
from pydantic_core import PydanticCustomError

INT_MAX = 2**31 - 1  # the database's INTEGER


def reason(text: str) -> PydanticCustomError:
    return PydanticCustomError("neutron_reason", "{reason}", {"reason": text})


def refuse(message: str, type_: str = "HTTPBadRequest", code: int = 400) -> PydanticCustomError:
    return PydanticCustomError("neutron", "{message}",
                               {"message": message, "neutron_type": type_, "code": code})


def shown(value: Any, limit: int = 80) -> str:
    """A value as Neutron quotes it ('%s'), cut short, NUL and lone surrogates escaped (an
    error message must encode as UTF-8)."""
    text = str(value).encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")
    return text if len(text) <= limit else text[:limit] + "..."


# -- scalars ----------------------------------------------------------------------------

def clean_text(v: str) -> str | None:
    """Why ``v`` cannot be stored, or None."""
    if "\x00" in v:
        return "NUL characters are not allowed"
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode"
    return None


def _string(max_len: int, none_ok: bool):
    def check(v: Any) -> Any:
        if v is None and none_ok:
            return ""  # openstacksdk sends None for "no value": Neutron's default
        if not isinstance(v, str):
            raise reason(f"'{shown(v)}' is not a valid string")
        bad = clean_text(v)
        if bad:
            raise reason(f"'{shown(v)}' is not a valid string: {bad}")
        if len(v) > max_len:
            raise reason(f"'{shown(v)}' exceeds maximum length of {max_len}")
        return v
    return check


def Str(max_len: int = 255, none_ok: bool = True):  # noqa: N802 (a type factory)
    return Annotated[str, BeforeValidator(_string(max_len, none_ok)), Field(max_length=max_len)]


Str255 = Str(255)
Name = Str(255)


def _boolean(v: Any) -> Any:
    """neutron-lib's convert_to_boolean."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("true", "false", "1", "0"):
        return v.lower() in ("true", "1")
    raise reason(f"'{shown(v)}' cannot be converted to boolean")


Bool = Annotated[bool, BeforeValidator(_boolean)]


def _integer(v: Any) -> Any:
    """neutron-lib's convert_to_int, bounded by what the database stores."""
    if isinstance(v, bool) or not isinstance(v, (int, str, float)):
        raise reason(f"'{shown(v)}' is not an integer")
    if isinstance(v, float):
        if not v.is_integer():
            raise reason(f"'{v}' is not an integer")
        v = int(v)
    if isinstance(v, str):
        if not re.fullmatch(r"[+-]?\d{1,12}", v.strip()):
            raise reason(f"'{shown(v)}' is not an integer")
        v = int(v)
    if not -INT_MAX - 1 <= v <= INT_MAX:
        raise reason(f"'{shown(v)}' is too large - must be no larger than '{INT_MAX}'")
    return v


Int = Annotated[int, BeforeValidator(_integer),
                WithJsonSchema({"type": "integer", "minimum": -INT_MAX - 1, "maximum": INT_MAX})]


def _uuid(v: Any) -> Any:
    try:
        if not isinstance(v, str):
            raise ValueError
        return str(uuid.UUID(v))
    except ValueError:
        raise reason(f"'{shown(v)}' is not a valid UUID") from None


UUID = Annotated[str, BeforeValidator(_uuid),
                 WithJsonSchema({"type": "string", "format": "uuid"})]

_IP_SCHEMA = {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
_CIDR_SCHEMA = {"type": "string", "pattern": r"^[0-9a-fA-F.:]+/[0-9]{1,3}$",
                "examples": ["198.51.100.0/24"]}


def ip_address(v: Any) -> str:
    """neutron-lib's validate_ip_address: IPv4 as a dotted quad (no leading zeros, no
    integers), IPv6 in any form; returned in canonical form."""
    if not isinstance(v, str) or v != v.strip() or not v:
        raise reason(f"'{shown(v)}' is not a valid IP address")
    if ":" not in v and v.count(".") != 3:
        raise reason(f"'{shown(v)}' is not a valid IP address")
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        pass
    parts = v.split(".")
    if all(p.isdigit() and len(p) <= 4 for p in parts):  # leading zeros: octal or decimal?
        try:
            plain = ipaddress.ip_address(".".join(str(int(p)) for p in parts))
        except ValueError:
            plain = None
        if plain is not None:
            raise reason(f"'{v}' is not an accepted IP address, '{plain}' is recommended")
    raise reason(f"'{shown(v)}' is not a valid IP address")


IPAddress = Annotated[str, BeforeValidator(ip_address), WithJsonSchema(_IP_SCHEMA)]


def subnet_cidr(v: Any) -> str:
    """neutron-lib's validate_subnet: a network address with its prefix, host bits clear."""
    if not isinstance(v, str) or "/" not in v or v != v.strip():
        raise reason(f"'{shown(v)}' is not a valid IP subnet")
    try:
        net = ipaddress.ip_network(v, strict=False)
    except ValueError:
        raise reason(f"'{shown(v)}' is not a valid IP subnet") from None
    if str(net) != v and ipaddress.ip_interface(v).ip != net.network_address:
        raise reason(f"'{v}' isn't a recognized IP subnet cidr, '{net}' is recommended")
    return str(net)


Cidr = Annotated[str, BeforeValidator(subnet_cidr), WithJsonSchema(_CIDR_SCHEMA)]


def route_cidr(v: Any) -> str:
    """neutron-lib's validate_route_cidr: host bits clear, not loopback."""
    try:
        net = ipaddress.ip_network(subnet_cidr(v))
    except PydanticCustomError:
        raise reason(f"'{shown(v)}' is not a valid CIDR") from None
    if net.is_loopback:
        raise reason(f"'{v}' is not a routable CIDR")
    return str(net)


RouteCidr = Annotated[str, BeforeValidator(route_cidr), WithJsonSchema(_CIDR_SCHEMA)]

_MAC = re.compile(r"[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}")


def mac_address(v: Any) -> str:
    """A unicast MAC other than all-zero (neutron-lib's validate_mac_address and
    validate_mac_address_not_multicast), returned as lower case with colons."""
    if not isinstance(v, str) or not _MAC.fullmatch(v.lower()):
        raise reason(f"'{shown(v)}' is not a valid MAC address")
    mac = v.lower().replace("-", ":")
    if mac in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"):
        raise reason(f"'{v}' is not a valid MAC address")
    if int(mac[:2], 16) & 1:
        raise reason(f"MAC address {v} is a multicast address, which is not supported.")
    return mac


def checked(fn, type_: str | None = None):
    """A check of ``service`` that raises ValueError(why) as Neutron's attribute refusal
    ("Invalid input for <attribute>. Reason: why.") or, with ``type_``, as that error
    ("Invalid input for operation: why.")."""
    def check(v: Any) -> Any:
        try:
            return fn(v)
        except ValueError as e:
            if type_:
                raise refuse(f"Invalid input for operation: {shown(e, 400)}.", type_) from None
            raise reason(shown(e, 400)) from None
    return BeforeValidator(check)


MacAddress = Annotated[str, BeforeValidator(mac_address),
                       WithJsonSchema({"type": "string",
                                       "pattern": "^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$"})]


# -- lists and objects --------------------------------------------------------------------

def _list(what: str):
    """Neutron's "Invalid data format for <what>" for a value that is not a list (a string
    is refused whole, never split into characters)."""
    def check(v: Any) -> Any:
        if v is None:
            return []
        if not isinstance(v, list):
            raise reason(f"Invalid data format for {what}: '{shown(v)}'")
        return v
    return check


def _unique(what: str, key=lambda x: x):
    def check(items: list) -> list:
        seen = []
        for item in items:
            k = key(item)
            if k in seen:
                raise reason(f"Duplicate {what} '{shown(k)}'")
            seen.append(k)
        return items
    return check


def _nameserver(v: Any) -> str:
    try:
        return ip_address(v)
    except PydanticCustomError as e:
        raise reason(f"'{shown(v)}' is not a valid nameserver. {e.context['reason']}") \
            from None


Nameservers = Annotated[
    list[Annotated[str, BeforeValidator(_nameserver), WithJsonSchema(_IP_SCHEMA)]],
    BeforeValidator(_list("nameserver")), AfterValidator(_unique("nameserver"))]


class Part(BaseModel):
    """An object inside an attribute (a pool, a route, a fixed IP): unknown keys refused."""
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _object(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise reason(f"'{shown(data)}' is not a dictionary")
        return data


class HostRoute(Part):
    destination: RouteCidr
    nexthop: IPAddress


class Pool(Part):
    start: IPAddress
    end: IPAddress


class FixedIP(Part):
    subnet_id: UUID | None = None
    ip_address: IPAddress | None = None


def _by_address(f: FixedIP):
    return f.ip_address or object()


HostRoutes = Annotated[list[HostRoute], BeforeValidator(_list("hostroute")),
                       AfterValidator(_unique("hostroute",
                                              lambda r: (r.destination, r.nexthop)))]
Pools = Annotated[list[Pool], BeforeValidator(_list("IP pool"))]
FixedIPs = Annotated[list[FixedIP], BeforeValidator(_list("fixed IP")),
                     AfterValidator(_unique("IP address", _by_address))]
StrList = Annotated[list[Str255], BeforeValidator(_list("list"))]
Dict = Annotated[dict[Str255, Any], BeforeValidator(lambda v: {} if v is None else v)]


# -- request bodies ------------------------------------------------------------------------

class Resource(BaseModel):
    """A resource's attributes in a create (POST) or update (PUT) request. ``ATTRS`` holds
    every attribute Neutron knows for the resource: one of them that this model does not
    accept is read-only here; anything else is unrecognized."""
    model_config = ConfigDict(extra="forbid")
    ATTRS: ClassVar[frozenset[str]] = frozenset()
    METHOD: ClassVar[str] = "POST"

    @model_validator(mode="before")
    @classmethod
    def _attributes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise refuse(f"The resource body must be a JSON object, not '{shown(data)}'")
        accepted = {f.alias or n for n, f in cls.model_fields.items()}
        unknown = sorted(shown(k) for k in data if k not in accepted and k not in cls.ATTRS)
        if unknown:
            raise refuse(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
        fixed = sorted(k for k in data if k not in accepted)
        if fixed and cls.METHOD == "POST":
            raise refuse(f"Attribute '{fixed[0]}' not allowed in POST")
        if fixed:
            raise refuse(f"Cannot update read-only attribute {fixed[0]}")
        return data

    def attrs(self) -> dict:
        """What the request set, by Neutron's attribute names, validated."""
        return self.model_dump(by_alias=True, exclude_unset=True)


def envelope(data: Any, key: str, plural: str | None = None) -> Any:
    """Neutron's request envelope ``{"<resource>": {...}}`` (or ``{"<collection>": [...]}``
    for a bulk create)."""
    if not isinstance(data, dict):
        raise refuse("Resource body required: a JSON object {\"%s\": {...}}" % key)
    if data.get(key) is None and (plural is None or data.get(plural) is None):
        raise refuse(f"Unable to find '{key}' in request body")
    many = data.get(plural) if plural else None
    if isinstance(many, list):  # as Neutron, a bulk item may come in its own envelope too
        data = {**data, plural: [x[key] if isinstance(x, dict) and key in x else x
                                 for x in many]}
    return data


def request(name: str, key: str, body: type, plural: str | None = None) -> type[BaseModel]:
    """The model of a request body ``{key: body}`` (with ``plural``: or a bulk create's
    ``{plural: [body, ...]}``), refused as ``envelope`` says."""
    ns: dict[str, Any] = {"__annotations__": {key: body}, "_envelope": model_validator(
        mode="before")(classmethod(lambda cls, d: envelope(d, key, plural)))}
    if plural is not None:
        ns.update({"__annotations__": {key: body | None, plural: list[body] | None},
                   key: None, plural: Field(None, min_length=1, description="bulk create")})
    return type(name, (BaseModel,), ns)


def answer(name: str, key: str, item: type, many: bool = False) -> type[BaseModel]:
    """The model of a response body ``{key: item}`` (``many``: ``{key: [item, ...]}``)."""
    return create_model(name, **{key: (list[item], Field(default_factory=list)) if many
                                 else (item, ...)})


STANDARD = frozenset({"id", "project_id", "tenant_id", "description", "tags", "revision_number",
                      "created_at", "updated_at"})
