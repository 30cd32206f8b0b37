"""The tool definitions themselves (agenthub/mcp/tools.py), in-process: one registry serves both
edges, every tool has an output schema, refused arguments are explained by name, the lean
profile, and the edge's token cache."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import Context

from agenthub.auth.jwt import Principal
from agenthub.client.mcp_server import build_stdio_server
from agenthub.mcp import tools
from agenthub.mcp.http import TokenCache

SHORT = {
    "check_inbox",
    "send_direct_message",
    "ack",
    "pending_acks",
    "claim",
    "release",
    "list_claims",
    "search_messages",
}


async def _nowhere(ctx: Context) -> tools.Session:
    raise AssertionError("listing tools needs no session")


async def listed(server: Any) -> list[Any]:
    async with Client(server) as client:
        return list((await client.list_tools()).tools)


async def test_one_registry_serves_both_edges() -> None:
    remote = await listed(tools.build_server(_nowhere))
    local = await listed(build_stdio_server(None, "not configured", tools.FULL, channel=False))
    assert [t.name for t in remote] == [spec.name for spec in tools.TOOLS]
    assert [t.model_dump() for t in remote] == [t.model_dump() for t in local]
    for tool in remote:
        assert tool.output_schema is not None, tool.name
        assert tool.output_schema["type"] == "object"
        # Coordination's, claims' and search's are short on purpose: every tool list is sent
        # on every turn.
        assert len(tool.description or "") > (20 if tool.name in SHORT else 80), tool.name
        for name, prop in tool.input_schema["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"


async def test_the_lean_profile_is_read_send_wait() -> None:
    core = await listed(tools.build_server(_nowhere, tools.CORE))
    assert [t.name for t in core] == [
        "list_rooms",
        "read_messages",
        "read_message",
        "send_message",
        "wait_for_messages",
        "check_inbox",
    ]
    assert tools.profile_from_env({}) == tools.FULL
    assert tools.profile_from_env({"AGENTHUB_MCP_TOOLS": " Core "}) == tools.CORE
    with pytest.raises(ValueError, match="AGENTHUB_MCP_TOOLS must be one of core, full"):
        tools.profile_from_env({"AGENTHUB_MCP_TOOLS": "everything"})


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"room": "ops", "limit": 1000}, "argument 'limit' is invalid: input should be less"),
        ({"room": "ops", "limit": "many"}, "argument 'limit' is invalid: input should be a valid"),
        ({"limit": 5}, "argument 'room' is required"),
        ({"room": "ops", "after_seq": -1}, "argument 'after_seq' is invalid"),
    ],
)
async def test_refused_arguments_name_the_argument_not_pydantic(
    arguments: dict[str, Any], expected: str
) -> None:
    async def session(ctx: Context) -> tools.Session:
        return tools.Session(backend=None)  # type: ignore[arg-type]  # never reached

    async with Client(tools.build_server(session)) as client:
        result = await client.call_tool("read_messages", arguments)
    assert result.is_error
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert expected in text
    assert "call read_messages again" in text
    assert "pydantic" not in text
    assert "validation error" not in text
    assert "input_value" not in text


def test_the_token_cache_keeps_digests_until_the_session_would_end() -> None:
    cache = TokenCache(max_entries=2)
    alive = Principal(uuid.uuid4(), "agent", uuid.uuid4(), time.time() + 60)
    cache.put("agt_AAAAAA_secret", alive)
    assert cache.get("agt_AAAAAA_secret") == alive
    assert cache.get("agt_AAAAAA_other") is None
    assert all(isinstance(key, bytes) and b"secret" not in key for key in cache._entries)
    expired = Principal(uuid.uuid4(), "agent", uuid.uuid4(), time.time() - 1)
    cache.put("agt_BBBBBB_old", expired)
    assert cache.get("agt_BBBBBB_old") is None  # expired: verified again
    cache.put("agt_CCCCCC_1", alive)
    cache.put("agt_DDDDDD_2", alive)
    assert len(cache._entries) == 2  # bounded, least recently used out first
    assert alive.token_id is not None
    cache.forget({alive.token_id})
    assert cache.get("agt_DDDDDD_2") is None
