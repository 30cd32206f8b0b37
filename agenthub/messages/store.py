"""SQL for reading messages (storing them is batch_store.py's, on the hot path)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthub.db.models import messages


async def newest(
    conn: AsyncConnection, room_id: uuid.UUID, before_seq: int | None, limit: int
) -> Sequence[RowMapping]:
    """Up to `limit` messages with seq < before_seq (all when None), newest first."""
    stmt = (
        sa.select(messages)
        .where(messages.c.room_id == room_id)
        .order_by(messages.c.seq.desc())
        .limit(limit)
    )
    if before_seq is not None:
        stmt = stmt.where(messages.c.seq < before_seq)
    return (await conn.execute(stmt)).mappings().all()


async def after(
    conn: AsyncConnection, room_id: uuid.UUID, after_seq: int, limit: int
) -> Sequence[RowMapping]:
    """Up to `limit` messages with seq > after_seq, oldest first."""
    stmt = (
        sa.select(messages)
        .where(messages.c.room_id == room_id, messages.c.seq > after_seq)
        .order_by(messages.c.seq)
        .limit(limit)
    )
    return (await conn.execute(stmt)).mappings().all()
