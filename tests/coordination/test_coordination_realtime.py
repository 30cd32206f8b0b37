"""Coordination over Socket.IO, on both backends: `inbox:new` for each new item, `ack:update`
to the room (the sender sees answers live), `direct:send` and `message:ack`."""

from __future__ import annotations

from typing import Any

from tests.coordination.test_coordination_http import stored
from tests.realtime.test_realtime import buffered, connected, next_event
from tests.support import Server

CALL_TIMEOUT = 10


async def test_a_mention_reaches_the_inbox_live(server: Server) -> None:
    alice, bob, carol = server.new_agent(), server.new_agent(), server.new_agent()
    room = server.new_room(alice, bob, carol)
    async with connected(server, alice) as a, connected(server, bob) as b:
        await next_event(b, "connected")
        ack = await a.call(
            "message:send",
            {"roomId": room["slug"], "body": f"@{bob.name} and @nobody-here, look"},
            timeout=CALL_TIMEOUT,
        )
        assert ack["ok"] is True, ack
        assert ack["message"]["mentions"] == [bob.id]
        assert ack["message"]["ignoredMentions"] == ["nobody-here"]
        message = await next_event(b, "message:new")
        assert "ignoredMentions" not in message
        item = await next_event(b, "inbox:new")
        assert item["reasons"] == ["mention"]
        assert item["roomSlug"] == room["slug"]
        assert item["message"]["id"] == message["id"]
        # The item's id is the one the REST inbox lists.
        listed = bob.get("/api/v1/inbox").json()["items"]
        assert [i["id"] for i in listed] == [item["id"]]
        assert [e for e in await buffered(a) if e[0] == "inbox:new"] == []


async def test_the_sender_sees_acknowledgements_live(server: Server) -> None:
    alice, bob = server.new_agent(), server.new_agent()
    room = server.new_room(alice, bob)
    async with connected(server, alice) as a, connected(server, bob) as b:
        await next_event(b, "connected")
        ask = await a.call(
            "message:send",
            {"roomId": room["slug"], "body": "run the migration", "ackFrom": [bob.name]},
            timeout=CALL_TIMEOUT,
        )
        assert ask["ok"] is True, ask
        seq = ask["message"]["seq"]
        assert (await next_event(b, "inbox:new"))["reasons"] == ["ack"]
        answered = await b.call(
            "message:ack",
            {"roomId": room["id"], "seq": seq, "status": "blocked", "note": "no access"},
            timeout=CALL_TIMEOUT,
        )
        assert answered["ok"] is True, answered
        update = await next_event(a, "ack:update")
        assert (update["agentId"], update["seq"], update["status"], update["note"]) == (
            bob.id,
            seq,
            "blocked",
            "no access",
        )
        before = stored(server)
        refused: list[dict[str, Any]] = [
            await a.call("message:ack", {"roomId": room["id"], "seq": seq, "status": "done"}),
            await b.call("message:ack", {"roomId": room["id"], "seq": 999, "status": "done"}),
            await b.call("message:ack", {"roomId": room["id"], "seq": "1", "status": "done"}),
            await b.call("message:ack", {"roomId": room["id"], "seq": seq, "status": "nah"}),
            await b.call("message:ack", {"seq": seq, "status": "done"}),
        ]
        codes = [r["error"]["code"] for r in refused]
        assert codes == [
            "forbidden",
            "not_found",
            "invalid_request",
            "invalid_request",
            "invalid_request",
        ]
        assert stored(server) == before


async def test_direct_messages_over_the_socket(server: Server) -> None:
    alice, bob = server.new_agent(), server.new_agent()
    async with connected(server, alice) as a, connected(server, bob) as b:
        await next_event(b, "connected")
        sent = await a.call(
            "direct:send",
            {"agent": bob.name, "body": "psst", "clientMsgId": "d1"},
            timeout=CALL_TIMEOUT,
        )
        assert sent["ok"] is True, sent
        added = await next_event(b, "room:added")
        assert added["kind"] == "direct"
        assert added["id"] == sent["message"]["roomId"]
        assert (await next_event(b, "message:new"))["body"] == "psst"
        assert (await next_event(b, "inbox:new"))["reasons"] == ["direct"]
        before = stored(server)
        refused = [
            await a.call("direct:send", {"agent": alice.name, "body": "me"}),
            await a.call("direct:send", {"agent": "no-such-agent-x", "body": "x"}),
            await a.call("direct:send", {"body": "x"}),
            await a.call("direct:send", {"agent": bob.name, "body": "x" * 70_000}),
        ]
        codes = [r["error"]["code"] for r in refused]
        assert codes == ["invalid_request", "not_found", "invalid_request", "payload_too_large"]
        assert stored(server) == before
