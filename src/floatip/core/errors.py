"""Errors with Neutron's exception type names and HTTP codes, shared by every layer."""
from __future__ import annotations


class NeutronError(Exception):
    """An error with a Neutron exception type name, so the API can return it unchanged."""

    type = "BadRequest"
    code = 400

    def __init__(self, message: str, type: str | None = None, code: int | None = None):
        super().__init__(message)
        self.message = message
        if type:
            self.type = type
        if code:
            self.code = code


class InvalidState(NeutronError):
    """One or more validation errors; ``errors`` holds each of them."""

    def __init__(self, errors: list[NeutronError]):
        self.errors = errors
        first = errors[0]
        super().__init__("; ".join(e.message for e in errors), first.type, first.code)
