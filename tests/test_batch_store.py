"""The writer's PostgreSQL statements, on a real database: the one-message statement stores
what the batch statement would, leaves every other case to it, and the connection warm-up
stores nothing. (What a client sees of the same cases, on both databases, is in
test_messages.py and tests/realtime.)"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from agenthub.db.types import uuid7
from agenthub.messages.batch_store import NO_EXTRAS, Extras, NewMessage, PgBatchStore
from tests.databases import pg_reachable
from tests.support import Agent, Server

# PostgreSQL's statements: these tests run on the PostgreSQL server only (none are collected
# where PostgreSQL is unreachable, which CI does not allow).
pytestmark = pytest.mark.parametrize(
    "backend", ["postgres"] if pg_reachable() else [], indirect=True
)


@pytest.fixture
def pg(server: Server) -> Server:
    assert server.backend == "postgres"
    return server


def run(server: Server, work: Callable[[Any], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        conn = await asyncpg.connect(server.database_url, timeout=5)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(go())


def new(room: str, sender: Agent, body: str, key: str | None, extras: Extras = NO_EXTRAS) -> Any:
    return NewMessage(
        uuid7(), uuid.UUID(room), 0, uuid.UUID(sender.id), body, key, datetime.now(UTC), extras
    )


async def state(conn: Any, room: str) -> tuple[int, int, int]:
    """The room's last seq, its messages and the audit rows of its sends."""
    last = await conn.fetchval("SELECT last_seq FROM rooms WHERE id = $1", uuid.UUID(room))
    stored = await conn.fetchval(
        "SELECT count(*) FROM messages WHERE room_id = $1", uuid.UUID(room)
    )
    audited = await conn.fetchval(
        "SELECT count(*) FROM audit_events WHERE type = 'message-sent' AND payload->>'roomId' = $1",
        room,
    )
    return int(last), int(stored), int(audited)


async def prepared(conn: Any, statement: str) -> int:
    """How many of `conn`'s prepared statements are `statement`."""
    query = "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1"
    return int(await conn.fetchval(query, statement))


def test_one_message_takes_the_short_statement_and_stores_what_a_batch_stores(
    pg: Server, alice: Agent, bob: Agent
) -> None:
    room = pg.new_room(alice, bob)["id"]
    store = PgBatchStore()
    thread = Extras(reply_to=1, thread_seq=1, mentions=(uuid.UUID(bob.id),))

    async def work(conn: Any) -> Any:
        first = await store.write(conn, [new(room, alice, "one", "k1")])
        assert await prepared(conn, store.WRITE_ONE) == 1
        assert await prepared(conn, store.WRITE) == 0  # the short one sufficed
        replying = await store.write(conn, [new(room, bob, "two", None, thread)])
        batch = await store.write(
            conn, [new(room, alice, "three", "k3"), new(room, bob, "four", None, thread)]
        )
        assert await prepared(conn, store.WRITE) == 1
        rows = await conn.fetch(
            "SELECT seq, body, reply_to, thread_seq, mentions::text AS mentions, ack_from"
            " FROM messages WHERE room_id = $1 ORDER BY seq",
            uuid.UUID(room),
        )
        audit = await conn.fetch(
            "SELECT payload::text AS p FROM audit_events WHERE type = 'message-sent'"
            " AND payload->>'roomId' = $1 ORDER BY (payload->>'seq')::int",
            room,
        )
        return first, replying, batch, rows, audit

    first, replying, batch, rows, audit = run(pg, work)
    assert [m.seq for m in first.new] == [1]
    assert not first.before
    assert not first.refused
    assert [m.seq for m in replying.new] == [2]
    assert [m.seq for m in batch.new] == [3, 4]
    assert [(r["seq"], r["body"]) for r in rows] == [
        (1, "one"),
        (2, "two"),
        (3, "three"),
        (4, "four"),
    ]
    # The same columns whichever statement stored them.
    by_seq = {r["seq"]: r for r in rows}
    for short, batched in ((1, 3), (2, 4)):
        a, b = by_seq[short], by_seq[batched]
        assert (a["reply_to"], a["thread_seq"], a["mentions"], a["ack_from"]) == (
            b["reply_to"],
            b["thread_seq"],
            b["mentions"],
            b["ack_from"],
        )
    assert json.loads(by_seq[2]["mentions"]) == [bob.id]
    payloads = [json.loads(r["p"]) for r in audit]
    ids = {m.seq: str(m.id) for w in (first, replying, batch) for m in w.new}
    assert payloads == [{"roomId": room, "messageId": ids[s], "seq": s} for s in (1, 2, 3, 4)]


