"""Which agents this process knows to be members of which rooms, so that a member's send
needs no membership query.

Kept current by this process's own membership commits (RoomService announces them through
`on_commit`, and updates this first): a removal is refused from the moment it commits. What
the database says is learned on a miss (`RoomService.member_room_id`) and when a socket
connects (`RoomService.room_ids_of`). A read that raced a removal must not put the removed
membership back: `learned` drops what was read if any removal happened since `mark()`.
With several nodes on Redis, another node's removals are announced here too (the hub applies
them as they arrive, see realtime/cluster.py), so they are refused at once. A notification can
be lost (Redis away), so an entry is still trusted for `MAX_AGE_S` only: after that the next
send asks the database again. A member removed through another node is thus refused
everywhere within about a second at worst, at the cost of one membership read per second per
busy (agent, room). Sends need neither: the message's own write confirms the membership in
its transaction (messages/batch_store.py), so they trust an entry of any age (`known`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable

MAX_AGE_S = 1.0


class Memberships:
    def __init__(
        self, max_age: float = MAX_AGE_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        # agent -> room -> when the membership was last confirmed (committed or read here)
        self._rooms_of: dict[uuid.UUID, dict[uuid.UUID, float]] = {}
        self._removals = 0  # how many removals this process has seen: see `learned`
        self._max_age = max_age
        self._clock = clock

    def knows(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> bool:
        """Whether `agent_id` is a member of `room_id`, confirmed within the last MAX_AGE_S."""
        confirmed = self._rooms_of.get(agent_id, {}).get(room_id)
        return confirmed is not None and self._clock() - confirmed <= self._max_age

    def known(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> bool:
        """Whether `agent_id` was confirmed a member of `room_id` here, however long ago: for
        callers whose own write confirms the membership in its transaction (sending)."""
        return room_id in self._rooms_of.get(agent_id, {})

    def forget(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> None:
        """The database said no (a write refused a non-member): ask it next time."""
        rooms = self._rooms_of.get(agent_id)
        if rooms is not None:
            rooms.pop(room_id, None)
            if not rooms:
                del self._rooms_of[agent_id]

    def added(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> None:
        """A membership just committed, or just read from the database."""
        self._rooms_of.setdefault(agent_id, {})[room_id] = self._clock()

    def removed(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> None:
        """A removal just committed."""
        self._removals += 1
        self.forget(agent_id, room_id)

    def mark(self) -> int:
        """Take before reading memberships from the database; hand to `learned`."""
        return self._removals

    def learned(self, agent_id: uuid.UUID, room_ids: Iterable[uuid.UUID], since: int) -> None:
        """Memberships read from the database after `mark()` returned `since`."""
        if self._removals == since:
            for room_id in room_ids:
                self.added(agent_id, room_id)
