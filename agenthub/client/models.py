"""What the server returns, as typed, immutable values (snake_case here, camelCase on the wire).

`from_wire` reads the contract's JSON object; `to_wire` writes it back (the CLI's `--json`).
Ids stay lowercase UUID strings, as on the wire; times become aware UTC datetimes.
`from_wire` checks what it reads: anything not shaped as the contract says (a missing field, a
number where text belongs, a seq below 1) is a `BadResponse`, never a KeyError in the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from agenthub.client.errors import BadResponse

T = TypeVar("T")


def parse_time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def checked(kind: str, data: Any, build: Callable[[dict[str, Any]], T]) -> T:
    """`build(data)`, with any sign that `data` is not a well-formed `kind` made a BadResponse."""
    if not isinstance(data, dict):
        raise BadResponse(f"the server sent a malformed {kind}: not a JSON object")
    try:
        return build(data)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else "a field of the wrong type"
        raise BadResponse(f"the server sent a malformed {kind}: {detail}") from None


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not text")
    return value


def seq_number(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("not a seq")
    return value


def format_time(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a `Z`, as the server writes it."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    name: str
    display_name: str
    role: str  # "admin" or "agent"
    created_at: datetime | None  # absent from the agent embedded in a session

    @classmethod
    def from_wire(cls, data: Any) -> Agent:
        def build(d: dict[str, Any]) -> Agent:
            created = d.get("createdAt")
            return cls(
                id=text(d["id"]),
                name=text(d["name"]),
                display_name=text(d.get("displayName") or d["name"]),
                role=text(d.get("role", "agent")),
                created_at=parse_time(created) if created else None,
            )

        return checked("agent", data, build)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "displayName": self.display_name,
            "role": self.role,
        }
        if self.created_at is not None:
            out["createdAt"] = format_time(self.created_at)
        return out


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    slug: str
    name: str
    created_by: str
    created_at: datetime
    kind: str = "group"  # or "direct": the two-member room of a direct conversation

    @classmethod
    def from_wire(cls, data: Any) -> Room:
        return checked(
            "room",
            data,
            lambda d: cls(
                id=text(d["id"]),
                slug=text(d["slug"]),
                name=text(d["name"]),
                created_by=text(d["createdBy"]),
                created_at=parse_time(d["createdAt"]),
                kind=text(d.get("kind", "group")),
            ),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "createdBy": self.created_by,
            "createdAt": format_time(self.created_at),
            "kind": self.kind,
        }


def _optional_time(value: Any) -> datetime | None:
    return parse_time(value) if value is not None else None


def _optional_text(value: Any) -> str | None:
    return text(value) if value is not None else None


def _texts(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TypeError("not a list")
    return tuple(text(v) for v in value)


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledgement a message asked for: `status` None until the agent answers."""

    agent_id: str
    status: str | None  # "seen", "done", "blocked", "rejected"
    note: str | None
    answered_at: datetime | None

    @classmethod
    def from_wire(cls, data: Any) -> Ack:
        return checked(
            "acknowledgement",
            data,
            lambda d: cls(
                agent_id=text(d["agentId"]),
                status=_optional_text(d.get("status")),
                note=_optional_text(d.get("note")),
                answered_at=_optional_time(d.get("answeredAt")),
            ),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "agentId": self.agent_id,
            "status": self.status,
            "note": self.note,
            "answeredAt": format_time(self.answered_at) if self.answered_at else None,
        }


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    room_id: str
    seq: int  # per room: 1, 2, 3… without gaps; the room's order
    sender_id: str
    body: str
    client_msg_id: str | None
    created_at: datetime
    reply_to: int | None = None  # the seq this message answers
    mentions: tuple[str, ...] = ()  # ids of the members it mentions
    acks: tuple[Ack, ...] = ()  # the acknowledgements it asked for, with their answers
    # Only on the answer to your own send: `@names` kept as text (not members of the room).
    ignored_mentions: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, data: Any) -> Message:
        def build(d: dict[str, Any]) -> Message:
            cmid = d.get("clientMsgId")
            reply_to = d.get("replyTo")
            acks = d.get("acks") or []
            if not isinstance(acks, list):
                raise TypeError("not a list")
            return cls(
                id=text(d["id"]),
                room_id=text(d["roomId"]),
                seq=seq_number(d["seq"]),
                sender_id=text(d["senderId"]),
                body=text(d["body"]),
                client_msg_id=text(cmid) if cmid is not None else None,
                created_at=parse_time(d["createdAt"]),
                reply_to=seq_number(reply_to) if reply_to is not None else None,
                mentions=_texts(d.get("mentions")),
                acks=tuple(Ack.from_wire(a) for a in acks),
                ignored_mentions=_texts(d.get("ignoredMentions")),
            )

        return checked("message", data, build)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "roomId": self.room_id,
            "seq": self.seq,
            "senderId": self.sender_id,
            "body": self.body,
            "clientMsgId": self.client_msg_id,
            "createdAt": format_time(self.created_at),
            "replyTo": self.reply_to,
            "mentions": list(self.mentions),
            "acks": [a.to_wire() for a in self.acks],
        }
        if self.ignored_mentions:
            out["ignoredMentions"] = list(self.ignored_mentions)
        return out


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of history, newest first; pass `next_cursor` back for the next (older) page."""

    messages: list[Message]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class AckAnswer:
    """An agent's answer to a message that asked it to acknowledge."""

    room_id: str
    seq: int
    message_id: str
    agent_id: str
    status: str
    note: str | None
    answered_at: datetime

    @classmethod
    def from_wire(cls, data: Any) -> AckAnswer:
        return checked(
            "acknowledgement",
            data,
            lambda d: cls(
                room_id=text(d["roomId"]),
                seq=seq_number(d["seq"]),
                message_id=text(d["messageId"]),
                agent_id=text(d["agentId"]),
                status=text(d["status"]),
                note=_optional_text(d.get("note")),
                answered_at=parse_time(d["answeredAt"]),
            ),
        )


