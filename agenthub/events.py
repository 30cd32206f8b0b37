"""What services announce after a commit, for the real-time layer to deliver.

Services call these through `db.engine.on_commit` (the message writer right after its own
COMMIT), so a rolled-back change is never announced. `NullEvents` serves when messaging is disabled.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agenthub.rooms.schemas import RoomPublic


class Events(Protocol):
    def messages_committed(self, messages: list[dict[str, Any]]) -> None:
        """Messages just committed, in their wire form, each room's in seq order (see
        messages/writer.py)."""

    def member_added(self, agent_id: uuid.UUID, room: RoomPublic) -> None: ...

    def member_removed(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> None: ...

    def inbox_new(self, agent_id: uuid.UUID, item: dict[str, Any]) -> None:
        """A new inbox item of `agent_id` (coordination), after the message's own event."""

    def ack_answered(self, room_id: uuid.UUID, ack: dict[str, Any]) -> None:
        """A member answered a message's request for acknowledgement."""

    def claim_changed(self, room_id: uuid.UUID, change: dict[str, Any]) -> None:
        """A claim of the room was taken, renewed, released or expired (claims/service.py):
        `{"roomId", "action", "claim"}`, for the room's members."""


class NullEvents:
    def messages_committed(self, messages: list[dict[str, Any]]) -> None:
        pass

    def member_added(self, agent_id: uuid.UUID, room: RoomPublic) -> None:
        pass

    def member_removed(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> None:
        pass

    def inbox_new(self, agent_id: uuid.UUID, item: dict[str, Any]) -> None:
        pass

    def ack_answered(self, room_id: uuid.UUID, ack: dict[str, Any]) -> None:
        pass

    def claim_changed(self, room_id: uuid.UUID, change: dict[str, Any]) -> None:
        pass
