"""Several `agenthub serve` nodes on one PostgreSQL and one Redis act as one hub: messages,
membership changes, revocations and presence cross nodes (docs/adr/0009-*)."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis

from tests.databases import query
from tests.realtime.nodes import (
    Socket,
    assert_all_once_in_order,
    metric,
    nodes,
    pg_database,
    shared_redis_url,
    sockets,
)
from tests.support import Server, start_server, stop_process


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with pg_database() as url:
        yield url


@pytest.fixture
def two(pg_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    with nodes(pg_url, tmp_path, shared_redis_url()) as pair:
        yield pair


async def test_messages_sent_on_either_node_reach_every_socket_once_in_seq_order(
    two: list[Server],
) -> None:
    a, b = two
    alice, bob, carol = a.new_agent(), a.new_agent(), a.new_agent()
    room = a.new_room(alice, bob, carol)
    async with sockets((a, alice), (b, bob), (b, carol)) as (on_a, on_b, carol_b):
        # Concurrent senders on both nodes, over Socket.IO and HTTP: the nodes' writers
        # interleave in the room's seq, and each node hears the other's through Redis.
        async def over_socket(s: Socket, n: int) -> list[int]:
            acks = [await s.send(room["id"], f"{s.agent.name} {i}") for i in range(n)]
            assert all(ack["ok"] for ack in acks), acks
            return [ack["message"]["seq"] for ack in acks]

        async def over_http(node: Server, n: int) -> list[int]:
            seqs = []
            async with httpx.AsyncClient(base_url=node.base_url, timeout=15) as http:
                for i in range(n):
                    r = await http.post(
                        f"/api/v1/rooms/{room['slug']}/messages",
                        json={"body": f"http {i}"},
                        headers={"Authorization": f"Bearer {carol.jwt}"},
                    )
                    assert r.status_code == 201, r.text
                    seqs.append(r.json()["seq"])
            return seqs

        results = await asyncio.gather(
            over_socket(on_a, 40), over_socket(on_b, 40), over_http(a, 20), over_http(b, 20)
        )
        acked = {seq for seqs in results for seq in seqs}
        assert acked == set(range(1, 121))
        for s in (on_a, on_b, carol_b):
            await s.until(lambda s=s: len(s.seqs(room["id"])) >= 120, "120 messages")
        await asyncio.sleep(0.3)  # room for a repeat to show up (none may)
        for s in (on_a, on_b, carol_b):
            assert_all_once_in_order(s, room["id"], acked)
    for node in two:
        assert metric(node, "agenthub_cluster_reader_up") == 1.0
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.get(f"{node.base_url}/readyz")
        assert r.json() == {"status": "ready", "checks": {"db": "ok", "redis": "ok"}}


async def test_the_same_client_msg_id_sent_to_both_nodes_at_once_is_stored_once(
    two: list[Server],
) -> None:
    """Two writers (one per node) race on one key. The test holds the room's row lock so that
    both nodes' statements are in flight, past their lookup, when it lets go: the first stores
    the message, the other's insert fails on the key's uniqueness, which undoes its whole
    statement, and its retry answers the stored message. One message, one seq, one audit."""
    a, b = two
    alice = a.new_agent()
    room = a.new_room(alice)
    url = f"/api/v1/rooms/{room['slug']}/messages"
    headers = {"Authorization": f"Bearer {alice.jwt}"}
    database = a.database_url.rsplit("/", 1)[1]

    async def post(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post(url, json={"body": "once", "clientMsgId": "k"}, headers=headers)

    async def lock_waiters(conn: asyncpg.Connection) -> int:
        # Asked on a connection of its own, outside any transaction: within one, PostgreSQL
        # lists the backends as they were at its first read of pg_stat_activity, so a node's
        # connection opened after that would never be seen waiting.
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = $1 AND wait_event_type = 'Lock'",
                database,
            )
        )

    dsn = a.database_url.replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn, timeout=5)
    watcher = await asyncpg.connect(dsn, timeout=5)
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=15) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=15) as on_b,
        asyncio.timeout(30),
    ):
        try:
            holder = conn.transaction()
            await holder.start()
            await conn.execute(
                "SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE", uuid.UUID(room["id"])
            )
            sends = [asyncio.ensure_future(post(on_a)), asyncio.ensure_future(post(on_b))]
            waiting = 0
            for _ in range(500):  # within the 30 s bound above
                waiting = await lock_waiters(watcher)
                if waiting >= 2 or any(send.done() for send in sends):
                    break
                await asyncio.sleep(0.02)
            # A send answered while the room was locked was not stored by this race: say how.
            early = [send.result().text for send in sends if send.done() and not send.exception()]
            assert not early, early
            assert waiting >= 2, f"{waiting} sends waiting on the room's lock"
            await holder.commit()
            answers = await asyncio.gather(*sends)
        finally:
            await conn.close()
            await watcher.close()
    assert sorted(r.status_code for r in answers) == [200, 201], [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert [r.json()["seq"] for r in answers] == [1, 1]
    stored = query(a.database_url, "SELECT count(*) FROM messages WHERE room_id = $1", room["id"])
    audits = query(
        a.database_url,
        "SELECT count(*) FROM audit_events WHERE type = 'message-sent' AND payload->>'roomId' = $1",
        room["id"],
    )
    last = query(a.database_url, "SELECT last_seq FROM rooms WHERE id = $1", room["id"])
    assert (stored[0][0], audits[0][0], last[0][0]) == (1, 1, 1)


async def test_membership_changes_cross_nodes_and_a_removed_member_is_refused_on_b(
    two: list[Server],
) -> None:
    a, b = two
    alice, bob = a.new_agent(), a.new_agent()
    room = a.new_room(alice)
    async with sockets((b, bob), (a, alice)) as (bob_b, alice_a):
        # Added through node A: bob's socket on node B is put in the room and told.
        r = alice.post(f"/api/v1/rooms/{room['slug']}/members", {"agent": bob.name})
        assert r.status_code == 201, r.text
        await bob_b.until(lambda: bool(bob_b.named("room:added")), "room:added on node B")
        assert bob_b.named("room:added")[0]["id"] == room["id"]
        ack = await alice_a.send(room["id"], "welcome")
        await bob_b.until(lambda: bob_b.seqs(room["id"]) == [ack["message"]["seq"]], "welcome")
        ack = await bob_b.send(room["id"], "thanks")
        assert ack["ok"], ack

        # Removed through node A: bob's socket on node B leaves, and node B refuses his sends
        # from the moment it is told, over Socket.IO and HTTP.
        r = a.admin.delete(f"/api/v1/rooms/{room['slug']}/members/{bob.name}")
        assert r.status_code == 204, r.text
        await bob_b.until(lambda: bool(bob_b.named("room:removed")), "room:removed on node B")
        ack = await bob_b.send(room["id"], "still here?")
        assert ack == {
            "ok": False,
            "error": {"code": "forbidden", "message": ack["error"]["message"]},
        }
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(
                f"{b.base_url}/api/v1/rooms/{room['slug']}/messages",
                json={"body": "over http?"},
                headers={"Authorization": f"Bearer {bob.jwt}"},
                timeout=10,
            )
        assert r.status_code == 403, r.text
        ack = await alice_a.send(room["id"], "after the removal")
        await alice_a.until(
            lambda: ack["message"]["seq"] in alice_a.seqs(room["id"]), "alice's own message"
        )
        await asyncio.sleep(0.3)
        assert ack["message"]["seq"] not in bob_b.seqs(room["id"])
        bodies = [
            m["body"]
            for m in alice.get(f"/api/v1/rooms/{room['slug']}/messages").json()["messages"]
        ]
        assert "still here?" not in bodies
        assert "over http?" not in bodies


async def test_a_token_revoked_on_one_node_ends_its_sockets_on_the_other(
    two: list[Server],
) -> None:
    a, b = two
    bob = a.new_agent()
    async with sockets((b, bob)) as (bob_b,):
        tokens = a.admin.get(f"/api/v1/agents/{bob.name}/tokens").json()["tokens"]
        r = a.admin.delete(f"/api/v1/tokens/{tokens[0]['prefix']}")
        assert r.status_code == 204, r.text
        await bob_b.until(lambda: bool(bob_b.named("session:ended")), "session:ended on node B")
        assert bob_b.named("session:ended")[0]["reason"] == "revoked"
        await bob_b.until(lambda: bob_b.gone, "disconnected")


async def test_inbox_acknowledgements_and_claims_cross_nodes(two: list[Server]) -> None:
    """The coordination events (`inbox:new`, `ack:update`, `claim:changed`) reach the sockets of
    another node too, each once."""
    a, b = two
    alice, bob = a.new_agent(), a.new_agent()
    room = a.new_room(alice, bob)
    async with sockets((a, alice), (b, bob)) as (alice_a, bob_b):
        ask = await alice_a.call(
            "message:send",
            {"roomId": room["id"], "body": f"@{bob.name} deploy?", "ackFrom": [bob.name]},
        )
        assert ask["ok"] is True, ask
        seq = ask["message"]["seq"]
        await bob_b.until(lambda: bool(bob_b.named("inbox:new")), "inbox:new on node B")
        (item,) = bob_b.named("inbox:new")
        assert (item["message"]["seq"], sorted(item["reasons"])) == (seq, ["ack", "mention"])

        answered = await bob_b.call(
            "message:ack", {"roomId": room["id"], "seq": seq, "status": "done"}
        )
        assert answered["ok"] is True, answered
        await alice_a.until(lambda: bool(alice_a.named("ack:update")), "ack:update on node A")
        assert [(u["seq"], u["status"]) for u in alice_a.named("ack:update")] == [(seq, "done")]

        claimed = await alice_a.call(
            "claim:acquire", {"roomId": room["id"], "resource": "src/app.py", "ttlSeconds": 60}
        )
        assert claimed["ok"] is True, claimed
        await bob_b.until(lambda: bool(bob_b.named("claim:changed")), "claim:changed on node B")
        (change,) = bob_b.named("claim:changed")
        assert (change["action"], change["claim"]["resource"]) == ("claimed", "src/app.py")


async def test_presence_is_shared_and_a_killed_node_drops_out_within_the_ttl(
    two: list[Server],
) -> None:
    a, b = two
    alice, bob = a.new_agent(), a.new_agent()
    room = a.new_room(alice, bob)
    async with sockets((a, alice), (b, bob)) as (alice_a, bob_b):
        ack = await alice_a.call("room:join", {"roomId": room["id"]})
        assert ack == {"ok": True, "present": [alice.id]}
        ack = await bob_b.call("room:join", {"roomId": room["slug"]})
        assert ack == {"ok": True, "present": sorted([alice.id, bob.id])}
        both = sorted([alice.id, bob.id])
        for s in (alice_a, bob_b):
            await s.until(
                lambda s=s: any(u["present"] == both for u in s.named("presence:update")),
                "both present, on each node",
            )
        # Node B dies without a word: its socket's presence expires (PRESENCE_TTL_SECONDS=3).
        b.proc.send_signal(signal.SIGKILL)
        b.proc.wait(10)
        await alice_a.until(
            lambda: alice_a.named("presence:update")[-1]["present"] == [alice.id],
            "bob gone from node A's presence",
        )


def test_one_node_on_sqlite_with_redis_serves_presence_and_messages(tmp_path: Path) -> None:
    """Redis with SQLite is a single node (rate limits, presence and the stream all work)."""
    url = shared_redis_url()

    async def run(node: Server) -> None:
        alice, bob = node.new_agent(), node.new_agent()
        room = node.new_room(alice, bob)
        async with sockets((node, alice), (node, bob)) as (alice_s, bob_s):
            ack = await alice_s.call("room:join", {"roomId": room["id"]})
            assert ack == {"ok": True, "present": [alice.id]}
            acked = set()
            for i in range(20):
                ack = await (alice_s if i % 2 else bob_s).send(room["id"], f"m{i}")
                acked.add(ack["message"]["seq"])
            for s in (alice_s, bob_s):
                await s.until(lambda s=s: len(s.seqs(room["id"])) == 20, "20 messages")
                assert_all_once_in_order(s, room["id"], acked)

    prefix = "t" + tmp_path.name[-12:].replace("_", "")
    node = start_server(
        "sqlite",
        f"sqlite:///{tmp_path / 'agenthub.db'}",
        tmp_path / "node",
        REDIS_URL=url,
        REDIS_KEY_PREFIX=prefix,
    )
    try:
        asyncio.run(run(node))
        r = httpx.get(f"{node.base_url}/readyz", timeout=10)
        assert r.json() == {"status": "ready", "checks": {"db": "ok", "redis": "ok"}}
    finally:
        node.api.close()
        stop_process(node.proc)
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()
