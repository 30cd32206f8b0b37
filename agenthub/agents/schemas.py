from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from agenthub.wire import RequestModel, Slug, Text200, Timestamp, WireModel

Role = Literal["admin", "agent"]


class AgentCreate(RequestModel):
    name: Slug = Field(description="a slug: ^[a-z0-9][a-z0-9-]{1,62}$")
    display_name: Text200
    role: Role = "agent"


class AgentPublic(WireModel):
    id: uuid.UUID
    name: str
    display_name: str
    role: Role
    created_at: Timestamp


class AgentList(WireModel):
    agents: list[AgentPublic]
