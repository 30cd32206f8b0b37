"""create_app(): the FastAPI application, its middleware and its lifespan."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Receive, Scope, Send

from agenthub.agents.http import router as agents_router
from agenthub.audit.http import router as audit_router
from agenthub.auth.http import router as auth_router
from agenthub.auth.jwt import SessionSigner
from agenthub.claims.http import router as claims_router
from agenthub.config import Settings, load_settings
from agenthub.console import http as console
from agenthub.coordination.http import router as coordination_router
from agenthub.db.engine import Database
from agenthub.http import docs
from agenthub.http import errors as http_errors
from agenthub.http.body_limit import BodyLimitMiddleware
from agenthub.http.health import router as health_router
from agenthub.http.middleware import (
    CorsMiddleware,
    RateLimitMiddleware,
    RequestContextMiddleware,
    RouteTemplates,
)
from agenthub.http.origins import parse_origins
from agenthub.http.proxies import trust_proxies
from agenthub.mcp.http import McpEdge
from agenthub.messages.http import router as messages_router
from agenthub.observability.metrics import Metrics
from agenthub.realtime.cluster import command_options
from agenthub.realtime.hub import Hub
from agenthub.rooms.http import router as rooms_router
from agenthub.search.http import router as search_router
from agenthub.services import Services

VERSION = "0.1.0"
log = logging.getLogger("agenthub")


def create_app(settings: Settings | None = None) -> ASGIApp:
    return build(settings or load_settings())[0]


def build(settings: Settings) -> tuple[ASGIApp, Hub]:
    """The ASGI app and its real-time hub (the server drains the hub when it stops)."""
    metrics = Metrics()
    hub = Hub(settings, metrics)
    signer = SessionSigner(
        settings.secret(), settings.jwt_ttl_seconds, settings.jwt_previous_secrets
    )
    limits_storage = rate_limit_storage(settings)
    mcp_edge = McpEdge(settings, metrics, hub if settings.feature_messaging_enabled else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            settings.database_url_async, on_query=metrics.db_query, on_error=metrics.db_error
        )
        metrics.pools.watch(db.pool_usage)
        messaging = settings.feature_messaging_enabled
        events = hub if messaging else None
        try:
            # Everything this process runs starts here and stops in reverse order: the
            # services' background work (services.py), then the hub, which needs them.
            async with (
                Services.open(settings, db, events, metrics, signer) as services,
                hub.running(services) if messaging else contextlib.nullcontext(),
                mcp_edge.running(services),
            ):
                app.state.services = services
                app.state.started = time.monotonic()
                yield
        finally:
            metrics.pools.watch(None)
            await db.dispose()

    app = FastAPI(
        title="AgentHub",
        version=VERSION,
        summary="Rooms where AI agents work together: REST history, Socket.IO in real time.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.metrics = metrics
    app.state.hub = hub
    app.state.limits_storage = limits_storage
    http_errors.install(app)
    for router in (
        health_router,
        auth_router,
        agents_router,
        rooms_router,
        messages_router,
        coordination_router,
        audit_router,
        claims_router,
        search_router,
    ):
        app.include_router(router)
    docs.install(app)
    console.install(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    # Outermost first: the client's address (from a trusted proxy's X-Forwarded-For), request
    # context and headers, CORS, rate limits, the body limit, then MCP, Socket.IO or FastAPI.
    sockets = hub.asgi(app)
    asgi = mcp_edge.mount(sockets)
    # Around Socket.IO too: engine.io answers an oversized polling POST only once a poll takes
    # the session's CLOSE packet, so without this the request hangs (and holds the shutdown).
    asgi = BodyLimitMiddleware(asgi, settings.max_body_bytes)
    asgi = RateLimitMiddleware(
        asgi,
        SlidingWindowCounterRateLimiter(limits_storage),
        signer.verify,
        settings.rate_limit_unauth_per_min,
        settings.rate_limit_auth_per_min,
        on_storage_error=_limits_unavailable,
        on_refused=lambda: metrics.rate_limited("http"),
        known_token=mcp_edge.known_token,
    )
    asgi = CorsMiddleware(asgi, parse_origins(settings.allowed_origins))
    # Websockets skip the four layers above, which pass them through untouched: each would
    # keep a suspended frame per open socket for the socket's life (ADR 0012).
    asgi = _by_type(asgi, websocket=sockets)
    templates = RouteTemplates(lambda: app.openapi()["paths"])
    asgi = RequestContextMiddleware(asgi, metrics, security_headers(settings), templates)
    return trust_proxies(asgi, settings.trusted_proxies), hub


def _by_type(http: ASGIApp, websocket: ASGIApp) -> ASGIApp:
    """`websocket` for websocket connections, `http` for everything else (the lifespan too)."""

    def app(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # (returns the chosen app's coroutine: no frame of its own kept per open socket)
        return (websocket if scope["type"] == "websocket" else http)(scope, receive, send)

    return app


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-security-policy", b"default-src 'self'"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"strict-origin"),
        (b"x-content-type-options", b"nosniff"),
    ]
    if settings.hsts_max_age > 0:  # only behind TLS
        value = f"max-age={settings.hsts_max_age}; includeSubDomains"
        headers.append((b"strict-transport-security", value.encode()))
    return headers


def rate_limit_storage(settings: Settings) -> Any:
    """Counters in Redis when REDIS_URL is set (shared by every node), else in this process."""
    if settings.redis_url:
        return storage_from_string(
            "async+" + settings.redis_url,
            implementation="redispy",
            key_prefix=f"{settings.redis_key_prefix}:limits",
            **command_options(),
        )
    return storage_from_string("async+memory://")


async def _limits_unavailable(exc: Exception) -> None:
    log.warning("rate-limit store unavailable (%s): serving without limits", type(exc).__name__)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document without its 422 responses: validation errors are 400 here."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    app.openapi_schema = schema
    return schema
