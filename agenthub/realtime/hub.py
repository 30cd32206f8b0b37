"""The `/agents` namespace: handshake, events, membership changes, presence, ordered delivery.

Handlers only translate: they parse the payload, call the same services as the HTTP routes,
and turn results and `AppError`s into acks. Everything the server emits goes through one
queue drained by one task, in the order it was queued: messages arrive committed in seq order
(one writer per process, see messages/writer.py), so each room's `message:new` events leave in
seq order, and never overtake the `room:added` that put a socket there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import engineio
import orjson
import socketio
from starlette.types import ASGIApp, Receive, Scope, Send

from agenthub.auth.jwt import Principal
from agenthub.config import Settings
from agenthub.errors import (
    AppError,
    InvalidRequest,
    NotFound,
    RateLimited,
    Unavailable,
    clip,
)
from agenthub.http.origins import origin_allowed, parse_origins, same_origin
from agenthub.observability.metrics import Metrics
from agenthub.realtime import claims_search, coordination
from agenthub.realtime.admission import Admission
from agenthub.realtime.commits import CommitSignals
from agenthub.realtime.presence import Presence
from agenthub.realtime.ratelimit import SlidingWindow
from agenthub.realtime.sessions import SessionLifetimes
from agenthub.rooms.schemas import RoomPublic
from agenthub.services import Services

log = logging.getLogger("agenthub.realtime")

NAMESPACE = "/agents"
CLOSE_WAIT_SECONDS = 1.0
Ack = dict[str, Any]
Handler = Callable[["Running", "SocketState", dict[str, Any]], Awaitable[Ack]]


class _OrJson:
    """The `json` interface python-socketio encodes packets with, on orjson."""

    @staticmethod
    def dumps(obj: Any, **_kw: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(text: str | bytes, **_kw: Any) -> Any:
        return orjson.loads(text)


def agent_room(agent_id: uuid.UUID | str) -> str:
    return f"agent:{agent_id}"


def error_ack(exc: AppError) -> Ack:
    return {"ok": False, "error": exc.to_dict()}


@dataclass(eq=False, slots=True)  # one per socket: thousands of idle ones must stay small
class SocketState:
    sid: str
    principal: Principal
    window: SlidingWindow
    last_active: float = field(default_factory=time.monotonic)
    joined: set[str] = field(default_factory=set)  # rooms where this socket is present

    @property
    def agent_id(self) -> str:
        return str(self.principal.agent_id)


@dataclass(frozen=True, slots=True)
class Running:
    """What the hub serves with once the app's lifespan has started it: sockets are accepted
    only then, and every handler receives this."""

    services: Services
    lifetimes: SessionLifetimes


class Hub:
    """Implements `agenthub.events.Events` for the services, and serves the namespace."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._origin_rules = parse_origins(settings.allowed_origins)
        self.sio = socketio.AsyncServer(
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
        )
        self.admission = Admission(
            settings.socket_auth_deadline_seconds, settings.max_unauthenticated_per_ip
        )
        self.admission.install(self.sio.eio)
        self._running: Running | None = None
        self.sockets: dict[str, SocketState] = {}
        self.presence = Presence()
        # Presence held by something other than a socket (an open MCP session over HTTP):
        # key -> (agent id, rooms held). Joined and left by its owner, see `hold_presence`.
        self._holders: dict[str, tuple[str, set[str]]] = {}
        self.commits = CommitSignals()
        # Other long-lived connections to end when the server stops (MCP streams over HTTP).
        self.drain_hooks: list[Callable[[], Awaitable[None]]] = []
        self._inflight = 0
        self._polls: set[asyncio.Task[Any]] = set()
        self.draining = False
        self._shut_down = False
        self._tasks: list[asyncio.Task[None]] = []
        self._handlers: dict[str, Handler] = {
            "message:send": self._message_send,
            "room:join": self._room_join,
            "room:leave": self._room_leave,
            "session:renew": self._session_renew,
            "direct:send": coordination.direct_send,
            "message:ack": coordination.message_ack,
            **claims_search.HANDLERS,
        }
        self.sio.on("connect", self._on_connect, namespace=NAMESPACE)
        self.sio.on("disconnect", self._on_disconnect, namespace=NAMESPACE)
        for event in self._handlers:
            self.sio.on(event, self._dispatcher(event), namespace=NAMESPACE)

    def _origin_allowed(self, origin: str | None, environ: dict[str, Any]) -> bool:
        # The hub's own origin too: the console (agenthub/console/) opens its socket from a
        # page the hub served, at whatever address the hub was reached by.
        return origin_allowed(self._origin_rules, origin) or same_origin(
            environ.get("asgi.scope") or {}, origin
        )

    # ---- lifecycle (owned by the app's lifespan) ----

    @contextlib.asynccontextmanager
    async def running(self, services: Services) -> AsyncIterator[None]:
        """Serve the namespace with `services` (opened by `Services.open`) until left."""
        self._running = Running(services, SessionLifetimes(self.sio, NAMESPACE, services.auth))
        self._tasks = [
            asyncio.create_task(self._prune_presence(), name="agenthub-presence"),
            asyncio.create_task(self._refresh_metrics(), name="agenthub-metrics"),
        ]
        try:
            yield
        finally:
            await self._stop()

    def asgi(self, other_app: ASGIApp) -> ASGIApp:
        """Socket.IO under /socket.io/, everything else (and the lifespan) to `other_app`.

        Long-polling GETs are tracked so that `drain` can end them: engine.io parks each one
        for up to ping_interval + ping_timeout, even after its session is gone."""
        inner = socketio.ASGIApp(self.sio, other_asgi_app=other_app, socketio_path="socket.io")
        inner = self.admission.guard(inner)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            task = asyncio.current_task()
            is_poll = (
                task is not None
                and scope["type"] == "http"
                and scope["method"] == "GET"
                and scope["path"].startswith("/socket.io/")
            )
            if not is_poll:
                await inner(scope, receive, send)
                return
            assert task is not None
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
        for hook in self.drain_hooks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT_SECONDS):
                    await hook()
        # A short poll: in-flight sends finish within milliseconds (their deliveries are
        # queued on the sockets at commit, ahead of the CLOSE packets below).
        while self._inflight and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        # Closing waits until each socket's CLOSE packet is taken: live peers take it within
        # milliseconds, dead ones (a vanished polling client) never do, hence the bound.
        if self.sio.eio.sockets:  # (engine.io fails on an empty set)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT_SECONDS):
                    await self.sio.eio.disconnect()
        for task in list(self._polls):  # engine.io answers a cancelled poll normally
            task.cancel()
        await self._shutdown_sio()

    async def _shutdown_sio(self) -> None:
        if not self._shut_down:  # engine.io fails on a second shutdown
            self._shut_down = True
            await self.sio.shutdown()

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._running is not None:
            await self._running.lifetimes.stop()
        await self._shutdown_sio()

    # ---- Events (called by services after commit; must not block) ----

    def messages_committed(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self._fanout("message:new", message, message["roomId"])
        self.commits.committed({m["roomId"] for m in messages})

    def member_added(self, agent_id: uuid.UUID, room: RoomPublic) -> None:
        data = room.model_dump(mode="json", by_alias=True)
        for state in self._sockets_of(str(agent_id)):
            self.sio.manager.basic_enter_room(state.sid, NAMESPACE, data["id"])
        self._fanout("room:added", data, agent_room(agent_id))
        for key, (holder, rooms) in self._holders.items():
            if holder == str(agent_id) and data["id"] not in rooms:
                rooms.add(data["id"])
                self.presence.add(data["id"], holder, key)
                self._publish_presence(data["id"])

    def member_removed(self, agent_id: uuid.UUID, room_id: uuid.UUID) -> None:
        room = str(room_id)
        mine = self._sockets_of(str(agent_id))
        for state in mine:  # at once: nothing more of the room may reach them
            self.sio.manager.basic_leave_room(state.sid, NAMESPACE, room)
        self._fanout("room:removed", {"roomId": room}, agent_room(agent_id))
        for state in mine:
            self._leave_presence(state, room)
        for key, (holder, rooms) in self._holders.items():
            if holder == str(agent_id) and room in rooms:
                rooms.discard(room)
                self.presence.remove(room, holder, key)
                self._publish_presence(room)

    def inbox_new(self, agent_id: uuid.UUID, item: dict[str, Any]) -> None:
        self._fanout("inbox:new", item, agent_room(agent_id))

    def ack_answered(self, room_id: uuid.UUID, ack: dict[str, Any]) -> None:
        self._fanout("ack:update", ack, str(room_id))

    def claim_changed(self, room_id: uuid.UUID, change: dict[str, Any]) -> None:
        self._fanout("claim:changed", change, str(room_id))

    # ---- delivery ----

    def _fanout(self, event: str, data: Any, room: str) -> None:
        """Emit `event` to every socket in `room` of this process, now, in call order.

        Encodes the packet once and puts it straight on each recipient's engine.io queue
        (what python-socketio does per recipient, minus a task and an await each), so a
        burst of commits reaches every socket in the order the commits were made."""
        # Socket.IO v5 text encoding of an EVENT packet: type, namespace, JSON array.
        encoded = f"{socketio.packet.EVENT}{NAMESPACE}," + orjson.dumps([event, data]).decode()
        frame = engineio.packet.Packet(engineio.packet.MESSAGE, encoded)
        sockets = self.sio.eio.sockets
        for _sid, eio_sid in self.sio.manager.get_participants(NAMESPACE, room):
            sock = sockets.get(eio_sid)
            if sock is not None and not sock.closed:
                sock.queue.put_nowait(frame)

    def _sockets_of(self, agent_id: str) -> list[SocketState]:
        return [s for s in self.sockets.values() if s.agent_id == agent_id]

    # ---- handshake ----

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        running = self._running
        if not self.settings.feature_messaging_enabled or running is None:
            raise socketio.exceptions.ConnectionRefusedError("messaging is disabled")
        if self.draining:
            raise socketio.exceptions.ConnectionRefusedError("unavailable")
        # Any failure here is a refusal; a TypeError escaping would make python-socketio
        # retry the handler with another signature and hide the cause.
        try:
            principal = self._authenticate(running, environ, auth)
        except Exception:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized") from None
        state = SocketState(sid, principal, SlidingWindow(self.settings.rate_limit_socket_per_sec))
        self.sockets[sid] = state
        running.lifetimes.track(sid, principal)
        self.metrics.agents_connected.set(len(self.sockets))
        try:
            await self.sio.enter_room(sid, agent_room(principal.agent_id), namespace=NAMESPACE)
            room_ids = await running.services.rooms.room_ids_of(principal)
            for room_id in room_ids:
                await self.sio.enter_room(sid, str(room_id), namespace=NAMESPACE)
            # Revoked or expired while the rooms were read: its end would have found no socket.
            refused = running.lifetimes.refusal(sid, state.principal)
            if refused is not None:
                raise refused
            rooms = [str(r) for r in room_ids]
            await self.sio.emit(
                "connected",
                {"agentId": state.agent_id, "rooms": rooms},
                to=sid,
                namespace=NAMESPACE,
            )
        except Exception as exc:
            self.sockets.pop(sid, None)
            running.lifetimes.forget(sid)
            self.metrics.agents_connected.set(len(self.sockets))
            reason = exc.code if isinstance(exc, AppError) else "internal"
            if not isinstance(exc, AppError):
                log.error("connect failed: %s", type(exc).__name__)
            raise socketio.exceptions.ConnectionRefusedError(reason) from None
        self.admission.authenticated(environ)

    @staticmethod
    def _authenticate(running: Running, environ: dict[str, Any], auth: Any) -> Principal:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not token:
            query = parse_qs(environ.get("QUERY_STRING", ""))
            token = (query.get("token") or [None])[0]
        if not isinstance(token, str) or not token:
            raise InvalidRequest("no token")
        return running.services.auth.authenticate(token)

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        state = self.sockets.pop(sid, None)
        self.metrics.agents_connected.set(len(self.sockets))
        if self._running is not None:
            self._running.lifetimes.forget(sid)
        if state is not None:
            for room_id in list(state.joined):
                self._leave_presence(state, room_id)

    # ---- events ----

    def _dispatcher(self, event: str) -> Callable[..., Awaitable[Ack | None]]:
        handler = self._handlers[event]
        latency = self.metrics.websocket_latency.labels(event)

        async def dispatch(sid: str, *args: Any) -> Ack | None:
            started = time.perf_counter()
            try:
                return await run(sid, *args)
            finally:
                latency.observe(time.perf_counter() - started)

        async def run(sid: str, *args: Any) -> Ack | None:
            state = self.sockets.get(sid)
            running = self._running
            if state is None or running is None:  # (a socket is only accepted while running)
                return None
            state.last_active = time.monotonic()
            if self.draining:
                return error_ack(Unavailable("the server is shutting down; reconnect shortly"))
            ended = running.lifetimes.refusal(sid, state.principal)
            if ended is not None:
                return error_ack(ended)
            if not state.window.allow():
                self.metrics.rate_limited("socket")
                limit = self.settings.rate_limit_socket_per_sec
                return error_ack(RateLimited(f"more than {limit} events per second", 1))
            payload = args[0] if args else None
            self._inflight += 1
            try:
                if not isinstance(payload, dict):
                    raise InvalidRequest("payload must be an object")
                return await handler(running, state, payload)
            except AppError as exc:
                return error_ack(exc)
            except Exception as exc:
                log.error("%s failed: %s", event, type(exc).__name__)
                return error_ack(AppError())
            finally:
                self._inflight -= 1

        return dispatch

    @staticmethod
    def _room_ref(payload: dict[str, Any]) -> str:
        ref = payload.get("roomId")
        if not isinstance(ref, str) or not ref:
            raise InvalidRequest("field 'roomId' is required (a room id or slug)")
        if len(ref) > 64:
            raise NotFound(f"room '{clip(ref)}' does not exist")
        return ref

    async def _message_send(
        self, running: Running, state: SocketState, payload: dict[str, Any]
    ) -> Ack:
        message, _ = await running.services.messages.send(
            state.principal,
            self._room_ref(payload),
            payload.get("body"),
            payload.get("clientMsgId"),
            reply_to=payload.get("replyTo"),
            ack_from=payload.get("ackFrom"),
        )
        return {"ok": True, "message": message}

    async def _room_join(
        self, running: Running, state: SocketState, payload: dict[str, Any]
    ) -> Ack:
        # Joining is rare and starts presence: confirmed with the database, so that it answers
        # `unavailable` while the database is away rather than from this process's memory.
        room_id = str(
            await running.services.rooms.member_room_id(
                state.principal, self._room_ref(payload), cached=False
            )
        )
        state.joined.add(room_id)
        self.presence.add(room_id, state.agent_id, state.sid)
        self._publish_presence(room_id)
        return {"ok": True, "present": self.presence.present(room_id)}

    async def _room_leave(
        self, running: Running, state: SocketState, payload: dict[str, Any]
    ) -> Ack:
        room = await running.services.rooms.find(self._room_ref(payload))
        self._leave_presence(state, str(room.id))
        return {"ok": True}

    async def _session_renew(
        self, running: Running, state: SocketState, payload: dict[str, Any]
    ) -> Ack:
        lifetimes = running.lifetimes
        state.principal = lifetimes.renew(state.sid, state.principal, payload)
        return {"ok": True, "expiresAt": lifetimes.expires_at(state.principal)}

    # ---- presence ----

    def hold_presence(self, key: str, agent_id: uuid.UUID, room_ids: list[uuid.UUID]) -> None:
        """Make `agent_id` present in its rooms (and those it is added to) until
        `release_presence(key)`: for a connection that is not a socket, an MCP session over
        HTTP. `key` must not collide with a socket id (prefix it)."""
        rooms = {str(r) for r in room_ids}
        self._holders[key] = (str(agent_id), rooms)
        for room_id in rooms:
            self.presence.add(room_id, str(agent_id), key)
            self._publish_presence(room_id)

    def release_presence(self, key: str) -> None:
        held = self._holders.pop(key, None)
        if held is not None:
            agent_id, rooms = held
            for room_id in rooms:
                self.presence.remove(room_id, agent_id, key)
                self._publish_presence(room_id)

    def _leave_presence(self, state: SocketState, room_id: str) -> None:
        if room_id in state.joined:
            state.joined.discard(room_id)
            self.presence.remove(room_id, state.agent_id, state.sid)
            self._publish_presence(room_id)

    def _publish_presence(self, room_id: str) -> None:
        present = self.presence.changed(room_id)
        if present is not None:
            self._fanout("presence:update", {"roomId": room_id, "present": present}, room_id)

    def _heartbeat_seen(self, sid: str) -> bool:
        """Whether the transport's last ping was answered (engine.io clears `last_ping` on a
        pong, and pings every ping_interval): the peer is alive even without events."""
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        sock = self.sio.eio.sockets.get(eio_sid) if eio_sid else None
        return sock is not None and not sock.closed and sock.last_ping is None

    async def _prune_presence(self) -> None:
        ttl = self.settings.presence_ttl_seconds
        while True:
            await asyncio.sleep(self.settings.presence_sweep_seconds)
            now = time.monotonic()
            for state in list(self.sockets.values()):
                if not state.joined:
                    continue
                if self._heartbeat_seen(state.sid):
                    state.last_active = now
                elif now - state.last_active > ttl:
                    for room_id in list(state.joined):
                        self._leave_presence(state, room_id)

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
