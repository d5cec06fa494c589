"""``/floatip/v1/status``: the statuses an agent reports; ``PUT /v2.0/agents/{id}``."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Bool, Int, Part, Resource, Str, request

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


class AgentUpdate(Resource):
    """What an admin may change of an agent (Neutron's agent extension); the rest is the
    agent's own report, read-only."""
    ATTRS = frozenset({"id", "agent_type", "binary", "host", "topic", "alive",
                       "admin_state_up", "availability_zone", "description", "created_at",
                       "started_at", "heartbeat_timestamp", "configurations",
                       "resources_synced"})
    METHOD = "PUT"
    admin_state_up: Bool = True
    description: Str(255, none_ok=False) | None = None


UpdateAgentRequest = request("UpdateAgentRequest", "agent", AgentUpdate)
