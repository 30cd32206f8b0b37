"""Liveness and readiness (no auth, no rate limit)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
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
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "the database does not answer"}},
    summary="Readiness: the database answers",
)
async def readyz(request: Request) -> JSONResponse:
    ok = await request.app.state.services.db.ping()
    checks = {"db": "ok" if ok else "error"}
    if ok:
        return JSONResponse({"status": "ready", "checks": checks})
    return JSONResponse({"status": "not_ready", "checks": checks}, status_code=503)
