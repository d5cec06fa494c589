"""Neutron's error body."""
from __future__ import annotations

from pydantic import BaseModel


class NeutronErrorDetail(BaseModel):
    type: str
    message: str
    detail: str


class NeutronErrorBody(BaseModel):
    NeutronError: NeutronErrorDetail
