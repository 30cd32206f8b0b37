"""SQL for agents."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthub.db.models import agents
from agenthub.db.types import as_uuid, utcnow, uuid7


async def get_by_ref(conn: AsyncConnection, ref: str) -> RowMapping | None:
    """The agent whose id or name is `ref`; where both match different agents, the id wins."""
    if "\x00" in ref:  # no name holds U+0000, and PostgreSQL refuses it in a query parameter
        return None
    ref_id = as_uuid(ref)
    cond = agents.c.name == ref
    if ref_id is not None:
        cond = (agents.c.id == ref_id) | cond
    rows = (await conn.execute(sa.select(agents).where(cond))).mappings().all()
    for row in rows:
        if row["id"] == ref_id:
            return row
    return rows[0] if rows else None


async def get_by_id(conn: AsyncConnection, agent_id: uuid.UUID) -> RowMapping | None:
    stmt = sa.select(agents).where(agents.c.id == agent_id)
    return (await conn.execute(stmt)).mappings().first()


async def list_all(conn: AsyncConnection) -> Sequence[RowMapping]:
    stmt = sa.select(agents).order_by(agents.c.created_at, agents.c.name)
    return (await conn.execute(stmt)).mappings().all()


async def count(conn: AsyncConnection) -> int:
    return int((await conn.execute(sa.select(sa.func.count()).select_from(agents))).scalar_one())


async def insert(conn: AsyncConnection, name: str, display_name: str, role: str) -> dict[str, Any]:
    """Insert an agent; a taken name raises IntegrityError."""
    row = {
        "id": uuid7(),
        "name": name,
        "display_name": display_name,
        "role": role,
        "created_at": utcnow(),
    }
    await conn.execute(sa.insert(agents).values(**row))
    return row
