"""Routes: /api/v1/rooms/{room}/claims."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from agenthub.claims.schemas import (
    MAX_RESOURCE_CHARS,
    ClaimCreate,
    ClaimList,
    ClaimPublic,
    ClaimRenew,
)
from agenthub.http.deps import CurrentAgent, ServicesDep
from agenthub.wire import error_responses

router = APIRouter(prefix="/api/v1/rooms/{room}/claims", tags=["claims"])


@router.post(
    "",
    status_code=201,
    response_model=ClaimPublic,
    responses={
        **error_responses(403, 404, 409),
        200: {"model": ClaimPublic, "description": "you already held it: renewed"},
    },
    summary="Claim a resource of the room (members); 409 names the holder and the expiry",
)
async def claim(
    room: str, body: ClaimCreate, me: CurrentAgent, services: ServicesDep, response: Response
) -> ClaimPublic:
    made, created = await services.claims.claim(
        me, room, body.resource, body.ttl_seconds, body.exclusive
    )
    response.status_code = 201 if created else 200
    return made


@router.get(
    "",
    response_model=ClaimList,
    responses=error_responses(403, 404),
    summary="The room's live claims (members and admins)",
)
async def list_claims(
    room: str,
    me: CurrentAgent,
    services: ServicesDep,
    resource: Annotated[str | None, Query(max_length=MAX_RESOURCE_CHARS)] = None,
) -> ClaimList:
    return ClaimList(claims=await services.claims.list(me, room, resource))


@router.post(
    "/renew",
    response_model=ClaimPublic,
    responses=error_responses(403, 404),
    summary="Extend your live claim (members); 404 when you hold none",
)
async def renew_claim(
    room: str, body: ClaimRenew, me: CurrentAgent, services: ServicesDep
) -> ClaimPublic:
    return await services.claims.renew(me, room, body.resource, body.ttl_seconds)


@router.delete(
    "",
    status_code=204,
    response_class=Response,
    responses=error_responses(403, 404),
    summary="Release your claim on a resource (members); 404 when you hold none",
)
async def release_claim(
    room: str,
    me: CurrentAgent,
    services: ServicesDep,
    resource: Annotated[str, Query(min_length=1, max_length=MAX_RESOURCE_CHARS)],
) -> Response:
    await services.claims.release(me, room, resource)
    return Response(status_code=204)
