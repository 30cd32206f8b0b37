"""Concurrent keyed reads share round trips: while one read is in flight, the keys asked for
meanwhile wait and go together in the next, as the message writer's group commit does for
writes. A lone read waits for nothing but itself.

Each socket's handshake reads its agent's rooms this way (`RoomService.room_ids_of`): a fleet
that reconnects at once, after a restart or a network blip, costs one statement per round
instead of one statement and one connection checkout per socket."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Keys per statement: far below SQLite's bound on a statement's parameters (32,766), and a
# round of this many still answers in well under a millisecond.
MAX_KEYS = 500


class Coalescer(Generic[K, V]):
    def __init__(
        self,
        read_many: Callable[[list[K]], Awaitable[Mapping[K, V]]],
        max_keys: int = MAX_KEYS,
    ) -> None:
        """`read_many(keys)` answers distinct keys in one read; a key it leaves out gets None."""
        self._read_many = read_many
        self._max_keys = max_keys
        self._waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V | None:
        """What the next read says of `key`; raises what that read raised."""
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                keys = list(itertools.islice(self._waiting, self._max_keys))
                batch = {key: self._waiting.pop(key) for key in keys}
                try:
                    found = await self._read_many(keys)
                except Exception as exc:  # each waiter fails as its own read would have
                    for futures in batch.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(exc)
                    continue
                except BaseException:  # cancelled (the server stopping): so are its waiters
                    for futures in batch.values():
                        for future in futures:
                            future.cancel()
                    raise
                for key, futures in batch.items():
                    value = found.get(key)
                    for future in futures:
                        if not future.done():  # its caller may have given up
                            future.set_result(value)
        finally:
            self._task = None
            for futures in self._waiting.values():  # only when cancelled: the next round's
                for future in futures:
                    future.cancel()
            self._waiting.clear()
