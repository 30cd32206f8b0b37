"""FastAPI dependencies: the services of the app and the calling agent."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agenthub.auth.jwt import Principal
from agenthub.errors import Unauthorized
from agenthub.http.bearer import bearer_token
from agenthub.services import Services

_bearer = HTTPBearer(auto_error=False, description="a session JWT from POST /api/v1/sessions")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def current_agent(
    request: Request,
    services: Annotated[Services, Depends(get_services)],
    _creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:  # verified by the rate limiter; revocation is checked here
        return services.auth.ensure_live(cached)
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise Unauthorized("missing session token (Authorization: Bearer <jwt>)")
    principal = services.auth.authenticate(token)
    request.state.principal = principal
    return principal


ServicesDep = Annotated[Services, Depends(get_services)]
CurrentAgent = Annotated[Principal, Depends(current_agent)]
