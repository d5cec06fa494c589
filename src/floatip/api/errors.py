"""Neutron's error body ``{"NeutronError": {"type", "message", "detail"}}``, for errors raised
by the service layer and for requests the schemas refuse (400 as Neutron answers, never
FastAPI's 422)."""
from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from .schemas.base import shown

# pydantic's own error types -> Neutron's reason ('{input}' is the value as sent)
REASONS = {
    "string_type": "'{input}' is not a valid string",
    "string_unicode": "'{input}' is not a valid string",
    "string_too_long": "'{input}' exceeds maximum length of {max_length}",
    "bool_type": "'{input}' cannot be converted to boolean",
    "bool_parsing": "'{input}' cannot be converted to boolean",
    "int_type": "'{input}' is not an integer",
    "int_parsing": "'{input}' is not an integer",
    "int_from_float": "'{input}' is not an integer",
    "float_type": "'{input}' is not a number",
    "float_parsing": "'{input}' is not a number",
    "finite_number": "'{input}' is not a finite number",
    "greater_than_equal": "'{input}' is too small - must be at least '{ge}'",
    "less_than_equal": "'{input}' is too large - must be no larger than '{le}'",
    "list_type": "'{input}' is not a list",
    "tuple_type": "'{input}' is not a list",
    "dict_type": "'{input}' is not a dictionary",
    "model_type": "'{input}' is not a dictionary",
    "model_attributes_type": "'{input}' is not a dictionary",
    "literal_error": "'{input}' is not in {expected}",
    "extra_forbidden": "Unrecognized attribute '{attr}'",
    "too_short": "'{input}' must not be empty",
}


# the keys of Neutron's request envelopes: {"network": {...}}, {"networks": [...]}
ENVELOPES = {kind + plural for kind in ("network", "subnet", "port", "router", "floatingip",
                                        "security_group", "security_group_rule",
                                        "address_group", "agent")
             for plural in ("", "s")}


def neutron_error(type_: str, message: str, code: int,
                  request_id: str | None = None) -> JSONResponse:
    """``request_id``: named in the body (and the header) of a server error, so a user can
    quote it and the operator find its traceback in the log."""
    # a message may quote what the client sent: escape what UTF-8 cannot encode
    message = message.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")
    body = {"type": type_, "message": message, "detail": ""}
    if request_id is None:
        return JSONResponse({"NeutronError": body}, status_code=code)
    return JSONResponse({"NeutronError": {**body, "request_id": request_id}}, status_code=code,
                        headers={"X-Openstack-Request-Id": request_id})


def from_validation(errors: list[dict[str, Any]], enveloped: bool = True) -> tuple[str, str, int]:
    """The first refusal of a request, as Neutron states it: (type, message, code).
    ``enveloped``: the body is a resource envelope ({"network": {...}})."""
    if not errors:
        return "HTTPBadRequest", "Malformed request body", 400
    e = errors[0]
    kind, ctx = e.get("type"), e.get("ctx") or {}
    if kind == "neutron":
        return ctx["neutron_type"], ctx["message"], ctx["code"]
    loc = [x for x in e.get("loc", ()) if isinstance(x, str)]
    where, names = (loc[0], loc[1:]) if loc else ("body", [])
    if kind == "json_invalid":
        return "HTTPBadRequest", "Malformed request body: the body is not valid JSON", 400
    if where == "body":
        if not names:
            return "HTTPBadRequest", "Resource body required", 400
        if enveloped and names[0] in ENVELOPES:
            names = names[1:]
    attr = names[0] if names else None
    if kind == "extra_forbidden" and len(names) == 1:
        return "HTTPBadRequest", f"Unrecognized attribute(s) '{shown(attr)}'", 400
    if kind == "missing":
        if len(names) == 1:
            return "HTTPBadRequest", (f"Failed to parse request. Required attribute "
                                      f"'{attr}' not specified"), 400
        why = f"'{names[-1]}' is required" if names else "a value is required"
    elif kind == "neutron_reason":
        why = ctx["reason"]
    else:
        template = REASONS.get(kind)
        try:
            why = template.format(input=shown(e.get("input")), attr=shown(names[-1] if names
                                                                          else ""), **ctx) \
                if template else str(e.get("msg"))
        except (KeyError, IndexError):
            why = str(e.get("msg"))
    why = why.rstrip(".")
    if attr is None:
        return "HTTPBadRequest", f"Invalid input: {why}.", 400
    return "HTTPBadRequest", f"Invalid input for {attr}. Reason: {why}.", 400
