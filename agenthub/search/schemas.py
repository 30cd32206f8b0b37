from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agenthub.messages.schemas import MessagePublic, message_out
from agenthub.wire import WireModel


class SearchHit(MessagePublic):
    """A message object, with the slug of its room and the name of its sender."""

    room_slug: str
    sender_name: str


class SearchPage(WireModel):
    messages: list[SearchHit]
    next_cursor: str | None


def hit_out(row: Mapping[Any, Any]) -> SearchHit:
    return SearchHit(
        **message_out(row).model_dump(),
        room_slug=row["room_slug"],
        sender_name=row["sender_name"],
    )
