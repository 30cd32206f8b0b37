"""`Database.driver_read()` and `Database.driver()`: the pool's connection as it is, always
given back, and an unreachable database reported as `Unavailable` like every other path."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from agenthub.config import async_url
from agenthub.db.engine import KEPT_FOR_READS, Database
from agenthub.errors import Unavailable
from tests.realtime.nodes import until_true

# A connection not given back is found by the garbage collector, which returns it to the pool
# with this warning: the pool's count alone would not show the leak.
pytestmark = pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(async_url(database_url))
    yield database
    await database.dispose()


def checked_out(db: Database) -> int:
    return sum(used for _name, used, _capacity in db.pool_usage())


async def one(raw: object, sqlite: bool) -> int:
    if sqlite:
        cursor = await raw.execute("SELECT 1")  # type: ignore[attr-defined]
        return int((await cursor.fetchone())[0])
    return int(await raw.fetchval("SELECT 1"))  # type: ignore[attr-defined]


async def test_each_use_gives_its_connection_back(db: Database) -> None:
    async with db.driver() as raw:  # the writer's path keeps nothing
        assert await one(raw, db.is_sqlite) == 1
    assert checked_out(db) == 0
    kept = []
    for _ in range(3):
        async with db.driver_read() as raw:
            assert await one(raw, db.is_sqlite) == 1
            kept.append(raw)
    # Reads one after another share one connection, kept between them (and reads at the same
    # time keep a few)...
    assert kept[0] is kept[1] is kept[2]
    assert checked_out(db) == 1
    await asyncio.gather(*(_read(db) for _ in range(KEPT_FOR_READS + 2)))
    assert 1 <= checked_out(db) <= (1 if db.is_sqlite else KEPT_FOR_READS)
    # ...and given back once unused for as long as the pool trusts an idle connection.
    await until_true(lambda: checked_out(db) == 0, "kept connections given back", 10)
    async with db.driver_read() as raw:
        assert await one(raw, db.is_sqlite) == 1
    await db.dispose()  # gives back the kept one too
    assert checked_out(db) == 0


async def _read(db: Database) -> None:
    async with db.driver_read() as raw:
        await one(raw, db.is_sqlite)


async def test_a_failed_or_cancelled_use_gives_its_connection_back(db: Database) -> None:
    with pytest.raises(ValueError, match="goes through unchanged"):
        async with db.driver_read():
            raise ValueError("the caller's own error goes through unchanged")
    started = asyncio.Event()

    async def stuck() -> None:
        async with db.driver_read():
            started.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(stuck())
    await asyncio.wait_for(started.wait(), 10)
    assert checked_out(db) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert checked_out(db) == 0
    async with db.driver_read() as raw:  # the pool still hands out working connections
        assert await one(raw, db.is_sqlite) == 1


async def test_an_unreachable_database_is_unavailable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    database = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/agenthub")
    try:
        with pytest.raises(Unavailable):
            async with database.driver_read():
                pass
        with pytest.raises(Unavailable):
            async with database.driver():
                pass
        assert checked_out(database) == 0
    finally:
        await database.dispose()
