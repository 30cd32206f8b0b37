"""`on_commit`: announcements run after COMMIT and never for a transaction that rolled back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from agenthub.config import async_url
from agenthub.db.engine import Database, on_commit


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(async_url(database_url))
    async with database.write() as conn:
        await conn.execute(sa.text("CREATE TABLE IF NOT EXISTS oncommit_probe (v INTEGER)"))
    yield database
    async with database.write() as conn:
        await conn.execute(sa.text("DROP TABLE oncommit_probe"))
    await database.dispose()


async def _stored(db: Database) -> list[int]:
    async with db.read() as conn:
        rows = await conn.execute(sa.text("SELECT v FROM oncommit_probe ORDER BY v"))
        return [r[0] for r in rows]


async def test_callbacks_run_after_commit_in_order(db: Database) -> None:
    ran: list[str] = []
    async with db.write() as conn:
        await conn.execute(sa.text("INSERT INTO oncommit_probe (v) VALUES (1)"))
        on_commit(conn, lambda: ran.append("first"))
        on_commit(conn, lambda: ran.append("second"))
        assert ran == [], "a callback ran before the transaction ended"
    assert ran == ["first", "second"]
    assert await _stored(db) == [1]


async def test_callbacks_dropped_on_rollback(db: Database) -> None:
    ran: list[str] = []

    async def failing_write() -> None:
        async with db.write() as conn:
            await conn.execute(sa.text("INSERT INTO oncommit_probe (v) VALUES (2)"))
            on_commit(conn, lambda: ran.append("announced"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_write()
    assert ran == []
    assert 2 not in await _stored(db)
    # the next transaction on the same pooled connection starts with no leftover callbacks
    async with db.write() as conn:
        await conn.execute(sa.text("INSERT INTO oncommit_probe (v) VALUES (3)"))
    assert ran == []


async def test_on_commit_outside_a_write_is_refused(db: Database) -> None:
    async with db.read() as conn:
        with pytest.raises(RuntimeError, match="outside"):
            on_commit(conn, lambda: None)


async def test_failing_callback_does_not_undo_or_hide_the_rest(db: Database) -> None:
    ran: list[str] = []

    def fail() -> None:
        raise ValueError("announcement broke")

    async with db.write() as conn:
        await conn.execute(sa.text("INSERT INTO oncommit_probe (v) VALUES (4)"))
        on_commit(conn, fail)
        on_commit(conn, lambda: ran.append("later"))
    assert ran == ["later"]
    assert 4 in await _stored(db)
