"""Routes: /api/v1/rooms/{room}/messages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from agenthub.http.deps import CurrentAgent, ServicesDep
from agenthub.messages.schemas import MessageCreate, MessagePage, MessagePublic
from agenthub.wire import error_responses

router = APIRouter(prefix="/api/v1/rooms/{room}/messages", tags=["messages"])
MAX_SEQ = 2**63 - 1


@router.post(
    "",
    status_code=201,
    response_model=MessagePublic,
    responses={
        **error_responses(403, 404),
        200: {"model": MessagePublic, "description": "an idempotent repeat"},
    },
    summary="Send a message (members); 200 with the stored message for a repeated clientMsgId",
)
async def send_message(
    room: str, body: MessageCreate, me: CurrentAgent, services: ServicesDep
) -> JSONResponse:
    # The service hands back the message's wire form, already what MessagePublic documents.
    message, created = await services.messages.send(
        me, room, body.body, body.client_msg_id, reply_to=body.reply_to, ack_from=body.ack_from
    )
    return JSONResponse(message, status_code=201 if created else 200)


@router.get(
    "",
    response_model=MessagePage,
    responses=error_responses(403, 404),
    summary="History: newest first with a cursor, or oldest first after a seq",
)
async def list_messages(
    room: str,
    me: CurrentAgent,
    services: ServicesDep,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
    after_seq: Annotated[int | None, Query(alias="afterSeq", ge=0, le=MAX_SEQ)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MessagePage:
    return await services.messages.history(
        me, room, cursor=cursor, after_seq=after_seq, limit=limit
    )
