"""A deliberately hostile (or broken) "AgentHub" for testing the agent side: a raw asyncio HTTP
server on a loopback port, in a thread of its own so sync and async tests can both use it.

It opens a session for any token (so the client gets as far as its next request) and then
misbehaves as `behaviour` says, on every path (`sessions` makes the session answer misbehave
too). It records each request line and its headers, so a test can prove that nothing reached
it (the target of a redirect) or what a client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from types import TracebackType
from typing import Any

SESSION = {
    "token": "not.a.jwt",
    "expiresAt": "2099-01-01T00:00:00.000Z",
    "agent": {"id": "0" * 32, "name": "mallory", "displayName": "Mallory", "role": "agent"},
}
ROOM = {
    "id": "1" * 32,
    "slug": "general",
    "name": "General",
    "createdBy": "0" * 32,
    "createdAt": "2026-01-01T00:00:00.000Z",
}
HUGE_BYTES = 200 * 1024 * 1024
CHUNK = 1024 * 1024


class HostileHub:
    def __init__(self, behaviour: str, *, sessions: bool = False, location: str = "") -> None:
        self.behaviour = behaviour
        self.sessions = sessions  # misbehave on POST /api/v1/sessions too
        self.location = location  # where `redirect` points
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HostileHub:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the hostile hub did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            # Handlers still streaming (trickle, huge) are cancelled with the loop's tasks.
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            self.requests.append((lines[0], headers))
            length = int(headers.get("content-length", "0") or 0)
            if length:
                await reader.readexactly(length)
            await self._answer(lines[0], writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _answer(self, request_line: str, writer: asyncio.StreamWriter) -> None:
        if request_line.startswith("POST /api/v1/sessions") and not self.sessions:
            return await self._json(writer, 201, SESSION)
        kind = self.behaviour
        if kind == "huge":  # no Content-Length: only reading (and stopping) can bound it
            writer.write(b"HTTP/1.1 201 OK\r\nContent-Type: application/json\r\n")
            writer.write(b'Connection: close\r\n\r\n{"token": "')
            for _ in range(HUGE_BYTES // CHUNK):
                writer.write(b"a" * CHUNK)
                await writer.drain()
        elif kind == "trickle":  # headers, then one byte a second: no read ever times out
            writer.write(b"HTTP/1.1 201 OK\r\nContent-Type: application/json\r\n")
            writer.write(b"Content-Length: 100000\r\n\r\n")
            await writer.drain()
            for _ in range(100000):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(1)
        elif kind == "nested":
            deep = "[" * 100_000 + "]" * 100_000
            status = 201 if request_line.startswith("POST /api/v1/sessions") else 200
            await self._raw(writer, status, deep.encode())
        elif kind == "redirect":
            writer.write(f"HTTP/1.1 302 Found\r\nLocation: {self.location}\r\n".encode())
            writer.write(b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        elif kind == "garbage":
            writer.write(b"\x00\xffSSH-2.0-nonsense\r\n\r\n\x1b[2J" * 100)
        elif kind == "not-json":
            await self._raw(writer, 200, b"<html>hello</html>")
        elif kind == "bad-shape":  # rooms that are not room objects, a message with no seq
            if "/messages" in request_line:
                await self._json(writer, 200, {"messages": [{"id": "x", "body": 5}]})
            else:
                await self._json(writer, 200, {"rooms": [{"id": 1}], "agents": "none"})
        elif kind == "endless":  # every page full, the same messages: a naive loop never ends
            page = [_message(seq) for seq in range(200, 0, -1)]
            await self._json(writer, 200, {"messages": page, "nextCursor": "again"})
        elif kind == "socket-redirect":  # REST is fine; the real-time connection is redirected
            if request_line.startswith("GET /socket.io/"):
                writer.write(f"HTTP/1.1 302 Found\r\nLocation: {self.location}\r\n".encode())
                writer.write(b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            elif "/messages" in request_line:
                await self._json(writer, 200, {"messages": [], "nextCursor": None})
            else:
                await self._json(writer, 200, {"rooms": [ROOM]})
        elif kind == "escape":  # an error sentence that would drive the terminal
            error = {"code": "forbidden", "message": "no\x1b]0;owned\x07\x1b[2J\r\u202eway"}
            await self._json(writer, 403, {"error": error})
        await writer.drain()
        return None

    async def _json(self, writer: asyncio.StreamWriter, status: int, body: Any) -> None:
        await self._raw(writer, status, json.dumps(body).encode())

    async def _raw(self, writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        )
        writer.write(body)
        await writer.drain()


def _message(seq: int) -> dict[str, Any]:
    return {
        "id": f"m{seq}",
        "roomId": "r",
        "seq": seq,
        "senderId": "s",
        "body": "again",
        "clientMsgId": None,
        "createdAt": "2026-01-01T00:00:00.000Z",
    }
