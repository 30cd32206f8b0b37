"""The Engine.IO transport under the `/agents` namespace (agenthub/realtime/transport.py): a
session opened over websocket is served by the lean socket, long-polling sessions and their
upgrades by engine.io's own; the same guarantees either way, seen from real clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.realtime.test_js_client import JS_DIR, node_ready
from tests.support import Agent, Server, start_server, stop_process

NS = "/agents"
WAIT = 10.0
PING_INTERVAL = 1.0
PING_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def quick_pings(
    backend: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Pings every second, a second to answer; presence outlives any test here, so a socket
    leaves presence only by its transport closing."""
    srv = start_server(
        backend,
        database_url,
        Path(tmp_path_factory.mktemp(f"quick-pings-{backend}")),
        SOCKETIO_PING_INTERVAL=str(PING_INTERVAL),
        SOCKETIO_PING_TIMEOUT=str(PING_TIMEOUT),
        PRESENCE_TTL_SECONDS="600",
    )
    try:
        yield srv
    finally:
        srv.api.close()
        stop_process(srv.proc)


@contextlib.asynccontextmanager
async def client(
    server: Server, agent: Agent, transports: list[str] | None
) -> AsyncIterator[socketio.AsyncClient]:
    """python-socketio's client; `transports=None` is its default: polling, then upgrade."""
    sio = socketio.AsyncClient(reconnection=False)
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    sio.on("*", lambda event, data: events.put_nowait((event, data)), namespace=NS)
    sio.events = events  # type: ignore[attr-defined]
    await sio.connect(
        server.base_url,
        auth={"token": agent.jwt},
        namespaces=[NS],
        transports=transports,
        wait_timeout=WAIT,
    )
    try:
        yield sio
    finally:
        await sio.disconnect()


async def next_event(sio: socketio.AsyncClient, name: str, within: float = WAIT) -> Any:
    async with asyncio.timeout(within):
        while True:
            event, data = await sio.events.get()  # type: ignore[attr-defined]
            if event == name:
                return data


async def raw_socket(server: Server, agent: Agent, **kw: Any) -> ClientConnection:
    """A websocket speaking Engine.IO by hand, connected to `/agents`; it answers nothing
    unless the test does."""
    url = server.base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    ws = await connect(url, compression=None, ping_interval=None, open_timeout=WAIT, **kw)
    assert str(await asyncio.wait_for(ws.recv(), WAIT)).startswith("0")
    await ws.send(f"40{NS}," + json.dumps({"token": agent.jwt}))
    async with asyncio.timeout(WAIT):
        while not str(await ws.recv()).startswith(f"40{NS}"):
            pass
    return ws


async def test_websocket_peer_that_stops_answering_pings_is_closed_and_leaves_presence(
    quick_pings: Server,
) -> None:
    alice, bob = quick_pings.new_agent(), quick_pings.new_agent()
    room = quick_pings.new_room(alice, bob)
    rid = room["id"]
    async with client(quick_pings, alice, ["websocket"]) as a:
        await a.call("room:join", {"roomId": rid}, namespace=NS, timeout=WAIT)
        dead = await raw_socket(quick_pings, bob)
        try:
            await dead.send(f"42{NS},1" + json.dumps(["room:join", {"roomId": rid}]))
            # Answering pings meanwhile: more of them than the timeout, and still here.
            pongs = 0
            async with asyncio.timeout(WAIT):
                while pongs < 3:
                    if await dead.recv() == "2":
                        await dead.send("3")
                        pongs += 1
            deadline = time.monotonic() + WAIT
            while (await next_event(a, "presence:update", deadline - time.monotonic()))[
                "present"
            ] != sorted([alice.id, bob.id]):
                pass
            # From here bob never answers: the server writes CLOSE and ends the connection
            # within a ping interval and a timeout (bounded here by WAIT on top).
            frames: list[str] = []
            async with asyncio.timeout(PING_INTERVAL + PING_TIMEOUT + WAIT):
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        frames.append(str(await dead.recv()))
            assert frames[-1] == "1", frames
            assert "3" not in frames
            update = await next_event(a, "presence:update")
            assert update == {"roomId": rid, "present": [alice.id]}
            # Alice answered every ping all along: still connected, still served.
            ack = await a.call("message:send", {"roomId": rid, "body": "x"}, NS, timeout=WAIT)
            assert ack["ok"] is True
        finally:
            await dead.close()


