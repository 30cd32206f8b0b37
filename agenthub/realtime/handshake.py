"""The `/agents` handshake: authenticate, put the socket in its agent's room and its rooms,
tell it `connected`; and what a disconnect undoes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import socketio

from agenthub.auth.jwt import Principal
from agenthub.errors import AppError, InvalidRequest
from agenthub.realtime.fanout import agent_room
from agenthub.realtime.ratelimit import SlidingWindow
from agenthub.realtime.sockets import Running, SocketState

if TYPE_CHECKING:
    from agenthub.realtime.hub import Hub

log = logging.getLogger("agenthub.realtime")


class Handshake:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        hub = self.hub
        running = hub.running_with
        if not hub.settings.feature_messaging_enabled or running is None:
            raise socketio.exceptions.ConnectionRefusedError("messaging is disabled")
        if hub.draining:
            raise socketio.exceptions.ConnectionRefusedError("unavailable")
        # Any failure here is a refusal; a TypeError escaping would make python-socketio
        # retry the handler with another signature and hide the cause.
        try:
            principal = self.authenticate(running, environ, auth)
        except Exception:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized") from None
        window = SlidingWindow(hub.settings.rate_limit_socket_per_sec)
        state = SocketState(sid, principal, window)
        hub.sockets[sid] = state
        running.lifetimes.track(sid, principal)
        hub.metrics.agents_connected.set(len(hub.sockets))
        hub.opening[sid] = left = set[str]()
        try:
            hub.fanout.enter(sid, agent_room(principal.agent_id))
            room_ids = await running.services.rooms.room_ids_of(principal)
            # A removal that committed while the rooms were read may be missing from what was
            # read: the hub noted it here (`_remove_here`), and the socket stays out.
            rooms = [str(r) for r in room_ids if str(r) not in left]
            for room in rooms:
                hub.fanout.enter(sid, room)
            # With several nodes: where each room's live delivery starts on this node, before
            # `connected` (what came before, the client reads with afterSeq after it).
            await hub.open_deliveries(rooms)
            # Revoked or expired while the rooms were read: its end would have found no socket.
            refused = running.lifetimes.refusal(sid, state.principal)
            if refused is not None:
                raise refused
            # Straight onto the socket, like every hub event (python-socketio's emit would
            # spawn a task and wait for it).
            rooms = [room for room in rooms if room not in left]  # (left since it entered)
            hub.fanout.emit("connected", {"agentId": state.agent_id, "rooms": rooms}, sid)
        except Exception as exc:
            hub.sockets.pop(sid, None)
            running.lifetimes.forget(sid)
            hub.metrics.agents_connected.set(len(hub.sockets))
            reason = exc.code if isinstance(exc, AppError) else "internal"
            if not isinstance(exc, AppError):
                log.error("connect failed: %s", type(exc).__name__)
            raise socketio.exceptions.ConnectionRefusedError(reason) from None
        finally:
            hub.opening.pop(sid, None)
        hub.admission.authenticated(environ)

    @staticmethod
    def authenticate(running: Running, environ: dict[str, Any], auth: Any) -> Principal:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not token:
            query = parse_qs(environ.get("QUERY_STRING", ""))
            token = (query.get("token") or [None])[0]
        if not isinstance(token, str) or not token:
            raise InvalidRequest("no token")
        return running.services.auth.authenticate(token)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        hub = self.hub
        state = hub.sockets.pop(sid, None)
        hub.metrics.agents_connected.set(len(hub.sockets))
        if hub.running_with is not None:
            hub.running_with.lifetimes.forget(sid)
        if state is not None:
            hub.presence.leave_all(state)
