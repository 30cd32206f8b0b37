"""What services announce after a commit, for the real-time layer to deliver.

Services call these only once their transaction has ended (never from inside one), so a
rolled-back change is never announced. `NullEvents` serves when messaging is disabled.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agenthub.messages.schemas import MessagePublic
    from agenthub.rooms.schemas import RoomPublic


class Events(Protocol):
    def message_reserved(self, room_id: uuid.UUID, seq: int) -> Any:
        """A transaction took `seq` in the room (called inside it, right after the seq was
        allocated). Returns a ticket that must be settled exactly once."""

    def message_settled(self, ticket: Any, message: MessagePublic | None) -> None:
        """The transaction behind `ticket` committed `message`, or rolled back (None).

        A rolled-back seq is taken again by the next transaction, so two tickets can name
        the same seq; tickets, not seqs, identify reservations."""

    def member_added(self, agent_id: uuid.UUID, room: RoomPublic) -> None: ...

    def member_removed(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> None: ...


class NullEvents:
    def message_reserved(self, room_id: uuid.UUID, seq: int) -> Any:
        return None

    def message_settled(self, ticket: Any, message: MessagePublic | None) -> None:
        pass

    def member_added(self, agent_id: uuid.UUID, room: RoomPublic) -> None:
        pass

    def member_removed(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> None:
        pass
