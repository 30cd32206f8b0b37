"""SQL for full-text search over messages: FTS5 on SQLite, a GIN-indexed tsvector on PostgreSQL.

`statement` builds the one query both the service and the index test (tests/test_search.py,
which EXPLAINs it) run; see docs/adr/0008-search.md for the index on each backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthub.db.models import agents, messages, room_members, rooms
from agenthub.search.text import fts5_query

_fts = sa.table("messages_fts", sa.column("message_id"))
_search_vector: sa.ColumnElement[Any] = sa.literal_column("messages.search_vector")
_SIMPLE: sa.ColumnElement[Any] = sa.literal_column("'simple'::regconfig")


@dataclass(frozen=True, slots=True)
class Filters:
    """What may be searched: `reader` None means every room (an admin's search)."""

    reader: uuid.UUID | None
    room_id: uuid.UUID | None = None
    sender_id: uuid.UUID | None = None


def _pg_query(terms: list[str]) -> sa.ColumnElement[Any]:
    """Every term as a phrase (`phraseto_tsquery`), all required (&&), made from the same
    `agenthub_search_text` as the indexed column."""
    parts = [
        sa.func.phraseto_tsquery(
            _SIMPLE, sa.func.agenthub_search_text(sa.bindparam(f"t{i}", term, sa.Text))
        )
        for i, term in enumerate(terms)
    ]
    query: sa.ColumnElement[Any] = parts[0]
    for part in parts[1:]:
        query = query.op("&&")(part)
    return query


def statement(
    dialect: str, terms: list[str], filters: Filters, *, offset: int, limit: int
) -> sa.Select[tuple[object, ...]]:
    """The best-ranked matches first (bm25 on SQLite, ts_rank on PostgreSQL), newest first
    among equals; each row a message with its room's slug and its sender's name."""
    stmt = sa.select(messages, rooms.c.slug.label("room_slug"), agents.c.name.label("sender_name"))
    source: sa.FromClause
    if dialect == "postgresql":
        query = _pg_query(terms)
        source = messages
        stmt = stmt.where(_search_vector.op("@@")(query))
        rank = sa.func.ts_rank(_search_vector, query).desc()
    else:
        source = _fts.join(messages, messages.c.id == _fts.c.message_id)
        stmt = stmt.where(sa.text("messages_fts MATCH :match").bindparams(match=fts5_query(terms)))
        rank = sa.literal_column("messages_fts.rank").asc()
    stmt = stmt.select_from(
        source.join(rooms, rooms.c.id == messages.c.room_id).join(
            agents, agents.c.id == messages.c.sender_id
        )
    )
    if filters.room_id is not None:
        stmt = stmt.where(messages.c.room_id == filters.room_id)
    if filters.sender_id is not None:
        stmt = stmt.where(messages.c.sender_id == filters.sender_id)
    if filters.reader is not None:
        readable = sa.select(room_members.c.room_id).where(
            room_members.c.agent_id == filters.reader
        )
        stmt = stmt.where(messages.c.room_id.in_(readable))
    return (
        stmt.order_by(rank, messages.c.created_at.desc(), messages.c.id.desc())
        .offset(offset)
        .limit(limit)
    )


async def search(
    conn: AsyncConnection, terms: list[str], filters: Filters, *, offset: int, limit: int
) -> Sequence[RowMapping]:
    stmt = statement(conn.dialect.name, terms, filters, offset=offset, limit=limit)
    return (await conn.execute(stmt)).mappings().all()
