from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from agenthub.agents.schemas import AgentPublic
from agenthub.db.types import as_uuid
from agenthub.wire import Ref, RequestModel, Slug, Text200, Timestamp, WireModel


def _not_an_id(value: str) -> str:
    # A room ref is an id or a slug and the id wins: a slug spelled like another room's id
    # would name that room over one path and the squatter over a path that trusted a slug.
    if as_uuid(value) is not None:
        raise ValueError("must not be a UUID: room ids and slugs are both room refs")
    return value


RoomSlug = Annotated[Slug, AfterValidator(_not_an_id)]


class RoomCreate(RequestModel):
    slug: RoomSlug = Field(description="a slug: ^[a-z0-9][a-z0-9-]{1,62}$, not a UUID")
    name: Text200


class RoomPublic(WireModel):
    id: uuid.UUID
    slug: str
    name: str
    created_by: uuid.UUID
    created_at: Timestamp
    kind: str = Field(description="'group', or 'direct': a two-member direct conversation")


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
        kind=row.get("kind") or "group",
    )