async def test_long_polling_peer_that_stops_polling_is_closed_and_leaves_presence(
    quick_pings: Server,
) -> None:
    """engine.io's own sessions (long-polling) are watched by the server's monitor, not by a
    timer of their own: a peer that stops polling is closed after its ping goes unanswered."""
    alice, bob = quick_pings.new_agent(), quick_pings.new_agent()
    room = quick_pings.new_room(alice, bob)
    rid = room["id"]
    path = "/socket.io/?EIO=4&transport=polling"
    async with (
        client(quick_pings, alice, ["websocket"]) as a,
        httpx.AsyncClient(base_url=quick_pings.base_url, timeout=WAIT) as http,
    ):
        await a.call("room:join", {"roomId": rid}, namespace=NS, timeout=WAIT)
        opened = (await http.get(path)).text
        assert opened.startswith("0"), opened
        sid = json.loads(opened[1:])["sid"]
        polled = f"{path}&sid={sid}"
        join = f"42{NS},1" + json.dumps(["room:join", {"roomId": rid}])
        for sent in (f"40{NS}," + json.dumps({"token": bob.jwt}), join):
            r = await http.post(polled, content=sent)
            assert r.status_code == 200, r.text
        read = ""
        async with asyncio.timeout(WAIT):
            while f"43{NS},1" not in read:  # the join's ack (pings answered meanwhile)
                read = (await http.get(polled)).text
                if "\x1e2\x1e" in f"\x1e{read}\x1e":
                    await http.post(polled, content="3")
        deadline = time.monotonic() + WAIT
        while (await next_event(a, "presence:update", deadline - time.monotonic()))[
            "present"
        ] != sorted([alice.id, bob.id]):
            pass
        # From here bob neither polls nor answers: closed within a ping interval and a
        # timeout, and the monitor's period (a timeout) on top; bounded here by WAIT.
        update = await next_event(a, "presence:update", PING_INTERVAL + 2 * PING_TIMEOUT + WAIT)
        assert update == {"roomId": rid, "present": [alice.id]}
        r = await http.get(polled)
        assert r.status_code == 400, r.text  # the session is gone


async def test_a_peer_that_stops_reading_holds_back_no_one_and_loses_nothing(
    server: Server, alice: Agent, bob: Agent
) -> None:
    """Bob's socket stops reading (a small receive buffer, one message queued in the client)
    while megabytes are sent to the room; alice keeps receiving each message, in order; when
    bob reads again, everything is there, in order, once."""
    room = server.new_room(alice, bob)
    rid = room["id"]
    count, body = 100, "x" * 60_000
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = server.base_url.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    slow = await raw_socket(server, bob, sock=sock, max_queue=1, max_size=None)
    try:
        async with client(server, alice, ["websocket"]) as a:
            for n in range(1, count + 1):
                ack = await a.call("message:send", {"roomId": rid, "body": body}, NS, timeout=WAIT)
                assert ack["ok"] is True, ack
                seen = await next_event(a, "message:new")
                assert seen["seq"] == n, seen
                await asyncio.sleep(0.025)  # under the socket's rate limit (50 a second)
        seqs = []
        async with asyncio.timeout(WAIT * 3):
            while len(seqs) < count:
                frame = str(await slow.recv())
                if frame.startswith(f"42{NS},"):
                    event, data = json.loads(frame[len(f"42{NS},") :])
                    if event == "message:new":
                        seqs.append(data["seq"])
        assert seqs == list(range(1, count + 1))
    finally:
        await slow.close()


