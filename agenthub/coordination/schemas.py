"""Wire schemas of coordination (the OpenAPI document's; services return JSON-ready dicts)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field

from agenthub.messages.schemas import MessagePublic
from agenthub.wire import NulFree, RequestModel, Timestamp, WireModel


class DirectCreate(RequestModel):
    body: Annotated[str, NulFree] = Field(min_length=1)
    client_msg_id: Annotated[str, NulFree] | None = Field(
        default=None, min_length=1, max_length=128
    )


class AckCreate(RequestModel):
    status: str = Field(description="seen, done, blocked or rejected")
    note: Annotated[str, NulFree] | None = Field(default=None, max_length=2000)


class AckAnswer(WireModel):
    room_id: uuid.UUID
    seq: int
    message_id: uuid.UUID
    agent_id: uuid.UUID
    status: str
    note: str | None
    answered_at: Timestamp


class InboxItem(WireModel):
    id: uuid.UUID
    reasons: list[str] = Field(description="mention, reply, direct, ack")
    room_slug: str
    message: MessagePublic
    unread: bool


class InboxPage(WireModel):
    items: list[InboxItem]
    next_cursor: str | None
    unread: int
    read_up_to: uuid.UUID | None


class InboxRead(RequestModel):
    up_to: str = Field(max_length=64, description="an item id: it and every earlier one are read")


class InboxReadState(WireModel):
    read_up_to: uuid.UUID
    unread: int


class PendingAck(WireModel):
    room_slug: str
    message: MessagePublic


class PendingAcks(WireModel):
    pending: list[PendingAck]


class Thread(WireModel):
    root: MessagePublic
    replies: list[MessagePublic]
    more: bool
