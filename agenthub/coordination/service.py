"""The inbox, acknowledgements, threads and direct messages (docs/API.md, "Coordination").
Sends themselves, with their mentions, replies and asked acknowledgements, go through
`MessageService.send` like every message (see coordination/plan.py)."""

from __future__ import annotations

from typing import Any

from agenthub import cursors
from agenthub.agents import store as agents_store
from agenthub.audit import store as audit
from agenthub.auth.jwt import Principal
from agenthub.coordination import store
from agenthub.coordination.wire import ack_wire, item_wire
from agenthub.db.engine import Database, on_commit
from agenthub.db.types import as_uuid, utcnow
from agenthub.errors import Forbidden, InvalidRequest, NotFound, clip
from agenthub.events import Events
from agenthub.messages.service import MessageService, message_wire
from agenthub.rooms.service import RoomService

ACK_STATUSES = ("seen", "done", "blocked", "rejected")
MAX_NOTE_CHARS = 2000


class CoordinationService:
    def __init__(
        self, db: Database, rooms: RoomService, messages: MessageService, events: Events
    ) -> None:
        self.db = db
        self.rooms = rooms
        self.messages = messages
        self.events = events

    # ---- direct messages ----

    async def send_direct(
        self, actor: Principal, agent_ref: str, body: object, client_msg_id: object = None
    ) -> tuple[dict[str, Any], bool]:
        """Send privately to another agent, in the direct room of the two (created with the
        first message). Refused, storing nothing, for oneself or an unknown agent."""
        self.messages.check_message(body, client_msg_id)
        async with self.db.read() as conn:
            other = (
                await agents_store.get_by_ref(conn, agent_ref) if "\x00" not in agent_ref else None
            )
        if other is None:
            raise NotFound(f"agent '{clip(agent_ref)}' does not exist")
        if other["id"] == actor.agent_id:
            raise InvalidRequest("you cannot send a direct message to yourself")
        async with self.db.read() as conn:
            me = await agents_store.get_by_ref(conn, str(actor.agent_id))
        names = ", ".join(sorted((me["name"] if me else str(actor.agent_id), other["name"])))
        room_id = await self.rooms.direct_room(actor, other["id"], names)
        return await self.messages.send(actor, str(room_id), body, client_msg_id)

    # ---- the inbox ----

    async def inbox(
        self,
        actor: Principal,
        *,
        cursor: str | None,
        unread_only: bool,
        limit: int,
        newest: bool = False,
    ) -> dict[str, Any]:
        """The agent's items oldest first after `cursor` (or after its read marker when
        `unread_only` and no cursor), with the unread count. `newest`: the last `limit`
        items (of those, unread only if asked), still oldest first, with no cursor."""
        if newest and cursor:
            raise InvalidRequest("use either 'cursor' or 'newest', not both")
        after = cursors.decode_inbox(cursor) if cursor else None
        async with self.db.read() as conn:
            marker = await store.read_up_to(conn, actor.agent_id)
            start = after if after is not None or not unread_only else marker
            if unread_only and after is not None and marker is not None:
                start = max(after, marker)
            if newest:
                rows = list(
                    reversed(
                        await store.inbox_page(conn, actor.agent_id, start, limit, newest=True)
                    )
                )
            else:
                rows = list(await store.inbox_page(conn, actor.agent_id, start, limit + 1))
            answers = await store.answers_of(conn, rows[:limit])
            unread = await store.unread_count(conn, actor.agent_id, marker)
        items = []
        for row in rows[:limit]:
            item = item_wire(
                row["item_id"],
                list(row["reasons"]),
                row["room_slug"],
                message_wire(row, answers.get(row["id"])),
            )
            item["unread"] = marker is None or row["item_id"] > marker
            items.append(item)
        more = len(rows) > limit
        return {
            "items": items,
            "nextCursor": cursors.encode_inbox(rows[limit - 1]["item_id"]) if more else None,
            "unread": unread,
            "readUpTo": str(marker) if marker is not None else None,
        }

    async def mark_read(self, actor: Principal, up_to: str) -> dict[str, Any]:
        """Everything up to item `up_to` (one of the agent's) is read; never moves back."""
        item_id = as_uuid(up_to)
        async with self.db.write() as conn:
            if item_id is None or not await store.owns_item(conn, actor.agent_id, item_id):
                raise NotFound(f"your inbox has no item '{clip(up_to)}'")
            await store.advance_read(conn, actor.agent_id, item_id)
            marker = await store.read_up_to(conn, actor.agent_id)
            unread = await store.unread_count(conn, actor.agent_id, marker)
        return {"readUpTo": str(marker), "unread": unread}

    # ---- acknowledgements ----

    async def answer(
        self, actor: Principal, room_ref: str, seq: int, status: object, note: object
    ) -> dict[str, Any]:
        """The actor's answer to message `seq` of a room, which must have asked it. May be
        given again (`seen`, later `done`); the last answer counts. Announced to the room."""
        if status not in ACK_STATUSES:
            raise InvalidRequest(f"field 'status' must be one of {', '.join(ACK_STATUSES)}")
        if note is not None and (
            not isinstance(note, str) or len(note) > MAX_NOTE_CHARS or "\x00" in note
        ):
            raise InvalidRequest(
                f"field 'note' must be a string of at most {MAX_NOTE_CHARS} characters "
                "without U+0000"
            )
        room_id = await self.rooms.member_room_id(actor, room_ref)
        slug, _kind = await self.rooms.info(room_id)
        at = utcnow()
        async with self.db.write() as conn:
            message = await store.message_at(conn, room_id, seq)
            if message is None:
                raise NotFound(f"room '{slug}' has no message #{seq}")
            answered = await store.answer_ack(
                conn, message["id"], actor.agent_id, str(status), note, at
            )
            if not answered:
                raise Forbidden(f"message #{seq} in '{slug}' did not ask you to acknowledge it")
            payload = {
                "roomId": str(room_id),
                "messageId": str(message["id"]),
                "seq": seq,
                "status": status,
            }
            await audit.record(conn, "message-acked", actor.agent_id, payload)
            ack = {
                "roomId": str(room_id),
                "seq": seq,
                "messageId": str(message["id"]),
                **ack_wire(
                    {"agent_id": actor.agent_id, "status": status, "note": note, "answered_at": at}
                ),
            }
            on_commit(conn, lambda: self.events.ack_answered(room_id, ack))
        return ack

    async def pending(self, actor: Principal, limit: int) -> dict[str, Any]:
        """Messages that asked the actor to acknowledge and have no answer from it."""
        async with self.db.read() as conn:
            rows = await store.pending_acks(conn, actor.agent_id, limit)
            answers = await store.answers_of(conn, rows)
        return {
            "pending": [
                {"roomSlug": r["room_slug"], "message": message_wire(r, answers.get(r["id"]))}
                for r in rows
            ]
        }

    # ---- threads ----

    async def thread(
        self, actor: Principal, room_ref: str, seq: int, *, after_seq: int, limit: int
    ) -> dict[str, Any]:
        """The thread message `seq` belongs to: its root, and the replies (to the root or to
        other replies) in seq order, `limit` at a time after `after_seq`."""
        room = await self.rooms.room_for(actor, room_ref, admin_ok=True)
        async with self.db.read() as conn:
            found = await store.message_at(conn, room.id, seq)
            if found is None:
                raise NotFound(f"room '{room.slug}' has no message #{seq}")
            root_seq = found["thread_seq"] or found["seq"]
            root = found if root_seq == seq else await store.message_at(conn, room.id, root_seq)
            if root is None:  # (messages are never deleted)
                raise NotFound(f"room '{room.slug}' has no message #{root_seq}")
            replies = await store.thread_replies(conn, room.id, root_seq, after_seq, limit + 1)
            answers = await store.answers_of(conn, [root, *replies[:limit]])
        return {
            "root": message_wire(root, answers.get(root["id"])),
            "replies": [message_wire(r, answers.get(r["id"])) for r in replies[:limit]],
            "more": len(replies) > limit,
        }
