"""Liveness and readiness (no auth, no rate limit)."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

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


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics (text exposition format)",
)
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "the database does not answer"}},
    summary="Readiness: the database answers",
)
async def readyz(request: Request) -> JSONResponse:
    ok = await request.app.state.services.db.ping()
    checks = {"db": "ok" if ok else "error"}
    limits_store = request.app.state.limits_storage
    if request.app.state.services.settings.redis_url:
        try:
            async with asyncio.timeout(2):
                redis_ok = bool(await limits_store.check())
        except Exception:
            redis_ok = False
        checks["redis"] = "ok" if redis_ok else "error"
        ok = ok and redis_ok
    if ok:
        return JSONResponse({"status": "ready", "checks": checks})
    return JSONResponse({"status": "not_ready", "checks": checks}, status_code=503)
