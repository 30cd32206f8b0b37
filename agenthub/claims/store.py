"""SQL for claims. A claim counts while `expires_at > now`: every read compares times, so an
expired row that nobody has deleted yet is never mistaken for a live one."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthub.db.models import agents, claims
from agenthub.db.types import uuid7

_WITH_NAME = sa.select(claims, agents.c.name.label("agent_name")).join(
    agents, agents.c.id == claims.c.agent_id
)


async def lock(conn: AsyncConnection, room_id: uuid.UUID, resource: str) -> None:
    """Serialize the claims on one resource until the transaction ends. PostgreSQL runs
    writers concurrently: without it two agents could both see the resource free and both
    take it. (On SQLite each write transaction already runs alone.)"""
    if conn.dialect.name == "postgresql":
        key = f"claim:{room_id}:{resource}"
        await conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )


async def live(
    conn: AsyncConnection, room_id: uuid.UUID, now: datetime, resource: str | None = None
) -> Sequence[RowMapping]:
    """The room's live claims (on one resource, if given), oldest first, with holder names."""
    stmt = _WITH_NAME.where(claims.c.room_id == room_id, claims.c.expires_at > now)
    if resource is not None:
        stmt = stmt.where(claims.c.resource == resource)
    stmt = stmt.order_by(claims.c.resource, claims.c.created_at, claims.c.id)
    return (await conn.execute(stmt)).mappings().all()


async def count_held(
    conn: AsyncConnection, room_id: uuid.UUID, agent_id: uuid.UUID, now: datetime
) -> int:
    stmt = sa.select(sa.func.count()).where(
        claims.c.room_id == room_id, claims.c.agent_id == agent_id, claims.c.expires_at > now
    )
    return int((await conn.execute(stmt)).scalar_one())


async def delete_expired(
    conn: AsyncConnection,
    now: datetime,
    *,
    room_id: uuid.UUID | None = None,
    resource: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Delete expired claims (of one resource, or any: at most `limit`); returns them with
    their holders' names. Whoever deletes a row announces its expiry, so it is announced
    once even with several processes sweeping."""
    cond = [claims.c.expires_at <= now]
    if room_id is not None:
        cond.append(claims.c.room_id == room_id)
    if resource is not None:
        cond.append(claims.c.resource == resource)
    ids = sa.select(claims.c.id).where(*cond).limit(limit)
    stmt = sa.delete(claims).where(claims.c.id.in_(ids)).returning(*claims.c)
    rows = [dict(r) for r in (await conn.execute(stmt)).mappings().all()]
    if rows:
        names = dict(
            (
                await conn.execute(
                    sa.select(agents.c.id, agents.c.name).where(
                        agents.c.id.in_({r["agent_id"] for r in rows})
                    )
                )
            ).all()
        )
        for row in rows:
            row["agent_name"] = names.get(row["agent_id"], "")
    return rows


async def any_expired(conn: AsyncConnection, now: datetime) -> bool:
    stmt = sa.select(claims.c.id).where(claims.c.expires_at <= now).limit(1)
    return (await conn.execute(stmt)).first() is not None


async def upsert(
    conn: AsyncConnection,
    room_id: uuid.UUID,
    resource: str,
    agent_id: uuid.UUID,
    *,
    exclusive: bool,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """The agent's claim on the resource, created or updated (mode and expiry); True when
    created. Call it under `lock`, after `delete_expired` for the resource."""
    updated = await conn.execute(
        sa.update(claims)
        .where(
            claims.c.room_id == room_id,
            claims.c.resource == resource,
            claims.c.agent_id == agent_id,
        )
        .values(exclusive=exclusive, expires_at=expires_at)
    )
    if updated.rowcount:
        return False
    await conn.execute(
        sa.insert(claims).values(
            id=uuid7(),
            room_id=room_id,
            resource=resource,
            agent_id=agent_id,
            exclusive=exclusive,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return True


async def extend(
    conn: AsyncConnection,
    room_id: uuid.UUID,
    resource: str,
    agent_id: uuid.UUID,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Move a live claim's expiry; False when the agent holds no live claim there."""
    result = await conn.execute(
        sa.update(claims)
        .where(
            claims.c.room_id == room_id,
            claims.c.resource == resource,
            claims.c.agent_id == agent_id,
            claims.c.expires_at > now,
        )
        .values(expires_at=expires_at)
    )
    return bool(result.rowcount)


async def held(
    conn: AsyncConnection, room_id: uuid.UUID, resource: str, agent_id: uuid.UUID
) -> RowMapping | None:
    stmt = _WITH_NAME.where(
        claims.c.room_id == room_id,
        claims.c.resource == resource,
        claims.c.agent_id == agent_id,
    )
    return (await conn.execute(stmt)).mappings().first()


async def delete(
    conn: AsyncConnection, room_id: uuid.UUID, resource: str, agent_id: uuid.UUID
) -> None:
    await conn.execute(
        sa.delete(claims).where(
            claims.c.room_id == room_id,
            claims.c.resource == resource,
            claims.c.agent_id == agent_id,
        )
    )
