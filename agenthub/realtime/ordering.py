"""Release each room's messages in seq order, whatever order their commits finish in.

A transaction takes a ticket right after it allocates its seq; the ticket is settled when the
transaction commits (with the message) or rolls back (without). Settled tickets leave only
from the head of the room's queue, so message N+1 waits until N is out. PostgreSQL hands a
room's seqs out one transaction at a time (the room row lock), so tickets are taken in seq
order; a rolled-back seq is taken again by the next transaction, and its ticket queues behind
the old one until that settles.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from typing import Any


class Ticket:
    __slots__ = ("done", "message", "room_id", "seq")

    def __init__(self, room_id: uuid.UUID, seq: int) -> None:
        self.room_id = room_id
        self.seq = seq
        self.done = False
        self.message: Any = None


class RoomOrder:
    def __init__(self, release: Callable[[Any], None]) -> None:
        self._release = release
        self._queues: dict[uuid.UUID, deque[Ticket]] = {}

    def reserve(self, room_id: uuid.UUID, seq: int) -> Ticket:
        ticket = Ticket(room_id, seq)
        queue = self._queues.setdefault(room_id, deque())
        if queue and queue[-1].seq > seq:  # not expected (see module doc), but stay ordered
            items = sorted([*queue, ticket], key=lambda t: t.seq)
            queue.clear()
            queue.extend(items)
        else:
            queue.append(ticket)
        return ticket

    def settle(self, ticket: Ticket, message: Any) -> None:
        ticket.done = True
        ticket.message = message
        queue = self._queues.get(ticket.room_id)
        if queue is None:
            return
        while queue and queue[0].done:
            head = queue.popleft()
            if head.message is not None:
                self._release(head.message)
        if not queue:
            del self._queues[ticket.room_id]

    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values())
