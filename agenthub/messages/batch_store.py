"""SQL for storing a batch of messages in one transaction, on the driver connection itself.

This is the hot path: every message goes through it. SQLAlchemy's async layer costs about
eight times the driver's CPU per statement here (greenlet hops, statement caching, pool
pings), so these statements go straight to asyncpg / aiosqlite on a connection from
SQLAlchemy's own pool (see `Database.driver`). Each method is one round trip whatever the
batch size; the column encodings match what SQLAlchemy writes (`agenthub.db.models`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from agenthub.search.text import search_text

Key = tuple[uuid.UUID, uuid.UUID, str]  # room, sender, clientMsgId


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


class BatchStore(Protocol):
    def transaction(self, conn: Any) -> Any: ...

    async def find_keyed(self, conn: Any, keys: list[Key]) -> dict[Key, dict[str, Any]]: ...

    async def allocate(self, conn: Any, counts: dict[uuid.UUID, int]) -> dict[uuid.UUID, int]: ...

    async def insert(
        self, conn: Any, messages: list[NewMessage], audit_ids: list[uuid.UUID]
    ) -> int:
        """Insert messages and their audit rows; returns how many messages were inserted
        (fewer than given when a concurrent writer stored one of the same keys first)."""
        ...


class PgBatchStore:
    FIND = """
        SELECT m.id, m.room_id, m.seq, m.sender_id, m.body, m.client_msg_id, m.created_at,
               m.reply_to, m.thread_seq, m.mentions::text AS mentions,
               m.ack_from::text AS ack_from
        FROM messages m
        JOIN unnest($1::uuid[], $2::uuid[], $3::text[]) AS k(room_id, sender_id, cmid)
          ON m.room_id = k.room_id AND m.sender_id = k.sender_id AND m.client_msg_id = k.cmid
    """
    # The subquery takes the rooms' row locks in id order, so two writers (two nodes) that
    # touch the same rooms cannot deadlock; the lock orders each room's seqs and commits.
    ALLOCATE = """
        UPDATE rooms r SET last_seq = r.last_seq + v.n
        FROM unnest($1::uuid[], $2::int[]) AS v(id, n)
        WHERE r.id = v.id
          AND r.id IN (SELECT id FROM rooms WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE)
        RETURNING r.id, r.last_seq
    """
    INSERT = """
        INSERT INTO messages (id, room_id, seq, sender_id, body, client_msg_id, created_at,
                              reply_to, thread_seq, mentions, ack_from)
        SELECT i, r, s, a, b, c, t, rt, th, mn::jsonb, af::jsonb
        FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[],
                    $6::text[], $7::timestamptz[], $8::bigint[], $9::bigint[], $10::text[],
                    $11::text[]) AS v(i, r, s, a, b, c, t, rt, th, mn, af)
        ON CONFLICT (room_id, sender_id, client_msg_id) DO NOTHING
    """
    INBOX = """
        INSERT INTO inbox_items (id, agent_id, message_id, room_id, reasons, created_at)
        SELECT i, a, m, r, j::jsonb, c
        FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[],
                    $6::timestamptz[]) AS v(i, a, m, r, j, c)
    """
    ACKS = """
        INSERT INTO message_acks (message_id, agent_id, room_id, seq)
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[])
    """
    AUDIT = """
        INSERT INTO audit_events (id, type, agent_id, payload, created_at)
        SELECT i, 'message-sent', a, p::jsonb, c
        FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[]) AS t(i, a, p, c)
    """

    @asynccontextmanager
    async def transaction(self, conn: Any) -> AsyncIterator[None]:
        async with conn.transaction():
            yield

    async def find_keyed(self, conn: Any, keys: list[Key]) -> dict[Key, dict[str, Any]]:
        rows = await conn.fetch(
            self.FIND, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]
        )
        found = {}
        for r in rows:
            row = dict(r)
            row["mentions"] = _json_list(row["mentions"])
            row["ack_from"] = _json_list(row["ack_from"])
            found[(r["room_id"], r["sender_id"], r["client_msg_id"])] = row
        return found

    async def allocate(self, conn: Any, counts: dict[uuid.UUID, int]) -> dict[uuid.UUID, int]:
        rows = await conn.fetch(self.ALLOCATE, list(counts), list(counts.values()))
        return {r["id"]: int(r["last_seq"]) for r in rows}

    async def insert(
        self, conn: Any, messages: list[NewMessage], audit_ids: list[uuid.UUID]
    ) -> int:
        status = await conn.execute(
            self.INSERT,
            [m.id for m in messages],
            [m.room_id for m in messages],
            [m.seq for m in messages],
            [m.sender_id for m in messages],
            [m.body for m in messages],
            [m.client_msg_id for m in messages],
            [m.created_at for m in messages],
            [m.extras.reply_to for m in messages],
            [m.extras.thread_seq for m in messages],
            [m.json_column(m.extras.mentions) for m in messages],
            [m.json_column(m.extras.ack_from) for m in messages],
        )
        inserted = int(status.rsplit(" ", 1)[-1])
        if inserted == len(messages):  # else the writer retries the whole transaction
            await self._coordination(conn, messages)
        await conn.execute(
            self.AUDIT,
            audit_ids,
            [m.sender_id for m in messages],
            [audit_payload(m) for m in messages],
            [m.created_at for m in messages],
        )
        return inserted

    async def _coordination(self, conn: Any, messages: list[NewMessage]) -> None:
        items = [(m, item) for m in messages for item in m.inbox_ids or ()]
        if items:
            await conn.execute(
                self.INBOX,
                [i[0] for _, i in items],
                [i[1] for _, i in items],
                [m.id for m, _ in items],
                [m.room_id for m, _ in items],
                [json.dumps(list(i[2])) for _, i in items],
                [m.created_at for m, _ in items],
            )
        acks = [(m, a) for m in messages for a in m.extras.ack_from]
        if acks:
            await conn.execute(
                self.ACKS,
                [m.id for m, _ in acks],
                [a for _, a in acks],
                [m.room_id for m, _ in acks],
                [m.seq for m, _ in acks],
            )


_COLUMNS = (
    "id, room_id, seq, sender_id, body, client_msg_id, created_at, "
    "reply_to, thread_seq, mentions, ack_from"
)


def _sqlite_time(value: datetime) -> str:
    # SQLAlchemy's SQLite DATETIME format, in UTC (see agenthub.db.types.UTCDateTime).
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SqliteBatchStore:
    """The same on SQLite, where uuids are 32 hex digits and times are text."""

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
