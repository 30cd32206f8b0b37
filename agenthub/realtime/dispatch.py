"""Client events on `/agents`: each handler parses the payload, calls the same service as the
HTTP route, and turns the result or an `AppError` into an ack. Around every handler, in this
order: the socket must be known, the server not draining, the session alive, and the socket
within its rate limit."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from agenthub.errors import AppError, InvalidRequest, NotFound, RateLimited, Unavailable, clip
from agenthub.realtime import claims_search, coordination
from agenthub.realtime.sockets import Ack, Running, SocketState, error_ack

if TYPE_CHECKING:
    from agenthub.realtime.hub import Hub

log = logging.getLogger("agenthub.realtime")

Handler = Callable[[Running, SocketState, dict[str, Any]], Awaitable[Ack]]


class Dispatch:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.handlers: dict[str, Handler] = {
            "message:send": self._message_send,
            "room:join": self._room_join,
            "room:leave": self._room_leave,
            "session:renew": self._session_renew,
            "direct:send": coordination.direct_send,
            "message:ack": coordination.message_ack,
            **claims_search.HANDLERS,
        }

    def dispatcher(self, event: str) -> Callable[..., Awaitable[Ack | None]]:
        hub = self.hub
        handler = self.handlers[event]
        latency = hub.metrics.websocket_latency.labels(event)

        async def dispatch(sid: str, *args: Any) -> Ack | None:
            started = time.perf_counter()
            try:
                return await run(sid, *args)
            finally:
                latency.observe(time.perf_counter() - started)

        async def run(sid: str, *args: Any) -> Ack | None:
            state = hub.sockets.get(sid)
            running = hub.running_with
            if state is None or running is None:  # (a socket is only accepted while running)
                return None
            state.last_active = time.monotonic()
            if hub.draining:
                return error_ack(Unavailable("the server is shutting down; reconnect shortly"))
            ended = running.lifetimes.refusal(sid, state.principal)
            if ended is not None:
                return error_ack(ended)
            if not state.window.allow():
                hub.metrics.rate_limited("socket")
                limit = hub.settings.rate_limit_socket_per_sec
                return error_ack(RateLimited(f"more than {limit} events per second", 1))
            payload = args[0] if args else None
            hub.inflight += 1
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
                hub.inflight -= 1

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
        present = await self.hub.presence.join(state, room_id)
        return {"ok": True, "present": present}

    async def _room_leave(
        self, running: Running, state: SocketState, payload: dict[str, Any]
    ) -> Ack:
        room = await running.services.rooms.find(self._room_ref(payload))
        self.hub.presence.leave(state, str(room.id))
        return {"ok": True}

    async def _session_renew(
        self, running: Running, state: SocketState, payload: dict[str, Any]
    ) -> Ack:
        lifetimes = running.lifetimes
        state.principal = lifetimes.renew(state.sid, state.principal, payload)
        return {"ok": True, "expiresAt": lifetimes.expires_at(state.principal)}
