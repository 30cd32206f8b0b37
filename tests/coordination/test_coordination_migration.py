"""Migration 0003 forward from the schema before it, on both backends: a database holding
rooms and messages at 0002 migrates, and what it held reads as plain coordination-free data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from agenthub.config import async_url
from agenthub.db.engine import Database
from agenthub.db.migrate import alembic_config, upgrade
from tests.databases import fresh_pg_database, query
from tests.support import base_env, cli


@pytest.fixture
def database_at(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        with fresh_pg_database("mig") as url:
            yield url


async def test_0003_migrates_a_database_holding_messages(database_at: str, tmp_path: Path) -> None:
    db = Database(async_url(database_at))
    agent, room, message = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        assert (await upgrade(db, "0002"))[1] == "0002"
        async with db.write() as conn:
            now = sa.func.now() if db.dialect == "postgresql" else sa.text("CURRENT_TIMESTAMP")
            tables = sa.MetaData()
            agents = sa.Table("agents", tables, *_cols("agents"))
            rooms = sa.Table("rooms", tables, *_cols("rooms"))
            msgs = sa.Table("messages", tables, *_cols("messages"))
            await conn.execute(
                agents.insert().values(
                    id=agent, name="old-agent", display_name="Old", role="agent", created_at=now
                )
            )
            await conn.execute(
                rooms.insert().values(
                    id=room,
                    slug="old-room",
                    name="Old",
                    created_by=agent,
                    created_at=now,
                    last_seq=1,
                )
            )
            await conn.execute(
                msgs.insert().values(
                    id=message,
                    room_id=room,
                    seq=1,
                    sender_id=agent,
                    body="before 0003",
                    created_at=now,
                )
            )
    finally:
        await db.dispose()

    migrated = cli(base_env(database_at, tmp_path / "data"), "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert query(database_at, "SELECT version_num FROM alembic_version") == [("0003",)]
    assert query(database_at, "SELECT kind, direct_key FROM rooms") == [("group", None)]
    assert query(
        database_at, "SELECT body, reply_to, thread_seq, mentions, ack_from FROM messages"
    ) == [("before 0003", None, None, None, None)]
    for table in ("inbox_items", "inbox_state", "message_acks"):
        assert query(database_at, f"SELECT count(*) FROM {table}") == [(0,)]  # noqa: S608


def _cols(table: str) -> list[sa.Column[object]]:
    """The columns of the schema at 0002 that the inserts above write."""
    uid = sa.Uuid()
    when = sa.DateTime(timezone=True)
    return {
        "agents": [
            sa.Column("id", uid),
            sa.Column("name", sa.String),
            sa.Column("display_name", sa.String),
            sa.Column("role", sa.String),
            sa.Column("created_at", when),
        ],
        "rooms": [
            sa.Column("id", uid),
            sa.Column("slug", sa.String),
            sa.Column("name", sa.String),
            sa.Column("created_by", uid),
            sa.Column("created_at", when),
            sa.Column("last_seq", sa.BigInteger),
        ],
        "messages": [
            sa.Column("id", uid),
            sa.Column("room_id", uid),
            sa.Column("seq", sa.BigInteger),
            sa.Column("sender_id", uid),
            sa.Column("body", sa.Text),
            sa.Column("created_at", when),
        ],
    }[table]


async def test_0003_downgrades_without_losing_messages(database_at: str) -> None:
    db = Database(async_url(database_at))
    try:
        await upgrade(db, "head")
        async with db.write() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO agents (id, name, display_name, role, created_at) "
                    "VALUES (:i, 'a-one', 'A', 'agent', CURRENT_TIMESTAMP)"
                ),
                {"i": uuid.uuid4().hex if db.is_sqlite else uuid.uuid4()},
            )

        def down(connection: sa.Connection) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "0002")

        async with db.write() as conn:
            await conn.run_sync(down)
    finally:
        await db.dispose()
    assert query(database_at, "SELECT version_num FROM alembic_version") == [("0002",)]
    assert query(database_at, "SELECT count(*) FROM agents") == [(1,)]
