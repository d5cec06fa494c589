"""``/floatip/v1/status``: the statuses an agent reports."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Int, Part, Str

Status = Literal["ACTIVE", "DOWN", "ERROR", "BUILD", "N/A"]
Id = Str(64, none_ok=False)


class PortStatus(Part):
    status: Status | None = None
    host: Str(255, none_ok=False) | None = None


class StatusReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    floatingips: dict[Id, Status | tuple[Status, Int]] | None = Field(
        None, description="id -> status, or [status, revision the agent worked from]")
    routers: dict[Id, Status] | None = None
    ports: dict[Id, PortStatus] | None = None


class StatusChanged(BaseModel):
    changed: int


class Generation(BaseModel):
    generation: int
