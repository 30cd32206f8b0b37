"""Liveness and readiness (no auth, no rate limit)."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.datastructures import State

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    uptime: float


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Health, summary="Liveness: the process runs")
async def healthz(request: Request) -> Health:
    return Health(status="ok", uptime=round(time.monotonic() - request.app.state.started, 3))


async def readiness(state: State) -> dict[str, bool]:
    """The checks behind /readyz: the database answers, and Redis does when it is configured
    (its rate-limit counters answer, and this node's reader of the other nodes' events is
    alive: a node deaf to the others must not take traffic). Each result also goes to the
    `agenthub_ready` and `agenthub_dependency_up` gauges."""
    checks = {"db": await state.services.db.ping()}
    if state.services.settings.redis_url:
        try:
            async with asyncio.timeout(2):
                checks["redis"] = bool(await state.limits_storage.check())
        except Exception:
            checks["redis"] = False
        hub = getattr(state, "hub", None)
        alive = hub.cluster_alive if hub is not None else None
        if alive is False:
            checks["redis"] = False
    state.metrics.readiness(checks)
    return checks


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics (text exposition format)",
)
async def metrics(request: Request) -> Response:
    # Readiness is checked at each scrape, so `agenthub_ready` is never older than the scrape
    # and costs nothing when nobody scrapes.
    await readiness(request.app.state)
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "the database does not answer"}},
    summary="Readiness: the database answers",
)
async def readyz(request: Request) -> JSONResponse:
    checks = await readiness(request.app.state)
    body = {name: "ok" if ok else "error" for name, ok in checks.items()}
    if all(checks.values()):
        return JSONResponse({"status": "ready", "checks": body})
    return JSONResponse({"status": "not_ready", "checks": body}, status_code=503)
