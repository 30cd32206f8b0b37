"""A lean Socket.IO v4 client over one websocket: just what the load generator needs.

The official python-socketio client spends more CPU per message than the server we measure;
this speaks the same protocol (Engine.IO v4 text frames) with one `json.loads` per frame, so
that on a shared 2-core machine the generator is not what limits the numbers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

NS = "/agents"
_EVENT = f"42{NS},"
_ACK = f"43{NS},"
_CONNECT = f"40{NS},"
_ERROR = f"44{NS},"


class Refused(Exception):
    pass


class SioClient:
    def __init__(self, base_url: str, token: str) -> None:
        self.url = base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.token = token
        self.ws: ClientConnection | None = None
        self.handlers: dict[str, Callable[[Any], None]] = {}
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._connected: asyncio.Future[None] | None = None
        self._reader: asyncio.Task[None] | None = None

    def on(self, event: str, handler: Callable[[Any], None]) -> None:
        self.handlers[event] = handler

    async def connect(self, within: float = 30) -> None:
        self.ws = await connect(
            self.url, compression=None, max_size=None, open_timeout=within, ping_interval=None
        )
        opening = await asyncio.wait_for(self.ws.recv(), within)
        if not str(opening).startswith("0"):
            raise Refused(f"unexpected opening frame {str(opening)[:40]!r}")
        self._connected = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())
        await self.ws.send(_CONNECT + json.dumps({"token": self.token}))
        await asyncio.wait_for(self._connected, within)

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                if not isinstance(frame, str):
                    continue
                if frame.startswith(_EVENT):
                    event, *args = json.loads(frame[len(_EVENT) :])
                    handler = self.handlers.get(event)
                    if handler is not None:
                        handler(args[0] if args else None)
                elif frame.startswith(_ACK):
                    body = frame[len(_ACK) :]
                    split = body.index("[")
                    future = self._acks.pop(int(body[:split]), None)
                    if future is not None and not future.done():
                        future.set_result(json.loads(body[split:])[0])
                elif frame == "2":  # engine.io ping
                    await self.ws.send("3")
                elif frame.startswith((_CONNECT, _ERROR)) or frame == f"40{NS}":
                    self._settle_connect(frame)
        except Exception as exc:  # connection lost: fail whatever waits
            for future in self._acks.values():
                if not future.done():
                    future.set_exception(exc)
        finally:
            for future in self._acks.values():
                if not future.done():
                    future.set_exception(ConnectionError("closed"))

    def _settle_connect(self, frame: str) -> None:
        if self._connected is None or self._connected.done():
            return
        if frame.startswith(_ERROR):
            self._connected.set_exception(Refused(frame[len(_ERROR) :]))
        else:
            self._connected.set_result(None)

    async def call(self, event: str, data: Any) -> asyncio.Future[Any]:
        """Send an event with an ack id; returns the future of its ack."""
        assert self.ws is not None
        self._next_id += 1
        ack_id = self._next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        await self.ws.send(f"{_EVENT[:-1]},{ack_id}" + json.dumps([event, data]))
        return future

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
