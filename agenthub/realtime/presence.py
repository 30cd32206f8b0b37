"""Who is present in which room: agents with a live socket that sent `room:join`.

`Presence` is this process's own view, in memory, like the seed's: the whole truth on one node
without Redis. With REDIS_URL (several nodes), `SharedPresence` holds every node's view and
the local one serves as this node's record of its own sockets (and the answer while Redis is
away). `changed()` tells the caller which rooms' sets changed, so `presence:update` goes out
only when a set really changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from agenthub.realtime.fanout import Fanout
    from agenthub.realtime.sockets import SocketState

log = logging.getLogger("agenthub.realtime")


class Presence:
    def __init__(self) -> None:
        # room id -> agent id -> sids that joined
        self._rooms: dict[str, dict[str, set[str]]] = {}
        self._published: dict[str, tuple[str, ...]] = {}

    def add(self, room_id: str, agent_id: str, sid: str) -> None:
        self._rooms.setdefault(room_id, {}).setdefault(agent_id, set()).add(sid)

    def remove(self, room_id: str, agent_id: str, sid: str) -> None:
        agents = self._rooms.get(room_id)
        if agents is None:
            return
        sids = agents.get(agent_id)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del agents[agent_id]
        if not agents:
            del self._rooms[room_id]

    def present(self, room_id: str) -> list[str]:
        return sorted(self._rooms.get(room_id, {}))

    def entries(self) -> list[tuple[str, str, str]]:
        """Every (room, agent, sid) this process holds."""
        return [
            (room_id, agent_id, sid)
            for room_id, agents in self._rooms.items()
            for agent_id, sids in agents.items()
            for sid in sids
        ]

    def published_rooms(self) -> list[str]:
        """Rooms whose last published set was not empty."""
        return list(self._published)

    def forget_published(self, room_id: str) -> None:
        self._published.pop(room_id, None)

    def changed(self, room_id: str, present: list[str] | None = None) -> list[str] | None:
        """The room's present set (this process's, or `present` when given) if it differs from
        the last one published here (and record it)."""
        now = tuple(self.present(room_id) if present is None else present)
        if self._published.get(room_id, ()) == now:
            return None
        if now:
            self._published[room_id] = now
        else:
            self._published.pop(room_id, None)
        return list(now)


class SharedPresence:
    """Presence of every node, in Redis: one sorted set per room, a member per joined socket
    (`agent node sid`) scored with the time it expires (now + PRESENCE_TTL_SECONDS).

    Each node rewrites its live sockets' deadlines at every presence sweep; a node that dies
    (even by `kill -9`) stops doing so and its sockets drop out of every room within the TTL,
    however the node ended. Deadlines are wall-clock times, so the nodes' clocks must agree to
    well within the TTL (NTP). Redis 7.0 has no per-field TTL, hence the scores; the key itself
    expires a while after its last write, so abandoned rooms leave nothing behind.

    Every call raises `RedisError`/`OSError` when Redis is away: the hub then answers from
    this node's own view (`Presence`)."""

    def __init__(self, redis: Any, prefix: str, ttl: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl

    def _key(self, room_id: str) -> str:
        return f"{self._prefix}:presence:{room_id}"

    @staticmethod
    def _member(agent_id: str, node: str, sid: str) -> str:
        return f"{agent_id} {node} {sid}"

    async def join(self, room_id: str, agent_id: str, node: str, sid: str) -> list[str]:
        """Record the socket as present, and return the room's present agents."""
        key, now = self._key(room_id), time.time()
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(key, {self._member(agent_id, node, sid): now + self._ttl})
        pipe.expire(key, int(self._ttl * 4) + 1)
        pipe.zrangebyscore(key, now, "+inf")
        *_, members = await pipe.execute()
        return _agents(members)

    async def leave(self, room_id: str, agent_id: str, node: str, sid: str) -> None:
        await self._redis.zrem(self._key(room_id), self._member(agent_id, node, sid))

    async def refresh(self, entries: list[tuple[str, str, str, str]]) -> None:
        """Push the deadlines of these (room, agent, node, sid) sockets forward."""
        if not entries:
            return
        deadline = time.time() + self._ttl
        pipe = self._redis.pipeline(transaction=False)
        for room_id, agent_id, node, sid in entries:
            key = self._key(room_id)
            pipe.zadd(key, {self._member(agent_id, node, sid): deadline})
            pipe.expire(key, int(self._ttl * 4) + 1)
        await pipe.execute()

    async def present(self, room_ids: list[str]) -> dict[str, list[str]]:
        """Each room's present agents now (expired sockets removed on the way)."""
        if not room_ids:
            return {}
        now = time.time()
        pipe = self._redis.pipeline(transaction=False)
        for room_id in room_ids:
            key = self._key(room_id)
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zrangebyscore(key, now, "+inf")
        answers = await pipe.execute()
        return {room_id: _agents(answers[2 * i + 1]) for i, room_id in enumerate(room_ids)}


def _agents(members: list[bytes]) -> list[str]:
    return sorted({m.decode().split(" ", 1)[0] for m in members})


class PresenceKeeper:
    """The hub's presence: who joined which room, `presence:update` when a set changes, and
    the sweep that drops silent sockets (no event, no answered heartbeat, for the TTL).

    Without `shared` it is this process's presence, as it always was: every change is
    published at once. With `shared` (REDIS_URL), each change is written to Redis and
    announced to the other nodes (`announce(room)`); a room whose set may have changed is
    marked dirty and one task reads its set from Redis and publishes it, one room at a time,
    so two changes cannot publish their sets in the wrong order. The sweep also pushes this
    node's live sockets' deadlines forward in Redis and re-reads the rooms this node has
    published as non-empty: another node's sockets expire there when that node dies."""

    def __init__(
        self,
        fanout: Fanout,
        sockets: dict[str, SocketState],
        heartbeat_seen: Callable[[str], bool],
        ttl: float,
        sweep: float,
        shared: SharedPresence | None = None,
        node: str = "",
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self.local = Presence()
        self._fanout = fanout
        self._sockets = sockets
        self._heartbeat_seen = heartbeat_seen
        self._ttl = ttl
        self._sweep = sweep
        self._shared = shared
        self._node = node
        self._announce = announce
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._failing = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def join(self, state: SocketState, room_id: str) -> list[str]:
        """The socket joins the room's presence; returns who is present now."""
        if state.joined is None:
            state.joined = set()
        state.joined.add(room_id)
        self.local.add(room_id, state.agent_id, state.sid)
        if self._shared is None:
            self._publish(room_id, None)
            return self.local.present(room_id)
        try:
            present = await self._shared.join(room_id, state.agent_id, self._node, state.sid)
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
            present = self.local.present(room_id)
        self.touch(room_id)
        return present

    async def present(self, room_id: str) -> list[str]:
        """Who is present in the room now, on every node (this node's view while Redis is
        away)."""
        if self._shared is None:
            return self.local.present(room_id)
        try:
            return (await self._shared.present([room_id])).get(room_id, [])
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
            return self.local.present(room_id)

    def leave(self, state: SocketState, room_id: str) -> None:
        if state.joined is None or room_id not in state.joined:
            return
        state.joined.discard(room_id)
        self.local.remove(room_id, state.agent_id, state.sid)
        if self._shared is None:
            self._publish(room_id, None)
            return
        self._spawn(self._shared_leave(room_id, state.agent_id, state.sid))

    def leave_all(self, state: SocketState) -> None:
        for room_id in list(state.joined or ()):
            self.leave(state, room_id)

    def touch(self, room_id: str) -> None:
        """The room's set may have changed (here or on another node): publish it again."""
        if self._shared is None:
            self._publish(room_id, None)
            return
        if self._announce is not None:
            self._announce(room_id)
        self.dirty(room_id)

    def dirty(self, room_id: str) -> None:
        self._dirty.add(room_id)
        self._wake.set()

    async def _shared_leave(self, room_id: str, agent_id: str, sid: str) -> None:
        assert self._shared is not None
        try:
            await self._shared.leave(room_id, agent_id, self._node, sid)
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
        self.touch(room_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro, name="agenthub-presence-write")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _publish(self, room_id: str, present: list[str] | None) -> None:
        changed = self.local.changed(room_id, present)
        if changed is not None:
            self._fanout.emit("presence:update", {"roomId": room_id, "present": changed}, room_id)

    def _redis_failed(self, exc: BaseException) -> None:
        if not self._failing:
            log.warning(
                "presence in Redis unavailable (%s): this node's view only", type(exc).__name__
            )
        self._failing = True

    async def run(self) -> None:
        """Until cancelled: the sweep, and (with Redis) the publisher of dirty rooms."""
        tasks = [asyncio.create_task(self._prune(), name="agenthub-presence")]
        if self._shared is not None:
            tasks.append(asyncio.create_task(self._publish_dirty(), name="agenthub-presence-pub"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in [*tasks, *self._tasks]:
                task.cancel()
            for task in [*tasks, *self._tasks]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _publish_dirty(self) -> None:
        assert self._shared is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            rooms = [r for r in self._dirty if self._fanout.occupied(r)]
            self._dirty.clear()
            try:
                sets = await self._shared.present(rooms)
            except (RedisError, OSError) as exc:
                self._redis_failed(exc)
                sets = {r: self.local.present(r) for r in rooms}
            else:
                if self._failing:
                    log.warning("presence in Redis available again")
                self._failing = False
            for room_id, present in sets.items():
                self._publish(room_id, present)

    async def _prune(self) -> None:
        while True:
            await asyncio.sleep(self._sweep)
            now = time.monotonic()
            for state in list(self._sockets.values()):
                if not state.joined:
                    continue
                if self._heartbeat_seen(state.sid):
                    state.last_active = now
                elif now - state.last_active > self._ttl:
                    self.leave_all(state)
            if self._shared is not None:
                await self._refresh_shared()

    async def _refresh_shared(self) -> None:
        assert self._shared is not None
        live = [(room, agent, self._node, sid) for room, agent, sid in self.local.entries()]
        try:
            await self._shared.refresh(live)
        except (RedisError, OSError) as exc:
            self._redis_failed(exc)
            return
        # Sets published here as non-empty may have lost another node's sockets by expiry.
        for room_id in self.local.published_rooms():
            if self._fanout.occupied(room_id):
                self.dirty(room_id)
            else:
                self.local.forget_published(room_id)
