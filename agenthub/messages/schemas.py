from __future__ import annotations

import uuid
from typing import Annotated

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
