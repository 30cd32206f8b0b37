"""The real-time hub: owns the `/agents` namespace and what runs for it, and is the `Events`
the services announce their commits to.

Its parts, one module each: `handshake.py` (connect, disconnect), `dispatch.py` (client events
to services, acks), `fanout.py` (this process's sockets, in call order), `manager.py` (which
socket is in which room), `presence.py` (who is here), and with REDIS_URL, for several nodes
acting as one hub: `cluster.py` (the Redis stream between nodes) and `delivery.py` (each room's
messages once and in seq order, repaired from the database when a notification is late or
lost). See docs/adr/0009-*.

Order: messages arrive committed in seq order from this process's one writer (see
messages/writer.py); without Redis they are emitted as they come, so each room's
`message:new` events leave in seq order, and never overtake the `room:added` that put a
socket there. With Redis, other nodes' messages come too, in any order: `delivery.py` puts
each room back in seq order before emitting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, cast

import orjson
import socketio
from starlette.types import ASGIApp, Receive, Scope, Send

from agenthub.auth.jwt import Principal
from agenthub.config import Settings
from agenthub.http.origins import origin_allowed, parse_origins, same_origin
from agenthub.observability.metrics import Metrics
from agenthub.realtime import cluster as bus
from agenthub.realtime.admission import Admission
from agenthub.realtime.cluster import Cluster
from agenthub.realtime.commits import CommitSignals
from agenthub.realtime.delivery import Delivery
from agenthub.realtime.dispatch import Dispatch
from agenthub.realtime.fanout import NAMESPACE, Fanout, agent_room
from agenthub.realtime.handshake import Handshake
from agenthub.realtime.manager import IndexedManager
from agenthub.realtime.presence import PresenceKeeper, SharedPresence
from agenthub.realtime.ratelimit import SlidingWindow
from agenthub.realtime.sessions import SessionLifetimes
from agenthub.realtime.sockets import Running, SocketState
from agenthub.realtime.transport import LeanSocketIOServer
from agenthub.rooms.schemas import RoomPublic
from agenthub.services import Services

log = logging.getLogger("agenthub.realtime")

CLOSE_WAIT_SECONDS = 1.0
# What other nodes may ask this one to emit as is (coordination and claims).
RELAYED_EVENTS = frozenset({"inbox:new", "ack:update", "claim:changed"})
PUBLISH_CHUNK = 32  # messages per stream entry (a commit carries up to 512)


class _OrJson:
    """The `json` interface python-socketio encodes packets with, on orjson."""

    @staticmethod
    def dumps(obj: Any, **_kw: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(text: str | bytes, **_kw: Any) -> Any:
        return orjson.loads(text)


class Hub:
    """Implements `agenthub.events.Events` for the services, and serves the namespace."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._origin_rules = parse_origins(settings.allowed_origins)
        # Sessions opened over websocket are served by realtime/transport.py (ADR 0012).
        self.sio = LeanSocketIOServer(
            async_mode="asgi",
            # The same rules as HTTP (CIDR entries included), not engine.io's exact-match list.
            cors_allowed_origins=self._origin_allowed,
            # No cookies anywhere (tokens travel in the auth payload), so no
            # Access-Control-Allow-Credentials: engine.io would send it on every answer,
            # refusals of foreign origins included. HTTP CORS never sends it either.
            cors_credentials=False,
            max_http_buffer_size=settings.max_body_bytes,
            ping_interval=settings.socketio_ping_interval,
            ping_timeout=settings.socketio_ping_timeout,
            logger=False,
            engineio_logger=False,
            json=_OrJson,
            # A socket's rooms found without walking every room (each socket has one).
            client_manager=IndexedManager(),
        )
        self.admission = Admission(
            settings.socket_auth_deadline_seconds, settings.max_unauthenticated_per_ip
        )
        self.admission.install(self.sio.eio)
        self.running_with: Running | None = None
        self.sockets: dict[str, SocketState] = {}
        # Connections still opening (a socket until its handshake says `connected`, a
        # presence holder until it has joined its rooms) -> rooms their agent left meanwhile:
        # their read of the rooms may predate the removal (`Handshake.on_connect`).
        self.opening: dict[str, set[str]] = {}
        self.fanout = Fanout(self.sio)
        self.presence = self._presence_keeper(None)
        # Several nodes (REDIS_URL): built when the hub starts running.
        self.cluster: Cluster | None = None
        self.delivery: Delivery | None = None
        self.inflight = 0
        # Presence held by something other than a socket (an open MCP session over HTTP), by
        # key: a socket-like state that is never swept. See `hold_presence`.
        self._holders: dict[str, SocketState] = {}
        self.commits = CommitSignals()
        # Other long-lived connections to end when the server stops (MCP streams over HTTP).
        self.drain_hooks: list[Callable[[], Awaitable[None]]] = []
        self._polls: set[asyncio.Task[Any]] = set()
        self.draining = False
        self._shut_down = False
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[None]] = set()
        # Membership changes and connections seen here: see `_reconcile_rooms`.
        self._changes = 0
        handshake, self.dispatch = Handshake(self), Dispatch(self)
        self.sio.on("connect", handshake.on_connect, namespace=NAMESPACE)
        self.sio.on("disconnect", handshake.on_disconnect, namespace=NAMESPACE)
        for event in self.dispatch.handlers:
            self.sio.on(event, self.dispatch.dispatcher(event), namespace=NAMESPACE)

    def _origin_allowed(self, origin: str | None, environ: dict[str, Any]) -> bool:
        # The hub's own origin too: the console (agenthub/console/) opens its socket from a
        # page the hub served, at whatever address the hub was reached by.
        return origin_allowed(self._origin_rules, origin) or same_origin(
            environ.get("asgi.scope") or {}, origin
        )

    def _presence_keeper(self, cluster: Cluster | None) -> PresenceKeeper:
        s = self.settings
        shared = None
        if cluster is not None:
            shared = SharedPresence(cluster.redis, s.redis_key_prefix, s.presence_ttl_seconds)
        return PresenceKeeper(
            self.fanout,
            self.sockets,
            self._heartbeat_seen,
            s.presence_ttl_seconds,
            s.presence_sweep_seconds,
            shared,
            cluster.node if cluster is not None else "",
            (lambda room: cluster.publish(bus.PRESENCE, room)) if cluster is not None else None,
        )

    # ---- lifecycle (owned by the app's lifespan) ----

    @contextlib.asynccontextmanager
    async def running(self, services: Services) -> AsyncIterator[None]:
        """Serve the namespace with `services` (opened by `Services.open`) until left."""
        self.running_with = Running(services, SessionLifetimes(self.sio, NAMESPACE, services.auth))
        s = self.settings
        if s.redis_url:
            self.cluster = Cluster(
                s.redis_url,
                s.redis_key_prefix,
                s.redis_stream_maxlen,
                s.redis_resync_seconds,
                self.metrics,
                self._cluster_entry,
                self._resync,
            )
            self.delivery = Delivery(
                self._deliver, services.messages.committed_after, self._repaired
            )
            self.presence = self._presence_keeper(self.cluster)
            cluster = self.cluster
            services.auth.revocations.announce_with(
                lambda token_id: cluster.publish(bus.REVOKED, str(token_id))
            )
            await self.cluster.start()
        self._tasks = [
            asyncio.create_task(self.presence.run(), name="agenthub-presence"),
            asyncio.create_task(self._refresh_metrics(), name="agenthub-metrics"),
        ]
        try:
            yield
        finally:
            await self._stop()

    def asgi(self, other_app: ASGIApp) -> ASGIApp:
        """Socket.IO under /socket.io/, everything else (and the lifespan) to `other_app`.

        Long-polling GETs are tracked so that `drain` can end them: engine.io parks each one
        for up to ping_interval + ping_timeout, even after its session is gone.

        Websockets go to engine.io without passing through python-socketio's ASGI app, and
        the two dispatchers here return the next layer's coroutine rather than awaiting it:
        a layer that awaits keeps a suspended frame for each open socket's life (ADR 0012)."""
        asgi = socketio.ASGIApp(self.sio, other_asgi_app=other_app, socketio_path="socket.io")
        engine = self.sio.eio

        def by_transport(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
            if scope["type"] == "websocket" and (scope["path"] + "/").startswith("/socket.io/"):
                # (the path as engine.io's ASGIApp matches it, a trailing slash added)
                return cast(Awaitable[None], engine.handle_request(scope, receive, send))
            return cast(Awaitable[None], asgi(scope, receive, send))

        inner = self.admission.guard(by_transport)

        def app(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
            task = asyncio.current_task()
            is_poll = (
                task is not None
                and scope["type"] == "http"
                and scope["method"] == "GET"
                and scope["path"].startswith("/socket.io/")
            )
            if not is_poll:
                return inner(scope, receive, send)
            assert task is not None
            return tracked(task, scope, receive, send)

        async def tracked(
            task: asyncio.Task[Any], scope: Scope, receive: Receive, send: Send
        ) -> None:
            self._polls.add(task)
            try:
                await inner(scope, receive, send)
            finally:
                self._polls.discard(task)

        return app

    async def drain(self, within: float) -> None:
        """Refuse new events, let the ones in flight finish and ack, then close every socket.

        Runs when the server starts shutting down, before the HTTP server closes connections:
        otherwise a send could commit without its ack reaching the client, and long-polling
        sessions would hold the shutdown until their ping timeout."""
        self.draining = True
        deadline = time.monotonic() + within
        # A short poll: in-flight sends finish within milliseconds (their deliveries are
        # queued on the sockets at commit, ahead of the CLOSE packets below).
        while self.inflight and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        # Closing waits until each socket's CLOSE packet is taken: live peers take it within
        # milliseconds, dead ones (a vanished polling client) never do, hence the bound.
        if self.sio.eio.sockets:  # (engine.io fails on an empty set)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT_SECONDS):
                    await self.sio.eio.disconnect()
        for task in list(self._polls):  # engine.io answers a cancelled poll normally
            task.cancel()
        for hook in self.drain_hooks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT_SECONDS):
                    await hook()
        await self._shutdown_sio()

    async def _shutdown_sio(self) -> None:
        if not self._shut_down:  # engine.io fails on a second shutdown
            self._shut_down = True
            await self.sio.shutdown()

    async def _stop(self) -> None:
        for task in [*self._tasks, *self._spawned]:
            task.cancel()
        for task in [*self._tasks, *self._spawned]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.cluster is not None:
            if self.running_with is not None:
                self.running_with.services.auth.revocations.announce_with(None)
            await self.cluster.stop()
        if self.running_with is not None:
            await self.running_with.lifetimes.stop()
        await self._shutdown_sio()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name="agenthub-hub")
        self._spawned.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._spawned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # (a room's delivery start that could not read the database: the next socket
            # entering the room, or the next resync, starts it again)
            log.warning("real-time background step failed: %s", type(task.exception()).__name__)

    # ---- Events (called by services after commit; must not block) ----

    def messages_committed(self, messages: list[dict[str, Any]]) -> None:
        if self.delivery is None:  # one node: this writer's commits are the whole order
            for message in messages:
                self.fanout.emit("message:new", message, message["roomId"])
            self.commits.committed({m["roomId"] for m in messages})
            return
        for message in messages:
            self.delivery.offer(message)
        assert self.cluster is not None
        for i in range(0, len(messages), PUBLISH_CHUNK):  # bounded stream entries
            self.cluster.publish(bus.MESSAGES, messages[i : i + PUBLISH_CHUNK])

    def member_added(self, agent_id: uuid.UUID, room: RoomPublic) -> None:
        data = room.model_dump(mode="json", by_alias=True)
        self._add_here(str(agent_id), data)
        if self.cluster is not None:
            self.cluster.publish(bus.MEMBER_ADDED, {"agentId": str(agent_id), "room": data})

    def member_removed(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> None:
        self._remove_here(str(agent_id), str(room_id))
        if self.cluster is not None:
            self.cluster.publish(
                bus.MEMBER_REMOVED, {"agentId": str(agent_id), "roomId": str(room_id)}
            )

    # Coordination and claims: events for one agent's or one room's sockets, on every node.
    # (Across nodes an `inbox:new` may come before its message's `message:new`, which
    # delivery.py may hold back to restore seq order.)

    def inbox_new(self, agent_id: uuid.UUID, item: dict[str, Any]) -> None:
        self._emit_everywhere("inbox:new", item, agent_room(agent_id))

    def ack_answered(self, room_id: uuid.UUID, ack: dict[str, Any]) -> None:
        self._emit_everywhere("ack:update", ack, str(room_id))

    def claim_changed(self, room_id: uuid.UUID, change: dict[str, Any]) -> None:
        self._emit_everywhere("claim:changed", change, str(room_id))

    def _emit_everywhere(self, event: str, data: Any, room: str) -> None:
        self.fanout.emit(event, data, room)
        if self.cluster is not None:
            self.cluster.publish(bus.EVENT, {"event": event, "data": data, "room": room})

    def _add_here(self, agent_id: str, room: dict[str, Any]) -> None:
        """Put the agent's sockets of this process in the room, then tell them."""
        self._changes += 1
        room_id = room["id"]
        mine, holders = self._sockets_of(agent_id), self._holders_of(agent_id)
        for state in mine:
            self.fanout.enter(state.sid, room_id)
        for state in [*mine, *holders]:
            self.opening.get(state.sid, set()).discard(room_id)
        if mine and self.delivery is not None and self.delivery.open(room_id):
            self._spawn(self._ready([room_id]))
        self.fanout.emit("room:added", room, agent_room(agent_id))
        for holder in holders:
            self._spawn(self._hold(holder, [room_id]))

    def _remove_here(self, agent_id: str, room_id: str) -> None:
        self._changes += 1
        mine = self._sockets_of(agent_id)
        for state in mine:  # at once: nothing more of the room may reach them
            self.fanout.leave(state.sid, room_id)
        self.fanout.emit("room:removed", {"roomId": room_id}, agent_room(agent_id))
        for state in [*mine, *self._holders_of(agent_id)]:
            self.presence.leave(state, room_id)
            left = self.opening.get(state.sid)
            if left is not None:
                left.add(room_id)

    def _holders_of(self, agent_id: str) -> list[SocketState]:
        return [h for h in self._holders.values() if h.agent_id == agent_id]

    def hold_presence(self, key: str, principal: Principal) -> None:
        """Make the agent present in its rooms (and those it is added to) until
        `release_presence(key)`: for a connection that is not a socket, an MCP session over
        HTTP. `key` must not collide with a socket id (prefix it)."""
        # Socket-like, so presence (shared with other nodes too) treats it as a socket; it is
        # not in `sockets`, so the sweep never drops it and no event reaches it.
        holder = SocketState(key, principal, SlidingWindow(1))
        self._holders[key] = holder
        self._spawn(self._hold_rooms(holder))

    async def _hold_rooms(self, holder: SocketState) -> None:
        """The holder present in the rooms its agent is in, read now: as for a socket's
        handshake, a removal while they are read or joined is noted in `opening`, and kept."""
        running = self.running_with
        if running is None:  # (stopped meanwhile)
            return
        self.opening[holder.sid] = left = set[str]()
        try:
            room_ids = await running.services.rooms.room_ids_of(holder.principal)
            await self._hold(holder, [str(r) for r in room_ids], left)
        finally:
            self.opening.pop(holder.sid, None)

    async def _hold(
        self, holder: SocketState, room_ids: list[str], left: set[str] | None = None
    ) -> None:
        for room_id in room_ids:
            # (not released meanwhile, and not removed from the room since it was read)
            if self._holders.get(holder.sid) is holder and room_id not in (left or ()):
                await self.presence.join(holder, room_id)

    def release_presence(self, key: str) -> None:
        holder = self._holders.pop(key, None)
        if holder is not None:
            self.presence.leave_all(holder)

    def _sockets_of(self, agent_id: str) -> list[SocketState]:
        return [s for s in self.sockets.values() if s.agent_id == agent_id]

    # ---- several nodes ----

    def _deliver(self, message: dict[str, Any]) -> None:
        self.fanout.emit("message:new", message, message["roomId"])
        self.commits.committed({message["roomId"]})

    def _repaired(self, reason: str, count: int) -> None:
        self.metrics.cluster_repaired.labels(reason).inc(count)

    async def open_deliveries(self, rooms: list[str]) -> None:
        """A socket of this process entered these rooms: start their delivery lines."""
        self._changes += 1
        if self.delivery is not None:
            fresh = [room for room in rooms if self.delivery.open(room)]
            if fresh:
                await self._ready(fresh)

    async def _ready(self, rooms: list[str]) -> None:
        assert self.delivery is not None
        assert self.running_with is not None
        try:
            seqs = await self.running_with.services.rooms.last_seqs([uuid.UUID(r) for r in rooms])
        except Exception:
            for room in rooms:  # started again by the next socket (or resync) that needs it
                self.delivery.close(room)
            raise
        for room in rooms:
            self.delivery.ready(room, seqs.get(uuid.UUID(room), 0))

    def _cluster_entry(self, kind: str, data: Any) -> None:
        """Another node's announcement, read from the stream."""
        running = self.running_with
        if running is None:
            return
        if kind == bus.MESSAGES and self.delivery is not None:
            for message in data:
                self.delivery.offer(message)
        elif kind == bus.MEMBER_ADDED:
            agent_id, room = data["agentId"], data["room"]
            running.services.rooms.memberships.added(uuid.UUID(agent_id), uuid.UUID(room["id"]))
            self._add_here(agent_id, room)
        elif kind == bus.MEMBER_REMOVED:
            agent_id, room_id = data["agentId"], data["roomId"]
            running.services.rooms.memberships.removed(uuid.UUID(agent_id), uuid.UUID(room_id))
            self._remove_here(agent_id, room_id)
        elif kind == bus.REVOKED:
            running.services.auth.revocations.learn(uuid.UUID(data))
        elif kind == bus.PRESENCE:
            self.presence.dirty(str(data))
        elif kind == bus.EVENT and data.get("event") in RELAYED_EVENTS:
            self.fanout.emit(data["event"], data["data"], str(data["room"]))

    async def _resync(self, reason: str) -> None:
        """Make this node agree with the database after notifications may have been lost:
        each room's delivery up to its last seq, and its sockets' rooms to their memberships."""
        running, delivery = self.running_with, self.delivery
        if running is None or delivery is None:
            return
        for room in delivery.rooms():
            if not self.fanout.occupied(room):
                delivery.close(room)
        # A room whose delivery could not start (the database was away then) starts now.
        unserved = [r for r in self.fanout.occupied_rooms() if _is_room_id(r)]
        fresh = [r for r in unserved if delivery.open(r)]
        if fresh:
            await self._ready(fresh)
        rooms = [r for r in delivery.rooms() if delivery.delivered(r) is not None]
        seqs = await running.services.rooms.last_seqs([uuid.UUID(r) for r in rooms])
        for room_id, last_seq in seqs.items():
            delivery.behind(str(room_id), last_seq)
        await self._reconcile_rooms(running)

    async def _reconcile_rooms(self, running: Running) -> None:
        """Each socket's rooms as the database has them: what a lost notification left wrong.
        Skipped when a membership change or a connection happened while the database was read
        (what was read may be older than what the sockets have); the next round does it."""
        states = list(self.sockets.values())
        agents = sorted({s.principal.agent_id for s in states})
        if not agents:
            return
        since = self._changes
        pairs = await running.services.rooms.memberships_of(agents)
        if self._changes != since:
            return
        truth: dict[str, set[str]] = {}
        for agent, room in pairs:
            truth.setdefault(str(agent), set()).add(str(room))
        missing: dict[str, set[str]] = {}
        for state in states:
            if state.sid not in self.sockets:
                continue
            should = truth.get(state.agent_id, set())
            have = {r for r in self.fanout.rooms_of(state.sid) if _is_room_id(r)}
            for room_id in have - should:
                log.info("a membership removal was missed; applied from the database")
                running.services.rooms.memberships.removed(
                    state.principal.agent_id, uuid.UUID(room_id)
                )
                self._remove_here(state.agent_id, room_id)
            for room_id in should - have:
                missing.setdefault(room_id, set()).add(state.agent_id)
        if missing:
            rooms = await running.services.rooms.rooms_by_id([uuid.UUID(r) for r in missing])
            if self._changes != since:
                return
            for found in rooms:
                data = found.model_dump(mode="json", by_alias=True)
                for agent_id in missing.get(data["id"], ()):
                    log.info("a membership addition was missed; applied from the database")
                    self._add_here(agent_id, data)

    # ---- readiness and metrics ----

    @property
    def cluster_alive(self) -> bool | None:
        """None on one node without Redis; else whether the stream reader is alive."""
        return None if self.cluster is None else self.cluster.alive

    def _heartbeat_seen(self, sid: str) -> bool:
        """Whether the transport's last ping was answered (engine.io clears `last_ping` on a
        pong, and pings every ping_interval): the peer is alive even without events."""
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        sock = self.sio.eio.sockets.get(eio_sid) if eio_sid else None
        return sock is not None and not sock.closed and sock.last_ping is None

    def active_rooms(self) -> int:
        """Rooms with at least one connected socket (the seed's `rooms_active`)."""
        rooms = self.sio.manager.rooms.get(NAMESPACE, {})
        return sum(1 for name, members in rooms.items() if members and _is_room_id(name))

    async def _refresh_metrics(self) -> None:
        while True:
            self.metrics.rooms_active.set(self.active_rooms())
            await asyncio.sleep(self.settings.metrics_refresh_seconds)


def _is_room_id(name: Any) -> bool:
    # Socket.IO also keeps a room per sid and ours per agent ("agent:<id>"); rooms are UUIDs.
    return isinstance(name, str) and len(name) == 36 and name.count("-") == 4
