"""The "Real time" section of the contract, driven with python-socketio's own client."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
import socketio
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.databases import query
from tests.support import JWT_SECRET, Agent, Server, start_server, stop_process, token_id_of

NS = "/agents"
WAIT = 10  # seconds: the bound on any single expected event


@asynccontextmanager
async def connected(
    server: Server, agent: Agent, **kw: Any
) -> AsyncIterator[socketio.AsyncSimpleClient]:
    client = socketio.AsyncSimpleClient()
    auth = kw.pop("auth", {"token": agent.jwt})
    await client.connect(
        server.base_url, auth=auth, namespace=NS, transports=["websocket"], wait_timeout=WAIT, **kw
    )
    try:
        yield client
    finally:
        await client.disconnect()


async def next_event(client: socketio.AsyncSimpleClient, name: str, within: float = WAIT) -> Any:
    """The next event called `name`, skipping others (presence noise and the like)."""
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {name} within {within}s")
        event = await client.receive(timeout=left)
        if event[0] == name:
            return event[1] if len(event) > 1 else None


async def buffered(client: socketio.AsyncSimpleClient) -> list[Any]:
    """The events the client has already received and not yet taken (waits for none)."""
    events = []
    while True:
        try:
            events.append(await client.receive(timeout=0.05))
        except socketio.exceptions.TimeoutError:
            return events


async def refusal(server: Server, **connect_kw: Any) -> Any:
    """Connect expecting a refusal; returns the connect_error data."""
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    client.on("connect_error", errors.append, namespace=NS)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            server.base_url,
            namespaces=[NS],
            transports=["websocket"],
            wait_timeout=WAIT,
            **connect_kw,
        )
    await client.disconnect()
    assert errors, "no connect_error received"
    return errors[0]


def message_count(server: Server, room_slug: str) -> int:
    rows = query(
        server.database_url,
        "SELECT count(*) FROM messages m JOIN rooms r ON r.id = m.room_id WHERE r.slug = $1",
        room_slug,
    )
    return int(rows[0][0])


# ---- handshake ----


async def test_connect_with_auth_token_lists_rooms(server: Server, alice: Agent) -> None:
    r1 = server.new_room(alice)
    r2 = server.new_room(alice)
    async with connected(server, alice) as c:
        payload = await next_event(c, "connected")
    assert payload["agentId"] == alice.id
    assert sorted(payload["rooms"]) == sorted([r1["id"], r2["id"]])


async def test_sockets_opening_together_each_hear_their_own_rooms(server: Server) -> None:
    """Handshakes at the same time share their room reads: none hears another agent's."""
    agents = [server.new_agent() for _ in range(6)]
    shared = server.new_room(agents[0], agents[1], agents[2])
    rooms: dict[str, set[str]] = {a.id: set() for a in agents}
    for member in agents[:3]:
        rooms[member.id].add(shared["id"])
    for owner in agents[1:5]:  # agents[5] is in no room; agents[0] only in the shared one
        rooms[owner.id].add(server.new_room(owner)["id"])
    rooms[agents[4].id].add(server.new_room(agents[4])["id"])

    async def open_and_hear(agent: Agent) -> tuple[str, Any]:
        async with connected(server, agent) as c:
            return agent.id, await next_event(c, "connected")

    heard = await asyncio.wait_for(
        asyncio.gather(*(open_and_hear(a) for a in agents for _ in range(4))), 3 * WAIT
    )
    assert len(heard) == 24
    for agent_id, payload in heard:
        assert payload["agentId"] == agent_id
        assert set(payload["rooms"]) == rooms[agent_id]
        assert len(payload["rooms"]) == len(rooms[agent_id])


async def test_connect_with_query_token(server: Server, alice: Agent) -> None:
    room = server.new_room(alice)
    client = socketio.AsyncSimpleClient()
    await client.connect(
        f"{server.base_url}?token={alice.jwt}",
        namespace=NS,
        transports=["websocket"],
        wait_timeout=WAIT,
    )
    try:
        payload = await next_event(client, "connected")
        assert payload == {"agentId": alice.id, "rooms": [room["id"]]}
    finally:
        await client.disconnect()


