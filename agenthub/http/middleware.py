"""Pure ASGI middleware around the whole app (Socket.IO's HTTP side included):
request ids, security headers, CORS, the access log and HTTP metrics, rate limits.

Pure ASGI rather than Starlette's BaseHTTPMiddleware: no extra task per request, and the
headers reach every response, errors and early refusals (413, 429) included."""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.strategies import RateLimiter
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agenthub.auth.jwt import Principal
from agenthub.errors import AppError
from agenthub.http.bearer import bearer_token
from agenthub.http.errors import send_error
from agenthub.http.origins import OriginRule, origin_allowed, same_origin
from agenthub.http.proxies import client_host
from agenthub.observability import context
from agenthub.observability.metrics import UNMATCHED, Metrics

log = logging.getLogger("agenthub.access")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNLIMITED_PATHS = ("/healthz", "/readyz", "/metrics")
Headers = list[tuple[bytes, bytes]]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RouteTemplates:
    """The route template of a request answered before routing (a 429, a 413, a preflight),
    matched against the API's path templates; compiled on first use, once every route is in."""

    def __init__(self, templates: Callable[[], Iterable[str]]) -> None:
        self._templates = templates
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def find(self, path: str) -> str | None:
        if self._compiled is None:
            self._compiled = [(compile_path(t)[0], t) for t in self._templates()]
        return next((t for regex, t in self._compiled if regex.match(path)), None)


def _route_of(scope: Scope, templates: RouteTemplates | None) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    raw = str(scope.get("path", ""))
    if raw.startswith("/socket.io/"):
        return "/socket.io/"
    if raw == "/mcp":
        return "/mcp"
    return (templates.find(raw) if templates else None) or UNMATCHED