def test_a_repeat_or_a_non_member_falls_through_to_the_batch_statement(
    pg: Server, alice: Agent, bob: Agent
) -> None:
    room = pg.new_room(alice)["id"]
    store = PgBatchStore()

    async def work(conn: Any) -> Any:
        stored = await store.write(conn, [new(room, alice, "once", "same")])
        before = await state(conn, room)
        repeat = await store.write(conn, [new(room, alice, "twice", "same")])
        outsider = await store.write(conn, [new(room, bob, "let me in", None)])
        after = await state(conn, room)
        return stored, before, repeat, outsider, after

    stored, before, repeat, outsider, after = run(pg, work)
    assert [m.seq for m in stored.new] == [1]
    assert before == after == (1, 1, 1)  # neither the repeat nor the outsider changed a thing
    assert not repeat.new
    assert not repeat.refused
    (row,) = repeat.before.values()
    assert (row["seq"], row["body"], row["id"]) == (1, "once", stored.new[0].id)
    assert not outsider.new
    assert [m.body for m in outsider.refused] == ["let me in"]


def test_warming_a_connection_prepares_the_statements_and_stores_nothing(
    pg: Server, alice: Agent
) -> None:
    room = pg.new_room(alice)["id"]
    store = PgBatchStore()

    async def work(conn: Any) -> Any:
        await store.write(conn, [new(room, alice, "before", None)])
        totals = "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM audit_events),"
        totals += " (SELECT sum(last_seq) FROM rooms)"
        was = tuple(await conn.fetchrow(totals))
        await store.warm(conn)
        now = tuple(await conn.fetchrow(totals))
        plans = await conn.fetch(
            "SELECT generic_plans + custom_plans AS n FROM pg_prepared_statements"
            " WHERE statement = ANY($1::text[])",
            [store.WRITE_ONE, store.WRITE],
        )
        return was, now, [r["n"] for r in plans]

    was, now, plans = run(pg, work)
    assert now == was
    assert len(plans) == 2
    assert all(n >= 6 for n in plans)


def test_each_new_pool_connection_is_prepared_before_its_first_use(pg: Server) -> None:
    from agenthub.config import async_url
    from agenthub.db.engine import Database

    async def go() -> tuple[list[int], list[int], int]:
        db = Database(async_url(pg.database_url))
        seen: list[int] = []

        async def prepare(conn: Any) -> None:
            await conn.execute("PREPARE warmed AS SELECT 1")
            seen.append(id(conn))

        db.prepare_connections(prepare)
        used: list[int] = []
        try:
            async with db.driver() as a, db.driver() as b:  # two connections, both new
                for conn in (a, b):
                    used.append(id(conn))
                    assert await conn.fetchval("EXECUTE warmed") == 1
            async with db.driver() as again:  # from the pool: prepared once only
                used.append(id(again))
            async with db.driver_read() as read:
                count = await read.fetchval("SELECT count(*) FROM pg_prepared_statements")
        finally:
            await db.dispose()
        return seen, used, int(count)

    seen, used, count = asyncio.run(go())
    assert sorted(seen) == sorted(used[:2])
    assert used[2] in seen
    assert count >= 1
