"""Routes: /api/v1/rooms and their members."""

from __future__ import annotations

from fastapi import APIRouter, Response

from agenthub.agents.schemas import AgentPublic
from agenthub.http.deps import CurrentAgent, ServicesDep
from agenthub.rooms.schemas import MemberAdd, MemberList, RoomCreate, RoomList, RoomPublic
from agenthub.wire import error_responses

router = APIRouter(prefix="/api/v1/rooms", tags=["rooms"])


@router.post(
    "",
    status_code=201,
    response_model=RoomPublic,
    responses=error_responses(409),
    summary="Create a room; the creator becomes its first member",
)
async def create_room(body: RoomCreate, me: CurrentAgent, services: ServicesDep) -> RoomPublic:
    return await services.rooms.create(me, body.slug, body.name)


@router.get(
    "",
    response_model=RoomList,
    responses=error_responses(403),
    summary="The caller's rooms (all rooms for an admin with all=true)",
)
async def list_rooms(me: CurrentAgent, services: ServicesDep, all: bool = False) -> RoomList:
    return RoomList(rooms=await services.rooms.list_for(me, all_rooms=all))


@router.get(
    "/{room}",
    response_model=RoomPublic,
    responses=error_responses(403, 404),
    summary="One room, by id or slug (members and admins)",
)
async def get_room(room: str, me: CurrentAgent, services: ServicesDep) -> RoomPublic:
    return await services.rooms.room_for(me, room, admin_ok=True)


@router.get(
    "/{room}/members",
    response_model=MemberList,
    responses=error_responses(403, 404),
    summary="A room's members (members and admins)",
)
async def list_members(room: str, me: CurrentAgent, services: ServicesDep) -> MemberList:
    return MemberList(members=await services.rooms.members(me, room))


@router.post(
    "/{room}/members",
    status_code=201,
    response_model=AgentPublic,
    responses={
        **error_responses(403, 404),
        200: {"model": AgentPublic, "description": "already a member"},
    },
    summary="Add an agent to a room (members and admins); 200 if it already was one",
)
async def add_member(
    room: str, body: MemberAdd, me: CurrentAgent, services: ServicesDep, response: Response
) -> AgentPublic:
    agent, added = await services.rooms.add_member(me, room, body.agent)
    response.status_code = 201 if added else 200
    return agent


@router.delete(
    "/{room}/members/{agent}",
    status_code=204,
    response_class=Response,
    responses=error_responses(403, 404),
    summary="Remove a member (admin, or the agent itself)",
)
async def remove_member(room: str, agent: str, me: CurrentAgent, services: ServicesDep) -> Response:
    await services.rooms.remove_member(me, room, agent)
    return Response(status_code=204)
