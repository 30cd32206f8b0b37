"""Network faults for client tests: a TCP proxy the test controls, and a server restart.

The proxy sits between a client and a real server and only moves bytes; the faults are the
network's (connections cut, connections refused, an answer lost after the server acted), never
a fake AgentHub.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlparse

from tests.support import Server, spawn_server, stop_process, wait_ready


@dataclass(eq=False)
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    swallow: bool = False  # the next response on this link is lost
    hold: asyncio.Event | None = None  # the next response on this link waits for it
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()


class TcpProxy:
    """127.0.0.1:<port> → 127.0.0.1:<target>; start with `await TcpProxy(target).start()`.

    - `refusing = True`: new connections are closed at once (the server seems down).
    - `drop_all()`: cut every open connection (a network failure).
    - `lose_next_response(marker)`: the next request containing `marker` reaches the server,
      and its response is cut before the client sees a byte of it.
    - `hold_next_response(marker)`: the next request containing `marker` reaches the server,
      and its response waits in the proxy until the returned event is set; `held` counts the
      responses that arrived to wait (the server has answered: what it read, it has read).
    - `statuses`: the HTTP status of every response that went through (101 for an upgrade to
      a websocket).
    - `refused`: how many connections were closed at once while `refusing`.
    - `watch(marker)`, then `delivered(marker)`: how many chunks passed to clients held it.
    - `await until(condition)`: wait for one of those to change as wanted.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.refusing = False
        self.lost_responses = 0
        self.held = 0
        self.statuses: list[int] = []
        self.refused = 0
        self._watched: dict[bytes, int] = {}
        self._progress = asyncio.Event()  # set whenever a status or a watched marker is seen
        self._armed: bytes | None = None
        self._hold_armed: tuple[bytes, asyncio.Event] | None = None
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self.drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def drop_all(self) -> None:
        for link in list(self._links):
            link.abort()

    def lose_next_response(self, marker: bytes) -> None:
        self._armed = marker

    def hold_next_response(self, marker: bytes) -> asyncio.Event:
        release = asyncio.Event()
        self._hold_armed = (marker, release)
        return release

    def watch(self, marker: bytes) -> None:
        self._watched[marker] = 0

    def delivered(self, marker: bytes) -> int:
        return self._watched[marker]

    async def until(self, condition: Callable[[], bool]) -> None:
        """Until `condition()` (of `statuses`, `delivered`, `held`) holds; bound it with a
        timeout."""
        while not condition():
            self._progress.clear()
            await self._progress.wait()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, link, upstream=True)),
            asyncio.create_task(self._pump(up_reader, writer, link, upstream=False)),
        ]
        try:
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            link.abort()
            for task in link.tasks:
                task.cancel()
            self._links.discard(link)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        link: _Link,
        *,
        upstream: bool,
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(65536):
                if upstream and self._armed is not None and self._armed in data:
                    self._armed = None
                    link.swallow = True
                if upstream and self._hold_armed is not None and self._hold_armed[0] in data:
                    link.hold, self._hold_armed = self._hold_armed[1], None
                if not upstream and link.hold is not None:
                    release, link.hold = link.hold, None
                    self.held += 1
                    self._progress.set()
                    await release.wait()
                if not upstream:
                    if link.swallow:
                        self.lost_responses += 1
                        return  # the caller aborts both sides: the answer never arrives
                    if data.startswith(b"HTTP/1.") and data[9:12].isdigit():
                        self.statuses.append(int(data[9:12]))
                        self._progress.set()
                    for marker in self._watched:
                        if marker in data:
                            self._watched[marker] += 1
                            self._progress.set()
                sink.write(data)
                await sink.drain()


@asynccontextmanager
async def proxy_to(server: Server) -> AsyncIterator[TcpProxy]:
    """A TcpProxy to the server, closed on exit."""
    proxy = await TcpProxy(int(server.base_url.rsplit(":", 1)[1])).start()
    try:
        yield proxy
    finally:
        await proxy.close()


def restart_server(server: Server, **extra_env: str) -> None:
    """Stop the server's process and start a new one on the same port and database.

    Blocking (it waits for readiness): call it through `asyncio.to_thread` from async tests so
    that clients on the test's loop keep running meanwhile."""
    stop_process(server.proc)
    port = urlparse(server.base_url).port
    assert port is not None
    server.env = {**server.env, **extra_env}
    server.past_logs.append(server.log_path)
    server.log_path = server.log_path.with_name(f"{server.log_path.stem}-restarted.log")
    server.proc = spawn_server(server.env, port, server.log_path)
    wait_ready(server.base_url, server.proc, server.log_path)