@pytest.mark.parametrize(
    "case", ["missing", "garbage", "wrong-key", "expired", "api-token", "alg-none"]
)
async def test_bad_credentials_are_refused(server: Server, alice: Agent, case: str) -> None:
    now = int(time.time())
    claims = {"sub": alice.id, "role": "agent", "iat": now, "exp": now + 600, "jti": "x"}
    claims["tid"] = token_id_of(alice.jwt)
    token = {
        "missing": None,
        "garbage": "not-a-jwt",
        "wrong-key": pyjwt.encode(claims, "another-secret-" + "y" * 40, algorithm="HS256"),
        "expired": pyjwt.encode(
            {**claims, "iat": now - 1000, "exp": now - 10}, JWT_SECRET, algorithm="HS256"
        ),
        "api-token": alice.token,
        "alg-none": pyjwt.encode(claims, None, algorithm="none"),
    }[case]
    data = await refusal(server, auth={"token": token} if token else None)
    assert data == {"message": "unauthorized"}


# ---- sending ----


async def test_send_ack_and_fan_out_to_every_socket_including_sender(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice, bob)
    async with connected(server, alice) as a, connected(server, bob) as b:
        ack = await a.call("message:send", {"roomId": room["slug"], "body": "hello"}, timeout=WAIT)
        assert ack["ok"] is True
        message = ack["message"]
        assert set(message) == {
            "id",
            "roomId",
            "seq",
            "senderId",
            "body",
            "clientMsgId",
            "createdAt",
            "replyTo",  # these three: docs/API.md, "Coordination"
            "mentions",
            "acks",
        }
        assert message["roomId"] == room["id"]
        assert message["senderId"] == alice.id
        assert message["seq"] == 1
        assert await next_event(a, "message:new") == message
        assert await next_event(b, "message:new") == message
    r = bob.get(f"/api/v1/rooms/{room['id']}/messages")
    assert r.json()["messages"] == [message]


async def test_idempotent_repeat_acks_the_original_and_broadcasts_nothing_new(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice, bob)
    async with connected(server, alice) as a, connected(server, bob) as b:
        send = {"roomId": room["id"], "body": "once", "clientMsgId": "cm-1"}
        first = await a.call("message:send", send, timeout=WAIT)
        second = await a.call("message:send", {**send, "body": "changed"}, timeout=WAIT)
        assert second == first
        third = await a.call("message:send", {"roomId": room["id"], "body": "next"}, timeout=WAIT)
        # Bob's stream: the first message, then the third; the repeat produced nothing.
        assert (await next_event(b, "message:new"))["id"] == first["message"]["id"]
        assert (await next_event(b, "message:new"))["id"] == third["message"]["id"]
        assert third["message"]["seq"] == 2
    assert message_count(server, room["slug"]) == 2


async def test_rest_send_reaches_sockets(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)
    async with connected(server, bob) as b:
        await next_event(b, "connected")
        r = alice.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "via REST"})
        assert r.status_code == 201
        assert await next_event(b, "message:new") == r.json()


# ---- membership changes while connected ----


async def test_member_added_gets_room_added_and_then_messages(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice)
    async with connected(server, bob) as b:
        payload = await next_event(b, "connected")
        assert room["id"] not in payload["rooms"]
        r = alice.post(f"/api/v1/rooms/{room['slug']}/members", {"agent": bob.name})
        assert r.status_code == 201
        assert await next_event(b, "room:added") == room
        sent = alice.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "welcome"}).json()
        assert await next_event(b, "message:new") == sent


async def test_creator_of_a_new_room_gets_room_added(server: Server, alice: Agent) -> None:
    async with connected(server, alice) as a:
        await next_event(a, "connected")
        room = server.new_room(alice)
        assert await next_event(a, "room:added") == room
        ack = await a.call("message:send", {"roomId": room["id"], "body": "mine"}, timeout=WAIT)
        assert (await next_event(a, "message:new")) == ack["message"]


async def test_removed_member_leaves_at_once(
    server: Server, admin: Agent, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice, bob)
    other = server.new_room(alice, bob)
    async with connected(server, alice) as a, connected(server, bob) as b:
        await a.call("room:join", {"roomId": room["id"]}, timeout=WAIT)
        joined = await b.call("room:join", {"roomId": room["id"]}, timeout=WAIT)
        assert sorted(joined["present"]) == sorted([alice.id, bob.id])
        assert admin.delete(f"/api/v1/rooms/{room['id']}/members/{bob.name}").status_code == 204
        assert await next_event(b, "room:removed") == {"roomId": room["id"]}
        # Alice sees Bob's presence end there.
        deadline = time.monotonic() + WAIT
        while True:
            update = await next_event(a, "presence:update", max(0.1, deadline - time.monotonic()))
            if update["roomId"] == room["id"] and bob.id not in update["present"]:
                break
        # Bob receives nothing more from the room, and may not send there.
        await a.call("message:send", {"roomId": room["id"], "body": "after"}, timeout=WAIT)
        marker = await a.call(
            "message:send", {"roomId": other["id"], "body": "marker"}, timeout=WAIT
        )
        assert (await next_event(b, "message:new"))["id"] == marker["message"]["id"]
        refused = await b.call("message:send", {"roomId": room["id"], "body": "x"}, timeout=WAIT)
        assert refused["ok"] is False
        assert refused["error"]["code"] == "forbidden"


