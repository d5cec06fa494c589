"""Neutron's error body: ``{"NeutronError": {"type", "message", "detail"}}``."""
from __future__ import annotations

from fastapi.responses import JSONResponse


def neutron_error(type_: str, message: str, code: int) -> JSONResponse:
    return JSONResponse({"NeutronError": {"type": type_, "message": message, "detail": ""}},
                        status_code=code)
