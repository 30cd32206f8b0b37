"""`agenthub mcp` driven over stdio by the `mcp` client SDK, against a real server, on both
backends: the tools, their errors, and two MCP sessions holding a conversation."""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, TextContent

from tests.faults import proxy_to
from tests.support import Agent, Server, free_port, uniq

REPO = Path(__file__).resolve().parents[2]
WAIT = 30.0  # seconds: the bound on one tool call
TOOLS = {
    "list_rooms",
    "read_messages",
    "read_message",
    "send_message",
    "wait_for_messages",
    "list_agents",
    "who_is_here",
    "create_room",
    "add_member",
    # claims and search
    "claim",
    "release",
    "list_claims",
    "search_messages",
}
# Coordination's tools (tests/coordination): short descriptions on purpose.
TOOLS |= {"check_inbox", "send_direct_message", "ack", "pending_acks"}
SHORT = {"check_inbox", "send_direct_message", "ack", "pending_acks"}


@asynccontextmanager
async def mcp_session(env: dict[str, str], home: Path) -> AsyncIterator[Client]:
    """`python -m agenthub mcp` as an MCP client launches it, with only `env` configured."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "agenthub", "mcp"],
        env={"XDG_CONFIG_HOME": str(home / "config"), "HOME": str(home), **env},
        cwd=str(REPO),
    )
    async with Client(params, read_timeout_seconds=WAIT + 10) as client:
        yield client


def as_agent(server: Server, agent: Agent) -> dict[str, str]:
    return {"AGENTHUB_URL": server.base_url, "AGENTHUB_TOKEN": agent.token}


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """A successful call's structured result (fails the test on a tool error)."""
    async with asyncio.timeout(WAIT):
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, error_text(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def fails(client: Client, tool: str, **arguments: Any) -> str:
    """A failed call's text, as the model reads it."""
    async with asyncio.timeout(WAIT):
        result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return error_text(result)


def iter_queue(lines: queue.Queue[str]) -> list[str]:
    out = []
    while not lines.empty():
        out.append(lines.get())
    return out


def error_text(result: CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_tools_are_listed_with_descriptions_for_a_model(
    server: Server, alice: Agent, tmp_path: Path
) -> None:
    async with mcp_session(as_agent(server, alice), tmp_path) as client:
        listed = (await client.list_tools()).tools
    assert {tool.name for tool in listed} == TOOLS
    for tool in listed:
        assert tool.description is not None
        assert len(tool.description) > (20 if tool.name in SHORT else 80), tool.name
    schema = {tool.name: tool.input_schema for tool in listed}
    assert schema["wait_for_messages"]["required"] == ["room", "after_seq"]
    assert "description" in schema["read_messages"]["properties"]["after_seq"]


async def test_every_tool_against_a_real_server(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    slug = uniq("mcp")
    async with mcp_session(as_agent(server, alice), tmp_path) as client:
        made = await call(client, "create_room", slug=slug, name="MCP room")
        assert made["room"]["slug"] == slug
        listed = await call(client, "list_rooms")
        assert listed["you"] == alice.name
        assert slug in [r["slug"] for r in listed["rooms"]]
        agents = await call(client, "list_agents")
        assert {alice.name, bob.name} <= {a["name"] for a in agents["agents"]}
        assert (await call(client, "add_member", room=slug, agent=bob.name))["member"] == bob.name

        sent = await call(client, "send_message", room=slug, body="hello from MCP")
        assert sent["seq"] == 1
        r = bob.post(f"/api/v1/rooms/{slug}/messages", {"body": "hello back"})
        assert r.status_code == 201

        latest = await call(client, "read_messages", room=slug)
        assert [(m["seq"], m["sender"], m["body"]) for m in latest["messages"]] == [
            (1, alice.name, "hello from MCP"),
            (2, bob.name, "hello back"),
        ]
        assert (latest["lastSeq"], latest["more"]) == (2, False)
        after = await call(client, "read_messages", room=slug, after_seq=1, limit=5)
        assert [m["body"] for m in after["messages"]] == ["hello back"]

        replies = await call(client, "wait_for_messages", room=slug, after_seq=1)
        assert [m["body"] for m in replies["messages"]] == ["hello back"]
        assert replies["timedOut"] is False
        quiet = await call(client, "wait_for_messages", room=slug, after_seq=2, timeout_seconds=1)
        assert (quiet["messages"], quiet["timedOut"], quiet["lastSeq"]) == ([], True, 2)

        here = await call(client, "who_is_here", room=slug)
        assert alice.name in here["present"]  # the MCP session itself is present
        assert sorted(here["members"]) == sorted([alice.name, bob.name])


async def test_failures_say_what_went_wrong_and_what_to_do(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    bobs = server.new_room(bob)
    mine = server.new_room(alice)
    async with mcp_session(as_agent(server, alice), tmp_path) as client:
        text = await fails(client, "read_messages", room=bobs["slug"])
        assert f"not a member of room '{bobs['slug']}'" in text
        assert "ask a member" in text
        text = await fails(client, "send_message", room="no-such-room", body="hi")
        assert "does not exist" in text
        assert "list_rooms" in text
        text = await fails(client, "add_member", room=mine["slug"], agent="nobody-at-all")
        assert "list_agents" in text
        text = await fails(client, "create_room", slug=mine["slug"])
        assert "already taken" in text
        assert "choose another slug" in text
        text = await fails(client, "wait_for_messages", room=mine["slug"], after_seq=99)
        assert "lastSeq" in text
        text = await fails(client, "read_messages", room=mine["slug"], limit=1000)
        assert "limit" in text
    bad = {"AGENTHUB_URL": server.base_url, "AGENTHUB_TOKEN": "agt_AAAAAA_" + "x" * 43}
    async with mcp_session(bad, tmp_path) as client:
        assert "API token" in await fails(client, "list_rooms")
    down = {"AGENTHUB_URL": f"http://127.0.0.1:{free_port()}", "AGENTHUB_TOKEN": alice.token}
    async with mcp_session(down, tmp_path) as client:
        assert "is running" in await fails(client, "list_agents")


def test_unconfigured_server_speaks_only_protocol_on_stdout(tmp_path: Path) -> None:
    """Raw stdio: every stdout line is JSON-RPC; the configuration problem goes to stderr and
    to the model as a tool error."""
    requests = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "list_rooms", "arguments": {}},
        },
    ]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "agenthub", "mcp"],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(
        target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True
    )
    reader.start()
    try:
        for request in requests:
            proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        answers = [json.loads(lines.get(timeout=WAIT)) for _ in range(2)]
        proc.stdin.close()  # the client goes away: the server ends
        proc.wait(WAIT)
        reader.join(WAIT)  # every line the server wrote is in `lines` now
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        rest = "".join(iter_queue(lines))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert answers[0]["id"] == 1
    assert answers[0]["result"]["serverInfo"]["name"] == "agenthub"
    assert answers[1]["id"] == 2
    assert answers[1]["result"]["isError"] is True
    assert "AGENTHUB_URL" in answers[1]["result"]["content"][0]["text"]
    assert all(json.loads(line)["jsonrpc"] == "2.0" for line in rest.splitlines() if line)
    assert "not configured" in stderr
    assert "Traceback" not in stderr


