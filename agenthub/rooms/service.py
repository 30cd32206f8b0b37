"""Rooms and membership. Who may see a room: its members, and admins where allowed."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from agenthub.agents import store as agents_store
from agenthub.agents.schemas import AgentPublic, agent_out
from agenthub.audit import store as audit
from agenthub.auth.jwt import Principal
from agenthub.db.coalesce import Coalescer
from agenthub.db.engine import Database, on_commit
from agenthub.db.types import as_uuid
from agenthub.errors import Conflict, Forbidden, NotFound, clip
from agenthub.events import Events
from agenthub.rooms import store
from agenthub.rooms.membership import Memberships
from agenthub.rooms.schemas import RoomPublic, room_out


class RoomService:
    def __init__(self, db: Database, events: Events) -> None:
        self.db = db
        self.events = events
        # Slugs this process has resolved (a room's slug never changes and rooms are never
        # deleted, so an entry stays true); bounded by the number of rooms.
        self._slug_ids: dict[str, uuid.UUID] = {}
        # A room's slug and kind, by id (neither ever changes): for sends that coordinate.
        self._info: dict[uuid.UUID, tuple[str, str]] = {}
        self.memberships = Memberships()
        self._room_reads = Coalescer(self._read_room_ids)

    def _known_id(self, ref: str) -> uuid.UUID | None:
        """The id `ref` names, when that is known without the database: `ref` itself if it is
        spelled as an id (the id wins, as in `room_for`), else a slug resolved before. None
        means "ask `room_for`". The id of a room that does not exist may come back: callers
        check it against the memberships they know, and ask `room_for` otherwise."""
        return as_uuid(ref) or self._slug_ids.get(ref)

    async def member_room_id(
        self, actor: Principal, ref: str, *, cached: bool = True, write_confirms: bool = False
    ) -> uuid.UUID:
        """The id of room `ref` if the actor is a member of it (404 / 403 as `room_for`
        otherwise, admins included). The one membership decision for sending and joining,
        from every edge: without a database round trip for a member this process knows,
        unless `cached` is false (rare calls that should confirm with the database).
        `write_confirms`: the caller's write checks the membership again in its own
        transaction (a send), so a membership known here however long ago will do."""
        known = self._known_id(ref)
        if cached and known is not None:
            memberships = self.memberships
            if (write_confirms and memberships.known(actor.agent_id, known)) or memberships.knows(
                actor.agent_id, known
            ):
                return known
        since = self.memberships.mark()
        room = await self.room_for(actor, ref, admin_ok=False)
        self.memberships.learned(actor.agent_id, [room.id], since)
        return room.id

    def _resolved(self, ref: str, row: Mapping[Any, Any]) -> RoomPublic:
        if row["slug"] == ref and as_uuid(ref) is None:
            self._slug_ids[ref] = row["id"]
        return room_out(row)

    async def room_for(self, actor: Principal, ref: str, *, admin_ok: bool) -> RoomPublic:
        """The room `ref` (an id or a slug; the id wins) if the actor may use it: 404 when it
        does not exist, 403 for a non-member (admins pass where `admin_ok`). HTTP and
        Socket.IO resolve every room ref here (or through `member_room_id`, which agrees)."""
        async with self.db.read() as conn:
            found = await store.get_with_membership(conn, ref, actor.agent_id)
        if found is None:
            raise NotFound(f"room '{clip(ref)}' does not exist")
        row, is_member = found
        if not is_member and not (admin_ok and actor.is_admin and row["kind"] != "direct"):
            # A direct room is its two members' only: admins see it in the audit log alone.
            raise Forbidden(f"you are not a member of room '{row['slug']}'")
        return self._resolved(ref, row)

    async def find(self, ref: str) -> RoomPublic:
        """The room `ref`, whoever asks (404 when it does not exist)."""
        async with self.db.read() as conn:
            found = await store.get_with_membership(conn, ref, uuid.UUID(int=0))
        if found is None:
            raise NotFound(f"room '{clip(ref)}' does not exist")
        return self._resolved(ref, found[0])

    async def info(self, room_id: uuid.UUID) -> tuple[str, str]:
        """The slug and kind of the room `room_id` (which exists): from memory once known."""
        known = self._info.get(room_id)
        if known is None:
            async with self.db.read() as conn:
                row = await store.by_id(conn, room_id)
            if row is None:
                raise NotFound("the room does not exist")
            known = self._info[room_id] = (row["slug"], row["kind"])
        return known

    def cached_info(self, room_id: uuid.UUID) -> tuple[str, str] | None:
        return self._info.get(room_id)

    async def direct_room(self, actor: Principal, other_id: uuid.UUID, names: str) -> uuid.UUID:
        """The id of the direct room of the actor and `other_id` (another agent), created with
        both as members on first use. The pair's `direct_key` makes it exist once, even when
        both write to each other for the first time at the same moment."""
        key = ":".join(sorted((actor.agent_id.hex, other_id.hex)))
        async with self.db.read() as conn:
            found = await store.by_direct_key(conn, key)
        if found is not None:
            return uuid.UUID(str(found["id"]))
        slug = "dm-" + secrets.token_hex(8)  # not guessable, never a UUID, never taken twice
        try:
            async with self.db.write() as conn:
                row = await store.insert(
                    conn, slug, names, actor.agent_id, kind="direct", direct_key=key
                )
                await store.add_member(conn, row["id"], other_id)
                payload = {
                    "roomId": str(row["id"]),
                    "slug": slug,
                    "kind": "direct",
                    "members": [str(actor.agent_id), str(other_id)],
                }
                await audit.record(conn, "room-created", actor.agent_id, payload)
                room = room_out(row)
                on_commit(conn, lambda: self._member_added(actor.agent_id, room))
                on_commit(conn, lambda: self._member_added(other_id, room))
        except sa.exc.IntegrityError:  # the other agent created it meanwhile
            async with self.db.read() as conn:
                found = await store.by_direct_key(conn, key)
            if found is None:
                raise
            return uuid.UUID(str(found["id"]))
        self._info[room.id] = (slug, "direct")
        return room.id

    async def room_ids_of(self, actor: Principal) -> list[uuid.UUID]:
        """The rooms the actor is a member of: read once per socket handshake, so sockets
        opening together share a statement (`Coalescer`) on the driver's connection (a third
        of a handshake's CPU through SQLAlchemy)."""
        return list(await self._room_reads.get(actor.agent_id) or ())

    async def _read_room_ids(self, agent_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
        since = self.memberships.mark()
        async with self.db.driver_read() as raw:
            found = await store.room_ids_for_agents(raw, agent_ids, self.db.is_sqlite)
        for agent_id, room_ids in found.items():
            self.memberships.learned(agent_id, room_ids, since)
        return found

    async def last_seqs(self, room_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        """Each room's last seq now: where live delivery of a room starts on a node
        (realtime/delivery.py), and what a node that missed notifications repairs up to."""
        if not room_ids:
            return {}
        async with self.db.read() as conn:
            return await store.last_seqs(conn, room_ids)

    async def memberships_of(self, agent_ids: list[uuid.UUID]) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """The (agent, room) memberships of these agents, read from the database (the truth a
        node reconciles its sockets' rooms with after it may have missed notifications)."""
        if not agent_ids:
            return set()
        since = self.memberships.mark()
        async with self.db.read() as conn:
            pairs = await store.memberships_of(conn, agent_ids)
        for agent_id in agent_ids:
            self.memberships.learned(agent_id, [r for a, r in pairs if a == agent_id], since)
        return pairs

    async def rooms_by_id(self, room_ids: list[uuid.UUID]) -> list[RoomPublic]:
        async with self.db.read() as conn:
            rows = [
                await store.get_with_membership(conn, str(r), uuid.UUID(int=0)) for r in room_ids
            ]
        return [room_out(found[0]) for found in rows if found is not None]

    def _member_added(self, agent_id: uuid.UUID, room: RoomPublic) -> None:
        """After the commit: known here first, then announced."""
        self.memberships.added(agent_id, room.id)
        self.events.member_added(agent_id, room)

    def _member_removed(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> None:
        """After the commit: refused from now on, then announced."""
        self.memberships.removed(agent_id, room_id)
        self.events.member_removed(agent_id, room_id)

    async def create(self, actor: Principal, slug: str, name: str) -> RoomPublic:
        try:
            async with self.db.write() as conn:
                row = await store.insert(conn, slug, name, actor.agent_id)
                await audit.record(
                    conn, "room-created", actor.agent_id, {"roomId": str(row["id"]), "slug": slug}
                )
                room = room_out(row)
                on_commit(conn, lambda: self._member_added(actor.agent_id, room))
        except sa.exc.IntegrityError:
            raise Conflict(f"room slug '{slug}' is already taken") from None
        self._resolved(slug, row)  # committed: the slug now names this room for good
        return room

    async def list_for(self, actor: Principal, *, all_rooms: bool) -> list[RoomPublic]:
        if all_rooms and not actor.is_admin:
            raise Forbidden("only an admin may list all rooms ('all=true')")
        async with self.db.read() as conn:
            rows = (
                await store.list_all(conn)
                if all_rooms
                else await store.list_for_agent(conn, actor.agent_id)
            )
        return [room_out(r) for r in rows]

    async def members(self, actor: Principal, ref: str) -> list[AgentPublic]:
        room = await self.room_for(actor, ref, admin_ok=True)
        async with self.db.read() as conn:
            return [agent_out(r) for r in await store.members(conn, room.id)]

    async def add_member(
        self, actor: Principal, ref: str, agent_ref: str
    ) -> tuple[AgentPublic, bool]:
        """Add an agent to a room; returns it and whether it is new there."""
        room = await self.room_for(actor, ref, admin_ok=True)
        if room.kind == "direct":
            raise Forbidden(f"room '{room.slug}' is a direct conversation: no one can be added")
        async with self.db.write() as conn:
            agent = await agents_store.get_by_ref(conn, agent_ref)
            if agent is None:
                raise NotFound(f"agent '{clip(agent_ref)}' does not exist")
            agent_id = agent["id"]
            added = await store.add_member(conn, room.id, agent_id)
            if added:
                payload = {"roomId": str(room.id), "agentId": str(agent_id)}
                await audit.record(conn, "member-added", actor.agent_id, payload)
                on_commit(conn, lambda: self._member_added(agent_id, room))
        return agent_out(agent), added

    async def remove_member(self, actor: Principal, ref: str, agent_ref: str) -> None:
        async with self.db.write() as conn:
            found = await store.get_with_membership(conn, ref, actor.agent_id)
            if found is None:
                raise NotFound(f"room '{clip(ref)}' does not exist")
            room, agent = found[0], await agents_store.get_by_ref(conn, agent_ref)
            if agent is None:
                raise NotFound(f"agent '{clip(agent_ref)}' does not exist")
            room_id, agent_id = room["id"], agent["id"]
            if room["kind"] == "direct":
                raise Forbidden(f"room '{room['slug']}' is a direct conversation: it keeps both")
            if not actor.is_admin and actor.agent_id != agent_id:
                raise Forbidden("only an admin or the agent itself may remove a member")
            if not await store.remove_member(conn, room_id, agent_id):
                raise NotFound(f"agent '{agent['name']}' is not a member of room '{room['slug']}'")
            payload = {"roomId": str(room_id), "agentId": str(agent_id)}
            await audit.record(conn, "member-removed", actor.agent_id, payload)
            on_commit(conn, lambda: self._member_removed(agent_id, room_id))
