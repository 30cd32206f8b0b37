"""The hub's own MCP endpoint (`/mcp`, Streamable HTTP) driven by the `mcp` client SDK against
a real server, on both backends: the same tools as `agenthub mcp`, a conversation, errors that
guide, and the edge's refusals (no token, a revoked token mid-session, a foreign Origin,
another agent's session, an oversized body)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from agenthub.mcp.tools import CORE, TOOLS
from tests.client.test_mcp import WAIT, as_agent, call, fails, mcp_session
from tests.support import Agent, Server

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@asynccontextmanager
async def remote(
    server: Server, token: str, query: str = "", mode: str = "legacy"
) -> AsyncIterator[Client]:
    """An MCP session with the hub itself, as Claude Code's `--transport http` opens one (the
    initialize handshake: `mode="legacy"`; "auto" speaks the 2026 era, without sessions)."""
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        url = f"{server.base_url}/mcp{query}"
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, read_timeout_seconds=WAIT + 10, mode=mode) as client:
            yield client


@asynccontextmanager
async def edge_session(
    edge: str, server: Server, agent: Agent, home: Path
) -> AsyncIterator[Client]:
    """An MCP session as `agent` through either edge: `stdio` (`agenthub mcp`, the SDK) or
    `http` (the hub's `/mcp`, the services in-process)."""
    if edge == "stdio":
        async with mcp_session(as_agent(server, agent), home) as client:
            yield client
    else:
        async with remote(server, agent.token) as client:
            yield client


EDGES = pytest.mark.parametrize("edge", ["stdio", "http"])


def raw_post(server: Server, headers: dict[str, str], body: Any = INIT) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/mcp", json=body, headers={**ACCEPT, **headers}, timeout=WAIT
    )


def described(tools: list[Any]) -> dict[str, Any]:
    return {t.name: (t.description, t.input_schema, t.output_schema, t.annotations) for t in tools}


async def test_the_endpoint_lists_the_same_tools_as_agenthub_mcp(
    server: Server, alice: Agent, tmp_path: Path
) -> None:
    async with remote(server, alice.token) as hub:
        over_http = (await hub.list_tools()).tools
    async with mcp_session(as_agent(server, alice), tmp_path) as local:
        over_stdio = (await local.list_tools()).tools
    assert [t.name for t in over_http] == [spec.name for spec in TOOLS]
    assert described(over_http) == described(over_stdio)
    for tool in over_http:
        assert tool.output_schema is not None, tool.name
        assert tool.output_schema["type"] == "object"
    async with remote(server, alice.token, "?tools=core") as lean:
        core = [t.name for t in (await lean.list_tools()).tools]
    assert core == [spec.name for spec in TOOLS if spec.core]
    assert set(core) == {
        "list_rooms",
        "read_messages",
        "read_message",
        "send_message",
        "wait_for_messages",
        "check_inbox",
    }
    async with mcp_session({**as_agent(server, alice), "AGENTHUB_MCP_TOOLS": CORE}, tmp_path) as s:
        assert [t.name for t in (await s.list_tools()).tools] == core


async def test_two_agents_converse_over_the_endpoint(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice, bob)["slug"]
    async with remote(server, alice.token) as a, remote(server, bob.token) as b:
        assert (await call(a, "list_rooms"))["you"] == alice.name
        start = (await call(b, "read_messages", room=room))["lastSeq"]
        bob_hears = asyncio.create_task(
            call(b, "wait_for_messages", room=room, after_seq=start, timeout_seconds=WAIT)
        )
        await asyncio.sleep(0.5)
        asked = await call(a, "send_message", room=room, body="Bob, what is 6 x 7?")
        heard = await bob_hears
        assert [(m["sender"], m["body"]) for m in heard["messages"]] == [
            (alice.name, "Bob, what is 6 x 7?")
        ]
        assert heard["timedOut"] is False
        alice_hears = asyncio.create_task(
            call(a, "wait_for_messages", room=room, after_seq=asked["seq"], timeout_seconds=WAIT)
        )
        # Her own word during the wait does not end it.
        mine = await asyncio.to_thread(
            alice.post, f"/api/v1/rooms/{room}/messages", {"body": "(hm)"}
        )
        assert mine.status_code == 201
        answered = await call(b, "send_message", room=room, body="42")
        reply = await alice_hears
        assert [(m["sender"], m["body"]) for m in reply["messages"]] == [
            (alice.name, "(hm)"),
            (bob.name, "42"),
        ]
        assert reply["lastSeq"] == answered["seq"] == 3
        # Stored once each, through the one send path: REST sees exactly these.
        stored = bob.get(f"/api/v1/rooms/{room}/messages").json()["messages"]
        assert [m["body"] for m in stored[::-1]] == ["Bob, what is 6 x 7?", "(hm)", "42"]
        # Both sessions keep their agents present.
        here = await call(a, "who_is_here", room=room)
        assert sorted(here["present"]) == sorted([alice.name, bob.name])
        made = await call(a, "create_room", slug=room + "-x")
        assert (await call(a, "add_member", room=made["room"]["slug"], agent=bob.name))[
            "member"
        ] == bob.name
        quiet = await call(a, "wait_for_messages", room=room, after_seq=3, timeout_seconds=1)
        assert (quiet["messages"], quiet["timedOut"], quiet["lastSeq"]) == ([], True, 3)


