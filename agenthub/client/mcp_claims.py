"""MCP tools for claims and search: `claim`, `release`, `list_claims`, `search_messages`.

A self-contained block: the tool functions, their descriptions and their hints, registered by
`mcp_server.build_server` beside the others through `register`. The names and arguments are the
agent-facing contract; descriptions stay short (every tool list is sent on every turn).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import Field

from agenthub.client.client import AgentHubClient
from agenthub.client.models import Claim, SearchHit

T = TypeVar("T")


class Tools(Protocol):
    """What these tools use of `mcp_server.Tools`: its client, and its call wrapper that turns
    the SDK's errors into the tool errors the model reads."""

    @property
    def client(self) -> AgentHubClient: ...

    async def _call(
        self, work: Awaitable[T], room: str | None = None, agent: str | None = None
    ) -> T: ...


TTL_MIN_S = 1
TTL_MAX_S = 86_400
SEARCH_LIMIT_MAX = 50
SEARCH_PREVIEW_CHARS = 1_000  # of each body found; read_message(room, seq) reads it whole
SEARCH_BUDGET_CHARS = 40_000

RoomParam = Annotated[str, Field(description="The room's slug (e.g. 'ops') or its id.")]
ResourceParam = Annotated[
    str,
    Field(min_length=1, max_length=256, description="What to claim: a file path, a task id…"),
]


def _claim(claim: Claim) -> dict[str, Any]:
    return {
        "resource": claim.resource,
        "holder": claim.agent_name,
        "exclusive": claim.exclusive,
        "expiresAt": claim.to_wire()["expiresAt"],
    }


def _hit(hit: SearchHit) -> dict[str, Any]:
    body = hit.message.body
    out: dict[str, Any] = {
        "room": hit.room_slug,
        "seq": hit.message.seq,
        "sender": hit.sender_name,
        "body": body[:SEARCH_PREVIEW_CHARS],
        "createdAt": hit.message.to_wire()["createdAt"],
    }
    if len(body) > SEARCH_PREVIEW_CHARS:
        out["truncated"] = True
    return out


class ClaimTools:
    def __init__(self, tools: Tools) -> None:
        self.tools = tools

    async def claim(
        self,
        room: RoomParam,
        resource: ResourceParam,
        ttl_seconds: Annotated[
            int, Field(ge=TTL_MIN_S, le=TTL_MAX_S, description="How long, in seconds.")
        ],
        exclusive: Annotated[
            bool, Field(description="false: share it with other non-exclusive claims.")
        ] = True,
    ) -> dict[str, Any]:
        t = self.tools
        made = await t._call(t.client.claim(room, resource, ttl_seconds, exclusive=exclusive), room)
        return {"room": room, **_claim(made)}

    async def release(self, room: RoomParam, resource: ResourceParam) -> dict[str, Any]:
        t = self.tools
        await t._call(t.client.release(room, resource), room)
        return {"room": room, "released": resource}

    async def list_claims(self, room: RoomParam) -> dict[str, Any]:
        t = self.tools
        found = await t._call(t.client.claims(room), room)
        return {"room": room, "claims": [_claim(c) for c in found]}

    async def search_messages(
        self,
        query: Annotated[
            str, Field(min_length=1, max_length=256, description="Words that must all appear.")
        ],
        room: Annotated[str | None, Field(description="Only this room (slug or id).")] = None,
        limit: Annotated[int, Field(ge=1, le=SEARCH_LIMIT_MAX)] = 20,
    ) -> dict[str, Any]:
        t = self.tools
        page = await t._call(t.client.search(query, room=room, limit=limit), room)
        results: list[dict[str, Any]] = []
        used = 0
        for hit in page.hits:
            item = _hit(hit)
            size = len(json.dumps(item, ensure_ascii=False))
            if results and used + size > SEARCH_BUDGET_CHARS:
                break
            results.append(item)
            used += size
        return {"results": results, "more": page.next_cursor is not None}


DESCRIPTIONS = {
    "claim": "Claim a resource (file path, task id) in a room for ttl_seconds so others leave "
    "it alone; claim again to renew. Fails naming the holder if someone else holds it.",
    "release": "Release your claim on a resource in a room as soon as you are done with it, "
    "so others may take it.",
    "list_claims": "List a room's live claims (resource, holder, exclusive, expiresAt): check "
    "before working on a shared resource.",
    "search_messages": "Full-text search of messages in your rooms, best matches first: room, "
    "seq, sender, body (cut at 1000 characters; read_message for the rest).",
}
READ_ONLY = {"list_claims", "search_messages"}
NOT_IDEMPOTENT: set[str] = set()
