"""`Coalescer`: keys asked for while a read is in flight share the next read, every caller gets
its own key's answer, and a failed read fails only the callers it was for."""

from __future__ import annotations

import asyncio

import pytest

from agenthub.db.coalesce import Coalescer

WAIT = 10  # seconds: the bound on any single wait


class Reads:
    """A `read_many` that answers `key * 10` (odd keys are unknown: left out), holds each read
    until released when `hold` is set, and fails the reads named in `fail_on`."""

    def __init__(self, hold: bool = False, first_key: int = 2) -> None:
        self.first_key = first_key
        self.calls: list[list[int]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.fail_on: set[int] = set()
        if not hold:
            self.release.set()

    async def __call__(self, keys: list[int]) -> dict[int, int]:
        self.calls.append(keys)
        self.started.set()
        await asyncio.wait_for(self.release.wait(), WAIT)
        if len(self.calls) in self.fail_on:
            raise ConnectionError("database went away")
        return {k: k * 10 for k in keys if k % 2 == 0}


async def read_in_flight(
    reads: Reads, max_keys: int = 500
) -> tuple[Coalescer[int, int], asyncio.Task[int | None]]:
    """A coalescer whose first read (of `reads.first_key`) is in flight, held."""
    coalescer = Coalescer(reads, max_keys=max_keys)
    first = asyncio.create_task(coalescer.get(reads.first_key))
    await asyncio.wait_for(reads.started.wait(), WAIT)
    return coalescer, first


async def test_a_lone_read_reads_its_own_key() -> None:
    reads = Reads()
    coalescer = Coalescer(reads)
    assert await coalescer.get(4) == 40
    assert await coalescer.get(3) is None
    assert reads.calls == [[4], [3]]


async def test_keys_asked_for_during_a_read_share_the_next_one() -> None:
    reads = Reads(hold=True)
    coalescer, first = await read_in_flight(reads)
    later = [asyncio.create_task(coalescer.get(k)) for k in (6, 8, 6, 5)]
    await asyncio.sleep(0)
    reads.release.set()
    answers = await asyncio.wait_for(asyncio.gather(first, *later), WAIT)
    assert answers == [20, 60, 80, 60, None]
    assert reads.calls == [[2], [6, 8, 5]]  # a repeated key is read once


async def test_rounds_are_at_most_max_keys() -> None:
    reads = Reads(hold=True, first_key=0)
    coalescer, first = await read_in_flight(reads, max_keys=2)
    later = [asyncio.create_task(coalescer.get(k)) for k in (2, 4, 6)]
    await asyncio.sleep(0)
    reads.release.set()
    assert await asyncio.wait_for(asyncio.gather(first, *later), WAIT) == [0, 20, 40, 60]
    assert reads.calls == [[0], [2, 4], [6]]


async def test_a_failed_read_fails_its_callers_only() -> None:
    reads = Reads(hold=True)
    reads.fail_on = {1}
    coalescer, first = await read_in_flight(reads)
    later = asyncio.create_task(coalescer.get(4))
    await asyncio.sleep(0)
    reads.release.set()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(first, WAIT)
    assert await asyncio.wait_for(later, WAIT) == 40
    assert await coalescer.get(2) == 20  # and the next read is read afresh


async def test_a_caller_that_gives_up_leaves_the_others_their_answers() -> None:
    reads = Reads(hold=True)
    coalescer, first = await read_in_flight(reads)
    impatient = asyncio.create_task(coalescer.get(4))
    patient = asyncio.create_task(coalescer.get(4))
    await asyncio.sleep(0)
    impatient.cancel()
    reads.release.set()
    assert list(await asyncio.wait_for(asyncio.gather(first, patient), WAIT)) == [20, 40]
    assert impatient.cancelled()


async def test_a_stopped_reader_cancels_whoever_waits_for_it() -> None:
    reads = Reads(hold=True)
    coalescer, first = await read_in_flight(reads)
    later = asyncio.create_task(coalescer.get(4))
    await asyncio.sleep(0)
    drain = coalescer._task
    assert drain is not None
    drain.cancel()  # as the loop's shutdown does
    done, _ = await asyncio.wait([first, later], timeout=WAIT)
    assert first in done
    assert later in done
    assert first.cancelled()
    assert later.cancelled()
    reads.release.set()
    assert await asyncio.wait_for(coalescer.get(6), WAIT) == 60  # a new read starts afresh
