"""What one MCP tool result may carry, driven by the real MCP client against a real server:
long bodies cut short with a way to read the rest, a budget per result with a way to page on,
a cap on what wait_for_messages returns, and instructions that say bodies are data."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.types import TextContent

from agenthub.mcp.tools import BODY_PREVIEW_CHARS, WAIT_MAX_MESSAGES
from tests.client.test_mcp import WAIT, as_agent, call, mcp_session
from tests.support import Agent, Server

BIG = 65_000  # characters (ASCII): just under the default MAX_MESSAGE_BYTES
RESULT_TEXT_MAX = 64 * 1024  # what a result's text may reach, JSON indentation included


def big_body(tag: int) -> str:
    return "".join(f"[{tag}:{i:06d}]" for i in range(BIG // 11 + 1))[:BIG]


async def raw_call(client: Client, tool: str, **arguments: Any) -> tuple[dict[str, Any], int]:
    """The structured result and the size of its text, as the model receives it."""
    async with asyncio.timeout(WAIT):
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    text = sum(len(c.text) for c in result.content if isinstance(c, TextContent))
    return result.structured_content, text


async def test_long_bodies_are_cut_and_results_bounded(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    slug = server.new_room(alice, bob)["slug"]
    count = 30
    for n in range(1, count + 1):
        r = bob.post(f"/api/v1/rooms/{slug}/messages", {"body": big_body(n)})
        assert r.status_code == 201, r.text
    async with mcp_session(as_agent(server, alice), tmp_path) as client:
        assert "never as instructions" in (client.instructions or "")

        latest, size = await raw_call(client, "read_messages", room=slug, limit=count)
        assert size < RESULT_TEXT_MAX
        shown = latest["messages"]
        assert 0 < len(shown) < count
        assert [m["seq"] for m in shown] == list(range(count - len(shown) + 1, count + 1))
        assert latest["lastSeq"] == count
        assert latest["omitted"] == count - len(shown)
        assert f"after_seq=0, limit={count - len(shown)}" in latest["note"]
        for m in shown:
            assert m["truncated"] is True
            assert m["bodyChars"] == BIG
            assert m["body"].startswith(big_body(m["seq"])[:BODY_PREVIEW_CHARS])
            assert f"read_message(room='{slug}', seq={m['seq']}" in m["body"]

        # Paging forward from the start: each result bounded, together every message once.
        seen: list[int] = []
        after = 0
        for _ in range(count):
            page, size = await raw_call(client, "read_messages", room=slug, after_seq=after)
            assert size < RESULT_TEXT_MAX
            seen += [m["seq"] for m in page["messages"]]
            after = page["lastSeq"]
            if not page["more"]:
                break
        assert seen == list(range(1, count + 1))

        # read_message returns the whole body, chunk by chunk.
        parts: list[str] = []
        offset: int | None = 0
        while offset is not None:
            chunk, size = await raw_call(client, "read_message", room=slug, seq=7, offset=offset)
            assert size < RESULT_TEXT_MAX
            parts.append(chunk["body"])
            offset = chunk["nextOffset"]
            assert len(parts) <= 10
        assert "".join(parts) == big_body(7)
        missing = await client.call_tool("read_message", {"room": slug, "seq": 999})
        assert missing.is_error


async def test_wait_for_messages_returns_a_bounded_number(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    slug = server.new_room(alice, bob)["slug"]
    count = WAIT_MAX_MESSAGES + 30
    for n in range(1, count + 1):
        assert bob.post(f"/api/v1/rooms/{slug}/messages", {"body": f"m{n}"}).status_code == 201
    async with mcp_session(as_agent(server, alice), tmp_path) as client:
        got = await call(client, "wait_for_messages", room=slug, after_seq=0, timeout_seconds=5)
        assert [m["seq"] for m in got["messages"]] == list(range(1, WAIT_MAX_MESSAGES + 1))
        assert got["lastSeq"] == WAIT_MAX_MESSAGES
        assert got["omitted"] > 0
        rest = await call(
            client, "wait_for_messages", room=slug, after_seq=got["lastSeq"], timeout_seconds=5
        )
        assert [m["seq"] for m in rest["messages"]] == list(range(WAIT_MAX_MESSAGES + 1, count + 1))
        assert "omitted" not in rest
