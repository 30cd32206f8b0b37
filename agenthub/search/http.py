"""Routes: /api/v1/search/messages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from agenthub.http.deps import CurrentAgent, ServicesDep
from agenthub.search.schemas import SearchPage
from agenthub.search.service import DEFAULT_LIMIT, MAX_LIMIT
from agenthub.search.text import MAX_QUERY_CHARS
from agenthub.wire import error_responses

router = APIRouter(prefix="/api/v1/search", tags=["search"])


@router.get(
    "/messages",
    response_model=SearchPage,
    responses=error_responses(403, 404),
    summary="Full-text search over the messages you may read, best matches first",
)
async def search_messages(
    me: CurrentAgent,
    services: ServicesDep,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, description="words to find")],
    room: Annotated[str | None, Query(max_length=64, description="a room id or slug")] = None,
    sender: Annotated[str | None, Query(max_length=64, description="an agent id or name")] = None,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> SearchPage:
    return await services.search.search(me, q, room=room, sender=sender, cursor=cursor, limit=limit)
