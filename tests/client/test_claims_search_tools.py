"""Claims and search from the agent side, on both backends against a real server: the SDK's
typed methods, the agent CLI's `claim` / `release` / `claims` / `search`, and the MCP tools
`claim`, `release`, `list_claims`, `search_messages` as a model calls them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agenthub.client import AgentHubClient, Claim, Conflict, InvalidRequest, NotFound
from tests.client.test_agent_cli import agent_env, assert_clean_failure, run
from tests.client.test_mcp import call, fails
from tests.mcp.test_http_endpoint import EDGES, edge_session
from tests.support import Agent, Server, uniq

COORDINATION_TOOLS = {"claim", "release", "list_claims", "search_messages"}


async def test_sdk_claims_and_search(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)["slug"]
    word = uniq("sdk").replace("-", "")
    async with (
        AgentHubClient(server.base_url, alice.token) as a,
        AgentHubClient(server.base_url, bob.token) as b,
    ):
        made = await a.claim(room, "docs/API.md", 60)
        assert isinstance(made, Claim)
        assert made.agent_name == alice.name
        assert made.exclusive
        with pytest.raises(Conflict, match=alice.name):
            await b.claim(room, "docs/API.md", 60)
        shared = await b.claim(room, "notes", 30, exclusive=False)
        assert not shared.exclusive
        assert {c.resource for c in await a.claims(room)} == {"docs/API.md", "notes"}
        renewed = await a.renew_claim(room, "docs/API.md", 600)
        assert renewed.expires_at > made.expires_at
        await a.release(room, "docs/API.md")
        with pytest.raises(NotFound):
            await a.release(room, "docs/API.md")
        with pytest.raises(InvalidRequest):
            await a.claim(room, "x", 0)

        await a.send(room, f"{word} the deploy plan")
        await b.send(room, f"{word} looks fine")
        page = await b.search(word, room=room)
        assert {h.message.body for h in page.hits} == {
            f"{word} the deploy plan",
            f"{word} looks fine",
        }
        assert {h.room_slug for h in page.hits} == {room}
        page = await b.search(f"{word} deploy", sender=alice.name, limit=1)
        assert [(h.sender_name, h.message.body) for h in page.hits] == [
            (alice.name, f"{word} the deploy plan")
        ]
        assert page.next_cursor is None
        with pytest.raises(InvalidRequest):
            await b.search("   ")


def test_cli_claim_release_and_search(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    room = server.new_room(alice, bob)["slug"]
    env_a = agent_env(tmp_path / "a", alice, server.base_url)
    env_b = agent_env(tmp_path / "b", bob, server.base_url)
    out = run(env_a, "claim", room, "src/app.py", "--ttl", "120", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["agentName"] == alice.name
    refused = assert_clean_failure(run(env_b, "claim", room, "src/app.py"))
    assert alice.name in refused
    assert "ask that agent to release it" in refused
    listed = run(env_b, "claims", room)
    assert listed.returncode == 0, listed.stderr
    assert "src/app.py" in listed.stdout
    assert alice.name in listed.stdout
    assert "exclusive" in listed.stdout
    assert run(env_a, "release", room, "src/app.py").returncode == 0
    assert run(env_b, "claim", room, "src/app.py", "--shared").returncode == 0
    bad_ttl = run(env_b, "claim", room, "x", "--ttl", "0")
    assert bad_ttl.returncode == 2, bad_ttl.stderr  # refused by the option parser itself
    assert "--ttl" in bad_ttl.stderr
    assert "Traceback" not in bad_ttl.stderr
    assert_clean_failure(run(env_a, "release", room, "never-claimed"))

    word = uniq("cli").replace("-", "")
    body = f"{word} \x1b]0;pwned\x07 done"
    assert run(env_a, "send", room, body).returncode == 0
    found = run(env_b, "search", word)
    assert found.returncode == 0, found.stderr
    assert f"{room} #" in found.stdout
    assert alice.name in found.stdout
    assert "\x1b" not in found.stdout  # another agent's text cannot drive the terminal
    as_json = run(env_b, "search", word, "--room", room, "--json")
    hit = json.loads(as_json.stdout.splitlines()[0])
    assert hit["body"] == body
    assert hit["room"] == room
    assert hit["sender"] == alice.name
    assert run(env_b, "search", uniq("absent")).stdout.strip() == "no messages found"
    assert_clean_failure(run(env_b, "search", "..."))


@EDGES
async def test_mcp_claim_and_search_tools(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path, edge: str
) -> None:
    room = server.new_room(alice, bob)["slug"]
    word = uniq("mcp").replace("-", "")
    async with (
        edge_session(edge, server, alice, tmp_path / "a") as a,
        edge_session(edge, server, bob, tmp_path / "b") as b,
    ):
        tools = {t.name: t for t in (await a.list_tools()).tools}
        assert set(tools) >= COORDINATION_TOOLS
        for name in COORDINATION_TOOLS:
            assert len(tools[name].description or "") <= 200, name
        assert set(tools["claim"].input_schema["properties"]) == {
            "room",
            "resource",
            "ttl_seconds",
            "exclusive",
        }
        assert set(tools["search_messages"].input_schema["properties"]) == {
            "query",
            "room",
            "limit",
        }

        made = await call(a, "claim", room=room, resource="task-7", ttl_seconds=300)
        assert made["holder"] == alice.name
        assert made["exclusive"] is True
        text = await fails(b, "claim", room=room, resource="task-7", ttl_seconds=60)
        assert alice.name in text
        assert "until" in text
        assert "ttl" in (await fails(b, "claim", room=room, resource="x", ttl_seconds=0)).lower()
        listed = await call(b, "list_claims", room=room)
        assert [(c["resource"], c["holder"]) for c in listed["claims"]] == [("task-7", alice.name)]
        assert (await call(a, "release", room=room, resource="task-7"))["released"] == "task-7"
        assert "hold no claim" in await fails(a, "release", room=room, resource="task-7")

        await call(a, "send_message", room=room, body=f"{word} migration is done")
        result = await call(b, "search_messages", query=word)
        assert result["results"] == [
            {
                "room": room,
                "seq": result["results"][0]["seq"],
                "sender": alice.name,
                "body": f"{word} migration is done",
                "createdAt": result["results"][0]["createdAt"],
            }
        ]
        assert result["more"] is False
        assert (await call(b, "search_messages", query=word, room=room))["results"]
        assert "query" in (await fails(b, "search_messages", query="")).lower()
