"""Opening one Socket.IO connection to `/agents`, with a fresh JWT and typed failures.

Reconnecting is left to the callers (the subscription and the presence socket): each has its
own idea of what to redo after a reconnect, and each must first ask `SessionCache` for a JWT so
that a revoked API token surfaces as `Unauthorized` instead of a retry loop.

The server ends a socket when its JWT expires (`session:ended`, then a disconnect). So that a
long-lived socket is not ended every session lifetime, each socket opened here is moved to the
next session before its JWT is due (`session:renew`, in-band: the socket stays in its rooms,
nothing is lost or repeated). Should a renewal fail, the socket is ended at expiry and the
caller's reconnect (with its `afterSeq` catch-up) takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from agenthub.client.errors import (
    AgentHubError,
    BadResponse,
    ConnectionError,
    Unauthorized,
    Unavailable,
)
from agenthub.client.session import CLAIM_GRANULARITY_S, SessionCache

if TYPE_CHECKING:
    import socketio

# python-socketio and engine.io print to a stderr handler of their own unless given a logger:
# internal lines ("packet queue is empty, aborting") on every dropped connection, which the
# subscription already reports as one warning. Theirs go under ours, silent unless configured.
WIRE_LOG = logging.getLogger("agenthub.client.wire")
log = logging.getLogger("agenthub.client")

NAMESPACE = "/agents"
CONNECT_TIMEOUT_S = 10.0
ACK_TIMEOUT_S = 10.0

Handler = Callable[..., Any]


async def open_socket(
    url: str,
    sessions: SessionCache,
    handlers: Mapping[str, Handler],
) -> socketio.AsyncClient:
    """A connected client with `handlers` registered on the namespace, or a typed error.

    Handlers run on the client's own tasks; keep them synchronous and non-blocking (queue what
    they receive) so that events are taken in the order they arrived."""
    for attempt in (1, 2):
        try:
            return await _connect(url, sessions, handlers)
        except Unauthorized:
            # The server refused a JWT the cache thought good (it expired in flight, or the
            # server's key changed): one more try with a new session, then give up.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _connect(
    url: str, sessions: SessionCache, handlers: Mapping[str, Handler]
) -> socketio.AsyncClient:
    # Imported here: python-socketio (and aiohttp under it) is half a second of start-up that
    # REST-only uses, like most CLI commands, need not pay.
    import socketio

    await sessions.token()  # opens a session first: a bad API token raises here
    if WIRE_LOG.level == logging.NOTSET:
        WIRE_LOG.setLevel(logging.CRITICAL)
    refusals: list[str] = []
    used: list[str] = []  # the JWT the handshake carried
    renewal: list[asyncio.Task[None]] = []
    redirects: list[str] = []
    # handle_sigint=False: a library must not take over the application's Ctrl-C.
    # http_session as a factory: engine.io makes (and closes) the aiohttp session, ours.
    sio = socketio.AsyncClient(
        reconnection=False,
        handle_sigint=False,
        logger=WIRE_LOG,
        engineio_logger=WIRE_LOG,
        http_session=lambda: _no_redirects_session(redirects),
    )

    def on_connect_error(data: Any = None) -> None:
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            refusals.append(data["message"])

    async def auth() -> dict[str, str]:
        # python-socketio calls this on every connect; the cache renews when due. A failure
        # here would be swallowed by the library, so an empty auth (a refusal) stands for it.
        try:
            token = await sessions.token()
        except AgentHubError:
            return {}
        used[:] = [token]
        return {"token": token}

    def on_session_ended(data: Any = None) -> None:
        reason = data.get("reason") if isinstance(data, dict) else None
        log.info("the server ended the real-time session (%s)", reason)

    on_disconnect = handlers.get("disconnect")

    def disconnected(*args: Any) -> Any:
        for task in renewal:
            task.cancel()
        return on_disconnect(*args) if on_disconnect is not None else None

    sio.on("connect_error", on_connect_error, namespace=NAMESPACE)
    sio.on("session:ended", on_session_ended, namespace=NAMESPACE)
    for event, handler in handlers.items():
        sio.on(event, handler, namespace=NAMESPACE)
    sio.on("disconnect", disconnected, namespace=NAMESPACE)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S + 5):
            await sio.connect(
                url,
                auth=auth,
                namespaces=[NAMESPACE],
                transports=["websocket"],
                wait_timeout=CONNECT_TIMEOUT_S,
            )
    except (socketio.exceptions.ConnectionError, TimeoutError, OSError) as exc:
        with contextlib.suppress(Exception):
            await sio.disconnect()
        if redirects:
            raise BadResponse(
                f"{url} answered the real-time connection with a redirect to {redirects[0]}; "
                "AgentHub clients do not follow redirects: use the server's own address"
            ) from None
        raise _refusal(url, refusals, exc, sessions) from None
    if used:
        renewal.append(
            asyncio.create_task(_keep_renewed(sio, sessions, used[0]), name="agenthub-renewal")
        )
    return sio


async def _keep_renewed(sio: socketio.AsyncClient, sessions: SessionCache, token: str) -> None:
    """Move the socket to each new session before the one it is on is due (until cancelled
    by the socket's disconnect, or a renewal fails: then the server ends it at expiry)."""
    while sio.connected:
        wait = sessions.seconds_until_renewal(token)
        if wait > 0:
            await asyncio.sleep(wait)
            continue
        try:
            fresh = await sessions.token()
            if fresh == token:  # renewed elsewhere to this very token: nothing to move
                await asyncio.sleep(CLAIM_GRANULARITY_S)
                continue
            ack = await call(sio, "session:renew", {"token": fresh})
        except AgentHubError as exc:
            log.info("could not renew the real-time session: %s", exc)
            return
        if not isinstance(ack, dict) or not ack.get("ok"):
            log.info("the server refused to renew the real-time session: %s", ack)
            return
        token = fresh


def _no_redirects_session(redirects: list[str]) -> Any:
    """An aiohttp session that never follows a redirect, and notes where one pointed.

    aiohttp's `ws_connect` follows redirects, to any origin; the Socket.IO handshake that then
    runs over the connection carries the session JWT in its auth, so following one would hand
    the JWT to whoever the redirect names."""
    import aiohttp

    async def refuse_redirects(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        response = await handler(request)
        if 300 <= response.status < 400:
            redirects.append(response.headers.get("Location", "elsewhere"))
            response.release()
            raise aiohttp.ClientConnectionError("redirect refused")
        return response

    return aiohttp.ClientSession(middlewares=(refuse_redirects,))


async def call(sio: socketio.AsyncClient, event: str, data: Any) -> Any:
    """Emit an event and return its acknowledgement; ConnectionError if none comes."""
    import socketio

    try:
        return await sio.call(event, data, namespace=NAMESPACE, timeout=ACK_TIMEOUT_S)
    except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError) as exc:
        raise ConnectionError(f"no answer to {event}: {exc or type(exc).__name__}") from None


def _refusal(
    url: str, refusals: list[str], exc: BaseException, sessions: SessionCache
) -> AgentHubError:
    reason = refusals[0] if refusals else None
    if reason == "unauthorized":
        sessions.forget()  # the next attempt opens a new session
        return Unauthorized("the server refused the session token for the real-time connection")
    if reason == "unavailable":
        return Unavailable("the server is shutting down")
    if reason is not None:
        return Unavailable(f"the server refused the real-time connection: {reason}")
    detail = str(exc) or type(exc).__name__
    return ConnectionError(f"cannot open a real-time connection to {url}: {detail}")
