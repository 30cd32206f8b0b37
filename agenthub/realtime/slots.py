"""Timers due on a grid: one event-loop timer per occupied slot of the grid, not one per socket.

Every idle socket kept two loop timers for its whole life, its next ping and its session's
expiry, and a uvloop `TimerHandle` costs about 600 bytes (tracemalloc: seven allocations):
more than a kilobyte of an idle socket's eighteen. Here a key waits in its slot's dict, a few
tens of bytes, and the slot's one timer calls `due(key)` for each key still in it, in the
order they were added. A key is due at the first grid point at or after the time asked for:
a ping or a pong's deadline up to one step late (`transport.PING_SLOT_S`), a JWT's expiry
(whole seconds) on time with a one-second step.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Generic, TypeAlias, TypeVar

K = TypeVar("K")

log = logging.getLogger("agenthub.realtime")

# The keys due at one grid point: what `add` returns, and what a key is dropped from.
Slot: TypeAlias = dict[K, None]


class SlotTimers(Generic[K]):
    """`due(key)` at grid points `step` apart, on the event loop's clock or, with `wall=True`,
    on Unix time (for deadlines given as Unix times, like a JWT's `exp`)."""

    def __init__(self, step: float, due: Callable[[K], None], *, wall: bool = False) -> None:
        self._step = step
        self._due = due
        self._wall = wall
        self._slots: dict[int, tuple[Slot[K], asyncio.TimerHandle]] = {}

    def now(self) -> float:
        """The time on this grid's clock."""
        return time.time() if self._wall else asyncio.get_running_loop().time()

    def add(self, key: K, when: float) -> Slot[K]:
        """`due(key)` at the first grid point at or after `when`; drop the key from the
        returned slot (`slot.pop(key, None)`) to call it off."""
        index = math.ceil(when / self._step)
        entry = self._slots.get(index)
        if entry is None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, index * self._step - self.now())
            entry = self._slots[index] = ({}, loop.call_later(delay, self._fire, index))
        slot = entry[0]
        slot[key] = None
        return slot

    def __len__(self) -> int:
        """How many loop timers this grid holds (one per occupied slot)."""
        return len(self._slots)

    def clear(self) -> None:
        """Call everything off."""
        for slot, timer in self._slots.values():
            timer.cancel()
            slot.clear()
        self._slots.clear()

    def _fire(self, index: int) -> None:
        slot, _ = self._slots.pop(index)
        # A key's `due` may drop others of this slot (a session ended, a socket closed).
        for key in list(slot):
            if slot.pop(key, self) is not self:
                try:
                    self._due(key)
                except Exception as exc:  # (the slot's other keys are still due)
                    log.error("a timer's callback failed: %s", type(exc).__name__)
