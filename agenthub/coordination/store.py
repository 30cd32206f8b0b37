"""SQL for coordination: who a send concerns, the inbox, acknowledgements, threads."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthub.db.models import (
    agents,
    inbox_items,
    inbox_state,
    message_acks,
    messages,
    room_members,
    rooms,
)


async def members_named(
    conn: AsyncConnection, room_id: uuid.UUID, names: Iterable[str]
) -> dict[str, uuid.UUID]:
    """name -> id of the room's members among `names`."""
    stmt = (
        sa.select(agents.c.name, agents.c.id)
        .join(room_members, room_members.c.agent_id == agents.c.id)
        .where(room_members.c.room_id == room_id, agents.c.name.in_(list(names)))
    )
    return {r.name: r.id for r in await conn.execute(stmt)}


async def agents_by_ref(
    conn: AsyncConnection, names: list[str], ids: list[uuid.UUID]
) -> Sequence[RowMapping]:
    stmt = sa.select(agents.c.id, agents.c.name).where(
        agents.c.name.in_(names) | agents.c.id.in_(ids)
    )
    return (await conn.execute(stmt)).mappings().all()


async def member_ids(
    conn: AsyncConnection, room_id: uuid.UUID, agent_ids: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    stmt = sa.select(room_members.c.agent_id).where(
        room_members.c.room_id == room_id, room_members.c.agent_id.in_(list(agent_ids))
    )
    return set((await conn.execute(stmt)).scalars())


async def other_members(
    conn: AsyncConnection, room_id: uuid.UUID, agent_id: uuid.UUID
) -> list[uuid.UUID]:
    stmt = sa.select(room_members.c.agent_id).where(
        room_members.c.room_id == room_id, room_members.c.agent_id != agent_id
    )
    return list((await conn.execute(stmt)).scalars())


async def message_at(conn: AsyncConnection, room_id: uuid.UUID, seq: int) -> RowMapping | None:
    stmt = sa.select(messages).where(messages.c.room_id == room_id, messages.c.seq == seq)
    return (await conn.execute(stmt)).mappings().first()


async def thread_replies(
    conn: AsyncConnection, room_id: uuid.UUID, root_seq: int, after_seq: int, limit: int
) -> Sequence[RowMapping]:
    """The replies of the thread rooted at `root_seq` with seq > `after_seq`, in seq order
    (index ix_messages_room_id_thread_seq)."""
    stmt = (
        sa.select(messages)
        .where(
            messages.c.room_id == room_id,
            messages.c.thread_seq == root_seq,
            messages.c.seq > after_seq,
        )
        .order_by(messages.c.seq)
        .limit(limit)
    )
    return (await conn.execute(stmt)).mappings().all()


async def acks_of(
    conn: AsyncConnection, message_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[RowMapping]]:
    """The acknowledgements asked by these messages, by message id."""
    if not message_ids:
        return {}
    stmt = (
        sa.select(message_acks)
        .where(message_acks.c.message_id.in_(message_ids))
        .order_by(message_acks.c.message_id, message_acks.c.agent_id)
    )
    found: dict[uuid.UUID, list[RowMapping]] = {}
    for row in (await conn.execute(stmt)).mappings():
        found.setdefault(row["message_id"], []).append(row)
    return found


async def answers_of(
    conn: AsyncConnection, rows: Sequence[RowMapping]
) -> dict[uuid.UUID, list[RowMapping]]:
    """The acknowledgement rows of those of `rows` (messages) that asked for some: no query
    at all for a page without such messages."""
    return await acks_of(conn, [r["id"] for r in rows if r["ack_from"]])


def _visible_to(agent_id: uuid.UUID) -> Any:
    """Only rooms the agent is still a member of."""
    return (
        sa.select(room_members.c.room_id)
        .where(room_members.c.room_id == rooms.c.id, room_members.c.agent_id == agent_id)
        .exists()
    )


async def inbox_page(
    conn: AsyncConnection,
    agent_id: uuid.UUID,
    after: uuid.UUID | None,
    limit: int,
    *,
    newest: bool = False,
) -> Sequence[RowMapping]:
    """Up to `limit` of the agent's inbox items with id > `after`, oldest first (or the
    newest `limit`, newest first), each with its message and room. Reads
    ix_inbox_items_agent_id_id: an index range scan from `after` (or from the end)."""
    stmt = (
        sa.select(
            inbox_items.c.id.label("item_id"),
            inbox_items.c.reasons,
            rooms.c.slug.label("room_slug"),
            rooms.c.kind.label("room_kind"),
            messages,
        )
        .join(messages, messages.c.id == inbox_items.c.message_id)
        .join(rooms, rooms.c.id == inbox_items.c.room_id)
        .where(inbox_items.c.agent_id == agent_id, _visible_to(agent_id))
        .order_by(inbox_items.c.id.desc() if newest else inbox_items.c.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(inbox_items.c.id > after)
    return (await conn.execute(stmt)).mappings().all()


async def unread_count(conn: AsyncConnection, agent_id: uuid.UUID, after: uuid.UUID | None) -> int:
    stmt = (
        sa.select(sa.func.count())
        .select_from(inbox_items.join(rooms, rooms.c.id == inbox_items.c.room_id))
        .where(inbox_items.c.agent_id == agent_id, _visible_to(agent_id))
    )
    if after is not None:
        stmt = stmt.where(inbox_items.c.id > after)
    return int((await conn.execute(stmt)).scalar_one())


async def read_up_to(conn: AsyncConnection, agent_id: uuid.UUID) -> uuid.UUID | None:
    stmt = sa.select(inbox_state.c.read_up_to).where(inbox_state.c.agent_id == agent_id)
    return (await conn.execute(stmt)).scalar_one_or_none()


async def owns_item(conn: AsyncConnection, agent_id: uuid.UUID, item_id: uuid.UUID) -> bool:
    stmt = sa.select(inbox_items.c.id).where(
        inbox_items.c.id == item_id, inbox_items.c.agent_id == agent_id
    )
    return (await conn.execute(stmt)).first() is not None


async def advance_read(conn: AsyncConnection, agent_id: uuid.UUID, up_to: uuid.UUID) -> None:
    """Move the agent's read marker to `up_to`, never backwards (concurrent marks included)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(inbox_state).values(agent_id=agent_id, read_up_to=up_to)
    stmt = stmt.on_conflict_do_update(
        index_elements=[inbox_state.c.agent_id],
        set_={"read_up_to": stmt.excluded.read_up_to},
        where=inbox_state.c.read_up_to < stmt.excluded.read_up_to,
    )
    await conn.execute(stmt)


async def answer_ack(
    conn: AsyncConnection,
    message_id: uuid.UUID,
    agent_id: uuid.UUID,
    status: str,
    note: str | None,
    at: datetime,
) -> bool:
    """Record the agent's answer; False when the message did not ask it."""
    stmt = (
        sa.update(message_acks)
        .where(message_acks.c.message_id == message_id, message_acks.c.agent_id == agent_id)
        .values(status=status, note=note, answered_at=at)
    )
    return (await conn.execute(stmt)).rowcount > 0


async def pending_acks(
    conn: AsyncConnection, agent_id: uuid.UUID, limit: int
) -> Sequence[RowMapping]:
    """Messages that asked the agent to acknowledge and have no answer from it, oldest first
    (ix_message_acks_agent_id_status), in rooms it is still a member of."""
    stmt = (
        sa.select(rooms.c.slug.label("room_slug"), rooms.c.kind.label("room_kind"), messages)
        .select_from(
            message_acks.join(messages, messages.c.id == message_acks.c.message_id).join(
                rooms, rooms.c.id == message_acks.c.room_id
            )
        )
        .where(
            message_acks.c.agent_id == agent_id,
            message_acks.c.status.is_(None),
            _visible_to(agent_id),
        )
        .order_by(messages.c.id)
        .limit(limit)
    )
    return (await conn.execute(stmt)).mappings().all()
