"""Coordination through the agent-facing clients, on both backends: two MCP sessions, through
either MCP edge, coordinating a task (a claim, a mention, a threaded reply, a direct message
and an acknowledgement), the MCP tools' refusals, the agent CLI's `inbox`, `dm`, `reply` and
`ack`, and the SDK."""

from __future__ import annotations

from pathlib import Path

import pytest

from agenthub.client import AgentHubClient, InvalidRequest
from tests.client.test_agent_cli import agent_env, assert_clean_failure, json_lines, run
from tests.client.test_mcp import call, fails
from tests.mcp.test_http_endpoint import EDGES, edge_session
from tests.support import Agent, Server

COORDINATION_TOOLS = {"check_inbox", "send_direct_message", "ack", "pending_acks"}


@EDGES
async def test_two_mcp_sessions_coordinate_a_task(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path, edge: str
) -> None:
    room = server.new_room(alice, bob)["slug"]
    async with (
        edge_session(edge, server, alice, tmp_path / "a") as a,
        edge_session(edge, server, bob, tmp_path / "b") as b,
    ):
        listed = {t.name: t for t in (await a.list_tools()).tools}
        assert set(listed) >= COORDINATION_TOOLS
        for name in COORDINATION_TOOLS:  # every token of a tool list costs every turn
            assert len(listed[name].description or "") <= 160, name
        # Alice claims the task before handing it out: nobody else picks it up meanwhile.
        held = await call(a, "claim", room=room, resource="task/migrate-schema", ttl_seconds=600)
        assert (held["holder"], held["exclusive"]) == (alice.name, True)
        task = await call(
            a,
            "send_message",
            room=room,
            body=f"@{bob.name} please migrate the schema, @no-such-one too",
            ack_from=[bob.name],
        )
        assert "@no-such-one" in task["note"]

        inbox = await call(b, "check_inbox")
        assert [(i["room"], i["seq"], i["sender"], i["why"]) for i in inbox["items"]] == [
            (room, task["seq"], alice.name, ["mention", "ack"])
        ]
        assert inbox["items"][0]["body"].startswith(f"@{bob.name} please")
        assert inbox["unread"] == 0  # it marked what it returned read
        assert (await call(b, "check_inbox"))["items"] == []
        pending = await call(b, "pending_acks")
        assert [(p["room"], p["seq"]) for p in pending["pending"]] == [(room, task["seq"])]
        # Bob sees who holds the task; it is not his to take until she hands it over.
        claims = await call(b, "list_claims", room=room)
        assert [(c["resource"], c["holder"]) for c in claims["claims"]] == [
            ("task/migrate-schema", alice.name)
        ]
        refused = await fails(b, "claim", room=room, resource="task/migrate-schema", ttl_seconds=60)
        assert alice.name in refused
        released = await call(a, "release", room=room, resource="task/migrate-schema")
        assert released["released"] == "task/migrate-schema"
        mine = await call(b, "claim", room=room, resource="task/migrate-schema", ttl_seconds=600)
        assert mine["holder"] == bob.name

        answer = await call(
            b, "send_message", room=room, body="on it: one question", reply_to=task["seq"]
        )
        direct = await call(b, "send_direct_message", agent=alice.name, body="keep the old table?")
        assert direct["room"].startswith("dm-")
        done = await call(b, "ack", room=room, seq=task["seq"], status="done", note="migrated")
        assert done["status"] == "done"
        await call(b, "release", room=room, resource="task/migrate-schema")
        assert (await call(a, "list_claims", room=room))["claims"] == []
        assert (await call(b, "pending_acks"))["pending"] == []

        seen = await call(a, "check_inbox", limit=10)
        assert [(i["room"], i["seq"], i["sender"], i["why"]) for i in seen["items"]] == [
            (room, answer["seq"], bob.name, ["reply"]),
            (direct["room"], direct["seq"], bob.name, ["direct"]),
        ]
        assert seen["items"][0]["replyTo"] == task["seq"]
        await call(a, "send_direct_message", agent=bob.name, body="yes, keep it")
        latest = await call(b, "check_inbox", unread_only=False, limit=5)
        assert latest["items"][-1]["body"] == "yes, keep it"

    thread = alice.get(f"/api/v1/rooms/{room}/messages/{task['seq']}/thread").json()
    assert [m["seq"] for m in thread["replies"]] == [answer["seq"]]
    acks = thread["root"]["acks"]
    assert [(x["agentId"], x["status"], x["note"]) for x in acks] == [(bob.id, "done", "migrated")]


