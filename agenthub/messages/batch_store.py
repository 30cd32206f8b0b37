"""SQL for storing a batch of messages, on the driver connection itself.

This is the hot path: every message goes through it. SQLAlchemy's async layer costs about
eight times the driver's CPU per statement here (greenlet hops, statement caching, pool
pings), so these statements go straight to asyncpg / aiosqlite on a connection from
SQLAlchemy's own pool (see `Database.driver`). The column encodings match what SQLAlchemy
writes (`agenthub.db.models`).

`write` stores a batch and decides, in the same transaction, which sends are repeats of a
stored `clientMsgId` and which seq each new message gets. On PostgreSQL that is one statement
and one round trip (its own transaction); BEGIN, a lookup, the seq allocation, three inserts
and COMMIT as separate round trips cost about half of a paced message's server CPU (ADR 0010).
A batch of one plain message, the usual one at agents' pace, takes a shorter statement first.
On SQLite, in process, the same steps run as separate statements in one transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg

from agenthub.db.types import uuid7
from agenthub.search.text import search_text

Key = tuple[uuid.UUID, uuid.UUID, str]  # room, sender, clientMsgId

# PostgreSQL plans a prepared statement's first five executions with their parameters' values
# before it compares them with a generic plan (plancache.c).
PLANS_BEFORE_GENERIC = 5


@dataclass(frozen=True, slots=True)
class Extras:
    """What a coordinating send adds to a message (see messages/coordination.py), decided
    before it reaches the writer: the seq it answers and its thread's root, whom it mentions
    and asks to acknowledge, and whose inbox it lands in (agent id, reasons)."""

    reply_to: int | None = None
    thread_seq: int | None = None
    mentions: tuple[uuid.UUID, ...] = ()
    ack_from: tuple[uuid.UUID, ...] = ()
    inbox: tuple[tuple[uuid.UUID, tuple[str, ...]], ...] = ()


NO_EXTRAS = Extras()


@dataclass(slots=True)
class NewMessage:
    id: uuid.UUID
    room_id: uuid.UUID
    seq: int
    sender_id: uuid.UUID
    body: str
    client_msg_id: str | None
    created_at: datetime
    extras: Extras = NO_EXTRAS
    # (item id, agent id, reasons) of the inbox items this message makes: set by the writer
    inbox_ids: list[tuple[uuid.UUID, uuid.UUID, tuple[str, ...]]] | None = None

    @property
    def key(self) -> Key | None:
        if self.client_msg_id is None:
            return None
        return (self.room_id, self.sender_id, self.client_msg_id)

    def as_row(self) -> dict[str, Any]:
        x = self.extras
        return {
            "id": self.id,
            "room_id": self.room_id,
            "seq": self.seq,
            "sender_id": self.sender_id,
            "body": self.body,
            "client_msg_id": self.client_msg_id,
            "created_at": self.created_at,
            "reply_to": x.reply_to,
            "thread_seq": x.thread_seq,
            "mentions": [str(a) for a in x.mentions] or None,
            "ack_from": [str(a) for a in x.ack_from] or None,
            "inbox": self.inbox_ids or [],
        }

    def json_column(self, ids: tuple[uuid.UUID, ...]) -> str | None:
        return json.dumps([str(a) for a in ids]) if ids else None


def _json_list(value: Any) -> list[str] | None:
    """A JSON column as the driver returns it (text, or already decoded)."""
    if value is None:
        return None
    return list(json.loads(value) if isinstance(value, str) else value)


def audit_payload(m: NewMessage) -> str:
    return json.dumps({"roomId": str(m.room_id), "messageId": str(m.id), "seq": m.seq})


class KeyConflict(Exception):
    """Another writer stored one of the batch's keys between the lookup and the insert (two
    nodes, one PostgreSQL): nothing of the batch was stored; the writer tries again."""


@dataclass(slots=True)
class Written:
    """What `BatchStore.write` did with a batch."""

    new: list[NewMessage]  # stored now, with their seqs, in batch order
    before: dict[Key, dict[str, Any]]  # rows stored earlier under a key of the batch
    refused: list[NewMessage]  # from senders who are not (or no longer) members of the room


def first_sends(messages: list[NewMessage], before: dict[Key, Any]) -> list[NewMessage]:
    """The messages to store: those whose key is not stored yet, the first of each key."""
    fresh: list[NewMessage] = []
    seen: set[Key] = set()
    for m in messages:
        if m.client_msg_id is not None:
            key = (m.room_id, m.sender_id, m.client_msg_id)
            if key in before or key in seen:
                continue
            seen.add(key)
        fresh.append(m)
    return fresh


class BatchStore(Protocol):
    async def write(self, conn: Any, messages: list[NewMessage]) -> Written:
        """Store the new ones of `messages` (batch order; `seq` is set here) with their audit
        rows, inbox items and asked acknowledgements, atomically. The sender's membership is
        confirmed in the same transaction: a non-member's message is refused, whatever the
        caller's cache believed. A message whose room does not exist is left out. Raises
        KeyConflict when a concurrent writer got in first."""
        ...


class PgBatchStore:
    # One statement, so one round trip and its own transaction. `v` numbers the batch (`ord`)
    # and each key's repeats (`nth`); `before` finds keys already stored; `alloc` takes the
    # rooms' row locks in id order (two writers on the same rooms cannot deadlock; the lock
    # orders each room's seqs and commits) and reserves a seq range per room, which `numbered`
    # hands out in batch order. A key stored concurrently after this statement's snapshot
    # fails the messages insert with a unique violation, which undoes the whole statement.
    WRITE = """
        WITH v AS (
            SELECT v.*, row_number() OVER (
                       PARTITION BY v.room_id, v.sender_id, v.cmid ORDER BY v.ord) AS nth,
                   EXISTS (SELECT 1 FROM room_members rm
                           WHERE rm.room_id = v.room_id AND rm.agent_id = v.sender_id)
                   AS member
            FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                        $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::uuid[])
                 WITH ORDINALITY AS v(id, room_id, sender_id, body, cmid, reply_to,
                                      thread_seq, mentions, ack_from, audit_id, ord)
        ),
        before AS (
            SELECT v.ord, m.id, m.room_id, m.seq, m.sender_id, m.body, m.client_msg_id,
                   m.created_at, m.reply_to, m.thread_seq, m.mentions::text AS mentions,
                   m.ack_from::text AS ack_from
            FROM v JOIN messages m
              ON m.room_id = v.room_id AND m.sender_id = v.sender_id
             AND m.client_msg_id = v.cmid
            WHERE v.nth = 1 AND v.member
        ),
        fresh AS (
            SELECT v.* FROM v
            WHERE v.member AND (v.cmid IS NULL OR v.nth = 1)
              AND v.ord NOT IN (SELECT ord FROM before)
        ),
        counts AS (SELECT room_id, count(*)::int AS n FROM fresh GROUP BY room_id),
        alloc AS (
            UPDATE rooms r SET last_seq = r.last_seq + c.n
            FROM counts c
            WHERE r.id = c.room_id
              AND r.id IN (SELECT id FROM rooms WHERE id IN (SELECT room_id FROM counts)
                           ORDER BY id FOR UPDATE)
            RETURNING r.id, r.last_seq - c.n AS base
        ),
        numbered AS (
            SELECT f.*, a.base + row_number() OVER (PARTITION BY f.room_id ORDER BY f.ord)
                   AS seq
            FROM fresh f JOIN alloc a ON a.id = f.room_id
        ),
        messages_in AS (
            INSERT INTO messages (id, room_id, seq, sender_id, body, client_msg_id,
                                  created_at, reply_to, thread_seq, mentions, ack_from)
            SELECT id, room_id, seq, sender_id, body, cmid, $11, reply_to, thread_seq,
                   mentions::jsonb, ack_from::jsonb
            FROM numbered
        ),
        audit_in AS (
            INSERT INTO audit_events (id, type, agent_id, payload, created_at)
            SELECT audit_id, 'message-sent', sender_id,
                   jsonb_build_object('roomId', room_id::text, 'messageId', id::text,
                                      'seq', seq),
                   $11
            FROM numbered
        ),
        inbox_in AS (
            INSERT INTO inbox_items (id, agent_id, message_id, room_id, reasons, created_at)
            SELECT i.id, i.agent_id, n.id, n.room_id, i.reasons::jsonb, $11
            FROM unnest($12::uuid[], $13::uuid[], $14::bigint[], $15::text[])
                 AS i(id, agent_id, ord, reasons)
            JOIN numbered n ON n.ord = i.ord
        ),
        acks_in AS (
            INSERT INTO message_acks (message_id, agent_id, room_id, seq)
            SELECT n.id, k.agent_id, n.room_id, n.seq
            FROM unnest($16::uuid[], $17::bigint[]) AS k(agent_id, ord)
            JOIN numbered n ON n.ord = k.ord
        )
        SELECT ord, seq, NULL::uuid AS id, NULL::uuid AS room_id, NULL::uuid AS sender_id,
               NULL::text AS body, NULL::text AS client_msg_id,
               NULL::timestamptz AS created_at, NULL::bigint AS reply_to,
               NULL::bigint AS thread_seq, NULL::text AS mentions, NULL::text AS ack_from
        FROM numbered
        UNION ALL
        SELECT ord, seq, id, room_id, sender_id, body, client_msg_id, created_at, reply_to,
               thread_seq, mentions, ack_from
        FROM before
        UNION ALL
        SELECT ord, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
        FROM v WHERE NOT v.member
    """

    # The usual batch at agents' pace: one message, with no inbox items or acknowledgements to
    # store. The same checks and rows, in a statement PostgreSQL runs in about two thirds of
    # the time (0.29 against 0.40 ms a send, ADR 0010). It stores only a sure new message
    # (a member's, whose key is not stored, in a room that exists); anything else returns no
    # row, and the batch statement then says which case it is.
    WRITE_ONE = """
        WITH alloc AS (
            UPDATE rooms SET last_seq = last_seq + 1
            WHERE id = $2::uuid
              AND EXISTS (SELECT 1 FROM room_members rm
                          WHERE rm.room_id = $2::uuid AND rm.agent_id = $3::uuid)
              AND ($5::text IS NULL OR NOT EXISTS (
                       SELECT 1 FROM messages m
                       WHERE m.room_id = $2::uuid AND m.sender_id = $3::uuid
                         AND m.client_msg_id = $5::text))
            RETURNING last_seq AS seq
        ),
        messages_in AS (
            INSERT INTO messages (id, room_id, seq, sender_id, body, client_msg_id,
                                  created_at, reply_to, thread_seq, mentions)
            SELECT $1::uuid, $2::uuid, seq, $3::uuid, $4::text, $5::text, $6::timestamptz,
                   $7::bigint, $8::bigint, $9::text::jsonb
            FROM alloc
        ),
        audit_in AS (
            INSERT INTO audit_events (id, type, agent_id, payload, created_at)
            SELECT $10::uuid, 'message-sent', $3::uuid,
                   jsonb_build_object('roomId', $2::uuid::text, 'messageId', $1::uuid::text,
                                      'seq', seq),
                   $6::timestamptz
            FROM alloc
        )
        SELECT seq FROM alloc
    """

    async def warm(self, conn: Any) -> None:
        """Prepare both statements on a new connection and take them past PostgreSQL's first
        executions, which it plans anew each time before it settles on a generic plan. The
        send used is to a room that does not exist, so nothing is stored or locked. Without
        this, the first messages on each connection waited for it (10 ms for the first one,
        ADR 0010)."""
        nowhere = NewMessage(uuid7(), uuid7(), 0, uuid7(), "", None, datetime.now(UTC))
        for _ in range(PLANS_BEFORE_GENERIC + 1):
            await conn.fetch(self.WRITE_ONE, *self._one(nowhere))
            await conn.fetch(self.WRITE, *self._arguments([nowhere]))

    async def write(self, conn: Any, messages: list[NewMessage]) -> Written:
        if len(messages) == 1:
            m = messages[0]
            if not m.extras.ack_from and not m.inbox_ids:
                try:
                    seq = await conn.fetchval(self.WRITE_ONE, *self._one(m))
                except asyncpg.UniqueViolationError as exc:
                    raise KeyConflict() from exc
                if seq is not None:
                    m.seq = int(seq)
                    return Written([m], {}, [])
        try:
            rows = await conn.fetch(self.WRITE, *self._arguments(messages))
        except asyncpg.UniqueViolationError as exc:
            raise KeyConflict() from exc
        stored_now: list[int] = []
        refused: list[int] = []
        before: dict[Key, dict[str, Any]] = {}
        for r in rows:
            if r["seq"] is None:
                refused.append(r["ord"] - 1)
            elif r["id"] is None:
                messages[r["ord"] - 1].seq = int(r["seq"])
                stored_now.append(r["ord"] - 1)
            else:
                row = dict(r)
                del row["ord"]
                row["mentions"] = _json_list(row["mentions"])
                row["ack_from"] = _json_list(row["ack_from"])
                before[(r["room_id"], r["sender_id"], r["client_msg_id"])] = row
        return Written(
            [messages[i] for i in sorted(stored_now)], before, [messages[i] for i in refused]
        )

    @staticmethod
    def _one(m: NewMessage) -> tuple[Any, ...]:
        x = m.extras
        return (
            m.id,
            m.room_id,
            m.sender_id,
            m.body,
            m.client_msg_id,
            m.created_at,
            x.reply_to,
            x.thread_seq,
            m.json_column(x.mentions),
            uuid7(),
        )

    @staticmethod
    def _arguments(messages: list[NewMessage]) -> tuple[Any, ...]:
        """The batch statement's parameters: a column of values each, in batch order."""
        inbox = [
            (item, agent, ord_, reasons)
            for ord_, m in enumerate(messages, 1)
            for item, agent, reasons in m.inbox_ids or ()
        ]
        acks = [(agent, ord_) for ord_, m in enumerate(messages, 1) for agent in m.extras.ack_from]
        return (
            [m.id for m in messages],
            [m.room_id for m in messages],
            [m.sender_id for m in messages],
            [m.body for m in messages],
            [m.client_msg_id for m in messages],
            [m.extras.reply_to for m in messages],
            [m.extras.thread_seq for m in messages],
            [m.json_column(m.extras.mentions) for m in messages],
            [m.json_column(m.extras.ack_from) for m in messages],
            [uuid7() for _ in messages],
            messages[0].created_at,
            [i[0] for i in inbox],
            [i[1] for i in inbox],
            [i[2] for i in inbox],
            [json.dumps(list(i[3])) for i in inbox],
            [a[0] for a in acks],
            [a[1] for a in acks],
        )


