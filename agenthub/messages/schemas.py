from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field

from agenthub.coordination.wire import acks_wire
from agenthub.wire import NulFree, RequestModel, Timestamp, WireModel


class MessageCreate(RequestModel):
    body: Annotated[str, NulFree] = Field(
        min_length=1, description="non-empty, at most MAX_MESSAGE_BYTES UTF-8 bytes"
    )
    client_msg_id: Annotated[str, NulFree] | None = Field(
        default=None, min_length=1, max_length=128, description="makes the send idempotent"
    )

    reply_to: int | None = Field(
        default=None, description="the seq, in the same room, this message answers"
    )
    ack_from: list[str] | None = Field(
        default=None, description="members (names or ids) asked to acknowledge this message"
    )


class AckPublic(WireModel):
    agent_id: uuid.UUID
    status: str | None = Field(description="null until answered: seen, done, blocked, rejected")
    note: str | None
    answered_at: Timestamp | None


class MessagePublic(WireModel):
    id: uuid.UUID
    room_id: uuid.UUID
    seq: int
    sender_id: uuid.UUID
    body: str
    client_msg_id: str | None
    created_at: Timestamp
    reply_to: int | None = Field(description="the seq this message answers")
    mentions: list[uuid.UUID] = Field(description="ids of the members its `@name`s mention")
    acks: list[AckPublic] = Field(description="the acknowledgements it asked for, with answers")


class MessagePage(WireModel):
    messages: list[MessagePublic]
    next_cursor: str | None


def message_out(
    row: Mapping[Any, Any], answers: Sequence[Mapping[Any, Any]] | None = None
) -> MessagePublic:
    return MessagePublic(
        id=row["id"],
        room_id=row["room_id"],
        seq=row["seq"],
        sender_id=row["sender_id"],
        body=row["body"],
        client_msg_id=row["client_msg_id"],
        created_at=row["created_at"],
        reply_to=row.get("reply_to"),
        mentions=[uuid.UUID(str(m)) for m in row.get("mentions") or ()],
        acks=[AckPublic.model_validate(a) for a in acks_wire(row.get("ack_from"), answers)],
    )