@EDGES
async def test_mcp_coordination_refusals_say_what_to_do(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path, edge: str
) -> None:
    room = server.new_room(alice, bob)["slug"]
    plain = alice.post(f"/api/v1/rooms/{room}/messages", {"body": "no ack asked"}).json()
    async with edge_session(edge, server, bob, tmp_path) as b:
        assert "yourself" in await fails(b, "send_direct_message", agent=bob.name, body="x")
        assert "list_agents" in await fails(
            b, "send_direct_message", agent="no-such-agent-zz", body="x"
        )
        text = await fails(b, "ack", room=room, seq=plain["seq"], status="done")
        assert "did not ask you" in text
        assert "no message #99" in await fails(b, "send_message", room=room, body="x", reply_to=99)
        assert "not a member" in await fails(
            b, "send_message", room=room, body="x", ack_from=[server.new_agent().name]
        )


def test_the_agent_cli_coordinates(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    room = server.new_room(alice, bob)["slug"]
    as_alice = agent_env(tmp_path / "a", alice, server.base_url)
    as_bob = agent_env(tmp_path / "b", bob, server.base_url)

    sent = run(as_alice, "send", room, f"@{bob.name} check \x1b[2Jthis", "--ack-from", bob.name)
    assert sent.returncode == 0, sent.stderr
    inbox = run(as_bob, "inbox")
    assert inbox.returncode == 0, inbox.stderr
    assert "[mention, ack]" in inbox.stdout
    assert "\x1b" not in inbox.stdout  # hostile text is escaped
    assert "\\x1b[2J" in inbox.stdout
    assert run(as_bob, "inbox").stdout.strip() == "nothing new"  # shown, so read
    pending = json_lines(run(as_bob, "inbox", "--pending", "--json").stdout)
    assert [(p["room"], p["seq"]) for p in pending] == [(room, 1)]

    replied = run(as_bob, "reply", room, "1", "done soon", "--json")
    assert replied.returncode == 0, replied.stderr
    assert json_lines(replied.stdout)[0]["replyTo"] == 1
    acked = run(as_bob, "ack", room, "1", "done", "--note", "all good")
    assert acked.returncode == 0, acked.stderr
    assert "done" in acked.stdout
    dm = run(as_bob, "dm", alice.name, "--json", stdin="private word\n")
    assert dm.returncode == 0, dm.stderr
    assert json_lines(dm.stdout)[0]["room"].startswith("dm-")

    items = json_lines(run(as_alice, "inbox", "--json").stdout)
    assert [(i["reasons"], i["sender"], i["body"]) for i in items] == [
        (["reply"], bob.name, "done soon"),
        (["direct"], bob.name, "private word"),
    ]
    assert "yourself" in assert_clean_failure(run(as_bob, "dm", bob.name, "x"))
    assert "did not ask you" in assert_clean_failure(run(as_alice, "ack", room, "1", "done"))
    assert_clean_failure(run(as_bob, "ack", room, "1", "maybe"), 2)
    note = run(as_alice, "send", room, "hey @not-a-member-x")
    assert note.returncode == 0
    assert "@not-a-member-x" in note.stderr


async def test_the_sdk_coordinates(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)["slug"]
    async with (
        AgentHubClient(server.base_url, alice.token) as a,
        AgentHubClient(server.base_url, bob.token) as b,
    ):
        asked = await a.send(room, f"@{bob.name} @ghost-x review?", ack_from=[bob.name])
        assert asked.mentions == (bob.id,)
        assert asked.ignored_mentions == ("ghost-x",)
        assert [x.agent_id for x in asked.acks] == [bob.id]
        page = await b.inbox(unread_only=True)
        assert [(i.reasons, i.message.seq) for i in page.items] == [(("mention", "ack"), 1)]
        assert await b.mark_inbox_read(page.items[-1].id) == 0
        assert [p.message.seq for p in await b.pending_acks()] == [1]
        reply = await b.send(room, "looks fine", reply_to=1)
        answer = await b.ack(room, 1, "done", "approved")
        assert (answer.status, answer.note, answer.agent_id) == ("done", "approved", bob.id)
        thread = await a.thread(room, reply.seq)
        assert (thread.root.seq, [m.seq for m in thread.replies]) == (1, [reply.seq])
        assert thread.root.acks[0].status == "done"
        direct = await a.send_direct(bob.name, "thanks")
        rooms = {r.id: r for r in await b.rooms()}
        assert rooms[direct.room_id].kind == "direct"
        with pytest.raises(InvalidRequest, match="no message #42"):
            await a.send(room, "x", reply_to=42)
