from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from agenthub.agents.schemas import AgentPublic
from agenthub.wire import Ref, RequestModel, Slug, Text200, Timestamp, WireModel


class RoomCreate(RequestModel):
    slug: Slug = Field(description="a slug: ^[a-z0-9][a-z0-9-]{1,62}$")
    name: Text200


class RoomPublic(WireModel):
    id: uuid.UUID
    slug: str
    name: str
    created_by: uuid.UUID
    created_at: Timestamp


class RoomList(WireModel):
    rooms: list[RoomPublic]


class MemberAdd(RequestModel):
    agent: Ref = Field(description="an agent id or name")


class MemberList(WireModel):
    members: list[AgentPublic]


def room_out(row: Mapping[Any, Any]) -> RoomPublic:
    return RoomPublic(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )
