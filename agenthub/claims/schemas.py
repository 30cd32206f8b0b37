from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictInt, StringConstraints

from agenthub.wire import RequestModel, Timestamp, WireModel, iso_z

MAX_RESOURCE_CHARS = 256
TTL_MIN_S = 1
TTL_MAX_S = 86_400

Resource = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_RESOURCE_CHARS),
    Field(description="what is claimed: a file path, a task id… (1-256 characters)"),
]
Ttl = Annotated[
    StrictInt,
    Field(ge=TTL_MIN_S, le=TTL_MAX_S, description=f"seconds, {TTL_MIN_S}-{TTL_MAX_S}"),
]


class ClaimCreate(RequestModel):
    resource: Resource
    ttl_seconds: Ttl
    exclusive: StrictBool = Field(default=True, description="false: shared with others")


class ClaimRenew(RequestModel):
    resource: Resource
    ttl_seconds: Ttl


class ClaimPublic(WireModel):
    room_id: uuid.UUID
    resource: str
    agent_id: uuid.UUID
    agent_name: str
    exclusive: bool
    created_at: Timestamp
    expires_at: Timestamp


class ClaimList(WireModel):
    claims: list[ClaimPublic]


def claim_out(row: Mapping[Any, Any]) -> ClaimPublic:
    return ClaimPublic(
        room_id=row["room_id"],
        resource=row["resource"],
        agent_id=row["agent_id"],
        agent_name=row["agent_name"],
        exclusive=row["exclusive"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


def claim_wire(row: Mapping[Any, Any]) -> dict[str, Any]:
    """The claim object, JSON-ready (events and audit)."""
    return {
        "roomId": str(row["room_id"]),
        "resource": row["resource"],
        "agentId": str(row["agent_id"]),
        "agentName": row["agent_name"],
        "exclusive": bool(row["exclusive"]),
        "createdAt": iso_z(row["created_at"]),
        "expiresAt": iso_z(row["expires_at"]),
    }
