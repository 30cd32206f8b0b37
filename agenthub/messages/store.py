"""SQL for messages, including the per-room sequence allocator."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthub.db.models import messages, rooms
from agenthub.db.types import utcnow, uuid7


async def allocate_seq(conn: AsyncConnection, room_id: uuid.UUID) -> int:
    """Take the room's next seq. Must be the first statement of the transaction that inserts
    the message: the row lock it takes (PostgreSQL) or the write lock (SQLite) orders the
    room's transactions, so seqs commit gapless and in order, and a rollback returns the seq."""
    stmt = (
        sa.update(rooms)
        .where(rooms.c.id == room_id)
        .values(last_seq=rooms.c.last_seq + 1)
        .returning(rooms.c.last_seq)
    )
    return int((await conn.execute(stmt)).scalar_one())


async def find_by_client_msg_id(
    conn: AsyncConnection, room_id: uuid.UUID, sender_id: uuid.UUID, client_msg_id: str
) -> Row[Any] | None:
    stmt = sa.select(messages).where(
        messages.c.room_id == room_id,
        messages.c.sender_id == sender_id,
        messages.c.client_msg_id == client_msg_id,
    )
    return (await conn.execute(stmt)).first()


async def insert(
    conn: AsyncConnection,
    room_id: uuid.UUID,
    seq: int,
    sender_id: uuid.UUID,
    body: str,
    client_msg_id: str | None,
) -> dict[str, Any]:
    row = {
        "id": uuid7(),
        "room_id": room_id,
        "seq": seq,
        "sender_id": sender_id,
        "body": body,
        "client_msg_id": client_msg_id,
        "created_at": utcnow(),
    }
    await conn.execute(sa.insert(messages).values(**row))
    return row


async def newest(
    conn: AsyncConnection, room_id: uuid.UUID, before_seq: int | None, limit: int
) -> Sequence[Row[Any]]:
    """Up to `limit` messages with seq < before_seq (all when None), newest first."""
    stmt = (
        sa.select(messages)
        .where(messages.c.room_id == room_id)
        .order_by(messages.c.seq.desc())
        .limit(limit)
    )
    if before_seq is not None:
        stmt = stmt.where(messages.c.seq < before_seq)
    return (await conn.execute(stmt)).all()


async def after(
    conn: AsyncConnection, room_id: uuid.UUID, after_seq: int, limit: int
) -> Sequence[Row[Any]]:
    """Up to `limit` messages with seq > after_seq, oldest first."""
    stmt = (
        sa.select(messages)
        .where(messages.c.room_id == room_id, messages.c.seq > after_seq)
        .order_by(messages.c.seq)
        .limit(limit)
    )
    return (await conn.execute(stmt)).all()
