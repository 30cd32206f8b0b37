"""Engine.IO sessions that have not authenticated yet: a deadline each, a cap per client address.

An Engine.IO session is opened before any credential is seen (the token comes with the
Socket.IO CONNECT to `/agents`), costs memory, and is kept alive by answering pings. Without
bounds one address could hold thousands of them. So each session is *pending* from its
handshake until it connects to `/agents` with a valid token or closes, and:

- a pending session is closed once `SOCKET_AUTH_DEADLINE_SECONDS` have passed, pings or not;
- an address holds at most `MAX_UNAUTHENTICATED_PER_IP` pending sessions: further handshakes
  are refused with a 429 (a polling GET, or a websocket upgrade through the ASGI denial
  response) until some authenticate or close.

Authenticated sessions are not counted, and handshakes are not charged to the REST per-minute
budget: a machine running many agents must be able to reconnect them all at once after a
restart. The address is the ASGI scope's client, which uvicorn's proxy-header handling sets.

A handshake takes its slot before engine.io runs (so a burst cannot overshoot the cap) and
leaves its `Ticket` in the ASGI scope, which engine.io hands on as `environ["asgi.scope"]`:
that is how the session's connect and disconnect events, and the `/agents` handshake, find it.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from agenthub.errors import RateLimited
from agenthub.http.errors import send_error

STATE_KEY = "admission"  # in scope["state"]: the handshake's Ticket


@dataclass(eq=False, slots=True)
class Ticket:
    """One pending session's slot in its address's count."""

    address: str
    sid: str | None = None  # the Engine.IO session, once engine.io has made it
    timer: asyncio.TimerHandle | None = None  # closes the session at its deadline
    released: bool = False


class Admission:
    def __init__(self, deadline_seconds: float, per_address: int, path: str = "/socket.io/"):
        self.deadline_seconds = deadline_seconds
        self.per_address = per_address
        self.path = path
        self.counts: dict[str, int] = {}  # address -> pending sessions (and handshakes)
        self.pending: dict[str, Ticket] = {}  # Engine.IO sid -> ticket
        self._closing: set[asyncio.Task[None]] = set()

    # ---- the handshake (ASGI, in front of engine.io) ----

    def guard(self, app: ASGIApp) -> ASGIApp:
        """`app` behind the per-address cap on Engine.IO handshakes."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if not self._is_handshake(scope):
                await app(scope, receive, send)
                return
            client = scope.get("client")
            address = str(client[0]) if client else "unknown"
            if self.counts.get(address, 0) >= self.per_address:
                await self._refuse(scope, receive, send)
                return
            ticket = Ticket(address)
            self.counts[address] = self.counts.get(address, 0) + 1
            scope.setdefault("state", {})[STATE_KEY] = ticket
            try:
                await app(scope, receive, send)
            finally:
                # No session was made of it (a bad request), or it was a websocket's, which
                # ends with its connection (engine.io reports that too; this is the backstop).
                if ticket.sid is None or scope["type"] == "websocket":
                    self._forget(ticket)

        return guarded

    def _is_handshake(self, scope: Scope) -> bool:
        """A request that opens an Engine.IO session: no `sid`, read as engine.io reads it."""
        if scope["type"] == "http":
            if scope["method"] != "GET":
                return False
        elif scope["type"] != "websocket":
            return False
        if not str(scope["path"]).startswith(self.path):
            return False
        try:
            query = scope.get("query_string", b"").decode()
        except UnicodeDecodeError:
            query = ""  # engine.io ignores an undecodable query: no sid, a handshake
        return "sid" not in parse_qs(query)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        retry = max(1, math.ceil(self.deadline_seconds))
        error = RateLimited(
            f"more than {self.per_address} Socket.IO connections from this address have not "
            "authenticated yet; connect to /agents with a valid token, or retry when some have",
            retry,
        )
        headers = [(b"retry-after", str(retry).encode())]
        if scope["type"] == "http":
            await send_error(send, error.status, error.code, error.message, headers)
            return
        await receive()  # websocket.connect
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008})  # the server answers 403
            return
        await send_error(send, error.status, error.code, error.message, headers, websocket=True)

    # ---- the session (Engine.IO events) ----

    def install(self, eio: Any) -> None:
        """Follow Engine.IO sessions: wraps the connect and disconnect handlers that
        python-socketio registered on its Engine.IO server, and still calls them."""
        on_connect = eio.handlers["connect"]
        on_disconnect = eio.handlers["disconnect"]

        async def connect(eio_sid: str, environ: dict[str, Any]) -> Any:
            ticket = _ticket(environ)
            if ticket is not None and not ticket.released:
                ticket.sid = eio_sid
                # A timer per session rather than a sweeping task: it runs whether or not the
                # hub is started (messaging off), and costs nothing once cancelled.
                loop = asyncio.get_running_loop()
                ticket.timer = loop.call_later(self.deadline_seconds, self._expire, eio, ticket)
                self.pending[eio_sid] = ticket
            return await on_connect(eio_sid, environ)

        async def disconnect(eio_sid: str, reason: Any = None) -> Any:
            ticket = self.pending.get(eio_sid)
            if ticket is not None:
                self._forget(ticket)
            return await on_disconnect(eio_sid, reason)

        eio.on("connect", connect)
        eio.on("disconnect", disconnect)

    def authenticated(self, environ: dict[str, Any]) -> None:
        """The session whose handshake was `environ` connected to `/agents` with a valid token."""
        ticket = _ticket(environ)
        if ticket is not None:
            self._forget(ticket)

    def _forget(self, ticket: Ticket) -> None:
        """The ticket's session is no longer pending; idempotent."""
        if ticket.sid is not None:
            self.pending.pop(ticket.sid, None)
        if ticket.released:
            return
        ticket.released = True
        if ticket.timer is not None:
            ticket.timer.cancel()
            ticket.timer = None  # (200 bytes cancelled; the scope keeps the ticket)
        left = self.counts.get(ticket.address, 0) - 1
        if left > 0:
            self.counts[ticket.address] = left
        else:
            self.counts.pop(ticket.address, None)

    def _expire(self, eio: Any, ticket: Ticket) -> None:
        """The deadline passed before the session authenticated: close it."""
        assert ticket.sid is not None
        self._forget(ticket)
        task = asyncio.create_task(_close(eio, ticket.sid), name="agenthub-admission-close")
        self._closing.add(task)  # a reference until it is done (the loop keeps only weak ones)
        task.add_done_callback(self._closing.discard)


async def _close(eio: Any, eio_sid: str) -> None:
    """Close a session without waiting for its peer: a CLOSE packet for the client (a polling
    client takes it with its next GET), then the end of the queue, which makes a websocket's
    writer close the connection even if the peer keeps it open by sending pongs."""
    sock = eio.sockets.get(eio_sid)
    if sock is None or sock.closed:
        return
    await sock.close(wait=False, abort=False, reason=eio.reason.SERVER_DISCONNECT)
    sock.queue.put_nowait(None)


def _ticket(environ: dict[str, Any]) -> Ticket | None:
    scope = environ.get("asgi.scope") or {}
    ticket = scope.get("state", {}).get(STATE_KEY)
    return ticket if isinstance(ticket, Ticket) else None