@dataclass(frozen=True, slots=True)
class InboxItem:
    """A message that concerns you; `reasons`: mention, reply, direct, ack."""

    id: str
    reasons: tuple[str, ...]
    room_slug: str
    message: Message
    unread: bool

    @classmethod
    def from_wire(cls, data: Any) -> InboxItem:
        return checked(
            "inbox item",
            data,
            lambda d: cls(
                id=text(d["id"]),
                reasons=_texts(d["reasons"]),
                room_slug=text(d["roomSlug"]),
                message=Message.from_wire(d["message"]),
                unread=bool(d.get("unread", True)),
            ),
        )


@dataclass(frozen=True, slots=True)
class InboxPage:
    """Inbox items oldest first; pass `next_cursor` back for the next ones."""

    items: list[InboxItem]
    next_cursor: str | None
    unread: int  # how many of your items are unread, in all
    read_up_to: str | None

    @classmethod
    def from_wire(cls, data: Any) -> InboxPage:
        def build(d: dict[str, Any]) -> InboxPage:
            items = d["items"]
            if not isinstance(items, list):
                raise TypeError("not a list")
            return cls(
                items=[InboxItem.from_wire(i) for i in items],
                next_cursor=_optional_text(d.get("nextCursor")),
                unread=seq_number(d["unread"]),
                read_up_to=_optional_text(d.get("readUpTo")),
            )

        return checked("inbox page", data, build)


@dataclass(frozen=True, slots=True)
class PendingAck:
    """A message that asked you to acknowledge it and has no answer from you yet."""

    room_slug: str
    message: Message

    @classmethod
    def from_wire(cls, data: Any) -> PendingAck:
        return checked(
            "pending acknowledgement",
            data,
            lambda d: cls(room_slug=text(d["roomSlug"]), message=Message.from_wire(d["message"])),
        )


@dataclass(frozen=True, slots=True)
class Thread:
    """A thread: its root, then replies in seq order (`more`: further replies after them)."""

    root: Message
    replies: list[Message]
    more: bool

    @classmethod
    def from_wire(cls, data: Any) -> Thread:
        def build(d: dict[str, Any]) -> Thread:
            replies = d["replies"]
            if not isinstance(replies, list):
                raise TypeError("not a list")
            return cls(
                root=Message.from_wire(d["root"]),
                replies=[Message.from_wire(m) for m in replies],
                more=bool(d["more"]),
            )

        return checked("thread", data, build)


@dataclass(frozen=True, slots=True)
class Claim:
    """An agent's claim on a named resource of a room, live until `expires_at`."""

    room_id: str
    resource: str
    agent_id: str
    agent_name: str
    exclusive: bool
    created_at: datetime
    expires_at: datetime

    @classmethod
    def from_wire(cls, data: Any) -> Claim:
        def build(d: dict[str, Any]) -> Claim:
            if not isinstance(d["exclusive"], bool):
                raise TypeError("exclusive")
            return cls(
                room_id=text(d["roomId"]),
                resource=text(d["resource"]),
                agent_id=text(d["agentId"]),
                agent_name=text(d["agentName"]),
                exclusive=d["exclusive"],
                created_at=parse_time(d["createdAt"]),
                expires_at=parse_time(d["expiresAt"]),
            )

        return checked("claim", data, build)

    def to_wire(self) -> dict[str, Any]:
        return {
            "roomId": self.room_id,
            "resource": self.resource,
            "agentId": self.agent_id,
            "agentName": self.agent_name,
            "exclusive": self.exclusive,
            "createdAt": format_time(self.created_at),
            "expiresAt": format_time(self.expires_at),
        }


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message found by a search, with its room's slug and its sender's name."""

    message: Message
    room_slug: str
    sender_name: str

    @classmethod
    def from_wire(cls, data: Any) -> SearchHit:
        message = Message.from_wire(data)
        return checked(
            "search result",
            data,
            lambda d: cls(
                message=message, room_slug=text(d["roomSlug"]), sender_name=text(d["senderName"])
            ),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            **self.message.to_wire(),
            "roomSlug": self.room_slug,
            "senderName": self.sender_name,
        }


@dataclass(frozen=True, slots=True)
class SearchPage:
    """Best matches first; pass `next_cursor` back for the next page (None: no more)."""

    hits: list[SearchHit]
    next_cursor: str | None
