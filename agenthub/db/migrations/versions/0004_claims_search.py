"""claims on named resources in rooms; full-text search over messages

Claims: one row per holder of a resource in a room, expiring by time (queries compare
`expires_at` with now; nothing has to delete a row for it to stop counting).

Search (docs/adr/0008-search.md): on PostgreSQL a stored generated `tsvector` column with a GIN
index, computed by `agenthub_search_text` and the `simple` configuration; on SQLite an FTS5 table
holding each message's `search_text` and id, written in the transaction that stores the message
(agenthub/messages/batch_store.py). Both are filled here from the messages already stored.

Independent of 0003 (mentions and inbox): it only adds, and touches no table of 0003's.

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from agenthub.search.text import PG_FUNCTION, SQLITE_TOKENIZE, search_text

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_CHUNK = 2000


def ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "claims",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("room_id", sa.Uuid(), nullable=False),
        sa.Column("resource", sa.String(length=256), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("exclusive", sa.Boolean(), nullable=False),
        sa.Column("created_at", ts(), nullable=False),
        sa.Column("expires_at", ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"], ["rooms.id"], name=op.f("fk_claims_room_id_rooms"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_claims_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claims")),
        sa.UniqueConstraint(
            "room_id", "resource", "agent_id", name=op.f("uq_claims_room_id_resource_agent_id")
        ),
    )
    op.create_index(op.f("ix_claims_expires_at"), "claims", ["expires_at"])

    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        # Adding a stored generated column computes it for every existing message.
        op.execute(
            "ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
            "(to_tsvector('simple'::regconfig, agenthub_search_text(body))) STORED"
        )
        op.execute("CREATE INDEX ix_messages_search_vector ON messages USING gin (search_vector)")
        return
    op.execute(
        f"CREATE VIRTUAL TABLE messages_fts USING fts5(body, message_id UNINDEXED, "
        f'tokenize="{SQLITE_TOKENIZE}")'
    )
    # Messages are never updated; a room's are deleted only with it.
    op.execute(
        "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN "
        "DELETE FROM messages_fts WHERE message_id = old.id; END"
    )
    _backfill_sqlite()


def _backfill_sqlite() -> None:
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT rowid, id, body FROM messages WHERE rowid > :last ORDER BY rowid LIMIT :n"
            ),
            {"last": last, "n": BACKFILL_CHUNK},
        ).all()
        if not rows:
            return
        conn.execute(
            sa.text("INSERT INTO messages_fts (body, message_id) VALUES (:body, :id)"),
            [{"body": search_text(r[2]), "id": r[1]} for r in rows],
        )
        last = rows[-1][0]


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_messages_search_vector")
        op.execute("ALTER TABLE messages DROP COLUMN IF EXISTS search_vector")
        op.execute("DROP FUNCTION IF EXISTS agenthub_search_text(text)")
    else:
        op.execute("DROP TRIGGER IF EXISTS messages_fts_delete")
        op.execute("DROP TABLE IF EXISTS messages_fts")
    op.drop_index(op.f("ix_claims_expires_at"), table_name="claims")
    op.drop_table("claims")
