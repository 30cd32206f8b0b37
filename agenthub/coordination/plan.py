"""What a send coordinates, decided before it is stored: whom it mentions, which message it
answers (and so which thread it joins), whom it asks to acknowledge it, and whose inbox it
lands in. Bad coordination is refused here, so nothing is stored; what is decided travels
with the message to the writer (`Extras`), which stores it in the message's transaction.

Reads happen only for a send that coordinates: a body with an `@`, a `replyTo`, an `ackFrom`,
or a direct room (whose kind, like its slug, is remembered once read).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from agenthub.auth.jwt import Principal
from agenthub.coordination import store
from agenthub.db.engine import Database
from agenthub.db.types import as_uuid
from agenthub.errors import InvalidRequest, NotFound, clip
from agenthub.messages.batch_store import NO_EXTRAS, Extras
from agenthub.rooms.service import RoomService

NO_PLAN = NO_EXTRAS
MAX_ACK_FROM = 20
MAX_MENTIONS = 50  # distinct @names looked up per message; the rest stay text
MAX_SEQ = 2**63 - 1
# `@name` where name is an agent name, not inside a word or an e-mail address.
MENTION = re.compile(r"(?<![A-Za-z0-9_.@+-])@([a-z0-9][a-z0-9-]{1,62})(?![A-Za-z0-9_-])")
REASON_ORDER = ("mention", "reply", "direct", "ack")


def mention_names(body: str) -> list[str]:
    """The distinct `@names` of a body, in order of appearance, at most MAX_MENTIONS."""
    seen: dict[str, None] = {}
    for match in MENTION.finditer(body):
        seen.setdefault(match.group(1), None)
        if len(seen) >= MAX_MENTIONS:
            break
    return list(seen)


@dataclass(frozen=True, slots=True)
class Plan:
    extras: Extras
    ignored: list[str]  # @names that are not members of the room: kept as text


class Planner:
    def __init__(self, db: Database, rooms: RoomService) -> None:
        self.db = db
        self.rooms = rooms

    @staticmethod
    def check_args(reply_to: object, ack_from: object) -> None:
        """The shape of `replyTo` and `ackFrom`, before anything is read."""
        if reply_to is not None and (
            not isinstance(reply_to, int) or isinstance(reply_to, bool) or not reply_to >= 1
        ):
            raise InvalidRequest("field 'replyTo' must be a seq (an integer of at least 1)")
        if ack_from is not None:
            if not isinstance(ack_from, list) or not all(
                isinstance(a, str) and 0 < len(a) <= 64 and "\x00" not in a for a in ack_from
            ):
                raise InvalidRequest(
                    "field 'ackFrom' must be a list of agent names or ids (1-64 characters)"
                )
            if len(ack_from) > MAX_ACK_FROM:
                raise InvalidRequest(f"field 'ackFrom' may name at most {MAX_ACK_FROM} agents")

    async def plan(
        self,
        actor: Principal,
        room_id: uuid.UUID,
        body: str,
        reply_to: object,
        ack_from: object,
    ) -> Plan | None:
        """The coordination of a send by a member of `room_id`, or None when there is none.
        Raises (storing nothing) for a reply to a seq the room does not have, or an
        acknowledgement asked of an unknown agent, a non-member or the sender."""
        names = mention_names(body) if "@" in body else []
        slug, kind = await self.rooms.info(room_id)
        asked = list(dict.fromkeys(ack_from)) if isinstance(ack_from, list) else []
        if not names and reply_to is None and not asked and kind != "direct":
            return None
        me = actor.agent_id
        reasons: dict[uuid.UUID, set[str]] = {}
        reply_seq = thread_seq = None
        async with self.db.read() as conn:
            mentioned = await store.members_named(conn, room_id, names) if names else {}
            if isinstance(reply_to, int):
                parent = (
                    await store.message_at(conn, room_id, reply_to) if reply_to <= MAX_SEQ else None
                )
                if parent is None:
                    raise InvalidRequest(
                        f"field 'replyTo': room '{slug}' has no message #{reply_to}"
                    )
                reply_seq, thread_seq = reply_to, parent["thread_seq"] or parent["seq"]
                reasons.setdefault(parent["sender_id"], set()).add("reply")
            ack_ids = await self._asked(conn, room_id, slug, me, asked) if asked else []
            if kind == "direct":
                for other in await store.other_members(conn, room_id, me):
                    reasons.setdefault(other, set()).add("direct")
        for agent_id in mentioned.values():
            reasons.setdefault(agent_id, set()).add("mention")
        for agent_id in ack_ids:
            reasons.setdefault(agent_id, set()).add("ack")
        reasons.pop(me, None)  # nothing of one's own lands in one's inbox
        inbox = tuple(
            (agent_id, tuple(r for r in REASON_ORDER if r in why))
            for agent_id, why in reasons.items()
        )
        extras = Extras(
            reply_to=reply_seq,
            thread_seq=thread_seq,
            mentions=tuple(mentioned[n] for n in names if n in mentioned),
            ack_from=tuple(ack_ids),
            inbox=inbox,
        )
        return Plan(extras, [n for n in names if n not in mentioned])

    @staticmethod
    async def _asked(
        conn: AsyncConnection,
        room_id: uuid.UUID,
        slug: str,
        me: uuid.UUID,
        refs: list[str],
    ) -> list[uuid.UUID]:
        """The ids of the agents `refs` names (names or ids), in order; each must be another
        member of the room."""
        ids = [i for i in (as_uuid(r) for r in refs) if i is not None]
        rows = await store.agents_by_ref(conn, refs, ids)
        by_ref = {str(r["id"]): r for r in rows} | {r["name"]: r for r in rows}
        found = []
        for ref in refs:
            row = by_ref.get(ref.lower() if as_uuid(ref) else ref)
            if row is None:
                raise NotFound(f"field 'ackFrom': agent '{clip(ref)}' does not exist")
            if row["id"] == me:
                raise InvalidRequest("field 'ackFrom': you cannot ask yourself to acknowledge")
            found.append(row)
        members = await store.member_ids(conn, room_id, [r["id"] for r in found])
        for row in found:
            if row["id"] not in members:
                raise InvalidRequest(
                    f"field 'ackFrom': agent '{row['name']}' is not a member of room '{slug}'"
                )
        return list(dict.fromkeys(r["id"] for r in found))