@pytest.mark.parametrize("transports", [["polling"], None, ["websocket"]])
async def test_every_transport_gets_each_message_once_in_order(
    quick_pings: Server, transports: list[str] | None
) -> None:
    """Long-polling (engine.io's socket), polling upgraded to websocket (engine.io's socket
    too) and websocket from the start (the lean socket) receive concurrent senders' messages
    each once, in seq order. (On the quick-ping server: a python-socketio polling client's
    disconnect waits for its last poll, which engine.io ends after a ping timeout.)"""
    server = quick_pings
    alice, bob = server.new_agent(), server.new_agent()
    room = server.new_room(alice, bob)
    rid = room["id"]
    per_sender = 30
    async with (
        client(server, bob, transports) as b,
        client(server, alice, ["websocket"]) as a1,
        client(server, alice, ["polling"]) as a2,
    ):
        if transports is None:  # the upgrade is done once a packet has gone over it
            async with asyncio.timeout(WAIT):
                while b.transport() != "websocket":  # noqa: ASYNC110 (no event for it)
                    await asyncio.sleep(0.05)

        async def send(sender: socketio.AsyncClient, tag: str) -> None:
            for i in range(per_sender):
                ack = await sender.call(
                    "message:send", {"roomId": rid, "body": f"{tag}{i}"}, NS, timeout=WAIT
                )
                assert ack["ok"] is True, ack

        await asyncio.gather(send(a1, "ws"), send(a2, "poll"))
        seqs = []
        async with asyncio.timeout(WAIT):
            while len(seqs) < 2 * per_sender:
                seqs.append((await next_event(b, "message:new"))["seq"])
        assert seqs == list(range(1, 2 * per_sender + 1))
        assert b.transport() == (transports or ["websocket"])[0]


