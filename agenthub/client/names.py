"""Names for the ids messages carry, for output meant to be read (CLI lines, MCP results).

Lists are fetched once and again only when an unknown id shows up (a new agent or room),
at most once per id, so a stream of messages costs no extra requests.
"""

from __future__ import annotations

from typing import Any

from agenthub.client.client import AgentHubClient
from agenthub.client.models import Message


class Names:
    def __init__(self, client: AgentHubClient) -> None:
        self._client = client
        self._agents: dict[str, str] = {}
        self._rooms: dict[str, str] = {}
        self._direct: set[str] = set()
        self._missed: set[str] = set()

    async def agent(self, agent_id: str) -> str:
        if agent_id not in self._agents and agent_id not in self._missed:
            self._missed.add(agent_id)
            self._agents.update({a.id: a.name for a in await self._client.agents()})
        return self._agents.get(agent_id, agent_id)

    async def room(self, room_id: str) -> str:
        if room_id not in self._rooms and room_id not in self._missed:
            self._missed.add(room_id)
            rooms = await self._client.rooms()
            self._rooms.update({r.id: r.slug for r in rooms})
            self._direct.update(r.id for r in rooms if r.kind == "direct")
        return self._rooms.get(room_id, room_id)

    async def is_direct(self, room_id: str) -> bool:
        """Whether the room is a direct room (of two agents), as far as the hub said."""
        await self.room(room_id)
        return room_id in self._direct

    def learn_room(self, room_id: str, slug: str) -> None:
        self._rooms[room_id] = slug

    async def describe(self, message: Message) -> dict[str, Any]:
        """The wire message plus `room` (slug) and `sender` (name)."""
        return {
            **message.to_wire(),
            "room": await self.room(message.room_id),
            "sender": await self.agent(message.sender_id),
        }
