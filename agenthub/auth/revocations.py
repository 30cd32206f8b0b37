"""Which API tokens were revoked recently enough that sessions opened from them may be alive.

A session JWT names its API token (`tid`). Revoking the token must end those sessions within a
second, REST and sockets, on every server process sharing the database, without a database
round trip per request or per socket event. So each process keeps this view in memory:

- `refresh()` reads, in one indexed query, the tokens revoked within the last JWT lifetime plus
  `SLACK_S` (older revocations cannot have a live session: none is issued after a revocation,
  and the ones issued before it have expired). The lifespan refreshes it once before serving,
  then `run()` every `sweep_seconds` (0.5 s): a revocation made by another process is seen
  within about that.
- `mark()` records a revocation this process has just committed, so it acts at once.
- Listeners (the real-time hub) hear of each newly revoked token once, to end its sockets.
- With several nodes on Redis (realtime/cluster.py), `announce` tells the other nodes of this
  process's revocations at once, and they `learn` them: a revocation then acts everywhere
  within the time a notification takes, and the sweep remains the bound when one is lost.

While the database cannot be read the view stays as it was: revocations made meanwhile by other
processes are seen once it answers again (REST calls needing the database fail meanwhile too).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from agenthub.auth import store
from agenthub.db.engine import Database
from agenthub.db.types import utcnow

log = logging.getLogger("agenthub.auth")

SWEEP_SECONDS = 0.5
# Beyond the JWT lifetime: a session opened while its token was being revoked (the exchange
# read the token just before the revocation committed), and clock skew between processes.
SLACK_S = 120.0

Listener = Callable[[set[uuid.UUID]], None]


class Revocations:
    def __init__(
        self, db: Database, session_ttl_seconds: float, sweep_seconds: float = SWEEP_SECONDS
    ) -> None:
        self._db = db
        self._window = timedelta(seconds=session_ttl_seconds + SLACK_S)
        self._sweep = sweep_seconds
        self._revoked: dict[uuid.UUID, datetime] = {}  # token id -> when it was revoked
        self._listeners: list[Listener] = []
        self._failing = False
        self._announce: Callable[[uuid.UUID], None] | None = None

    def __contains__(self, token_id: object) -> bool:
        return token_id in self._revoked

    def subscribe(self, listener: Listener) -> None:
        """`listener` is called (synchronously; it must not block) with newly revoked ids."""
        self._listeners.append(listener)

    def announce_with(self, announce: Callable[[uuid.UUID], None] | None) -> None:
        """`announce(token_id)` is called for each revocation this process commits."""
        self._announce = announce

    def mark(self, token_id: uuid.UUID) -> None:
        """Call once the revocation is committed."""
        self._add([(token_id, utcnow())])
        if self._announce is not None:
            self._announce(token_id)

    def learn(self, token_id: uuid.UUID) -> None:
        """A revocation another node committed (heard through Redis; not announced again)."""
        self._add([(token_id, utcnow())])

    async def refresh(self) -> None:
        cutoff = utcnow() - self._window
        async with self._db.read() as conn:
            rows = await store.revoked_since(conn, cutoff)
        self._add(rows)
        for token_id, revoked_at in list(self._revoked.items()):
            if revoked_at < cutoff:
                del self._revoked[token_id]

    async def run(self) -> None:
        """Refresh every `sweep_seconds` until cancelled; failures are logged once a streak."""
        while True:
            await asyncio.sleep(self._sweep)
            try:
                await self.refresh()
            except Exception as exc:
                if not self._failing:
                    log.warning("cannot read token revocations: %s", type(exc).__name__)
                self._failing = True
            else:
                if self._failing:
                    log.warning("token revocations readable again")
                self._failing = False

    def _add(self, rows: Iterable[tuple[uuid.UUID, datetime]]) -> None:
        new = set()
        for token_id, revoked_at in rows:
            if token_id not in self._revoked:
                new.add(token_id)
            self._revoked[token_id] = revoked_at
        if new:
            for listener in self._listeners:
                listener(new)
