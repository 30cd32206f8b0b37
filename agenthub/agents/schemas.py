from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal

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


def agent_out(row: Mapping[Any, Any]) -> AgentPublic:
    return AgentPublic(
        id=row["id"],
        name=row["name"],
        display_name=row["display_name"],
        role=row["role"],
        created_at=row["created_at"],
    )
