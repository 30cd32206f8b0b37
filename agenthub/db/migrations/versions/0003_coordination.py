"""coordination: direct rooms, threads, mentions, acknowledgements and the inbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Only additions: new nullable columns (and `rooms.kind` with a default every existing room
takes), two new tables and their indexes. `inbox_items (agent_id, id)` serves the inbox query
(an agent's items in order, after a cursor); `message_acks (agent_id, status)` what still
awaits an agent's answer; `messages (room_id, thread_seq)` a thread's replies in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN, never a batch (copy-and-move) operation: on SQLite that
    # drops the old `rooms` table, and with foreign keys on, the drop deletes every message
    # through ON DELETE CASCADE. Hence also a unique index rather than a unique constraint.
    op.add_column(
        "rooms", sa.Column("kind", sa.String(length=16), server_default="group", nullable=False)
    )
    op.add_column("rooms", sa.Column("direct_key", sa.String(length=80), nullable=True))
    op.create_index("ix_rooms_direct_key", "rooms", ["direct_key"], unique=True)
    op.add_column("messages", sa.Column("reply_to", sa.BigInteger(), nullable=True))
    op.add_column("messages", sa.Column("thread_seq", sa.BigInteger(), nullable=True))
    op.add_column("messages", sa.Column("mentions", JSON, nullable=True))
    op.add_column("messages", sa.Column("ack_from", JSON, nullable=True))
    op.create_index("ix_messages_room_id_thread_seq", "messages", ["room_id", "thread_seq"])

    op.create_table(
        "inbox_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("room_id", sa.Uuid(), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("created_at", ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_inbox_items_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_inbox_items_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_items")),
        sa.UniqueConstraint(
            "agent_id", "message_id", name=op.f("uq_inbox_items_agent_id_message_id")
        ),
    )
    op.create_index("ix_inbox_items_agent_id_id", "inbox_items", ["agent_id", "id"])
    op.create_table(
        "inbox_state",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("read_up_to", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_inbox_state_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_inbox_state")),
    )
    op.create_table(
        "message_acks",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("room_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("answered_at", ts(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_message_acks_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_acks_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "agent_id", name=op.f("pk_message_acks")),
    )
    op.create_index("ix_message_acks_agent_id_status", "message_acks", ["agent_id", "status"])


def downgrade() -> None:
    op.drop_table("message_acks")
    op.drop_table("inbox_state")
    op.drop_table("inbox_items")
    op.drop_index("ix_messages_room_id_thread_seq", table_name="messages")
    op.drop_index("ix_rooms_direct_key", table_name="rooms")
    # ALTER TABLE DROP COLUMN (SQLite >= 3.35), not a batch copy: see upgrade().
    for column in ("ack_from", "mentions", "thread_seq", "reply_to"):
        op.drop_column("messages", column)
    op.drop_column("rooms", "direct_key")
    op.drop_column("rooms", "kind")
