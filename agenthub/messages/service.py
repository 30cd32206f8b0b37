"""Sending and reading messages. `send` is the one way a message is stored, for HTTP and
Socket.IO alike: validate, authorize, store with its seq and audit row in one transaction,
then hand it to the real-time layer."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from agenthub import cursors
from agenthub.auth.jwt import Principal
from agenthub.coordination.plan import NO_PLAN, Planner
from agenthub.coordination.store import answers_of
from agenthub.coordination.wire import acks_wire, item_wire
from agenthub.db.engine import Database
from agenthub.errors import Forbidden, InvalidRequest, PayloadTooLarge
from agenthub.events import Events
from agenthub.messages import store
from agenthub.messages.schemas import MessagePage, message_out
from agenthub.messages.writer import MessageWriter, NotMember
from agenthub.observability.metrics import Metrics
from agenthub.rooms.service import RoomService
from agenthub.wire import iso_z

MAX_CLIENT_MSG_ID = 128


def message_wire(
    row: Mapping[Any, Any], answers: Iterable[Mapping[Any, Any]] | None = None
) -> dict[str, Any]:
    """The contract's message object, JSON-ready, without a model round trip (hot path).
    `answers`: the message_acks rows of a message that asked for acknowledgements."""
    return {
        "id": str(row["id"]),
        "roomId": str(row["room_id"]),
        "seq": row["seq"],
        "senderId": str(row["sender_id"]),
        "body": row["body"],
        "clientMsgId": row["client_msg_id"],
        "createdAt": iso_z(row["created_at"]),
        "replyTo": row.get("reply_to"),
        "mentions": list(row.get("mentions") or ()),
        "acks": acks_wire(row.get("ack_from"), answers),
    }


class MessageService:
    def __init__(
        self,
        db: Database,
        rooms: RoomService,
        events: Events,
        max_message_bytes: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.rooms = rooms
        self.events = events
        self.max_message_bytes = max_message_bytes
        self.writer = MessageWriter(db, self._committed)
        self.planner = Planner(db, rooms)

    def _committed(self, rows: list[dict[str, Any]]) -> None:
        """Right after each commit, before any sender hears back: build each new message's
        wire form once (the ack, the broadcast and the REST answer all use it), announce
        it, then the inbox items it made (after the message, as a client expects)."""
        wires = []
        for row in rows:
            row["wire"] = wire = message_wire(row)
            wires.append(wire)
        self.events.messages_committed(wires)
        for row in rows:
            if row["inbox"]:
                info = self.rooms.cached_info(row["room_id"])
                slug = info[0] if info is not None else str(row["room_id"])
                for item_id, agent_id, reasons in row["inbox"]:
                    self.events.inbox_new(
                        agent_id, item_wire(item_id, list(reasons), slug, row["wire"])
                    )
        if self.metrics is not None:
            for row in rows:
                self.metrics.message_stored(row["room_id"])

    def check_message(self, body: object, client_msg_id: object) -> tuple[str, str | None]:
        if not isinstance(body, str) or not body:
            raise InvalidRequest("field 'body' must be a non-empty string")
        if len(body) * 4 > self.max_message_bytes and (len(body.encode()) > self.max_message_bytes):
            raise PayloadTooLarge(f"field 'body' exceeds {self.max_message_bytes} bytes")
        if "\x00" in body:
            raise InvalidRequest("field 'body' must not contain U+0000")
        if client_msg_id is not None and (
            not isinstance(client_msg_id, str)
            or not 0 < len(client_msg_id) <= MAX_CLIENT_MSG_ID
            or "\x00" in client_msg_id
        ):
            raise InvalidRequest(
                f"field 'clientMsgId' must be a string of 1-{MAX_CLIENT_MSG_ID} characters "
                "without U+0000"
            )
        return body, client_msg_id

    async def send(
        self,
        actor: Principal,
        room_ref: str,
        body: object,
        client_msg_id: object = None,
        *,
        reply_to: object = None,
        ack_from: object = None,
    ) -> tuple[dict[str, Any], bool]:
        """Store a message from a member; returns its wire form (the contract's message
        object) and whether it is new (False for an idempotent repeat, which stores and
        announces nothing). Every edge sends through here; the membership check costs no
        database round trip for a member this process knows (see rooms/membership.py).

        Coordination (mentions, `reply_to`, `ack_from`, direct rooms) is checked before
        anything is stored and stored in the message's transaction (coordination/plan.py);
        a plain message to a group room without an `@` costs nothing more. The answer to
        the sender also lists `ignoredMentions`: `@names` that are not members, kept as text.
        """
        body, client_msg_id = self.check_message(body, client_msg_id)
        self.planner.check_args(reply_to, ack_from)
        room_id = await self.rooms.member_room_id(actor, room_ref, write_confirms=True)
        plan = await self.planner.plan(actor, room_id, body, reply_to, ack_from)
        try:
            row, created = await self.writer.submit(
                room_id, actor.agent_id, body, client_msg_id, plan.extras if plan else NO_PLAN
            )
        except NotMember:
            # The cache was stale (removed through another node): the database's answer, and
            # its error (403, or 404), as if the cache had not known the membership at all.
            self.rooms.memberships.forget(actor.agent_id, room_id)
            await self.rooms.room_for(actor, room_ref, admin_ok=False)
            raise Forbidden("you are not a member of this room") from None
        wire = row.get("wire") or message_wire(row)
        if plan is not None and plan.ignored:
            return {**wire, "ignoredMentions": plan.ignored}, created
        return wire, created

    async def committed_after(
        self, room_id: uuid.UUID, after_seq: int, limit: int
    ) -> list[dict[str, Any]]:
        """The room's stored messages after `after_seq` in wire form, oldest first: what a node
        that missed some notifications delivers before the ones it holds (realtime/delivery.py).
        No authorization: for the real-time layer, which delivers to members only."""
        async with self.db.read() as conn:
            rows = await store.after(conn, room_id, after_seq, limit)
        return [message_wire(r) for r in rows]

    async def history(
        self,
        actor: Principal,
        room_ref: str,
        *,
        cursor: str | None,
        after_seq: int | None,
        limit: int,
    ) -> MessagePage:
        """Newest first with an opaque cursor, or oldest first after a seq (catch-up)."""
        if cursor and after_seq is not None:
            raise InvalidRequest("use either 'cursor' or 'afterSeq', not both")
        before = cursors.decode_seq(cursor) if cursor else None
        room = await self.rooms.room_for(actor, room_ref, admin_ok=True)
        async with self.db.read() as conn:
            if after_seq is not None:
                rows = await store.after(conn, room.id, after_seq, limit)
                answers = await answers_of(conn, rows)
                return MessagePage(
                    messages=[message_out(r, answers.get(r["id"])) for r in rows],
                    next_cursor=None,
                )
            rows = await store.newest(conn, room.id, before, limit + 1)
            answers = await answers_of(conn, rows[:limit])
        page = [message_out(r, answers.get(r["id"])) for r in rows[:limit]]
        more = len(rows) > limit
        return MessagePage(
            messages=page, next_cursor=cursors.encode_seq(page[-1].seq) if more else None
        )