# ---- presence ----


async def test_presence_join_leave_and_two_sockets(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice, bob)
    other = server.new_room(alice, bob)
    rid, oid = room["id"], other["id"]
    async with connected(server, alice) as a:
        ack = await a.call("room:join", {"roomId": room["slug"]}, timeout=WAIT)
        assert ack == {"ok": True, "present": [alice.id]}
        assert await next_event(a, "presence:update") == {"roomId": rid, "present": [alice.id]}
        b1 = socketio.AsyncSimpleClient()
        b2 = socketio.AsyncSimpleClient()
        for c in (b1, b2):
            await c.connect(
                server.base_url, auth={"token": bob.jwt}, namespace=NS, transports=["websocket"]
            )
        both = sorted([alice.id, bob.id])
        assert (await b1.call("room:join", {"roomId": rid}, timeout=WAIT))["present"] == both
        assert await next_event(a, "presence:update") == {"roomId": rid, "present": both}
        assert (await b2.call("room:join", {"roomId": rid}, timeout=WAIT))["present"] == both
        # b1 is also in `other`, where b2 is not: Bob's presence ending there shows when the
        # server has handled b1's disconnect.
        assert (await a.call("room:join", {"roomId": oid}, timeout=WAIT))["present"] == [alice.id]
        assert await next_event(a, "presence:update") == {"roomId": oid, "present": [alice.id]}
        assert (await b1.call("room:join", {"roomId": oid}, timeout=WAIT))["present"] == both
        assert await next_event(a, "presence:update") == {"roomId": oid, "present": both}
        await b1.disconnect()
        assert await next_event(a, "presence:update") == {"roomId": oid, "present": [alice.id]}
        # Bob still has b2 in the room: no update there (one would have come before this ack),
        # and he is still present.
        still = await a.call("room:join", {"roomId": rid}, timeout=WAIT)
        assert still == {"ok": True, "present": both}
        assert [e for e in await buffered(a) if e[0] == "presence:update"] == []
        await b2.call("room:leave", {"roomId": rid}, timeout=WAIT)  # now he is gone
        assert await next_event(a, "presence:update") == {"roomId": rid, "present": [alice.id]}
        await b2.disconnect()
        # Re-join and drop the socket: disconnecting removes the agent.
        b3 = socketio.AsyncSimpleClient()
        await b3.connect(
            server.base_url, auth={"token": bob.jwt}, namespace=NS, transports=["websocket"]
        )
        await b3.call("room:join", {"roomId": rid}, timeout=WAIT)
        assert await next_event(a, "presence:update") == {"roomId": rid, "present": both}
        await b3.disconnect()
        assert await next_event(a, "presence:update") == {"roomId": rid, "present": [alice.id]}
        leave = await a.call("room:leave", {"roomId": rid}, timeout=WAIT)
        assert leave == {"ok": True}
        missing = await a.call(
            "room:leave", {"roomId": "no-such-room-" + uuid.uuid4().hex[:6]}, timeout=WAIT
        )
        assert missing["error"]["code"] == "not_found"


