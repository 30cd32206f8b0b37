"""Routes: /api/v1/audit-events (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from agenthub.audit.schemas import AuditEventPage
from agenthub.http.deps import CurrentAgent, ServicesDep
from agenthub.wire import error_responses

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get(
    "/audit-events",
    response_model=AuditEventPage,
    responses=error_responses(403, 404),
    summary="The audit log, newest first (admin)",
)
async def list_audit_events(
    me: CurrentAgent,
    services: ServicesDep,
    type: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9-]*$")] = None,
    agent: Annotated[str | None, Query(max_length=63)] = None,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditEventPage:
    return await services.audit.page(me, type_=type, agent_ref=agent, cursor=cursor, limit=limit)