_COLUMNS = (
    "id, room_id, seq, sender_id, body, client_msg_id, created_at, "
    "reply_to, thread_seq, mentions, ack_from"
)


def _sqlite_time(value: datetime) -> str:
    # SQLAlchemy's SQLite DATETIME format, in UTC (see agenthub.db.types.UTCDateTime).
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SqliteBatchStore:
    """The same on SQLite, where uuids are 32 hex digits and times are text: the steps of
    PostgreSQL's statement, one statement each, in one transaction."""

    async def write(self, conn: Any, messages: list[NewMessage]) -> Written:
        async with self.transaction(conn):
            members = await self.members(conn, {(m.room_id, m.sender_id) for m in messages})
            refused = [m for m in messages if (m.room_id, m.sender_id) not in members]
            if refused:
                messages = [m for m in messages if (m.room_id, m.sender_id) in members]
            keys = list({k for m in messages if (k := m.key) is not None})
            before = await self.find_keyed(conn, keys) if keys else {}
            fresh = first_sends(messages, before)
            counts: dict[uuid.UUID, int] = {}
            for m in fresh:
                counts[m.room_id] = counts.get(m.room_id, 0) + 1
            last = await self.allocate(conn, counts) if counts else {}
            next_seq = {room: last[room] - n + 1 for room, n in counts.items() if room in last}
            new = []
            for m in fresh:
                if m.room_id in next_seq:  # else its room vanished: left out
                    m.seq = next_seq[m.room_id]
                    next_seq[m.room_id] += 1
                    new.append(m)
            if new and await self.insert(conn, new, [uuid7() for _ in new]) != len(new):
                raise KeyConflict()  # leaves the transaction: rolled back
        return Written(new, before, refused)

    async def members(
        self, conn: Any, pairs: set[tuple[uuid.UUID, uuid.UUID]]
    ) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """Which (room, agent) pairs are memberships."""
        wanted = list(pairs)
        marks = " OR ".join("(room_id = ? AND agent_id = ?)" for _ in wanted)
        sql = f"SELECT room_id, agent_id FROM room_members WHERE {marks}"  # noqa: S608
        cursor = await conn.execute(sql, [v.hex for pair in wanted for v in pair])
        return {(uuid.UUID(r[0]), uuid.UUID(r[1])) for r in await cursor.fetchall()}

    @asynccontextmanager
    async def transaction(self, conn: Any) -> AsyncIterator[None]:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")

    async def find_keyed(self, conn: Any, keys: list[Key]) -> dict[Key, dict[str, Any]]:
        wanted = set(keys)
        marks = ",".join("?" * len(keys))
        sql = f"SELECT {_COLUMNS} FROM messages WHERE client_msg_id IN ({marks})"  # noqa: S608
        cursor = await conn.execute(sql, [k[2] for k in keys])
        found = {}
        for row in await cursor.fetchall():
            key = (uuid.UUID(row[1]), uuid.UUID(row[3]), row[5])
            if key in wanted:
                found[key] = {
                    "id": uuid.UUID(row[0]),
                    "room_id": key[0],
                    "seq": row[2],
                    "sender_id": key[1],
                    "body": row[4],
                    "client_msg_id": row[5],
                    "created_at": datetime.fromisoformat(row[6]).replace(tzinfo=UTC),
                    "reply_to": row[7],
                    "thread_seq": row[8],
                    "mentions": _json_list(row[9]),
                    "ack_from": _json_list(row[10]),
                }
        return found

    async def allocate(self, conn: Any, counts: dict[uuid.UUID, int]) -> dict[uuid.UUID, int]:
        last = {}
        for room_id, n in counts.items():
            cursor = await conn.execute(
                "UPDATE rooms SET last_seq = last_seq + ? WHERE id = ? RETURNING last_seq",
                (n, room_id.hex),
            )
            row = await cursor.fetchone()
            if row is not None:
                last[room_id] = int(row[0])
        return last

    async def insert(
        self, conn: Any, messages: list[NewMessage], audit_ids: list[uuid.UUID]
    ) -> int:
        before = conn.total_changes
        await conn.executemany(
            "INSERT OR IGNORE INTO messages "
            "(id, room_id, seq, sender_id, body, client_msg_id, created_at, "
            "reply_to, thread_seq, mentions, ack_from) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    m.id.hex,
                    m.room_id.hex,
                    m.seq,
                    m.sender_id.hex,
                    m.body,
                    m.client_msg_id,
                    _sqlite_time(m.created_at),
                    m.extras.reply_to,
                    m.extras.thread_seq,
                    m.json_column(m.extras.mentions),
                    m.json_column(m.extras.ack_from),
                )
                for m in messages
            ],
        )
        inserted = conn.total_changes - before
        # The search index, in the same transaction (PostgreSQL computes its own: a generated
        # column). When a key conflict left a message out, the writer rolls all of it back.
        await conn.executemany(
            "INSERT INTO messages_fts (body, message_id) VALUES (?, ?)",
            [(search_text(m.body), m.id.hex) for m in messages],
        )
        if inserted == len(messages):  # else the writer retries the whole transaction
            await self._coordination(conn, messages)
        await conn.executemany(
            "INSERT INTO audit_events (id, type, agent_id, payload, created_at) "
            "VALUES (?, 'message-sent', ?, ?, ?)",
            [
                (a.hex, m.sender_id.hex, audit_payload(m), _sqlite_time(m.created_at))
                for a, m in zip(audit_ids, messages, strict=True)
            ],
        )
        return int(inserted)

    async def _coordination(self, conn: Any, messages: list[NewMessage]) -> None:
        items = [
            (i.hex, a.hex, m.id.hex, m.room_id.hex, json.dumps(list(r)), _sqlite_time(m.created_at))
            for m in messages
            for i, a, r in m.inbox_ids or ()
        ]
        if items:
            await conn.executemany(
                "INSERT INTO inbox_items (id, agent_id, message_id, room_id, reasons, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                items,
            )
        acks = [
            (m.id.hex, a.hex, m.room_id.hex, m.seq) for m in messages for a in m.extras.ack_from
        ]
        if acks:
            await conn.executemany(
                "INSERT INTO message_acks (message_id, agent_id, room_id, seq) VALUES (?, ?, ?, ?)",
                acks,
            )
