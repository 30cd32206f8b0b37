"""SQL for rooms and their members."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthub.db.models import agents, room_members, rooms
from agenthub.db.types import as_uuid, utcnow, uuid7


async def get_with_membership(
    conn: AsyncConnection, ref: str, agent_id: uuid.UUID
) -> tuple[RowMapping, bool] | None:
    """The room whose id or slug is `ref` (the id wins) and whether `agent_id` is a member."""
    if "\x00" in ref:  # no slug holds U+0000, and PostgreSQL refuses it in a query parameter
        return None
    ref_id = as_uuid(ref)
    cond = rooms.c.slug == ref
    if ref_id is not None:
        cond = (rooms.c.id == ref_id) | cond
    membership = (
        sa.select(room_members.c.agent_id)
        .where(room_members.c.room_id == rooms.c.id, room_members.c.agent_id == agent_id)
        .exists()
    )
    stmt = sa.select(rooms, membership.label("is_member")).where(cond)
    rows = (await conn.execute(stmt)).mappings().all()
    chosen = next((r for r in rows if r["id"] == ref_id), rows[0] if rows else None)
    return None if chosen is None else (chosen, bool(chosen["is_member"]))


async def list_for_agent(conn: AsyncConnection, agent_id: uuid.UUID) -> Sequence[RowMapping]:
    stmt = (
        sa.select(rooms)
        .join(room_members, room_members.c.room_id == rooms.c.id)
        .where(room_members.c.agent_id == agent_id)
        .order_by(rooms.c.created_at, rooms.c.slug)
    )
    return (await conn.execute(stmt)).mappings().all()


async def list_all(conn: AsyncConnection) -> Sequence[RowMapping]:
    """Every room but the direct ones, which only their two members see."""
    stmt = (
        sa.select(rooms).where(rooms.c.kind != "direct").order_by(rooms.c.created_at, rooms.c.slug)
    )
    return (await conn.execute(stmt)).mappings().all()


async def room_ids_for_agents(
    raw: Any, agent_ids: Sequence[uuid.UUID], sqlite: bool
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The rooms each of `agent_ids` is a member of (agents of none left out), on the
    driver's own connection (`Database.driver_read`): one statement, no transaction, for the
    handshakes of sockets opening together."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {}
    if sqlite:  # uuids are 32 hex digits there; the ids travel as one JSON array
        cursor = await raw.execute(
            "SELECT agent_id, room_id FROM room_members"
            " WHERE agent_id IN (SELECT value FROM json_each(?))",
            (json.dumps([a.hex for a in agent_ids]),),
        )
        for agent, room in await cursor.fetchall():
            found.setdefault(uuid.UUID(agent), []).append(uuid.UUID(room))
        return found
    rows = await raw.fetch(
        "SELECT agent_id, room_id FROM room_members WHERE agent_id = ANY($1::uuid[])",
        agent_ids,
    )
    for agent, room in rows:
        found.setdefault(agent, []).append(room)
    return found


async def last_seqs(conn: AsyncConnection, room_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Each room's last seq (the rooms that exist among `room_ids`)."""
    stmt = sa.select(rooms.c.id, rooms.c.last_seq).where(rooms.c.id.in_(list(room_ids)))
    return {row.id: row.last_seq for row in await conn.execute(stmt)}


async def memberships_of(
    conn: AsyncConnection, agent_ids: Sequence[uuid.UUID]
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """The (agent id, room id) memberships of these agents."""
    stmt = sa.select(room_members.c.agent_id, room_members.c.room_id).where(
        room_members.c.agent_id.in_(list(agent_ids))
    )
    return {(row.agent_id, row.room_id) for row in await conn.execute(stmt)}


async def insert(
    conn: AsyncConnection,
    slug: str,
    name: str,
    created_by: uuid.UUID,
    *,
    kind: str = "group",
    direct_key: str | None = None,
) -> dict[str, Any]:
    """Insert a room with its creator as first member; a taken slug (or direct key) raises
    IntegrityError."""
    room_id = uuid7()
    row = {
        "id": room_id,
        "slug": slug,
        "name": name,
        "created_by": created_by,
        "created_at": utcnow(),
        "last_seq": 0,
        "kind": kind,
        "direct_key": direct_key,
    }
    await conn.execute(sa.insert(rooms).values(**row))
    await add_member(conn, room_id, created_by)
    return row


async def members(conn: AsyncConnection, room_id: uuid.UUID) -> Sequence[RowMapping]:
    stmt = (
        sa.select(agents)
        .join(room_members, room_members.c.agent_id == agents.c.id)
        .where(room_members.c.room_id == room_id)
        .order_by(room_members.c.joined_at, agents.c.name)
    )
    return (await conn.execute(stmt)).mappings().all()


async def add_member(conn: AsyncConnection, room_id: uuid.UUID, agent_id: uuid.UUID) -> bool:
    """Add a member; False when it already was one."""
    values = {"room_id": room_id, "agent_id": agent_id, "joined_at": utcnow()}
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(room_members).values(**values).on_conflict_do_nothing()
    return (await conn.execute(stmt)).rowcount > 0


async def remove_member(conn: AsyncConnection, room_id: uuid.UUID, agent_id: uuid.UUID) -> bool:
    stmt = sa.delete(room_members).where(
        room_members.c.room_id == room_id, room_members.c.agent_id == agent_id
    )
    return (await conn.execute(stmt)).rowcount > 0


async def by_direct_key(conn: AsyncConnection, key: str) -> RowMapping | None:
    stmt = sa.select(rooms).where(rooms.c.direct_key == key)
    return (await conn.execute(stmt)).mappings().first()


async def by_id(conn: AsyncConnection, room_id: uuid.UUID) -> RowMapping | None:
    return (await conn.execute(sa.select(rooms).where(rooms.c.id == room_id))).mappings().first()
