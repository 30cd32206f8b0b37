"""Which agents this process knows to be members of which rooms, so that a member's send
needs no membership query.

Kept current by this process's own membership commits (RoomService announces them through
`on_commit`, and updates this first): a removal is refused from the moment it commits. What
the database says is learned on a miss (`RoomService.member_room_id`) and when a socket
connects (`RoomService.room_ids_of`). A read that raced a removal must not put the removed
membership back: `learned` drops what was read if any removal happened since `mark()`.
Removals committed by another server process on the same database are not seen here (nor
were they by the sockets' per-connection view this replaces).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable


class Memberships:
    def __init__(self) -> None:
        self._rooms_of: dict[uuid.UUID, set[uuid.UUID]] = {}
        self._removals = 0  # how many removals this process has seen: see `learned`

    def knows(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> bool:
        rooms = self._rooms_of.get(agent_id)
        return rooms is not None and room_id in rooms

    def added(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> None:
        """A membership just committed."""
        self._rooms_of.setdefault(agent_id, set()).add(room_id)

    def removed(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> None:
        """A removal just committed."""
        self._removals += 1
        rooms = self._rooms_of.get(agent_id)
        if rooms is not None:
            rooms.discard(room_id)
            if not rooms:
                del self._rooms_of[agent_id]

    def mark(self) -> int:
        """Take before reading memberships from the database; hand to `learned`."""
        return self._removals

    def learned(self, agent_id: uuid.UUID, room_ids: Iterable[uuid.UUID], since: int) -> None:
        """Memberships read from the database after `mark()` returned `since`."""
        if self._removals == since:
            for room_id in room_ids:
                self.added(agent_id, room_id)