async def test_errors_name_the_argument_and_the_fix(
    server: Server, alice: Agent, bob: Agent
) -> None:
    bobs = server.new_room(bob)["slug"]
    mine = server.new_room(alice)["slug"]
    async with remote(server, alice.token) as hub:
        text = await fails(hub, "read_messages", room=bobs)
        assert f"not a member of room '{bobs}'" in text
        assert "ask a member" in text
        text = await fails(hub, "send_message", room="no-such-room", body="hi")
        assert "does not exist" in text
        assert "list_rooms" in text
        text = await fails(hub, "read_messages", room=mine, limit=1000)
        assert "argument 'limit'" in text
        assert "200" in text
        assert "pydantic" not in text
        assert "http" not in text
        text = await fails(hub, "wait_for_messages", room=mine)
        assert "argument 'after_seq' is required" in text
        text = await fails(hub, "send_message", room=mine, body=" \n\t ")
        assert "whitespace" in text
        text = await fails(hub, "send_message", room=mine, body="x" * 70_000)
        assert "65,536 bytes" in text
        assert "split" in text
        assert "1048576" not in text
        assert "1 MiB" not in text
        text = await fails(hub, "create_room", slug="Not A Slug")
        assert "argument 'slug'" in text
        text = await fails(hub, "add_member", room=mine, agent="nobody-at-all")
        assert "list_agents" in text
        text = await fails(hub, "wait_for_messages", room=mine, after_seq=99)
        assert "lastSeq" in text
    stored = alice.get(f"/api/v1/rooms/{mine}/messages").json()["messages"]
    assert stored == []  # nothing refused was stored


async def test_stdio_refuses_bodies_the_same_way(
    server: Server, alice: Agent, tmp_path: Path
) -> None:
    mine = server.new_room(alice)["slug"]
    async with mcp_session(as_agent(server, alice), tmp_path) as local:
        assert "whitespace" in await fails(local, "send_message", room=mine, body="   ")
        text = await fails(local, "send_message", room=mine, body="é" * 40_000)
        assert "65,536 bytes" in text
        text = await fails(local, "send_message", room=mine, body="x" * 1_200_000)
        assert "65,536 bytes" in text
        assert "split" in text
        text = await fails(local, "read_messages", room=mine, limit=0)
        assert "argument 'limit'" in text
        assert "pydantic" not in text


