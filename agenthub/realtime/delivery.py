"""Per-room ordered delivery on one node of several: each room's messages leave once, in seq
order, whatever order their notifications arrive in.

Used when REDIS_URL is set (realtime/cluster.py). A node hears of a message from its own
writer (at commit) or from the Redis stream (another node's commit); the two can arrive in any
order across nodes, a notification can be lost (Redis restarted, the stream trimmed, a
connection dropped) or repeated (a publish retried). The database is the truth: every message
has its room's gapless seq, and a seq is committed only after every lower one of its room (the
room's row lock orders the writers). So each room this node serves has a line:

- `delivered`: the last seq handed to this node's sockets. A notification at or below it is a
  repeat, dropped; the next seq is emitted at once, then any held ones that follow it.
- A notification beyond the next seq is held; if the gap is still open after `GAP_GRACE_S`
  (the missing one is usually a moment behind on the stream), the missing seqs are read from
  the database and emitted first (a *repair*). Reading them cannot fail to find them: they are
  committed before the held one.
- A line starts when the first socket of this node enters the room: held from then until the
  room's last seq is read (`ready`), it starts at that seq (or before the earliest held one):
  what was committed before that the socket's client reads with `afterSeq` after `connected` /
  `room:added`, what follows is delivered live. A line with no socket left is dropped.
- `behind(room, last_seq)`: a node that may have missed notifications (its reader reconnected,
  the stream was reset or trimmed, or the periodic check) repairs each line up to the room's
  last seq read from the database.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("agenthub.realtime")

GAP_GRACE_S = 0.05
REPAIR_PAGE = 500
RETRY_S = 0.5

Fetch = Callable[[uuid.UUID, int, int], Awaitable[list[dict[str, Any]]]]


class _Line:
    __slots__ = ("delivered", "held", "repairing")

    def __init__(self) -> None:
        self.delivered: int | None = None  # None until the room's last seq is known
        self.held: dict[int, dict[str, Any]] = {}
        self.repairing: asyncio.Task[None] | None = None


class Delivery:
    def __init__(
        self,
        emit: Callable[[dict[str, Any]], None],
        fetch: Fetch,
        on_repair: Callable[[str, int], None],
    ) -> None:
        """`emit(message)` hands one message to this node's sockets of its room; `fetch(room,
        after_seq, limit)` reads stored messages; `on_repair(reason, count)` counts repairs."""
        self._emit = emit
        self._fetch = fetch
        self._on_repair = on_repair
        self._lines: dict[str, _Line] = {}

    def rooms(self) -> list[str]:
        return list(self._lines)

    def delivered(self, room: str) -> int | None:
        line = self._lines.get(room)
        return None if line is None else line.delivered

    def open(self, room: str) -> bool:
        """A socket of this node enters `room`: True when the line is new and the caller must
        `ready` it with the room's last seq."""
        if room in self._lines:
            return False
        self._lines[room] = _Line()
        return True

    def ready(self, room: str, last_seq: int) -> None:
        line = self._lines.get(room)
        if line is None or line.delivered is not None:
            return
        start = last_seq
        if line.held:
            start = min(start, min(line.held) - 1)
        line.delivered = start
        self._flush(room, line)

    def close(self, room: str) -> None:
        """No socket of this node is in `room` any more."""
        line = self._lines.pop(room, None)
        if line is not None and line.repairing is not None:
            line.repairing.cancel()

    def offer(self, message: dict[str, Any]) -> None:
        """A committed message (this node's or another's), in wire form."""
        room = message["roomId"]
        line = self._lines.get(room)
        if line is None:
            return  # no socket of this node in that room
        seq = message["seq"]
        if line.delivered is not None and seq <= line.delivered:
            return  # a repeat
        line.held[seq] = message
        if line.delivered is not None:
            self._flush(room, line)

    def behind(self, room: str, last_seq: int) -> None:
        """The database says `room` has reached `last_seq`: repair up to it if needed."""
        line = self._lines.get(room)
        if line is None or line.delivered is None or last_seq <= line.delivered:
            return
        self._repair(room, line, last_seq, "resync", grace=False)

    def _flush(self, room: str, line: _Line) -> None:
        assert line.delivered is not None
        while line.held:
            nxt = line.delivered + 1
            message = line.held.pop(nxt, None)
            if message is None:
                break
            line.delivered = nxt
            self._emit(message)
        for seq in [s for s in line.held if s <= line.delivered]:
            del line.held[seq]
        if line.held:
            self._repair(room, line, min(line.held) - 1, "gap", grace=True)

    def _repair(self, room: str, line: _Line, upto: int, reason: str, *, grace: bool) -> None:
        if line.repairing is None or line.repairing.done():
            line.repairing = asyncio.get_running_loop().create_task(
                self._run_repair(room, line, upto, reason, grace), name="agenthub-repair"
            )

    async def _run_repair(
        self, room: str, line: _Line, upto: int, reason: str, grace: bool
    ) -> None:
        try:
            if grace:
                await asyncio.sleep(GAP_GRACE_S)
            await self._fill(room, line, upto, reason)
        finally:
            if line.repairing is asyncio.current_task():
                line.repairing = None
        if self._lines.get(room) is line and line.delivered is not None and line.held:
            self._flush(room, line)  # held ones that came meanwhile, past a new gap

    async def _fill(self, room: str, line: _Line, upto: int, reason: str) -> None:
        room_id = uuid.UUID(room)
        while self._lines.get(room) is line and line.delivered is not None:
            target = max(upto, min(line.held) - 1 if line.held else 0)
            if line.delivered >= target:
                return
            want = min(REPAIR_PAGE, target - line.delivered)
            try:
                rows = await self._fetch(room_id, line.delivered, want)
            except Exception as exc:  # the database is away: try again, holding what came
                log.warning("cannot repair a room's delivery yet: %s", type(exc).__name__)
                await asyncio.sleep(RETRY_S)
                continue
            if self._lines.get(room) is not line or line.delivered is None:
                return
            emitted = 0
            for message in rows:
                if message["seq"] == line.delivered + 1:
                    line.held.pop(message["seq"], None)
                    line.delivered = message["seq"]
                    self._emit(message)
                    emitted += 1
            while line.delivered + 1 in line.held:
                line.delivered += 1
                self._emit(line.held.pop(line.delivered))
            for seq in [s for s in line.held if s <= line.delivered]:
                del line.held[seq]
            if emitted:
                self._on_repair(reason, emitted)
            if not rows:
                return  # nothing stored past `delivered` (not expected): stop, hold the rest
