"""Several nodes as one hub: what a node commits, the others hear through one Redis stream.

Why a stream and not python-socketio's `AsyncRedisManager` (docs/adr/0007-*): that manager is
plain pub/sub, at most once (a publish is tried twice, then dropped; nothing is kept while a
listener reconnects), and its listener once died silently. A stream keeps its entries: a
reader that reconnects resumes with `XREAD` from the last id it saw. What the stream still
cannot promise (Redis restarted empty, entries trimmed by `MAXLEN ~` before a slow reader got
them, a node killed between its commit and its publish) is repaired from the database, which
stays the only truth: messages by seq (realtime/delivery.py), memberships and revocations by
the reads each node already makes (rooms/membership.py trusts a cached membership for 1 s,
auth/revocations.py reads recent revocations every 0.5 s).

- `publish(kind, data)` never blocks the caller (it runs in after-commit callbacks): entries
  queue in memory and one task writes them with `XADD … MAXLEN ~ N`, in order, retrying
  while Redis is away (a bounded queue: beyond it the oldest are dropped and counted; the
  other nodes repair them).
- One reader task per node: `XREAD BLOCK` on a connection of its own whose socket timeout is
  above the block time (redis-py 8 defaults it to 5 s, which an idle blocking read would hit),
  with a short connect timeout. It skips its own node's entries. After every reconnect, when
  the stream's `max-deleted-entry-id` shows entries trimmed past its position, and every
  `REDIS_RESYNC_SECONDS`, it asks the hub to resync from the database.
- `alive` (readiness): the reader is connected and its last read returned within the block
  time plus the timeout margin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agenthub.observability.metrics import Metrics

log = logging.getLogger("agenthub.cluster")

BLOCK_MS = 10_000
READ_TIMEOUT_S = BLOCK_MS / 1000 + 5  # above the block time: an idle read is not an error
CONNECT_TIMEOUT_S = 2.0
COMMAND_TIMEOUT_S = 2.0
READ_COUNT = 500
QUEUE_MAX = 100_000
BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)

# Entry kinds
MESSAGES = "m"
MEMBER_ADDED = "a"
MEMBER_REMOVED = "r"
REVOKED = "t"
PRESENCE = "p"

OnEntry = Callable[[str, Any], None]
OnResync = Callable[[str], Awaitable[None]]


def command_options() -> dict[str, Any]:
    """For clients of short commands (publish, presence, rate limits): every timeout bounded,
    and a command that meets a connection Redis closed meanwhile (its `timeout` setting, a
    restart) is tried again on a new one rather than failed."""
    return {
        "socket_timeout": COMMAND_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 2),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }


def command_client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, **command_options())


class Cluster:
    def __init__(
        self,
        url: str,
        prefix: str,
        maxlen: int,
        resync_seconds: float,
        metrics: Metrics,
        on_entry: OnEntry,
        on_resync: OnResync,
    ) -> None:
        self.node = uuid.uuid4().hex[:12]
        self.url = url
        self.stream = f"{prefix}:events"
        self.maxlen = maxlen
        self.resync_seconds = resync_seconds
        self.metrics = metrics
        self.redis = command_client(url)
        self._on_entry = on_entry
        self._on_resync = on_resync
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_id: str | None = None
        self._connected = False
        self._last_read = 0.0
        self._resync_due = asyncio.Event()
        self._resync_reason = "periodic"

    # ---- lifecycle ----

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._publish_loop(), name="agenthub-cluster-publish"),
            asyncio.create_task(self._read_loop(), name="agenthub-cluster-read"),
            asyncio.create_task(self._resync_loop(), name="agenthub-cluster-resync"),
        ]

    async def stop(self) -> None:
        # What is still queued is tried once: the other nodes repair the rest from the database.
        if self._queue:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(COMMAND_TIMEOUT_S):
                    await self._flush_queue()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.metrics.cluster_reader_up.set(0)
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    @property
    def alive(self) -> bool:
        """The reader is connected and reading (for readiness)."""
        reading = self._tasks and not self._tasks[1].done()
        fresh = time.monotonic() - self._last_read < READ_TIMEOUT_S + 1
        return bool(reading and self._connected and fresh)

    # ---- publishing ----

    def publish(self, kind: str, data: Any) -> None:
        """Queue an entry for the other nodes; returns at once."""
        if len(self._queue) >= QUEUE_MAX:
            self._queue.popleft()
            self.metrics.cluster_publish_failures.inc()
        self._queue.append((kind, orjson.dumps(data)))
        self._wake.set()

    async def _publish_loop(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                try:
                    await self._flush_queue()
                except (RedisError, OSError) as exc:
                    if failures == 0:
                        log.warning("cannot publish to Redis: %s", type(exc).__name__)
                    self.metrics.cluster_publish_failures.inc()
                    await asyncio.sleep(BACKOFF_S[min(failures, len(BACKOFF_S) - 1)])
                    failures += 1
                else:
                    if failures:
                        log.warning("publishing to Redis again")
                    failures = 0

    async def _flush_queue(self) -> None:
        batch = list(self._queue)[:READ_COUNT]
        pipe = self.redis.pipeline(transaction=False)
        for kind, data in batch:
            pipe.xadd(
                self.stream,
                {"n": self.node, "k": kind, "d": data},
                maxlen=self.maxlen,
                approximate=True,
            )
        await pipe.execute()
        for _ in batch:  # only once written: a failed pipeline is written again (a repeat
            self._queue.popleft()  # is harmless: deliveries drop seqs they have passed)

    # ---- reading ----

    async def _read_loop(self) -> None:
        failures = 0
        while True:
            reader = aioredis.Redis.from_url(
                self.url,
                socket_timeout=READ_TIMEOUT_S,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
            )
            try:
                await reader.client_setname(f"agenthub-reader-{self.node}")
                if self._last_id is None:  # first start: from the stream's end
                    newest: Any = await reader.xrevrange(self.stream, count=1)
                    self._last_id = newest[0][0].decode() if newest else "0-0"
                else:  # reconnected: what was missed while away is read on, the rest repaired
                    self._ask_resync("reconnect")
                self._connected = True
                self._last_read = time.monotonic()
                self.metrics.cluster_reader_up.set(1)
                if failures:
                    log.warning("reading the Redis stream again")
                failures = 0
                await self._read(reader)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if failures == 0:
                    log.warning("Redis stream reader lost: %s", type(exc).__name__)
                self._connected = False
                self.metrics.cluster_reader_up.set(0)
                self.metrics.cluster_reader_reconnects.inc()
                await asyncio.sleep(BACKOFF_S[min(failures, len(BACKOFF_S) - 1)])
                failures += 1
            finally:
                self._connected = False
                with contextlib.suppress(Exception):
                    await reader.aclose()

    async def _read(self, reader: aioredis.Redis) -> None:
        while True:
            assert self._last_id is not None
            answer: Any = await reader.xread(
                {self.stream: self._last_id}, count=READ_COUNT, block=BLOCK_MS
            )
            now = time.monotonic()
            self._last_read = now
            for _stream, entries in answer or ():
                wall = time.time()
                for entry_id, fields in entries:
                    self._last_id = entry_id.decode()
                    if fields.get(b"n", b"").decode() == self.node:
                        continue
                    millis = int(self._last_id.split("-", 1)[0])
                    self.metrics.cluster_event_lag.observe(max(0.0, wall - millis / 1000))
                    try:
                        self._on_entry(fields[b"k"].decode(), orjson.loads(fields[b"d"]))
                    except Exception as exc:  # one bad entry must not stop the reader
                        log.error("cannot apply a cluster entry: %s", type(exc).__name__)

    # ---- resync ----

    def _ask_resync(self, reason: str) -> None:
        self._resync_reason = reason
        self._resync_due.set()

    async def _resync_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.resync_seconds):
                    await self._resync_due.wait()
            reason = self._resync_reason if self._resync_due.is_set() else "periodic"
            self._resync_due.clear()
            self._resync_reason = "periodic"
            if reason == "periodic" and await self._trimmed_past_us():
                reason = "trimmed"
            try:
                await self._on_resync(reason)
            except Exception as exc:  # the database is away: the next round tries again
                log.warning("resync from the database failed: %s", type(exc).__name__)

    async def _trimmed_past_us(self) -> bool:
        """Whether entries this reader had not read yet were trimmed away (Redis 7's
        `max-deleted-entry-id`)."""
        last = self._last_id
        if last is None:
            return False
        try:
            info = await self.redis.xinfo_stream(self.stream)
        except (RedisError, OSError):
            return False  # no stream (yet, or Redis restarted empty: the reader resyncs)
        deleted = info.get("max-deleted-entry-id")
        if isinstance(deleted, bytes):
            deleted = deleted.decode()
        return isinstance(deleted, str) and _id(deleted) > _id(last)


def _id(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)
