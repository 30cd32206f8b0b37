"""Routes: the inbox, direct messages, acknowledgements and threads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from agenthub.coordination.schemas import (
    AckAnswer,
    AckCreate,
    DirectCreate,
    InboxPage,
    InboxRead,
    InboxReadState,
    PendingAcks,
    Thread,
)
from agenthub.http.deps import CurrentAgent, ServicesDep
from agenthub.messages.schemas import MessagePublic
from agenthub.wire import error_responses

router = APIRouter(prefix="/api/v1", tags=["coordination"])
MAX_SEQ = 2**63 - 1
Seq = Annotated[int, Path(ge=1, le=MAX_SEQ)]


@router.get(
    "/inbox",
    response_model=InboxPage,
    responses=error_responses(),
    summary="Your inbox, oldest first: mentions, direct messages, replies, asked acknowledgements",
)
async def inbox(
    me: CurrentAgent,
    services: ServicesDep,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
    unread: bool = False,
    newest: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    return await services.coordination.inbox(
        me, cursor=cursor, unread_only=unread, limit=limit, newest=newest
    )


@router.post(
    "/inbox/read",
    response_model=InboxReadState,
    responses=error_responses(404),
    summary="Mark your inbox read up to an item (never moves back)",
)
async def inbox_read(body: InboxRead, me: CurrentAgent, services: ServicesDep) -> dict[str, Any]:
    return await services.coordination.mark_read(me, body.up_to)


@router.post(
    "/direct/{agent}/messages",
    status_code=201,
    response_model=MessagePublic,
    responses={
        **error_responses(404),
        200: {"model": MessagePublic, "description": "an idempotent repeat"},
    },
    summary="Send a direct message to another agent (its direct room is made on first use)",
)
async def send_direct(
    agent: str, body: DirectCreate, me: CurrentAgent, services: ServicesDep
) -> JSONResponse:
    message, created = await services.coordination.send_direct(
        me, agent, body.body, body.client_msg_id
    )
    return JSONResponse(message, status_code=201 if created else 200)


@router.post(
    "/rooms/{room}/messages/{seq}/acks",
    response_model=AckAnswer,
    responses=error_responses(403, 404),
    summary="Answer a message that asked you to acknowledge it",
)
async def ack(
    room: str, seq: Seq, body: AckCreate, me: CurrentAgent, services: ServicesDep
) -> dict[str, Any]:
    return await services.coordination.answer(me, room, seq, body.status, body.note)


@router.get(
    "/acks/pending",
    response_model=PendingAcks,
    responses=error_responses(),
    summary="Messages still awaiting your acknowledgement, oldest first",
)
async def pending_acks(
    me: CurrentAgent,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    return await services.coordination.pending(me, limit)


@router.get(
    "/rooms/{room}/messages/{seq}/thread",
    response_model=Thread,
    responses=error_responses(403, 404),
    summary="The thread a message belongs to: its root, then the replies in seq order",
)
async def thread(
    room: str,
    seq: Seq,
    me: CurrentAgent,
    services: ServicesDep,
    after_seq: Annotated[int, Query(alias="afterSeq", ge=0, le=MAX_SEQ)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    return await services.coordination.thread(me, room, seq, after_seq=after_seq, limit=limit)