async def test_dead_peer_is_pruned_and_heartbeats_keep_live_ones(
    server: Server, alice: Agent, bob: Agent
) -> None:
    """A socket that stops answering the transport's pings is dropped from presence after
    PRESENCE_TTL_SECONDS (3 s here); a quiet but live socket stays."""
    room = server.new_room(alice, bob)
    rid = room["id"]
    ttl = float(server.env["PRESENCE_TTL_SECONDS"])
    ws_url = server.base_url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    async with connected(server, alice) as a:
        await a.call("room:join", {"roomId": rid}, timeout=WAIT)
        async with websockets.connect(ws_url) as dead:
            assert (await asyncio.wait_for(dead.recv(), WAIT)).startswith("0")
            await dead.send(f"40{NS}," + json.dumps({"token": bob.jwt}))
            await dead.send(f"42{NS},1" + json.dumps(["room:join", {"roomId": rid}]))
            async with asyncio.timeout(WAIT):
                while not str(await dead.recv()).startswith(f"43{NS},1"):
                    pass
            both = sorted([alice.id, bob.id])
            deadline = time.monotonic() + WAIT
            while (await next_event(a, "presence:update", deadline - time.monotonic()))[
                "present"
            ] != both:
                pass
            # While the raw peer answers the transport's pings it is alive, even silent: it
            # stays present for more pings than fit in the TTL.
            interval = float(server.env["SOCKETIO_PING_INTERVAL"])
            pings = 0
            async with asyncio.timeout(WAIT + 3 * ttl):
                while pings < int(ttl / interval) + 2:
                    if await dead.recv() == "2":
                        await dead.send("3")
                        pings += 1
            gone = [e for e in await buffered(a) if e[0] == "presence:update"]
            assert gone == [], "a peer answering pings was dropped from presence"
            started = time.monotonic()
            # From here the raw peer never answers a ping: it is dead to the server.
            update = await next_event(a, "presence:update", ttl + WAIT)
            assert update == {"roomId": rid, "present": [alice.id]}
            # Dropped by the presence TTL, not by a closed connection (the ping timeout is 30 s).
            assert dead.state is websockets.protocol.State.OPEN
        # Alice sent nothing for longer than the TTL, yet answered pings: still present.
        await asyncio.sleep(max(0.0, ttl + 1 - (time.monotonic() - started)))
        async with connected(server, bob) as b:
            ack = await b.call("room:join", {"roomId": rid}, timeout=WAIT)
            assert ack["present"] == sorted([alice.id, bob.id])


# ---- flood and bad input ----


async def test_flood_is_rate_limited_and_refused_events_store_nothing(
    server: Server, alice: Agent
) -> None:
    room = server.new_room(alice)
    limit = int(server.env["RATE_LIMIT_SOCKET_PER_SEC"])
    refused_before = socket_refusals(server)
    acks: list[dict[str, Any]] = []
    async with connected(server, alice) as a:
        # Bursts of limit + 20 events, emitted in order without waiting for acks, until one is
        # refused: however slowly they are handled, the first `limit` are accepted (nothing
        # else was counted on this socket), and a burst handled within a second is refused past
        # that. Bounded: a missing limit fails after a few bursts.
        for _burst in range(5):
            answers: list[asyncio.Future[Any]] = []
            for i in range(limit + 20):
                answer = asyncio.get_running_loop().create_future()
                answers.append(answer)
                await a.client.emit(
                    "message:send",
                    {"roomId": room["id"], "body": f"m{len(acks) + i}"},
                    namespace=NS,
                    callback=lambda ack, answer=answer: answer.set_result(ack),
                )
            async with asyncio.timeout(WAIT):
                acks += await asyncio.gather(*answers)
            if any(not x["ok"] for x in acks):
                break
    ok = [x for x in acks if x["ok"]]
    limited = [x for x in acks if not x["ok"]]
    assert limited, "no event was rate limited"
    assert all(x["ok"] for x in acks[:limit]), "refused before the limit was reached"
    assert all(x["error"]["code"] == "rate_limited" for x in limited)
    assert message_count(server, room["slug"]) == len(ok)
    # Each refusal is counted once, for the operator's "rate-limit refusals surging" alert.
    assert socket_refusals(server) == refused_before + len(limited)


def socket_refusals(server: Server) -> float:
    text = server.api.http.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "agenthub_rate_limit_refusals_total" and sample.labels == {
                "transport": "socket"
            }:
                return sample.value
    raise AssertionError("agenthub_rate_limit_refusals_total{transport='socket'} is not served")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("a string", "invalid_request"),
        (["a", "list"], "invalid_request"),
        (42, "invalid_request"),
        ({}, "invalid_request"),
        ({"roomId": 7, "body": "x"}, "invalid_request"),
        ({"roomId": "ROOM", "body": 5}, "invalid_request"),
        ({"roomId": "ROOM", "body": ""}, "invalid_request"),
        ({"roomId": "ROOM", "body": "nul\x00"}, "invalid_request"),
        ({"roomId": "ROOM", "body": "x", "clientMsgId": 12}, "invalid_request"),
        ({"roomId": "ROOM", "body": "x", "clientMsgId": "c" * 129}, "invalid_request"),
        ({"roomId": "ROOM", "body": "é" * 32769}, "payload_too_large"),
        ({"roomId": "no-such-room-zz", "body": "x"}, "not_found"),
        ({"roomId": "x" * 5000, "body": "x"}, "not_found"),
    ],
)
async def test_bad_message_payloads_get_error_acks(
    server: Server, alice: Agent, payload: Any, code: str
) -> None:
    room = server.new_room(alice)
    mark = server.log_mark()
    if isinstance(payload, dict) and payload.get("roomId") == "ROOM":
        payload = {**payload, "roomId": room["id"]}
    async with connected(server, alice) as a:
        ack = await a.call("message:send", payload, timeout=WAIT)
        assert ack["ok"] is False
        assert ack["error"]["code"] == code
        assert ack["error"]["message"]
        # The socket still works afterwards.
        ok = await a.call("message:send", {"roomId": room["id"], "body": "fine"}, timeout=WAIT)
        assert ok["ok"] is True
    assert message_count(server, room["slug"]) == 1
    assert "Traceback" not in server.log_text(since=mark)


