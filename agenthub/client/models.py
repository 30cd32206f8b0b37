"""What the server returns, as typed, immutable values (snake_case here, camelCase on the wire).

`from_wire` reads the contract's JSON object; `to_wire` writes it back (the CLI's `--json`).
Ids stay lowercase UUID strings, as on the wire; times become aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def parse_time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a `Z`, as the server writes it."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    name: str
    display_name: str
    role: str  # "admin" or "agent"
    created_at: datetime | None  # absent from the agent embedded in a session

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Agent:
        created = data.get("createdAt")
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            display_name=str(data.get("displayName") or data["name"]),
            role=str(data.get("role", "agent")),
            created_at=parse_time(created) if created else None,
        )

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "displayName": self.display_name,
            "role": self.role,
        }
        if self.created_at is not None:
            out["createdAt"] = format_time(self.created_at)
        return out


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    slug: str
    name: str
    created_by: str
    created_at: datetime

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Room:
        return cls(
            id=str(data["id"]),
            slug=str(data["slug"]),
            name=str(data["name"]),
            created_by=str(data["createdBy"]),
            created_at=parse_time(data["createdAt"]),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "createdBy": self.created_by,
            "createdAt": format_time(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    room_id: str
    seq: int  # per room: 1, 2, 3… without gaps; the room's order
    sender_id: str
    body: str
    client_msg_id: str | None
    created_at: datetime

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Message:
        cmid = data.get("clientMsgId")
        return cls(
            id=str(data["id"]),
            room_id=str(data["roomId"]),
            seq=int(data["seq"]),
            sender_id=str(data["senderId"]),
            body=str(data["body"]),
            client_msg_id=str(cmid) if cmid is not None else None,
            created_at=parse_time(data["createdAt"]),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "roomId": self.room_id,
            "seq": self.seq,
            "senderId": self.sender_id,
            "body": self.body,
            "clientMsgId": self.client_msg_id,
            "createdAt": format_time(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of history, newest first; pass `next_cursor` back for the next (older) page."""

    messages: list[Message]
    next_cursor: str | None
