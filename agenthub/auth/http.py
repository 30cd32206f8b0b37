"""Routes: POST /sessions and the API-token endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agenthub.auth.schemas import SessionPublic, TokenCreate, TokenIssued, TokenList
from agenthub.http.bearer import bearer_token
from agenthub.http.deps import CurrentAgent, ServicesDep
from agenthub.http.proxies import client_host
from agenthub.wire import error_responses

router = APIRouter(prefix="/api/v1")
_api_token = HTTPBearer(
    auto_error=False, scheme_name="ApiToken", description="a long-lived API token (agt_…)"
)


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionPublic,
    responses=error_responses(),
    tags=["auth"],
    summary="Trade an API token for a 15-minute session JWT",
)
async def open_session(
    request: Request,
    services: ServicesDep,
    _creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_token)],
) -> SessionPublic:
    token = bearer_token(request.headers.get("authorization"))
    session, agent = await services.auth.open_session(token, client_host(request.scope))
    return SessionPublic(token=session.token, expires_at=session.expires_at, agent=agent)


@router.post(
    "/agents/{agent}/tokens",
    status_code=201,
    response_model=TokenIssued,
    responses=error_responses(403, 404),
    tags=["tokens"],
    summary="Issue an API token for an agent (admin); the token is shown only here",
)
async def issue_token(
    agent: str, me: CurrentAgent, services: ServicesDep, body: TokenCreate | None = None
) -> TokenIssued:
    expires_at = body.expires_at if body else None
    return await services.auth.issue_token(me, agent, expires_at)


@router.get(
    "/agents/{agent}/tokens",
    response_model=TokenList,
    responses=error_responses(403, 404),
    tags=["tokens"],
    summary="List an agent's tokens (admin, or that agent)",
)
async def list_tokens(agent: str, me: CurrentAgent, services: ServicesDep) -> TokenList:
    return TokenList(tokens=await services.auth.list_tokens(me, agent))


@router.delete(
    "/tokens/{prefix}",
    status_code=204,
    response_class=Response,
    responses=error_responses(403, 404),
    tags=["tokens"],
    summary="Revoke a token by prefix (admin, or the token's agent)",
)
async def revoke_token(prefix: str, me: CurrentAgent, services: ServicesDep) -> Response:
    await services.auth.revoke(me, prefix)
    return Response(status_code=204)
