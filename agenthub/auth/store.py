"""SQL for API tokens."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthub.db.models import agents, api_tokens
from agenthub.db.types import utcnow, uuid7


async def with_agent_by_prefix(conn: AsyncConnection, prefix: str) -> RowMapping | None:
    """The token and its agent's fields (`agent_*`) for a session exchange."""
    stmt = (
        sa.select(
            api_tokens,
            agents.c.name.label("agent_name"),
            agents.c.display_name.label("agent_display_name"),
            agents.c.role.label("agent_role"),
            agents.c.created_at.label("agent_created_at"),
        )
        .join(agents, agents.c.id == api_tokens.c.agent_id)
        .where(api_tokens.c.prefix == prefix)
    )
    return (await conn.execute(stmt)).mappings().first()


async def get_by_prefix(conn: AsyncConnection, prefix: str) -> RowMapping | None:
    stmt = sa.select(api_tokens).where(api_tokens.c.prefix == prefix)
    return (await conn.execute(stmt)).mappings().first()


async def list_for_agent(conn: AsyncConnection, agent_id: uuid.UUID) -> Sequence[RowMapping]:
    stmt = (
        sa.select(api_tokens)
        .where(api_tokens.c.agent_id == agent_id)
        .order_by(api_tokens.c.created_at, api_tokens.c.id)
    )
    return (await conn.execute(stmt)).mappings().all()


async def insert(
    conn: AsyncConnection,
    agent_id: uuid.UUID,
    prefix: str,
    hashed: str,
    expires_at: datetime | None,
) -> dict[str, Any]:
    """Store a token; a prefix already in use raises IntegrityError."""
    row = {
        "id": uuid7(),
        "agent_id": agent_id,
        "prefix": prefix,
        "hash_argon2id": hashed,
        "scopes": [],
        "expires_at": expires_at,
        "created_at": utcnow(),
        "last_used_at": None,
        "revoked_at": None,
    }
    await conn.execute(sa.insert(api_tokens).values(**row))
    return row


async def touch(conn: AsyncConnection, token_id: uuid.UUID) -> None:
    stmt = sa.update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=utcnow())
    await conn.execute(stmt)


async def revoke(conn: AsyncConnection, token_id: uuid.UUID) -> bool:
    """Mark revoked; False when it already was."""
    stmt = (
        sa.update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return (await conn.execute(stmt)).rowcount > 0


async def revoked_since(
    conn: AsyncConnection, cutoff: datetime
) -> list[tuple[uuid.UUID, datetime]]:
    """(id, revoked_at) of the tokens revoked after `cutoff` (indexed on revoked_at)."""
    stmt = sa.select(api_tokens.c.id, api_tokens.c.revoked_at).where(
        api_tokens.c.revoked_at > cutoff
    )
    return [(row.id, row.revoked_at) for row in await conn.execute(stmt)]
