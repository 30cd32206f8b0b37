"""SQL for the audit log. Ids are time-ordered (uuid7), so the log pages by id."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthub.db.models import audit_events
from agenthub.db.types import utcnow, uuid7


def event_row(type_: str, agent_id: uuid.UUID | None, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "type": type_,
        "agent_id": agent_id,
        "payload": payload,
        "created_at": utcnow(),
    }


async def record(
    conn: AsyncConnection, type_: str, agent_id: uuid.UUID | None, payload: dict[str, Any]
) -> None:
    """Append one event; call it inside the transaction whose change it records."""
    await conn.execute(sa.insert(audit_events).values(**event_row(type_, agent_id, payload)))


async def page(
    conn: AsyncConnection,
    *,
    type_: str | None,
    agent_id: uuid.UUID | None,
    before: uuid.UUID | None,
    limit: int,
) -> Sequence[RowMapping]:
    """Newest first; `limit` rows at most."""
    stmt = sa.select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
    if type_ is not None:
        stmt = stmt.where(audit_events.c.type == type_)
    if agent_id is not None:
        stmt = stmt.where(audit_events.c.agent_id == agent_id)
    if before is not None:
        stmt = stmt.where(audit_events.c.id < before)
    return (await conn.execute(stmt)).mappings().all()
