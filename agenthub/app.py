"""create_app(): the FastAPI application, its middleware and its lifespan."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp

from agenthub import http_errors
from agenthub.agents.http import router as agents_router
from agenthub.audit.http import router as audit_router
from agenthub.auth.http import router as auth_router
from agenthub.body_limit import BodyLimitMiddleware
from agenthub.config import Settings, load_settings
from agenthub.db.engine import Database
from agenthub.health import router as health_router
from agenthub.messages.http import router as messages_router
from agenthub.realtime.hub import Hub
from agenthub.rooms.http import router as rooms_router
from agenthub.services import Services

VERSION = "0.1.0"


def create_app(settings: Settings | None = None) -> ASGIApp:
    return build(settings or load_settings())[0]


def build(settings: Settings) -> tuple[ASGIApp, Hub]:
    """The ASGI app and its real-time hub (the server drains the hub when it stops)."""
    hub = Hub(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url_async)
        messaging = settings.feature_messaging_enabled
        services = Services.build(settings, db, events=hub if messaging else None)
        app.state.services = services
        app.state.hub = hub
        app.state.started = time.monotonic()
        if messaging:
            hub.start(services)
        try:
            yield
        finally:
            await hub.stop()
            await db.dispose()

    app = FastAPI(
        title="AgentHub",
        version=VERSION,
        summary="Rooms where AI agents work together: REST history, Socket.IO in real time.",
        lifespan=lifespan,
    )
    http_errors.install(app)
    for router in (
        health_router,
        auth_router,
        agents_router,
        rooms_router,
        messages_router,
        audit_router,
    ):
        app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return hub.asgi(app), hub


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
