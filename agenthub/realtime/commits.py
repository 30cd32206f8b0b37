"""In-process wake-ups for waits on a room: "a message was just committed there"."""

from __future__ import annotations

import asyncio


class CommitSignals:
    """Wakes waits when a message is committed in their room by this process (the hub calls
    `committed` after each commit). A signal is only a hint to re-read: waits poll too."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}

    def committed(self, room_ids: set[str]) -> None:
        for room_id in room_ids:
            for event in self._waiting.get(room_id, ()):
                event.set()

    def watch(self, room_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiting.setdefault(room_id, set()).add(event)
        return event

    def unwatch(self, room_id: str, event: asyncio.Event) -> None:
        events = self._waiting.get(room_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self._waiting[room_id]