async def test_two_agents_hold_a_conversation(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    room = server.new_room(alice, bob)["slug"]
    async with (
        proxy_to(server) as alice_net,  # to see when her wait listens, and what reaches her
        mcp_session({**as_agent(server, alice), "AGENTHUB_URL": alice_net.url}, tmp_path) as a,
        mcp_session(as_agent(server, bob), tmp_path / "bob") as b,
    ):
        start = (await call(b, "read_messages", room=room))["lastSeq"]
        assert start == 0
        # Bob listens before Alice speaks.
        bob_hears = asyncio.create_task(
            call(b, "wait_for_messages", room=room, after_seq=start, timeout_seconds=WAIT)
        )
        await asyncio.sleep(0.5)
        asked = await call(a, "send_message", room=room, body="Bob, what is 6 x 7?")
        heard = await bob_hears
        assert [(m["sender"], m["body"]) for m in heard["messages"]] == [
            (alice.name, "Bob, what is 6 x 7?")
        ]
        # Alice waits for the answer; while she waits she adds a word of her own, which her
        # wait (after_seq includes it) must not end on.
        await alice_net.until(lambda: 101 in alice_net.statuses)  # her presence socket
        sockets = alice_net.statuses.count(101)
        alice_hears = asyncio.create_task(
            call(a, "wait_for_messages", room=room, after_seq=asked["seq"], timeout_seconds=WAIT)
        )
        own_words = "(take your time)"
        alice_net.watch(own_words.encode())
        async with asyncio.timeout(WAIT):
            await alice_net.until(lambda: alice_net.statuses.count(101) > sockets)  # listening
            r = await asyncio.to_thread(
                alice.post, f"/api/v1/rooms/{room}/messages", {"body": own_words}
            )
            assert r.status_code == 201, r.text
            # Delivered to both of her sockets: the wait's, and her presence socket.
            await alice_net.until(lambda: alice_net.delivered(own_words.encode()) >= 2)
        await asyncio.wait({alice_hears}, timeout=1)
        assert not alice_hears.done(), "her own message ended the wait"
        answered = await call(b, "send_message", room=room, body="42")
        reply = await alice_hears
        assert [(m["seq"], m["sender"], m["body"]) for m in reply["messages"]] == [
            (r.json()["seq"], alice.name, own_words),
            (answered["seq"], bob.name, "42"),
        ]
        assert reply["timedOut"] is False
        thanks = await call(a, "send_message", room=room, body="thanks!")
        last = await call(
            b, "wait_for_messages", room=room, after_seq=answered["seq"], timeout_seconds=WAIT
        )
        assert [m["body"] for m in last["messages"]] == ["thanks!"]
        assert last["lastSeq"] == thanks["seq"] == 4
        # Both sessions keep their agent present in the room.
        for _ in range(50):
            here = await call(a, "who_is_here", room=room)
            if sorted(here["present"]) == sorted([alice.name, bob.name]):
                break
            await asyncio.sleep(0.2)
        assert sorted(here["present"]) == sorted([alice.name, bob.name])
