"""Group commit: every message of this process is stored by one writer task, in batches.

Sends queue up while a transaction is in flight; the next transaction takes all of them (up
to MAX_BATCH), so under load one commit carries many messages (one statement for the batch on
PostgreSQL, see batch_store.py) and at low load a send waits for nothing but its own commit,
on a connection the writer keeps while sends keep coming. One writer per process also means
its commits happen one after another, so this process learns of each room's seqs in order
and can broadcast them in order without further bookkeeping. Across processes (several nodes
on one PostgreSQL) the rooms' row locks order the transactions.

Guarantees per send, as the contract wants them: the message and its audit row commit in
the same transaction; its seq is the room's next one (gapless, in commit order); a repeated
clientMsgId (in the database or earlier in the same batch) stores nothing and returns the
stored message; the sender is a member of the room when it commits (a non-member's send
is refused with NotMember, whatever the membership cache said). The caller's future resolves
only after commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agenthub.db.engine import PING_AFTER_IDLE_S, Database
from agenthub.db.types import utcnow, uuid7
from agenthub.errors import NotFound, Unavailable
from agenthub.messages.batch_store import (
    NO_EXTRAS,
    BatchStore,
    Extras,
    KeyConflict,
    NewMessage,
    PgBatchStore,
    SqliteBatchStore,
)

log = logging.getLogger("agenthub.messages")

MAX_BATCH = 512
STOP_WAIT_SECONDS = 10
RETRIES = 3


class NotMember(Exception):
    """The sender is not a member of the room (any more): nothing was stored."""


@dataclass(slots=True)
class Pending:
    room_id: uuid.UUID
    sender_id: uuid.UUID
    body: str
    client_msg_id: str | None
    future: asyncio.Future[tuple[dict[str, Any], bool]] = field(repr=False)
    extras: Extras = NO_EXTRAS


Committed = Callable[[list[dict[str, Any]]], None]
Result = tuple[dict[str, Any], bool] | Exception


class MessageWriter:
    def __init__(self, db: Database, on_commit: Committed) -> None:
        self.db = db
        self.on_commit = on_commit
        self.store: BatchStore = SqliteBatchStore() if db.is_sqlite else PgBatchStore()
        self._pending: list[Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._hold = 0.0 if db.is_sqlite else PING_AFTER_IDLE_S
        if isinstance(self.store, PgBatchStore):
            db.prepare_connections(self.store.warm)

    def start(self) -> None:
        """Called by `Services.open` (agenthub/services.py), which also stops it."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="agenthub-writer")

    async def stop(self, within: float = STOP_WAIT_SECONDS) -> None:
        """Finish what is queued (for at most `within` seconds), then stop."""
        if self._task is None:
            return
        deadline = asyncio.get_running_loop().time() + within
        while self._pending and not self._task.done():
            if asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.01)
        self._fail(self._pending, Unavailable("the server is shutting down"))
        self._pending.clear()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def submit(
        self,
        room_id: uuid.UUID,
        sender_id: uuid.UUID,
        body: str,
        client_msg_id: str | None,
        extras: Extras = NO_EXTRAS,
    ) -> tuple[dict[str, Any], bool]:
        """Store a message (with its inbox items and asked acknowledgements, in the same
        transaction); returns its row and whether it is new. Resolves after commit."""
        if self._task is None or self._task.done():  # not started, or stopped: nobody commits
            raise Unavailable("the server is shutting down")
        future: asyncio.Future[tuple[dict[str, Any], bool]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending.append(Pending(room_id, sender_id, body, client_msg_id, future, extras))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            if not self._pending:
                await self._wake.wait()
            self._wake.clear()
            batch: list[Pending] = []
            try:
                # One connection for as long as sends keep coming: checking one out of the
                # pool and back in costs more CPU than the batch's statement at low load.
                async with self.db.driver() as conn:
                    while True:
                        while self._pending:
                            batch = self._pending[:MAX_BATCH]
                            del self._pending[:MAX_BATCH]
                            await self._commit(conn, batch)  # answers the batch, or raises
                            batch = []
                        if not await self._more_soon():
                            break
            except Exception as exc:
                # No connection, or the batch in hand failed: it fails with the error (the
                # connection goes back, discarded when dead; the next batch takes another).
                if not batch:
                    batch = self._pending[:MAX_BATCH]
                    del self._pending[:MAX_BATCH]
                self._fail(batch, exc)

    async def _more_soon(self) -> bool:
        """Whether another send comes within the hold time (none on SQLite, where the writer's
        connection is the process's one write lock). The hold equals the pool's trust in an
        idle connection (see `_ping_when_idle`): a held connection is used no later than the
        pool would hand it out unpinged."""
        if self._hold <= 0:
            return False
        try:
            async with asyncio.timeout(self._hold):
                await self._wake.wait()
        except TimeoutError:
            return False
        self._wake.clear()
        return True

    async def _commit(self, conn: Any, batch: list[Pending]) -> None:
        results: list[Result] = []
        for attempt in range(RETRIES):
            try:
                results = await self._transaction(conn, batch)
                break
            except KeyConflict:
                if attempt + 1 < RETRIES:
                    continue
                self._fail(batch, RuntimeError("conflicting concurrent sends"))
                return
        try:  # broadcast first: a sender may only hear back once its message is on its way
            self.on_commit([r[0] for r in results if not isinstance(r, Exception) and r[1]])
        except Exception as exc:  # delivery trouble must not fail committed sends
            log.error("after-commit delivery failed: %s", type(exc).__name__)
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():
                continue
            if isinstance(result, Exception):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)

    @staticmethod
    def _fail(batch: list[Pending], exc: Exception) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)

    async def _transaction(self, conn: Any, batch: list[Pending]) -> list[Result]:
        now = utcnow()
        messages = []
        for p in batch:
            m = NewMessage(
                uuid7(), p.room_id, 0, p.sender_id, p.body, p.client_msg_id, now, p.extras
            )
            if p.extras.inbox:
                m.inbox_ids = [(uuid7(), a, r) for a, r in p.extras.inbox]
            messages.append(m)
        written = await self.store.write(conn, messages)
        stored_now = {id(m) for m in written.new}
        refused = {id(m) for m in written.refused}
        by_key = dict(written.before)
        results: list[Result] = []
        for m in messages:
            key = m.key
            if id(m) in refused:
                results.append(NotMember())
            elif id(m) in stored_now:
                row = m.as_row()
                if key is not None:
                    by_key[key] = row
                results.append((row, True))
            elif key is not None and key in by_key:  # a repeat, of a stored or an earlier send
                results.append((by_key[key], False))
            else:  # its room vanished (rooms are never deleted: not expected)
                results.append(NotFound("the room does not exist"))
        return results
