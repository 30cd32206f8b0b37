"""The six tables of the seed's data model, plus what ordering and idempotency need.

`rooms.last_seq` is the per-room message counter (see `messages.store.insert_message`);
`messages.seq` is unique per room and `messages.client_msg_id` unique per (room, sender).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from agenthub.db.types import JSONType, UTCDateTime, utcnow, uuid7

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (sa.CheckConstraint("role IN ('admin', 'agent')", name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(sa.String(63), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    agent_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    prefix: Mapped[str] = mapped_column(sa.String(10), unique=True)
    hash_argon2id: Mapped[str] = mapped_column(sa.String(255))
    scopes: Mapped[Any] = mapped_column(JSONType, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Indexed for the revocation sweep (auth/revocations.py), which every process runs twice
    # a second.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class Room(Base):
    __tablename__ = "rooms"
    __table_args__ = (sa.Index("ix_rooms_direct_key", "direct_key", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    slug: Mapped[str] = mapped_column(sa.String(63), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    created_by: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("agents.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seq: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    # "group", or "direct": the two-member room of a direct conversation (migration 0003),
    # whose `direct_key` names the pair (see rooms/direct.py) so it exists once.
    kind: Mapped[str] = mapped_column(sa.String(16), default="group", server_default="group")
    direct_key: Mapped[str | None] = mapped_column(sa.String(80))


class RoomMember(Base):
    __tablename__ = "room_members"

    room_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("rooms.id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        sa.UniqueConstraint("room_id", "seq"),
        sa.UniqueConstraint("room_id", "sender_id", "client_msg_id"),
        sa.Index("ix_messages_room_id_created_at", "room_id", sa.text("created_at DESC")),
        sa.Index("ix_messages_room_id_thread_seq", "room_id", "thread_seq"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    room_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("rooms.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    sender_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("agents.id"))
    body: Mapped[str] = mapped_column(sa.Text)
    client_msg_id: Mapped[str | None] = mapped_column(sa.String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Coordination (migration 0003): the seq this message answers, and the seq of the root of
    # its thread (both null for a message that answers none); the agent ids it mentions and
    # those it asked to acknowledge it (null for none: most messages, which then cost nothing).
    reply_to: Mapped[int | None] = mapped_column(sa.BigInteger)
    thread_seq: Mapped[int | None] = mapped_column(sa.BigInteger)
    mentions: Mapped[Any] = mapped_column(JSONType, nullable=True)
    ack_from: Mapped[Any] = mapped_column(JSONType, nullable=True)


class InboxItem(Base):
    """A message that concerns an agent: it mentions it, is a direct message to it, answers
    one of its messages, or asks it to acknowledge. One row per (agent, message); `reasons`
    says which of those. Ids are uuid7, so an agent's items page in order by id."""

    __tablename__ = "inbox_items"
    __table_args__ = (
        sa.UniqueConstraint("agent_id", "message_id"),
        sa.Index("ix_inbox_items_agent_id_id", "agent_id", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    agent_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("agents.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("messages.id", ondelete="CASCADE"))
    room_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    reasons: Mapped[Any] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboxState(Base):
    """How far an agent has read its inbox: items with a greater id are unread."""

    __tablename__ = "inbox_state"

    agent_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    read_up_to: Mapped[uuid.UUID] = mapped_column(sa.Uuid)


class MessageAck(Base):
    """An acknowledgement a message asked of an agent: `status` null until it answers."""

    __tablename__ = "message_acks"
    __table_args__ = (sa.Index("ix_message_acks_agent_id_status", "agent_id", "status"),)

    message_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    room_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str | None] = mapped_column(sa.String(16))
    note: Mapped[str | None] = mapped_column(sa.Text)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        sa.Index("ix_audit_events_type_created_at", "type", "created_at"),
        sa.Index("ix_audit_events_agent_id_id", "agent_id", "id"),
    )

    # uuid7: ids sort by time, so the audit log pages by id.
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    type: Mapped[str] = mapped_column(sa.String(64))
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("agents.id", ondelete="SET NULL")
    )
    payload: Mapped[Any] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Claim(Base):
    """One holder's claim on a named resource of a room (a file path, a task id). A claim
    counts while `expires_at` is in the future; expired rows are deleted lazily or by the
    claims sweeper (claims/service.py), never needed for correctness."""

    __tablename__ = "claims"
    __table_args__ = (sa.UniqueConstraint("room_id", "resource", "agent_id"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid7)
    room_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("rooms.id", ondelete="CASCADE"))
    resource: Mapped[str] = mapped_column(sa.String(256))
    agent_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("agents.id", ondelete="CASCADE"))
    exclusive: Mapped[bool] = mapped_column(sa.Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


agents = cast(sa.Table, Agent.__table__)
api_tokens = cast(sa.Table, ApiToken.__table__)
rooms = cast(sa.Table, Room.__table__)
room_members = cast(sa.Table, RoomMember.__table__)
messages = cast(sa.Table, Message.__table__)
audit_events = cast(sa.Table, AuditEvent.__table__)
inbox_items = cast(sa.Table, InboxItem.__table__)
inbox_state = cast(sa.Table, InboxState.__table__)
message_acks = cast(sa.Table, MessageAck.__table__)
claims = cast(sa.Table, Claim.__table__)
