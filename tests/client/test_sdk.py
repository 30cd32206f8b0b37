"""The Python SDK (`agenthub.client`) against a real server, on both backends.

Faults are real ones: a proxy that cuts connections or loses a response (tests/faults.py), a
server process stopped and started again, a server with 3-second JWTs.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from agenthub.client import (
    AgentHubClient,
    AgentHubError,
    Conflict,
    ConnectionError,
    Forbidden,
    InvalidRequest,
    Message,
    NotFound,
    PayloadTooLarge,
    Subscription,
    SyncClient,
    Unauthorized,
    renew_margin,
)
from tests.databases import query
from tests.faults import TcpProxy, restart_server
from tests.support import Agent, Server, free_port, start_server, stop_process, uniq

WAIT = 15.0  # seconds: the bound on any single expected delivery


@asynccontextmanager
async def connect(url: str, agent: Agent) -> AsyncIterator[AgentHubClient]:
    async with AgentHubClient(url, agent.token) as client:
        yield client


@asynccontextmanager
async def proxy_to(server: Server) -> AsyncIterator[TcpProxy]:
    port = int(server.base_url.rsplit(":", 1)[1])
    proxy = await TcpProxy(port).start()
    try:
        yield proxy
    finally:
        await proxy.close()


@contextmanager
def own_server(backend: str, database_url: str, data_dir: Path, **env: str) -> Iterator[Server]:
    srv = start_server(backend, database_url, data_dir, SOCKETIO_PING_INTERVAL="1", **env)
    try:
        yield srv
    finally:
        srv.api.close()
        stop_process(srv.proc)


async def take(sub: Subscription, count: int, within: float = WAIT) -> list[Message]:
    got: list[Message] = []
    async with asyncio.timeout(within):
        while len(got) < count:
            got.append(await anext(sub))
    return got


async def nothing_more(sub: Subscription, within: float = 1.0) -> None:
    """No duplicate (or any other message) follows within `within` seconds."""
    try:
        async with asyncio.timeout(within):
            extra = await anext(sub)
    except TimeoutError:
        return
    pytest.fail(f"unexpected message seq {extra.seq}: {extra.body!r}")


def stored(server: Server, room_slug: str) -> list[tuple[int, str]]:
    rows = query(
        server.database_url,
        "SELECT m.seq, m.body FROM messages m JOIN rooms r ON r.id = m.room_id "
        "WHERE r.slug = $1 ORDER BY m.seq",
        room_slug,
    )
    return [(int(seq), str(body)) for seq, body in rows]


# ---- renewal rule (no server needed) ----


def test_renew_margin_is_a_minute_or_a_fifth_of_short_lifetimes() -> None:
    assert renew_margin(899) == 60
    assert renew_margin(300) == 60
    assert renew_margin(100) == pytest.approx(20)
    assert renew_margin(2) == pytest.approx(0.4)
    assert renew_margin(-1) == 0


# ---- REST surface ----


async def test_everything_an_agent_does(server: Server, alice: Agent, bob: Agent) -> None:
    slug = uniq("sdk")
    async with connect(server.base_url, alice) as a, connect(server.base_url, bob) as b:
        me = await a.me()
        assert (me.id, me.name, me.role) == (alice.id, alice.name, "agent")
        room = await a.create_room(slug, "SDK room")
        assert (room.slug, room.name, room.created_by) == (slug, "SDK room", alice.id)
        assert (await a.room(slug)).id == room.id
        assert [r.id for r in await a.rooms()] == [room.id]
        added = await a.add_member(slug, bob.name)
        assert added.id == bob.id
        assert (await a.add_member(slug, bob.name)).id == bob.id  # a repeat is harmless
        assert sorted(m.name for m in await b.members(room.id)) == sorted([alice.name, bob.name])
        assert bob.name in {agent.name for agent in await a.agents()}
        assert (await a.agent(bob.name)).id == bob.id

        sent = [await a.send(slug, f"m{i}") for i in range(1, 6)]
        assert [m.seq for m in sent] == [1, 2, 3, 4, 5]
        assert all(m.client_msg_id for m in sent)  # always carried, generated when not given
        # History: newest first, paged with the cursor.
        first = await b.history(slug, limit=2)
        assert [m.seq for m in first.messages] == [5, 4]
        assert first.next_cursor is not None
        second = await b.history(slug, cursor=first.next_cursor, limit=10)
        assert [m.seq for m in second.messages] == [3, 2, 1]
        assert second.next_cursor is None
        # Catch-up: oldest first after a seq.
        assert [m.body for m in await b.catch_up(slug, 3)] == ["m4", "m5"]
        assert [m.seq for m in await b.catch_up(room.id, 0, limit=2)] == [1, 2]
        assert await b.latest_seq(slug) == 5

        await b.remove_member(slug, bob.name)  # leaving the room
        with pytest.raises(Forbidden):
            await b.history(slug)
        assert a.sessions_opened == 1  # one session served every call


async def test_errors_are_typed_and_carry_the_servers_message(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice)
    async with connect(server.base_url, alice) as a, connect(server.base_url, bob) as b:
        with pytest.raises(NotFound) as missing:
            await a.history("no-such-room")
        assert missing.value.message == "room 'no-such-room' does not exist"
        assert missing.value.code == "not_found"
        with pytest.raises(Forbidden, match=f"not a member of room '{room['slug']}'"):
            await b.send(room["slug"], "let me in")
        with pytest.raises(Conflict, match="already taken"):
            await a.create_room(room["slug"])
        with pytest.raises(InvalidRequest):
            await a.history(room["slug"], limit=500)
        with pytest.raises(PayloadTooLarge):
            await a.send(room["slug"], "x" * 70_000)
        with pytest.raises(NotFound, match="agent 'nobody-here' does not exist"):
            await a.add_member(room["slug"], "nobody-here")
    async with AgentHubClient(server.base_url, "agt_AAAAAA_" + "x" * 43) as bad:
        with pytest.raises(Unauthorized, match="API token was refused"):
            await bad.rooms()
    async with AgentHubClient(f"http://127.0.0.1:{free_port()}", alice.token, attempts=1) as gone:
        with pytest.raises(ConnectionError, match="cannot reach AgentHub") as unreachable:
            await gone.me()
    assert isinstance(unreachable.value, AgentHubError)
    assert isinstance(unreachable.value, builtins.ConnectionError)


# ---- send: never stored twice ----


async def test_send_with_the_same_client_msg_id_stores_once(server: Server, alice: Agent) -> None:
    room = server.new_room(alice)
    async with connect(server.base_url, alice) as a:
        first = await a.send(room["slug"], "once", client_msg_id="job-42")
        again = await a.send(room["slug"], "once", client_msg_id="job-42")
    assert again == first
    assert stored(server, room["slug"]) == [(1, "once")]


async def test_send_retried_after_its_response_was_lost_stores_once(
    server: Server, alice: Agent
) -> None:
    room = server.new_room(alice)
    async with proxy_to(server) as proxy, connect(proxy.url, alice) as a:
        await a.me()  # the session exists: the next POST to the room is the send
        proxy.lose_next_response(f"POST /api/v1/rooms/{room['slug']}/messages".encode())
        message = await a.send(room["slug"], "exactly once")
    assert proxy.lost_responses == 1  # the server stored it, the client never heard back
    assert message.body == "exactly once"
    assert stored(server, room["slug"]) == [(1, "exactly once")]
    assert (
        message.id
        == alice.get(f"/api/v1/rooms/{room['slug']}/messages").json()["messages"][0]["id"]
    )


async def test_send_gives_up_after_bounded_attempts(
    server: Server, alice: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agenthub.client")
    room = server.new_room(alice)
    async with proxy_to(server) as proxy, AgentHubClient(proxy.url, alice.token, attempts=3) as a:
        await a.me()
        proxy.refusing = True
        proxy.drop_all()
        with pytest.raises(ConnectionError):
            async with asyncio.timeout(WAIT):  # it gives up: it does not retry forever
                await a.send(room["slug"], "never arrives")
    # Three attempts (the first and two retries), then no more; the retries went to the network,
    # which refused them (the first may have failed on the pooled connection the drop cut).
    retries = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(retries) == 2, retries
    assert all(m.startswith("POST ") for m in retries), retries
    assert 2 <= proxy.refused <= 3
    assert stored(server, room["slug"]) == []


# ---- JWT renewal ----


async def refused(server: Server, jwt: str) -> bool:
    """Whether the server refuses this JWT now (it has expired)."""
    r = await asyncio.to_thread(
        server.api.http.get, "/api/v1/agents/me", headers={"Authorization": f"Bearer {jwt}"}
    )
    return r.status_code == 401


async def test_jwt_is_renewed_for_rest_and_socket_reconnects(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    with own_server(backend, database_url, tmp_path / "data", JWT_TTL_SECONDS="3") as srv:
        srv.admin.jwt = srv.api.login(srv.admin.token)  # fresh: it lives 3 seconds
        alice, bob = srv.new_agent(), srv.new_agent()
        async with (
            proxy_to(srv) as alice_net,
            proxy_to(srv) as bob_net,
            connect(alice_net.url, alice) as a,
            connect(bob_net.url, bob) as b,
        ):
            room = await a.create_room(uniq("ttl"))
            await a.add_member(room.slug, bob.name)
            handshake_jwt = (await b.session()).token
            async with b.messages([room.slug]) as sub:  # connected with a JWT that expires
                sent: list[Message] = []
                received: list[Message] = []
                dropped = False
                # REST calls, a message each half second, until Alice has gone through four
                # sessions (three renewals) and Bob's socket reconnected after its JWT expired;
                # bounded, and counted in sessions, not seconds.
                for _ in range(120):
                    if a.sessions_opened >= 4 and sub.connections >= 2:
                        break
                    sent.append(await a.send(room.slug, f"tick {len(sent)}"))
                    received.extend(await take(sub, 1))
                    assert [r.id for r in await a.rooms()] == [room.id]
                    if not dropped and await refused(srv, handshake_jwt):
                        # The server now refuses the JWT the socket connected with: a
                        # reconnect must come with a new one.
                        bob_net.drop_all()
                        dropped = True
                    await asyncio.sleep(0.5)
                else:
                    pytest.fail(f"{a.sessions_opened} sessions, {sub.connections} connections")
                assert [m.id for m in received] == [m.id for m in sent]
                await nothing_more(sub)
            assert b.sessions_opened >= 2
        # Renewed before expiry, not after a refusal: not one of Alice's requests (two a round,
        # and the session exchanges) was answered 401.
        assert 401 not in alice_net.statuses
        assert len(alice_net.statuses) >= 2 * len(sent) + 4


# ---- subscriptions ----


async def test_subscription_starts_where_asked(server: Server, alice: Agent) -> None:
    room = server.new_room(alice)
    async with connect(server.base_url, alice) as a:
        for i in (1, 2, 3):
            await a.send(room["slug"], f"old {i}")
        async with (
            a.messages([room["slug"]]) as only_new,
            a.messages([room["slug"]], after={room["slug"]: 1}) as resumed,
            a.messages([room["id"]], from_beginning=True) as everything,
        ):
            await a.send(room["slug"], "new")
            assert [m.body for m in await take(only_new, 1)] == ["new"]
            assert [m.seq for m in await take(resumed, 3)] == [2, 3, 4]
            assert [m.seq for m in await take(everything, 4)] == [1, 2, 3, 4]
            assert everything.cursors == {room["id"]: 4}


async def test_subscription_refuses_a_room_you_are_not_in(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice)
    async with connect(server.base_url, bob) as b:
        with pytest.raises(Forbidden, match="not a member"):
            await anext(b.messages([room["slug"]]))
        with pytest.raises(NotFound):
            await anext(b.messages(["no-such-room"]))


async def test_subscription_follows_rooms_you_join_while_subscribed(
    server: Server, alice: Agent, bob: Agent
) -> None:
    first = server.new_room(alice, bob)
    async with (
        connect(server.base_url, alice) as a,
        connect(server.base_url, bob) as b,
        b.messages() as sub,
    ):
        await a.send(first["slug"], "in the first room")
        assert [m.body for m in await take(sub, 1)] == ["in the first room"]
        # Added and spoken to at once: the room is followed from its first message.
        later = await a.create_room(uniq("later"))
        await a.add_member(later.slug, bob.name)
        await a.send(later.slug, "welcome, bob")
        got = await take(sub, 1)
        assert [(m.room_id, m.seq, m.body) for m in got] == [(later.id, 1, "welcome, bob")]
        await nothing_more(sub)


async def test_subscription_survives_a_dropped_connection(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice, bob)
    async with (
        proxy_to(server) as net,
        connect(server.base_url, alice) as a,
        connect(net.url, bob) as b,
        b.messages() as sub,
    ):
        await a.send(room["slug"], "before")
        assert [m.body for m in await take(sub, 1)] == ["before"]
        net.refusing = True
        net.drop_all()  # Bob is cut off; what follows is said while he is away
        await a.send(room["slug"], "while away 1")
        await a.send(room["slug"], "while away 2")
        joined = await a.create_room(uniq("away"))
        await a.add_member(joined.slug, bob.name)
        await a.send(joined.slug, "new room while away")
        await asyncio.sleep(1)  # let the reconnect attempts fail a few times
        net.refusing = False
        got = await take(sub, 3)
        await a.send(room["slug"], "after")
        got += await take(sub, 1)
        in_room = [(m.seq, m.body) for m in got if m.room_id == room["id"]]
        assert in_room == [(2, "while away 1"), (3, "while away 2"), (4, "after")]
        assert [(m.seq, m.body) for m in got if m.room_id == joined.id] == [
            (1, "new room while away")
        ]
        assert sub.connections == 2
        await nothing_more(sub)


async def test_subscription_survives_a_server_restart_with_a_new_key(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    """The new process also signs with a new key: every JWT the clients hold (valid for 15 more
    minutes) is refused, so REST calls renew after one 401 and the socket after one refusal."""
    with own_server(backend, database_url, tmp_path / "data") as srv:
        alice, bob = srv.new_agent(), srv.new_agent()
        room = srv.new_room(alice, bob)
        async with (
            proxy_to(srv) as alice_net,
            proxy_to(srv) as bob_net,
            connect(alice_net.url, alice) as a,
            connect(bob_net.url, bob) as b,
            b.messages([room["slug"]]) as sub,
        ):
            await a.send(room["slug"], "one")
            assert [m.seq for m in await take(sub, 1)] == [1]
            # Keep Bob away until messages were sent to the new process, so that they can
            # only reach him by catching up.
            bob_net.refusing = True
            await asyncio.to_thread(restart_server, srv, JWT_SECRET="rotated-" + "k" * 40)
            await a.send(room["slug"], "two")
            await a.send(room["slug"], "three")
            bob_net.refusing = False
            got = await take(sub, 2)
            await a.send(room["slug"], "four")
            got += await take(sub, 1)
            assert [(m.seq, m.body) for m in got] == [(2, "two"), (3, "three"), (4, "four")]
            assert sub.connections == 2
            await nothing_more(sub)
            assert (a.sessions_opened, b.sessions_opened) == (2, 2)
        assert alice_net.statuses.count(401) == 1  # renewed once, then retried
        assert stored(srv, room["slug"]) == [(1, "one"), (2, "two"), (3, "three"), (4, "four")]


# ---- waiting and presence ----


async def test_wait_for_messages(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)
    async with (
        proxy_to(server) as bob_net,
        connect(server.base_url, alice) as a,
        connect(bob_net.url, bob) as b,
    ):
        await a.send(room["slug"], "already there")
        found = await b.wait_for_messages(room["slug"], 0, timeout=5)
        assert [m.body for m in found] == ["already there"]
        assert 101 not in bob_net.statuses  # found in the history: no socket was opened

        # Nothing new: it listened (a websocket was opened) and gave up with [] at its timeout.
        async with asyncio.timeout(WAIT):
            assert await b.wait_for_messages(room["slug"], 1, timeout=1.5) == []
        assert bob_net.statuses.count(101) == 1

        # A message sent once the wait listens ends it, long before its 300 s timeout.
        async with asyncio.timeout(WAIT):
            waiting = asyncio.create_task(b.wait_for_messages(room["slug"], 1, timeout=300))
            await bob_net.until(lambda: bob_net.statuses.count(101) == 2)
            await a.send(room["slug"], "arrives while waiting")
            found = await waiting
        assert [(m.seq, m.body) for m in found] == [(2, "arrives while waiting")]


async def test_who_is_here(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)
    async with connect(server.base_url, alice) as a, connect(server.base_url, bob) as b:
        assert await a.who_is_here(room["slug"]) == [alice.id]
        assert sorted(await b.who_is_here(room["slug"])) == sorted([alice.id, bob.id])
    async with connect(server.base_url, bob) as b:  # Alice's client is closed: she is gone
        assert await b.who_is_here(room["slug"]) == [bob.id]


# ---- the blocking facade ----


def test_sync_client(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)
    with SyncClient(server.base_url, alice.token) as a, SyncClient(server.base_url, bob.token) as b:
        assert a.me().id == alice.id
        assert [r.slug for r in b.rooms()] == [room["slug"]]
        sent = a.send(room["slug"], "from a script")
        assert b.wait_for_messages(room["slug"], 0, timeout=5) == [sent]
        assert [m.body for m in b.history(room["slug"]).messages] == ["from a script"]
        stream = b.messages([room["slug"]], from_beginning=True)
        assert next(stream) == sent
        second = a.send(room["slug"], "second")
        assert next(stream) == second
        stream.close()