def test_official_js_client_with_its_default_transports_upgrades_and_is_served(
    server: Server, alice: Agent, bob: Agent
) -> None:
    """socket.io-client's default: long-polling first, then the upgrade to websocket."""
    node = node_ready()
    room = server.new_room(alice, bob)
    done = subprocess.run(
        [node, str(JS_DIR / "upgrade.mjs"), server.base_url, alice.jwt, room["id"]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["connected"] == {"agentId": alice.id, "rooms": [room["id"]]}
    assert seen["transports"] == ["polling", "websocket"]
    assert seen["ack"]["ok"] is True
    assert seen["messageNew"] == seen["ack"]["message"]


async def test_broadcast_frames_of_every_length_arrive_intact_on_each_transport(
    quick_pings: Server,
) -> None:
    """A room's broadcast is framed once for every websocket recipient (fanout.py): bodies
    whose frames take each websocket length form (7-bit, 16-bit, 64-bit), in multi-byte
    characters too, arrive as sent over websocket and over long-polling alike."""
    server = quick_pings
    alice, bob, carol = server.new_agent(), server.new_agent(), server.new_agent()
    room = server.new_room(alice, bob, carol)
    bodies = ["x", "é" * 40, "y" * 200, "😀" * 16_000, "z" * 65_536]
    async with (
        client(server, bob, ["websocket"]) as on_ws,
        client(server, carol, ["polling"]) as on_poll,
        client(server, alice, ["websocket"]) as sender,
    ):
        for body in bodies:
            ack = await sender.call(
                "message:send", {"roomId": room["id"], "body": body}, NS, timeout=WAIT
            )
            assert ack["ok"] is True, ack
        for receiver in (on_ws, on_poll):
            got = [(await next_event(receiver, "message:new"))["body"] for _ in bodies]
            assert got == bodies


async def _ack(ws: ClientConnection, ack_id: int) -> Any:
    """The data of ack `ack_id` on a raw socket (other frames are skipped; pings answered)."""
    prefix = f"43{NS},{ack_id}"
    async with asyncio.timeout(WAIT):
        while True:
            frame = str(await ws.recv())
            if frame == "2":
                await ws.send("3")
            elif frame.startswith(prefix + "["):
                return json.loads(frame[len(prefix) :])


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_a_client_cannot_trigger_the_servers_connect_or_disconnect_handlers(
    quick_pings: Server, transport: str
) -> None:
    """`connect` and `disconnect` are the server's own events: python-socketio would run their
    handlers for a client's event of that name (with the client's arguments as the request).
    They are ignored, whatever the transport; the session goes on as the agent it is. (On the
    quick-pings server: the polling client's disconnect then waits a second, not 25.)"""
    server = quick_pings
    alice = server.new_agent()
    room = server.new_room(alice)
    mark = server.log_mark()
    if transport == "websocket":
        ws = await raw_socket(server, alice)
        try:
            await ws.send(f'42{NS},1["disconnect"]')
            await ws.send(f'42{NS},2["connect",{{"QUERY_STRING":"token=x"}},{{"token":"x"}}]')
            await ws.send(f'42{NS},3["connect",7]')
            body = {"roomId": room["id"], "body": "still here"}
            await ws.send(f"42{NS},4" + json.dumps(["message:send", body]))
            ack = await _ack(ws, 4)
        finally:
            await ws.close()
    else:
        async with client(server, alice, ["polling"]) as sio:
            for args in (["disconnect"], ["connect", {"QUERY_STRING": "token=x"}, {}]):
                # The client refuses reserved names; its packet layer does not.
                pkt = sio.packet_class(socketio.packet.EVENT, namespace=NS, data=args)
                await sio._send_packet(pkt)
            ack = [
                await sio.call(
                    "message:send", {"roomId": room["id"], "body": "still here"}, NS, timeout=WAIT
                )
            ]
    assert ack[0]["ok"] is True, ack
    assert ack[0]["message"]["senderId"] == alice.id
    log = server.log_text(mark)
    assert "Traceback" not in log, log[-2000:]
    assert "connect failed" not in log, log[-2000:]


async def test_events_sent_back_to_back_are_each_stored_and_acknowledged_once(
    server: Server, alice: Agent
) -> None:
    """Twenty sends without waiting for acks, with frames python-socketio handles itself among
    them (an unknown event, a malformed one): each is acknowledged once with its own message,
    and the room holds the twenty, gapless (in flight together, they may be stored in any
    order: docs/API.md, "Delivery and order")."""
    room = server.new_room(alice)
    ws = await raw_socket(server, alice)
    try:
        frames = []
        for n in range(1, 21):
            body = {"roomId": room["id"], "body": f"m{n}", "clientMsgId": f"c{n}"}
            frames.append(f"42{NS},{n}" + json.dumps(["message:send", body]))
            if n % 7 == 0:
                frames.append(f'42{NS},["no:such:event",{{}}]')
                frames.append(f"42{NS},[")
                frames.append(f"42{NS}," + "9" * 5000 + '["message:send",{}]')  # id too long
        # One websocket frame each, all in one TCP write (websockets buffers until drained).
        for frame in frames:
            await ws.send(frame)
        acks = {}
        async with asyncio.timeout(WAIT):
            while len(acks) < 20:
                frame = str(await ws.recv())
                if frame == "2":
                    await ws.send("3")
                elif frame.startswith(f"43{NS},"):
                    rest = frame[len(f"43{NS},") :]
                    ack_id, data = rest.split("[", 1)
                    acks[int(ack_id)] = json.loads("[" + data)[0]
        assert all(a["ok"] for a in acks.values()), acks
        assert {n: acks[n]["message"]["clientMsgId"] for n in acks} == {
            n: f"c{n}" for n in range(1, 21)
        }
        assert sorted(a["message"]["seq"] for a in acks.values()) == list(range(1, 21))
        r = alice.get(f"/api/v1/rooms/{room['id']}/messages", params={"afterSeq": 0})
        stored = {m["seq"]: m["clientMsgId"] for m in r.json()["messages"]}
        assert stored == {a["message"]["seq"]: a["message"]["clientMsgId"] for a in acks.values()}
    finally:
        await ws.close()
