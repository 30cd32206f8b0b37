"""SIGTERM: an orderly stop refuses what is new, finishes what is in flight, and loses no
acknowledged message."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import socketio
import websockets

from tests.databases import fresh_pg_database, query
from tests.support import start_server, stop_process

NS = "/agents"
WAIT = 10  # seconds: the bound on any single expected event
SENDERS = 4
WINDOW = 4  # sends in flight per socket


async def test_sigterm_mid_burst_keeps_every_acked_message_and_exits_zero(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    # Sockets here send faster than the default 30 events/s.
    srv = start_server(backend, database_url, tmp_path / "data", RATE_LIMIT_SOCKET_PER_SEC="100000")
    try:
        agents = [srv.new_agent() for _ in range(SENDERS)]
        room = srv.new_room(agents[0], *agents[1:])
        clients = []
        for agent in agents:
            c = socketio.AsyncClient(reconnection=False)
            await c.connect(
                srv.base_url,
                auth={"token": agent.jwt},
                namespaces=[NS],
                transports=["websocket"],
                wait_timeout=10,
            )
            clients.append(c)

        acked: list[dict[str, Any]] = []
        refused: list[str] = []
        last_outcome: dict[int, str] = {}  # sender -> how its last send ended
        going = asyncio.Event()  # enough acks: the burst is under way

        async def sender(i: int, c: socketio.AsyncClient) -> None:
            """Sends until the server stops taking them (a refusal, or the connection closed)."""
            n = 0
            while n < 20_000:
                batch = []
                for _ in range(WINDOW):
                    n += 1
                    payload = {"roomId": room["id"], "body": f"m{i}-{n}", "clientMsgId": f"{i}-{n}"}
                    batch.append(c.call("message:send", payload, namespace=NS, timeout=10))
                for outcome in await asyncio.gather(*batch, return_exceptions=True):
                    if isinstance(outcome, dict) and outcome.get("ok"):
                        acked.append(outcome["message"])
                        last_outcome[i] = "acked"
                        if len(acked) >= 100:
                            going.set()
                    elif isinstance(outcome, dict):
                        refused.append(outcome["error"]["code"])
                        last_outcome[i] = "refused"
                    else:  # the connection closed before this ack: not acknowledged
                        last_outcome[i] = "lost"
                if last_outcome[i] != "acked":
                    return

        async with asyncio.timeout(60):
            tasks = [asyncio.create_task(sender(i, c)) for i, c in enumerate(clients)]
            await asyncio.wait_for(going.wait(), 20)
            srv.proc.send_signal(signal.SIGTERM)
            exit_code = await asyncio.to_thread(srv.proc.wait, 20)
            await asyncio.gather(*tasks)
        for c in clients:
            await c.disconnect()
    finally:
        srv.api.close()
        stop_process(srv.proc)

    assert exit_code == 0, srv.log_text()[-2000:]
    # Every sender saw the server stop taking sends (they send until it does), and the only
    # refusal it gives is `unavailable`.
    assert sorted(last_outcome) == list(range(SENDERS))
    assert all(kind in ("refused", "lost") for kind in last_outcome.values()), last_outcome
    assert [code for code in refused if code != "unavailable"] == [], refused
    rows = query(
        database_url,
        "SELECT m.seq, m.client_msg_id FROM messages m JOIN rooms r ON r.id = m.room_id "
        "WHERE r.slug = $1 ORDER BY m.seq",
        room["slug"],
    )
    stored_ids = [r[1] for r in rows]
    assert len(stored_ids) == len(set(stored_ids)), "a message was stored twice"
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), "seqs have a gap"
    missing = {m["clientMsgId"] for m in acked} - set(stored_ids)
    assert not missing, f"acknowledged but not stored: {sorted(missing)[:5]}"
    assert len(rows) >= len(acked)
    assert "Traceback" not in srv.log_text()


@pytest.fixture
def own_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database of this test's own: it holds a write lock that nothing else may wait on."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'shutdown.db'}"
    else:
        with fresh_pg_database("shutdown") as url:
            yield url


@contextlib.asynccontextmanager
async def writes_held(database_url: str, room_id: str) -> AsyncIterator[None]:
    """Sends to the room wait (in the database) until the block exits: a send stays in flight.

    SQLite: a write transaction of our own (the server's writer waits on busy_timeout).
    PostgreSQL: the room's row lock, which the writer needs to take the room's next seq."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.split("///", 1)[1], isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    pg = await asyncpg.connect(database_url, timeout=5)
    try:
        await pg.execute("BEGIN")
        await pg.fetch("SELECT id FROM rooms WHERE id = $1 FOR UPDATE", uuid.UUID(room_id))
        yield
        await pg.execute("COMMIT")
    finally:
        await pg.close()


async def test_sigterm_refuses_new_events_and_handshakes_and_delivers_what_it_acked(
    backend: str, own_database: str, tmp_path: Path
) -> None:
    """The README's shutdown, step by step: a send is held in flight (its room is locked in the
    database), SIGTERM arrives; meanwhile new events are refused `unavailable`, new
    connections and namespace handshakes are refused; once the send commits it is acked,
    delivered to a listener and stored, and the process exits 0."""
    database_url = own_database
    srv = start_server(backend, database_url, tmp_path / "data")
    clients: list[socketio.AsyncClient] = []
    try:
        alice, bob = srv.new_agent(), srv.new_agent()
        room = srv.new_room(alice, bob)
        heard: list[dict[str, Any]] = []
        sender, listener = socketio.AsyncClient(), socketio.AsyncClient()
        listener.on("message:new", heard.append, namespace=NS)
        for client, agent in ((sender, alice), (listener, bob)):
            await client.connect(
                srv.base_url,
                auth={"token": agent.jwt},
                namespaces=[NS],
                transports=["websocket"],
                wait_timeout=WAIT,
            )
            clients.append(client)
        ws_url = srv.base_url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        async with websockets.connect(ws_url) as late, asyncio.timeout(60):
            assert str(await late.recv()).startswith("0")  # engine.io open, no namespace yet

            in_flight = asyncio.get_running_loop().create_future()
            async with writes_held(database_url, room["id"]):
                await sender.emit(
                    "message:send",
                    {"roomId": room["id"], "body": "in flight at SIGTERM"},
                    namespace=NS,
                    callback=in_flight.set_result,
                )
                # Events of one socket start in order: once this later one is answered,
                # the send is being handled (and waits on the lock).
                joined = await sender.call("room:join", {"roomId": room["id"]}, namespace=NS)
                assert joined["ok"] is True, joined
                assert not in_flight.done()

                srv.proc.send_signal(signal.SIGTERM)
                for _ in range(200):  # until the server drains (bounded)
                    ack = await sender.call("room:join", {"roomId": room["id"]}, namespace=NS)
                    if not ack["ok"]:
                        break
                    await asyncio.sleep(0.05)
                assert ack["error"]["code"] == "unavailable", ack
                refused = await sender.call(
                    "message:send",
                    {"roomId": room["id"], "body": "sent while draining"},
                    namespace=NS,
                )
                assert refused["ok"] is False
                assert refused["error"]["code"] == "unavailable"
                # New connections are not accepted...
                newcomer = socketio.AsyncClient(reconnection=False)
                with pytest.raises(socketio.exceptions.ConnectionError):
                    await newcomer.connect(
                        srv.base_url,
                        auth={"token": alice.jwt},
                        namespaces=[NS],
                        transports=["websocket"],
                        wait_timeout=WAIT,
                    )
                await newcomer.disconnect()
                # ...and a connection already open is refused the namespace handshake.
                await late.send(f"40{NS}," + json.dumps({"token": bob.jwt}))
                answer = str(await late.recv())
                while answer == "2":  # an engine.io ping may come first
                    await late.send("3")
                    answer = str(await late.recv())
                assert answer.startswith(f"44{NS},"), answer  # CONNECT_ERROR
                assert json.loads(answer.split(",", 1)[1]) == {"message": "unavailable"}
                assert srv.proc.poll() is None  # still waiting for the send in flight
            # The lock is gone: the send commits, is acked and delivered, then the stop ends.
            acked = await in_flight
            assert acked["ok"] is True, acked
            exit_code = await asyncio.to_thread(srv.proc.wait, 30)
        assert exit_code == 0, srv.log_text()[-2000:]
        assert [m["id"] for m in heard] == [acked["message"]["id"]]
        rows = query(database_url, "SELECT body FROM messages ORDER BY seq")
        assert rows == [("in flight at SIGTERM",)]
    finally:
        for client in clients:
            await client.disconnect()
        srv.api.close()
        stop_process(srv.proc)
