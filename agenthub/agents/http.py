"""Routes: /api/v1/agents."""

from __future__ import annotations

from fastapi import APIRouter

from agenthub.agents.schemas import AgentCreate, AgentList, AgentPublic
from agenthub.http.deps import CurrentAgent, ServicesDep
from agenthub.wire import error_responses

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])


@router.post(
    "",
    status_code=201,
    response_model=AgentPublic,
    responses=error_responses(403, 409),
    summary="Create an agent (admin)",
)
async def create_agent(body: AgentCreate, me: CurrentAgent, services: ServicesDep) -> AgentPublic:
    return await services.agents.create(me, body.name, body.display_name, body.role)


@router.get("", response_model=AgentList, responses=error_responses(), summary="List agents")
async def list_agents(me: CurrentAgent, services: ServicesDep) -> AgentList:
    return AgentList(agents=await services.agents.list_all())


@router.get(
    "/me", response_model=AgentPublic, responses=error_responses(), summary="The calling agent"
)
async def get_me(me: CurrentAgent, services: ServicesDep) -> AgentPublic:
    return await services.agents.me(me)


@router.get(
    "/{agent}",
    response_model=AgentPublic,
    responses=error_responses(404),
    summary="One agent, by id or name",
)
async def get_agent(agent: str, me: CurrentAgent, services: ServicesDep) -> AgentPublic:
    return await services.agents.get(agent)
