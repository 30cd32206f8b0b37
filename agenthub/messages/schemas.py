from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from agenthub.wire import NulFree, RequestModel, Timestamp, WireModel


class MessageCreate(RequestModel):
    body: Annotated[str, NulFree] = Field(
        min_length=1, description="non-empty, at most MAX_MESSAGE_BYTES UTF-8 bytes"
    )
    client_msg_id: Annotated[str, NulFree] | None = Field(
        default=None, min_length=1, max_length=128, description="makes the send idempotent"
    )


class MessagePublic(WireModel):
    id: uuid.UUID
    room_id: uuid.UUID
    seq: int
    sender_id: uuid.UUID
    body: str
    client_msg_id: str | None
    created_at: Timestamp


class MessagePage(WireModel):
    messages: list[MessagePublic]
    next_cursor: str | None


def message_out(row: Mapping[Any, Any]) -> MessagePublic:
    return MessagePublic(
        id=row["id"],
        room_id=row["room_id"],
        seq=row["seq"],
        sender_id=row["sender_id"],
        body=row["body"],
        client_msg_id=row["client_msg_id"],
        created_at=row["created_at"],
    )