async def test_non_member_cannot_send_or_join(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice)
    async with connected(server, bob) as b:
        sent = await b.call("message:send", {"roomId": room["id"], "body": "x"}, timeout=WAIT)
        joined = await b.call("room:join", {"roomId": room["slug"]}, timeout=WAIT)
        bad_join = await b.call("room:join", {"room": room["slug"]}, timeout=WAIT)
    assert sent["error"]["code"] == "forbidden"
    assert joined["error"]["code"] == "forbidden"
    assert bad_join["error"]["code"] == "invalid_request"
    assert message_count(server, room["slug"]) == 0


async def test_events_without_ack_callback_do_not_break_anything(
    server: Server, alice: Agent
) -> None:
    room = server.new_room(alice)
    mark = server.log_mark()
    async with connected(server, alice) as a:
        await a.emit("message:send", {"roomId": room["id"], "body": "no ack"})
        await a.emit("message:send", "garbage")
        await a.emit("room:join")
        await a.emit("unknown:event", {"x": 1})
        first = await next_event(a, "message:new")
        assert first["body"] == "no ack"
        ack = await a.call("message:send", {"roomId": room["id"], "body": "with ack"}, timeout=WAIT)
        assert ack["message"]["seq"] == 2
    assert "Traceback" not in server.log_text(since=mark)


# ---- concurrency ----


async def test_concurrent_senders_every_socket_gets_every_seq_once_in_order(server: Server) -> None:
    agents = [server.new_agent() for _ in range(5)]
    room = server.new_room(agents[0], *agents[1:])
    per_agent = 40
    total = per_agent * len(agents)
    clients = []
    for agent in agents:
        c = socketio.AsyncSimpleClient()
        await c.connect(
            server.base_url, auth={"token": agent.jwt}, namespace=NS, transports=["websocket"]
        )
        clients.append(c)
    try:
        for c in clients:
            await next_event(c, "connected")

        async def send_all(i: int, c: socketio.AsyncSimpleClient) -> list[Any]:
            calls = [
                c.call("message:send", {"roomId": room["id"], "body": f"{i}-{n}"}, timeout=60)
                for n in range(per_agent)
            ]
            return list(await asyncio.gather(*calls))

        async def collect(c: socketio.AsyncSimpleClient) -> list[int]:
            seqs: list[int] = []
            while len(seqs) < total:
                seqs.append((await next_event(c, "message:new", 60))["seq"])
            return seqs

        async with asyncio.timeout(120):
            receivers = [asyncio.create_task(collect(c)) for c in clients]
            acks = await asyncio.gather(*(send_all(i, c) for i, c in enumerate(clients)))
            received = await asyncio.gather(*receivers)
    finally:
        for c in clients:
            await c.disconnect()
    flat = [a for batch in acks for a in batch]
    assert all(a["ok"] for a in flat), [a for a in flat if not a["ok"]][:3]
    assert sorted(a["message"]["seq"] for a in flat) == list(range(1, total + 1))
    for seqs in received:
        assert seqs == list(range(1, total + 1))
    assert message_count(server, room["slug"]) == total
    rows = query(
        server.database_url,
        "SELECT min(m.seq), max(m.seq), count(DISTINCT m.seq) FROM messages m "
        "JOIN rooms r ON r.id = m.room_id WHERE r.slug = $1",
        room["slug"],
    )
    assert tuple(rows[0]) == (1, total, total)


async def test_messaging_disabled_serves_rest_and_refuses_handshakes(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    srv = start_server(backend, database_url, tmp_path / "data", FEATURE_MESSAGING_ENABLED="false")
    try:
        agent = srv.new_agent()
        room = srv.new_room(agent)
        r = agent.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "REST still works"})
        assert r.status_code == 201
        data = await refusal(srv, auth={"token": agent.jwt})
        assert data == {"message": "messaging is disabled"}
    finally:
        srv.api.close()
        stop_process(srv.proc)
