"""Claims: an agent takes a named resource of a room (a file path, a task id) for a while,
exclusively or shared, so the others know to leave it alone.

Rules: only members claim, renew and release; members and admins list. An exclusive claim
excludes every other holder, a shared one only exclusive holders; the holder's own claim is
updated in place (a second `claim` renews it and may change its mode). A claim counts while it
has not expired, by time comparison in every query: correctness never waits for a sweeper.
Expired rows are deleted lazily (by the next claim on the same resource) or by `sweep`, which
`Services.open` runs every `SWEEP_SECONDS`; whoever deletes a row audits and announces its
expiry, so the room's members see `claim:changed` with `"action": "expired"` once. Every
change is audited in its transaction and announced to the room after commit.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from agenthub.audit import store as audit
from agenthub.auth.jwt import Principal
from agenthub.claims import store
from agenthub.claims.schemas import (
    MAX_RESOURCE_CHARS,
    TTL_MAX_S,
    TTL_MIN_S,
    ClaimPublic,
    claim_out,
    claim_wire,
)
from agenthub.db.engine import Database, on_commit
from agenthub.db.types import utcnow
from agenthub.errors import Conflict, InvalidRequest, NotFound, clip
from agenthub.events import Events
from agenthub.rooms.service import RoomService
from agenthub.wire import iso_z

log = logging.getLogger("agenthub.claims")

SWEEP_SECONDS = 2.0
MAX_HELD_PER_ROOM = 100  # live claims one agent may hold in one room


def check_resource(resource: object) -> str:
    if not isinstance(resource, str) or not resource:
        raise InvalidRequest("field 'resource' must be a non-empty string")
    if len(resource) > MAX_RESOURCE_CHARS:
        raise InvalidRequest(f"field 'resource' must be at most {MAX_RESOURCE_CHARS} characters")
    if any(unicodedata.category(c) in {"Cc", "Cs"} for c in resource):
        raise InvalidRequest("field 'resource' must not contain control characters")
    return resource


def check_ttl(ttl: object) -> int:
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not TTL_MIN_S <= ttl <= TTL_MAX_S:
        raise InvalidRequest(
            f"field 'ttlSeconds' must be an integer from {TTL_MIN_S} to {TTL_MAX_S}"
        )
    return ttl


def _audit_payload(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "roomId": str(row["room_id"]),
        "resource": row["resource"],
        "holderId": str(row["agent_id"]),
        "exclusive": bool(row["exclusive"]),
        "expiresAt": iso_z(row["expires_at"]),
    }


class ClaimService:
    def __init__(self, db: Database, rooms: RoomService, events: Events) -> None:
        self.db = db
        self.rooms = rooms
        self.events = events

    def _announce(self, action: str, rows: Sequence[Mapping[Any, Any]]) -> None:
        for row in rows:
            self.events.claim_changed(
                row["room_id"],
                {"roomId": str(row["room_id"]), "action": action, "claim": claim_wire(row)},
            )

    async def _expire(self, conn: Any, rows: list[dict[str, Any]]) -> None:
        """Audit expired claims just deleted in `conn`'s transaction; announce after commit."""
        for row in rows:
            await audit.record(conn, "claim-expired", None, _audit_payload(row))
        if rows:
            on_commit(conn, lambda: self._announce("expired", rows))

    async def claim(
        self, actor: Principal, room_ref: str, resource: object, ttl: object, exclusive: object
    ) -> tuple[ClaimPublic, bool]:
        """Take (or renew, when already held) the actor's claim; returns it and whether it is
        new. 409 naming the holder and the expiry when another agent's claim conflicts."""
        resource = check_resource(resource)
        ttl = check_ttl(ttl)
        if not isinstance(exclusive, bool):
            raise InvalidRequest("field 'exclusive' must be true or false")
        room_id = await self.rooms.member_room_id(actor, room_ref)
        me = actor.agent_id
        async with self.db.write() as conn:
            await store.lock(conn, room_id, resource)
            now = utcnow()
            await self._expire(
                conn, await store.delete_expired(conn, now, room_id=room_id, resource=resource)
            )
            holders = await store.live(conn, room_id, now, resource)
            others = [h for h in holders if h["agent_id"] != me]
            blocking = [h for h in others if exclusive or h["exclusive"]]
            if blocking:
                raise Conflict(self._refusal(room_ref, resource, blocking))
            mine = any(h["agent_id"] == me for h in holders)
            if not mine and await store.count_held(conn, room_id, me, now) >= MAX_HELD_PER_ROOM:
                raise Conflict(
                    f"you already hold {MAX_HELD_PER_ROOM} claims in room '{clip(room_ref)}'; "
                    "release some first"
                )
            expires = now + timedelta(seconds=ttl)
            created = await store.upsert(
                conn, room_id, resource, me, exclusive=exclusive, now=now, expires_at=expires
            )
            row = await store.held(conn, room_id, resource, me)
            assert row is not None
            await audit.record(
                conn, "claim-acquired" if created else "claim-renewed", me, _audit_payload(row)
            )
            action = "claimed" if created else "renewed"
            on_commit(conn, lambda: self._announce(action, [row]))
        return claim_out(row), created

    @staticmethod
    def _refusal(room_ref: str, resource: str, blocking: list[Any]) -> str:
        first = blocking[0]
        mode = "exclusively" if first["exclusive"] else "(shared)"
        others = f" and {len(blocking) - 1} other agent(s)" if len(blocking) > 1 else ""
        return (
            f"resource '{clip(resource)}' in room '{clip(room_ref)}' is claimed {mode} by "
            f"{first['agent_name']}{others} until {iso_z(first['expires_at'])}"
        )

    async def renew(
        self, actor: Principal, room_ref: str, resource: object, ttl: object
    ) -> ClaimPublic:
        """Move the actor's live claim's expiry to now + ttl; 404 when it holds none (an
        expired claim is gone: claim again)."""
        resource = check_resource(resource)
        ttl = check_ttl(ttl)
        room_id = await self.rooms.member_room_id(actor, room_ref)
        async with self.db.write() as conn:
            await store.lock(conn, room_id, resource)
            now = utcnow()
            if not await store.extend(
                conn, room_id, resource, actor.agent_id, now, now + timedelta(seconds=ttl)
            ):
                raise NotFound(self._not_held(room_ref, resource))
            row = await store.held(conn, room_id, resource, actor.agent_id)
            assert row is not None
            await audit.record(conn, "claim-renewed", actor.agent_id, _audit_payload(row))
            on_commit(conn, lambda: self._announce("renewed", [row]))
        return claim_out(row)

    async def release(self, actor: Principal, room_ref: str, resource: object) -> None:
        """Give the actor's live claim up; 404 when it holds none."""
        resource = check_resource(resource)
        room_id = await self.rooms.member_room_id(actor, room_ref)
        async with self.db.write() as conn:
            await store.lock(conn, room_id, resource)
            row = await store.held(conn, room_id, resource, actor.agent_id)
            if row is None or row["expires_at"] <= utcnow():
                raise NotFound(self._not_held(room_ref, resource))
            await store.delete(conn, room_id, resource, actor.agent_id)
            await audit.record(conn, "claim-released", actor.agent_id, _audit_payload(row))
            on_commit(conn, lambda: self._announce("released", [row]))

    @staticmethod
    def _not_held(room_ref: str, resource: str) -> str:
        return f"you hold no claim on '{clip(resource)}' in room '{clip(room_ref)}'"

    async def list(
        self, actor: Principal, room_ref: str, resource: object = None
    ) -> list[ClaimPublic]:
        """The room's live claims (members and admins), by resource then age."""
        if resource is not None:
            resource = check_resource(resource)
        room = await self.rooms.room_for(actor, room_ref, admin_ok=True)
        async with self.db.read() as conn:
            rows = await store.live(conn, room.id, utcnow(), resource)
        return [claim_out(r) for r in rows]

    async def sweep(self) -> int:
        """Delete, audit and announce expired claims; returns how many. A read first, so an
        idle hub takes no write lock."""
        now = utcnow()
        async with self.db.read() as conn:
            if not await store.any_expired(conn, now):
                return 0
        async with self.db.write() as conn:
            rows = await store.delete_expired(conn, now)
            await self._expire(conn, rows)
        return len(rows)

    async def run(self, every: float = SWEEP_SECONDS) -> None:
        """Sweep until cancelled; a failed sweep (the database away) is retried next time."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("claims sweep failed: %s", type(exc).__name__)
