"""A sliding one-second window of accepted events, one per socket."""

from __future__ import annotations

import time
from collections import deque


class SlidingWindow:
    __slots__ = ("_limit", "_stamps")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._stamps: deque[float] | None = (
            None  # made on the first event: idle sockets pay nothing
        )

    def allow(self, now: float | None = None) -> bool:
        """Count an event if fewer than `limit` were accepted in the last second; refused
        events do not count."""
        now = time.monotonic() if now is None else now
        stamps = self._stamps
        if stamps is None:
            stamps = self._stamps = deque()
        while stamps and now - stamps[0] >= 1.0:
            stamps.popleft()
        if len(stamps) >= self._limit:
            return False
        stamps.append(now)
        return True
