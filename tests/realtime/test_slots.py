"""Timers on a grid (agenthub/realtime/slots.py): keys due within one step share one loop timer,
each is called once, in order, not before its time, and a key dropped from its slot is not
called. No database or socket: the servers' tests run the grid under real clients (the
heartbeat in test_transport, the JWT's expiry in test_session_lifetime)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from agenthub.realtime.slots import SlotTimers

STEP = 0.05
WAIT = 5.0
EARLY = 0.005  # the loop's timers have a millisecond's resolution


async def test_keys_due_within_one_step_share_a_timer_and_come_in_order() -> None:
    called: list[tuple[str, float]] = []
    timers: SlotTimers[str] = SlotTimers(STEP, lambda key: called.append((key, timers.now())))
    start = timers.now()
    # Two grid points ahead, so that the five times below share one slot whenever we start.
    base = (int(start / STEP) + 2) * STEP
    asked = {f"k{i}": base + i * STEP / 10 for i in range(1, 6)}
    for key, when in asked.items():
        timers.add(key, when)
    assert len(timers) == 1
    await until(lambda: len(called) == 5)
    assert [key for key, _ in called] == list(asked)
    for key, at in called:
        assert at >= asked[key] - EARLY, (key, at, asked[key])
    assert len(timers) == 0


async def test_a_dropped_key_is_not_called_and_the_others_still_are() -> None:
    called: list[str] = []
    timers: SlotTimers[str] = SlotTimers(STEP, called.append)
    when = timers.now() + STEP
    timers.add("a", when)
    slot = timers.add("b", when)
    timers.add("c", when)
    slot.pop("b", None)
    await until(lambda: len(called) == 2)
    await asyncio.sleep(2 * STEP)
    assert called == ["a", "c"]


async def test_a_callback_may_drop_a_key_of_its_own_slot_or_fail() -> None:
    called: list[str] = []
    slots: dict[str, dict[str, None]] = {}

    def due(key: str) -> None:
        called.append(key)
        if key == "first":
            slots["second"].pop("second", None)  # e.g. a session ended while its slot fires
        if key == "third":
            raise RuntimeError("one failing callback")

    timers: SlotTimers[str] = SlotTimers(STEP, due)
    when = timers.now() + STEP
    for key in ("first", "second", "third", "fourth"):
        slots[key] = timers.add(key, when)
    await until(lambda: "fourth" in called)
    assert called == ["first", "third", "fourth"]


async def test_wall_clock_deadlines_in_the_past_come_at_once_and_clear_calls_everything_off() -> (
    None
):
    called: list[str] = []
    timers: SlotTimers[str] = SlotTimers(1.0, called.append, wall=True)
    timers.add("expired", time.time() - 10)
    timers.add("later", time.time() + 3600)
    assert len(timers) == 2
    await until(lambda: called == ["expired"])
    timers.clear()
    assert len(timers) == 0


async def test_a_key_added_again_is_called_at_its_new_time_only() -> None:
    called: list[str] = []
    timers: SlotTimers[str] = SlotTimers(STEP, called.append)
    first = timers.add("k", timers.now() + STEP)
    first.pop("k", None)  # moved, as a renewed session or a socket after its pong
    timers.add("k", timers.now() + 3 * STEP)
    await until(lambda: called == ["k"])
    await asyncio.sleep(3 * STEP)
    assert called == ["k"]


async def until(condition: Callable[[], bool]) -> None:
    """Until `condition` holds, within WAIT seconds."""
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the timers did not call in time")
