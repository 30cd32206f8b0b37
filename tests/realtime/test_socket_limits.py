"""The Socket.IO edge before authentication: frame and body sizes, the deadline, the cap.

Raw clients (httpx for long-polling, `websockets` for the websocket transport) speak Engine.IO
directly, because the official clients always go on to connect to `/agents`, and an attacker's
client does not. Each test opens its sessions from a loopback address of its own (127.x.y.z),
so that the per-address count starts at zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import socketio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agenthub.server import GRACE_SECONDS
from tests.support import (
    Server,
    assert_error,
    loopback_address,
    start_server,
    stop_process,
)

NS = "/agents"
WAIT = 10.0
ONE_MIB = 1024 * 1024
CAP = 5
DEADLINE = 2.0
EIO = "/socket.io/?EIO=4"


def vm_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


# ---- raw Engine.IO clients ----


class Polling:
    """One Engine.IO long-polling session, from `address`."""

    def __init__(self, server: Server, address: str) -> None:
        transport = httpx.AsyncHTTPTransport(local_address=address)
        self.http = httpx.AsyncClient(base_url=server.base_url, transport=transport, timeout=WAIT)
        self.sid = ""

    @property
    def url(self) -> str:
        return f"{EIO}&transport=polling&sid={self.sid}"

    async def open(self) -> httpx.Response:
        r = await self.http.get(f"{EIO}&transport=polling")
        if r.status_code == 200:
            assert r.text.startswith("0"), r.text
            self.sid = json.loads(r.text[1:])["sid"]
        return r

    async def post(self, *packets: str) -> httpx.Response:
        return await self.http.post(self.url, content="\x1e".join(packets))

    async def packets(self) -> list[str] | None:
        """The next packets from the server, or None once the session is gone (a 400)."""
        r = await self.http.get(self.url)
        if r.status_code == 400:
            return None
        assert r.status_code == 200, r.text
        return r.text.split("\x1e")

    async def authenticate(self, jwt: str) -> None:
        r = await self.post(f"40{NS}," + json.dumps({"token": jwt}))
        assert r.status_code == 200, r.text
        async with asyncio.timeout(WAIT):
            while True:
                packets = await self.packets()
                assert packets is not None, "the session closed before authenticating"
                for packet in packets:
                    assert not packet.startswith(f"44{NS}"), packet
                    if packet.startswith(f"40{NS}"):
                        return

    async def close(self) -> None:
        if self.sid:
            with contextlib.suppress(httpx.HTTPError):
                await self.post("1")
        await self.http.aclose()


async def ws_open(server: Server, address: str) -> ClientConnection:
    """An Engine.IO websocket session from `address`, past its OPEN packet."""
    url = server.base_url.replace("http", "ws", 1) + f"{EIO}&transport=websocket"
    ws = await connect(
        url,
        local_addr=(address, 0),
        compression=None,
        max_size=None,
        open_timeout=WAIT,
        ping_interval=None,
    )
    opening = await asyncio.wait_for(ws.recv(), WAIT)
    assert str(opening).startswith("0"), opening
    return ws


async def ws_authenticate(ws: ClientConnection, jwt: str) -> None:
    await ws.send(f"40{NS}," + json.dumps({"token": jwt}))
    async with asyncio.timeout(WAIT):
        while True:
            frame = str(await ws.recv())
            assert not frame.startswith(f"44{NS}"), frame
            if frame.startswith(f"40{NS}"):
                return


@contextlib.asynccontextmanager
async def sessions() -> AsyncIterator[list[Polling | ClientConnection]]:
    """Whatever a test opens, closed at the end whatever happened."""
    opened: list[Polling | ClientConnection] = []
    try:
        yield opened
    finally:
        for s in opened:
            with contextlib.suppress(Exception):
                await s.close()


# ---- servers of their own ----


@contextlib.contextmanager
def running(backend: str, database_url: str, data_dir: Path, **env: str) -> Iterator[Server]:
    srv = start_server(backend, database_url, data_dir, **env)
    try:
        yield srv
    finally:
        srv.api.close()
        stop_process(srv.proc)


@pytest.fixture(scope="module")
def capped(
    backend: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A small cap and a deadline no test reaches, and a small REST budget per address."""
    with running(
        backend,
        database_url,
        tmp_path_factory.mktemp(f"capped-{backend}"),
        MAX_UNAUTHENTICATED_PER_IP=str(CAP),
        SOCKET_AUTH_DEADLINE_SECONDS="600",
        RATE_LIMIT_UNAUTH_PER_MIN="30",
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def short_deadline(
    backend: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A 2-second deadline, and a ping every second (so clients answer pings meanwhile)."""
    with running(
        backend,
        database_url,
        tmp_path_factory.mktemp(f"deadline-{backend}"),
        SOCKET_AUTH_DEADLINE_SECONDS=str(DEADLINE),
        SOCKETIO_PING_INTERVAL="1",
        SOCKETIO_PING_TIMEOUT="5",
    ) as srv:
        yield srv


# ---- sizes ----


async def test_oversized_websocket_frames_close_the_connection_without_being_buffered(
    capped: Server,
) -> None:
    """Four connections each sending a 15 MB frame before authenticating: each is closed as
    'message too big' (1009) from the frame's header, and the server's memory stays flat
    (the frames used to be buffered whole, about 135 MiB more RSS)."""
    frame = "4" + "x" * 15_000_000
    address = loopback_address()
    before = vm_rss_mib(capped.proc.pid)

    async def attack() -> int | None:
        ws = await ws_open(capped, address)
        with contextlib.suppress(ConnectionClosed, OSError):  # closed while still sending
            await ws.send(frame)
        async with asyncio.timeout(WAIT):
            await ws.wait_closed()
        return ws.close_code

    codes = await asyncio.gather(*(attack() for _ in range(4)))
    rise = vm_rss_mib(capped.proc.pid) - before
    assert rise < 20, f"server RSS rose by {rise:.1f} MiB"
    assert codes == [1009] * 4, codes
    # Frames within the limit still go through.
    ws = await ws_open(capped, loopback_address())
    try:
        await ws_authenticate(ws, capped.admin.jwt)
    finally:
        await ws.close()


async def test_polling_post_over_the_limit_is_answered_and_does_not_hold_the_shutdown(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    """Engine.IO left an oversized polling POST unanswered until the session's CLOSE packet
    was polled, which held the shutdown for its whole grace period."""
    with running(backend, database_url, tmp_path) as srv:
        session = Polling(srv, loopback_address())
        try:
            assert (await session.open()).status_code == 200
            r = await session.http.post(session.url, content=b"4" + b"x" * ONE_MIB)
            assert_error(r, 413, "payload_too_large")

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length
                for _ in range(20):
                    yield b"x" * 65536

            r = await session.http.post(session.url, content=chunks())
            assert_error(r, 413, "payload_too_large")
            # The session itself is still served.
            r = await session.post(f"40{NS}," + json.dumps({"token": srv.admin.jwt}))
            assert (r.status_code, r.text) == (200, "OK")
        finally:
            await session.http.aclose()
        srv.proc.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(srv.proc.wait, 3 * GRACE_SECONDS)
        log = srv.log_text()
        assert exit_code == 0, log[-2000:]
        # A request still held would have kept the stop waiting for GRACE_SECONDS, then been
        # cancelled (uvicorn says so).
        assert "timeout graceful shutdown exceeded" not in log, log[-2000:]


# ---- the deadline ----


async def test_unauthenticated_polling_session_is_closed_at_the_deadline_despite_pings(
    short_deadline: Server,
) -> None:
    session = Polling(short_deadline, loopback_address())
    pongs = 0
    closed = False
    try:
        assert (await session.open()).status_code == 200
        async with asyncio.timeout(10 * DEADLINE + WAIT):
            while not closed:
                packets = await session.packets()
                assert packets is not None, "the session vanished without a CLOSE packet"
                for packet in packets:
                    if packet == "2":
                        assert (await session.post("3")).status_code == 200
                        pongs += 1
                    closed = closed or packet == "1"
        assert pongs >= 1  # it was alive and answering pings when it was closed
        assert await session.packets() is None  # and it is gone for good
    finally:
        await session.http.aclose()


async def test_unauthenticated_websocket_is_closed_at_the_deadline_authenticated_ones_stay(
    short_deadline: Server,
) -> None:
    alice = short_deadline.new_agent()
    room = short_deadline.new_room(alice)
    official = socketio.AsyncClient(reconnection=False)
    await official.connect(
        short_deadline.base_url,
        auth={"token": alice.jwt},
        namespaces=[NS],
        transports=["websocket"],
        wait_timeout=WAIT,
    )
    try:
        ws = await ws_open(short_deadline, loopback_address())
        pongs = 0
        frames: list[str] = []
        async with asyncio.timeout(10 * DEADLINE + WAIT):
            with contextlib.suppress(ConnectionClosed):
                while True:
                    frame = str(await ws.recv())
                    frames.append(frame)
                    if frame == "2":
                        await ws.send("3")
                        pongs += 1
            await ws.wait_closed()
        assert pongs >= 1, frames
        assert frames[-1] == "1", frames  # Engine.IO's CLOSE, then the connection ends
        # The authenticated socket, connected before the raw one, is past the deadline too.
        assert official.connected
        ack = await official.call("room:join", {"roomId": room["id"]}, namespace=NS, timeout=WAIT)
        assert ack["ok"] is True, ack
    finally:
        await official.disconnect()


# ---- the cap per address ----


async def test_handshakes_over_the_cap_are_refused_until_some_authenticate_or_close(
    capped: Server,
) -> None:
    address = loopback_address()
    async with sessions() as opened:
        polls = []
        for _ in range(3):
            opened.append(p := Polling(capped, address))
            assert (await p.open()).status_code == 200
            polls.append(p)
        sockets = []
        for _ in range(CAP - 3):
            opened.append(ws := await ws_open(capped, address))
            sockets.append(ws)

        async def refused_polling() -> None:
            extra = Polling(capped, address)
            try:
                r = await extra.open()
            finally:
                await extra.http.aclose()
            message = assert_error(r, 429, "rate_limited")
            assert "authenticate" in message, message
            assert int(r.headers["retry-after"]) >= 1

        await refused_polling()
        with pytest.raises(InvalidStatus) as refusal:
            await ws_open(capped, address)
        assert refusal.value.response.status_code == 429
        body = json.loads(refusal.value.response.body or b"{}")
        assert body["error"]["code"] == "rate_limited", body

        # Another address is not affected.
        opened.append(other := Polling(capped, loopback_address()))
        assert (await other.open()).status_code == 200

        # One authenticating frees its place: one more is accepted, then the address is full.
        await polls[0].authenticate(capped.admin.jwt)
        opened.append(p := Polling(capped, address))
        assert (await p.open()).status_code == 200
        await refused_polling()

        # One closing frees its place too (the server learns of a websocket's end a moment
        # later, hence a few tries).
        await sockets[0].close()
        opened.append(p := Polling(capped, address))
        async with asyncio.timeout(WAIT):
            while (await p.open()).status_code == 429:  # noqa: ASYNC110 (polling the server)
                await asyncio.sleep(0.05)
        await refused_polling()


async def test_authenticated_sockets_are_not_counted(capped: Server) -> None:
    address = loopback_address()
    async with sessions() as opened:
        for _ in range(CAP):
            opened.append(ws := await ws_open(capped, address))
            await ws_authenticate(ws, capped.admin.jwt)
        for _ in range(CAP):  # a full allowance of pending ones beside them
            opened.append(p := Polling(capped, address))
            assert (await p.open()).status_code == 200
        with pytest.raises(InvalidStatus) as refusal:
            await ws_open(capped, address)
        assert refusal.value.response.status_code == 429


async def test_handshakes_are_not_charged_to_the_rest_rate_limit(capped: Server) -> None:
    """A machine reconnecting many agents after a restart, or a load test, opens far more
    sessions a minute than RATE_LIMIT_UNAUTH_PER_MIN (30 here) from one address."""
    address = loopback_address()
    for i in range(40):
        session = Polling(capped, address)
        try:
            r = await session.open()
            assert r.status_code == 200, (i, r.status_code, r.text)
        finally:
            await session.close()
    ws = await ws_open(capped, address)
    await ws.close()
    # The address's REST budget is untouched: a request without credentials is a 401.
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=capped.base_url, transport=transport) as c:
        assert_error(await c.get("/api/v1/agents"), 401, "unauthorized")