class RequestContextMiddleware:
    """Request id (the client's X-Request-ID when sane, else a new one), security headers on
    every response, then one access-log line and one metric sample per request."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        security_headers: Headers,
        templates: RouteTemplates | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.security_headers = security_headers
        self.templates = templates

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # (returns the next coroutine rather than awaiting it: a websocket keeps no frame of
        # this layer for its life, ADR 0012; the server is told the interface is ASGI 3)
        if scope["type"] == "websocket":
            return self._websocket(scope, receive, send)
        return self._other(scope, receive, send)

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        rid_token = context.request_id.set(rid)
        agent_token = context.agent_id.set(None)
        started = time.perf_counter()
        status = 500
        responded = False
        extra = [(b"x-request-id", rid.encode()), *self.security_headers]

        async def send_with_headers(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status = message["status"]
                responded = True
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            # Starlette re-raises an unexpected error after answering 500, for the server to
            # log; uvicorn would print the traceback (SQL and parameters included) and drop the
            # connection. The error is logged here by type only, with the request id.
            log.error("unhandled %s", type(exc).__name__, extra={"error_type": type(exc).__name__})
            if not responded:
                await send_error(send_with_headers, 500, "internal", "internal server error")
        finally:
            route = _route_of(scope, self.templates)
            duration = time.perf_counter() - started
            self.metrics.http_request(scope["method"], route, status, duration)
            principal = scope.get("state", {}).get("principal")
            if principal is not None:
                context.agent_id.set(str(principal.agent_id))
            log.info(
                "%s %s %s",
                scope["method"],
                route,
                status,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "client": client_host(scope),
                    "duration_ms": round(duration * 1000, 2),
                },
            )
            context.agent_id.reset(agent_token)
            context.request_id.reset(rid_token)

    def _websocket(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        extra = [(b"x-request-id", _request_id(scope).encode()), *self.security_headers]
        can_answer = "websocket.http.response" in (scope.get("extensions") or {})
        return self.app(scope, receive, _UpgradeAnswers(send, extra, can_answer))


class _UpgradeAnswers:
    """`send` for a WebSocket upgrade, which is answered in HTTP too: the 101 and, where the
    server lets the app write a refusal (ASGI's `websocket.http.response` extension, which
    uvicorn has), every refusal carry the request id and security headers like every other
    answer.

    Engine.IO refuses a bad sid, transport, protocol version or origin by closing before
    accepting; the server would then answer a bare 403 of its own. Here the 403 keeps its
    status and gets engine.io's reason as its body, as the polling transport's 400 has.

    An object rather than a closure: it lives as long as the socket, and a closure with its
    cells cost about 470 bytes per open socket."""

    __slots__ = ("_accepted", "_answered", "_can_answer", "_extra", "_send")

    def __init__(self, send: Send, extra: Headers, can_answer: bool) -> None:
        self._send = send
        self._extra = extra
        self._can_answer = can_answer
        self._accepted = self._answered = False

    async def __call__(self, message: Message) -> None:
        if self._answered:  # the refusal is written: nothing else may follow it
            return
        if message["type"] in ("websocket.accept", "websocket.http.response.start"):
            self._accepted = True  # (or answered in HTTP by the app itself)
            message["headers"] = [*message.get("headers", []), *self._extra]
        elif message["type"] == "websocket.close" and not self._accepted and self._can_answer:
            self._answered = True
            body = str(message.get("reason") or "upgrade refused").encode()
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *self._extra,
            ]
            await self._send(
                {"type": "websocket.http.response.start", "status": 403, "headers": headers}
            )
            await self._send({"type": "websocket.http.response.body", "body": body})
            return
        await self._send(message)


def _request_id(scope: Scope) -> str:
    given = _header(scope, b"x-request-id")
    return given if given and REQUEST_ID.match(given) else uuid.uuid4().hex


class CorsMiddleware:
    """Reflect an allowed Origin on every answer (errors included) and answer preflights;
    other origins get no CORS headers at all."""

    def __init__(self, app: ASGIApp, rules: list[OriginRule]) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = _header(scope, b"origin") if scope["type"] == "http" else None
        if origin is None or str(scope["path"]).startswith("/socket.io/"):
            await self.app(scope, receive, send)  # Socket.IO applies the same list itself
            return
        # The hub's own origin always: its console calls it from the page it served.
        allowed = origin_allowed(self.rules, origin) or same_origin(scope, origin)
        cors: Headers = [(b"vary", b"Origin")]
        if allowed:
            cors += [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-expose-headers", b"Retry-After, X-Request-ID"),
            ]
        preflight = scope["method"] == "OPTIONS" and _header(
            scope, b"access-control-request-method"
        )
        if allowed and preflight:
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        *cors,
                        (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
                        (
                            b"access-control-allow-headers",
                            b"Authorization, Content-Type, X-Request-ID",
                        ),
                        (b"access-control-max-age", b"600"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *cors]
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _counted(scope: Scope) -> bool:
    """The API, the MCP endpoint, and the console's sign-in, which trades an API token like
    POST /sessions."""
    path = str(scope["path"])
    if path.startswith("/api/") or path == "/mcp":
        return True
    return path == "/console/sign-in" and scope["method"] == "POST"


class RateLimitMiddleware:
    """Per client IP for requests without a valid session JWT (POST /sessions and the
    console's sign-in included), per agent with one. A verified principal is left in the
    request state for the routes.

    Only the API (`/api/`), the MCP endpoint (`/mcp`, whose API tokens `known_token` maps
    to their agent once verified there) and the console's sign-in are counted. Socket.IO
    handshakes are not: a machine running many agents must be able to reconnect them all at
    once after a restart (and a load test opens thousands of sockets from one address);
    unauthenticated sessions are bounded by count and deadline instead
    (realtime/admission.py)."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        verify: Callable[[str], Principal],
        unauth_per_min: int,
        auth_per_min: int,
        on_storage_error: Callable[[Exception], Awaitable[None]] | None = None,
        on_refused: Callable[[], None] | None = None,
        known_token: Callable[[str], Principal | None] | None = None,
    ) -> None:
        self.app = app
        self.known_token = known_token
        self.limiter = limiter
        self.verify = verify
        self.unauth: RateLimitItem = RateLimitItemPerMinute(unauth_per_min)
        self.auth: RateLimitItem = RateLimitItemPerMinute(auth_per_min)
        self.on_storage_error = on_storage_error
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _counted(scope):
            await self.app(scope, receive, send)
            return
        principal = self._principal(scope)
        if principal is not None:
            scope.setdefault("state", {})["principal"] = principal
            item, key = self.auth, f"agent:{principal.agent_id}"
        else:
            item, key = self.unauth, f"ip:{client_host(scope)}"
        try:
            allowed = await self.limiter.hit(item, key)
            if not allowed:
                stats = await self.limiter.get_window_stats(item, key)
        except Exception as exc:  # the limiter's store is down: serve rather than refuse
            if self.on_storage_error is not None:
                await self.on_storage_error(exc)
            allowed = True
        if allowed:
            await self.app(scope, receive, send)
            return
        if self.on_refused is not None:
            self.on_refused()
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        await send_error(
            send,
            429,
            "rate_limited",
            f"rate limit of {item.amount} requests per minute exceeded; retry in {retry}s",
            [(b"retry-after", str(retry).encode())],
        )

    def _principal(self, scope: Scope) -> Principal | None:
        token = bearer_token(_header(scope, b"authorization"))
        if token is None:
            return None
        if token.startswith("agt_"):  # an API token is no session: known only to /mcp
            return self.known_token(token) if self.known_token is not None else None
        try:
            return self.verify(token)
        except AppError:
            return None