def test_no_token_wrong_token_and_foreign_origin_are_refused(server: Server, alice: Agent) -> None:
    r = raw_post(server, {})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert "Authorization: Bearer" in r.json()["error"]["message"]
    assert r.headers["www-authenticate"] == "Bearer"
    r = raw_post(server, {"Authorization": "Bearer agt_AAAAAA_" + "x" * 43})
    assert r.status_code == 401
    auth = {"Authorization": f"Bearer {alice.token}"}
    r = raw_post(server, {**auth, "Origin": "http://evil.example"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    assert "mcp-session-id" not in r.headers
    r = raw_post(server, {**auth, "Origin": "http://localhost:3000"})
    assert r.status_code == 200, r.text
    assert r.headers["mcp-session-id"]
    r = raw_post(server, auth)  # no Origin: an MCP client outside a browser
    assert r.status_code == 200, r.text


def test_a_session_belongs_to_its_agent(server: Server, alice: Agent, bob: Agent) -> None:
    r = raw_post(server, {"Authorization": f"Bearer {alice.token}"})
    assert r.status_code == 200
    session = r.headers["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    theirs = {
        "Authorization": f"Bearer {bob.token}",
        "Mcp-Session-Id": session,
        "Mcp-Protocol-Version": "2025-06-18",
    }
    r = raw_post(server, theirs, listing)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_an_oversized_request_is_refused_before_it_is_read(server: Server, alice: Agent) -> None:
    body = {**INIT, "params": {**INIT["params"], "pad": "x" * 1_100_000}}  # type: ignore[dict-item]
    r = raw_post(server, {"Authorization": f"Bearer {alice.token}"}, body)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


async def test_a_revoked_token_is_refused_mid_session(
    server: Server, alice: Agent, bob: Agent
) -> None:
    token = server.admin.post(f"/api/v1/agents/{alice.name}/tokens", {}).json()
    room = server.new_room(alice, bob)["slug"]
    async with remote(server, token["token"]) as hub:
        assert (await call(hub, "list_rooms"))["you"] == alice.name
        here = bob.get(f"/api/v1/rooms/{room}/members")
        assert here.status_code == 200
        r = server.admin.delete(f"/api/v1/tokens/{token['prefix']}")
        assert r.status_code == 204
        # The client reports the hub's 401 as a failed request (the SDK's MCPError).
        with pytest.raises(MCPError):
            async with asyncio.timeout(WAIT):
                await hub.call_tool("list_rooms", {})
    # What the client was told, and a new session with the token is refused too.
    r = raw_post(server, {"Authorization": f"Bearer {token['token']}"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert "revoked" in r.json()["error"]["message"]


async def test_an_open_session_keeps_its_agent_present(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice, bob)["slug"]
    async with remote(server, bob.token) as b:
        async with remote(server, alice.token) as a:
            await call(a, "list_rooms")
            here = await call(b, "who_is_here", room=room)
            assert alice.name in here["present"]
        # Alice's client closed its session (DELETE): she is no longer present.
        for _ in range(50):
            here = await call(b, "who_is_here", room=room)
            if alice.name not in here["present"]:
                break
            await asyncio.sleep(0.2)
        assert alice.name not in here["present"]
        assert bob.name in here["present"]


async def test_wait_reports_progress_when_asked(server: Server, alice: Agent) -> None:
    room = server.new_room(alice)["slug"]
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total, message))

    async with remote(server, alice.token) as hub:
        async with asyncio.timeout(WAIT):
            result = await hub.call_tool(
                "wait_for_messages",
                {"room": room, "after_seq": 0, "timeout_seconds": 12},
                progress_callback=progress,
            )
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["timedOut"] is True
    assert len(seen) >= 2  # at least one every 10 s of the wait
    assert all(total == 12 for _, total, _ in seen)
    assert [done for done, _, _ in seen] == sorted(done for done, _, _ in seen)


def test_audit_and_metrics_cover_the_endpoint(server: Server, alice: Agent) -> None:
    r = raw_post(server, {"Authorization": f"Bearer {alice.token}"})
    assert r.status_code == 200
    logins = server.admin.get(
        "/api/v1/audit-events", params={"type": "login", "agent": alice.name}
    ).json()["events"]
    assert logins, "the MCP session's login is audited"
    assert logins[0]["payload"]["ip"] == "127.0.0.1"
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=WAIT).text
    assert 'agenthub_http_requests_total{method="POST",route="/mcp",status_code="200"}' in metrics
    assert "agenthub_mcp_sessions" in metrics


async def test_the_2026_protocol_era_is_served_without_sessions(
    server: Server, alice: Agent, bob: Agent
) -> None:
    """The `mcp` SDK's own default ("auto") speaks the 2026 era: every request stands alone,
    authenticated like the others."""
    room = server.new_room(alice, bob)["slug"]
    async with remote(server, alice.token, mode="auto") as hub:
        assert hub.protocol_version >= "2026"
        assert (await call(hub, "list_rooms"))["you"] == alice.name
        sent = await call(hub, "send_message", room=room, body="from the 2026 era")
    stored = bob.get(f"/api/v1/rooms/{room}/messages").json()["messages"]
    assert [(m["seq"], m["body"]) for m in stored] == [(sent["seq"], "from the 2026 era")]
