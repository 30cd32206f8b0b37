"""One long-lived socket that makes the agent present in rooms (contract: `room:join`).

Presence belongs to a socket, so it has to be kept: this socket stays connected while the client
lives, reconnects by itself (a fresh JWT each time), and after every reconnect joins again the
rooms it was in. `everywhere` also joins every room of the agent, including rooms it is added to
later — what an always-on agent (the MCP server) wants. `join` answers with the contract's
`present` list: the agents present in the room, the caller included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from agenthub.client.errors import (
    AgentHubError,
    ConnectionError,
    Forbidden,
    NotFound,
    Unauthorized,
    error_from_ack,
)
from agenthub.client.session import SessionCache
from agenthub.client.sockets import call, open_socket
from agenthub.client.transport import backoff

if TYPE_CHECKING:
    import socketio

log = logging.getLogger("agenthub.client")

READY_TIMEOUT_S = 15.0
RECONNECT_MAX_DELAY_S = 5.0
REFUSED_RETRY_S = 60.0


class PresenceSocket:
    def __init__(self, url: str, sessions: SessionCache) -> None:
        self._url = url
        self._sessions = sessions
        self._rooms: set[str] = set()  # room ids to be present in
        self._member_rooms: set[str] = set()  # the agent's rooms, as the socket was told
        self._everywhere = False
        self._sio: socketio.AsyncClient | None = None
        self._up = asyncio.Event()
        self._error: AgentHubError | None = None  # why the last connection attempt failed
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def join(self, room_id: str) -> list[str]:
        """Be present in the room from now on; returns who is present (agent ids)."""
        self._rooms.add(room_id)
        sio = await self._ready()
        try:
            return await self._join_on(sio, room_id)
        except (Forbidden, NotFound):
            self._rooms.discard(room_id)
            raise

    async def stay_everywhere(self) -> None:
        """Be present in every room of the agent, now and later; waits for the first connect."""
        self._everywhere = True
        sio = await self._ready()
        # Rooms the socket heard of before this call; later ones are joined as they come.
        for room_id in sorted(self._member_rooms - self._rooms):
            self._rooms.add(room_id)
            await self._join_quietly(sio, room_id)

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _ready(self) -> socketio.AsyncClient:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="agenthub-presence")
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
        while not self._up.is_set():
            if isinstance(self._error, Unauthorized):
                raise self._error  # no point waiting: the API token itself is refused
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise self._error or ConnectionError(
                    f"no real-time connection to {self._url} within {READY_TIMEOUT_S:.0f}s"
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, 0.5)):
                    await self._up.wait()
        assert self._sio is not None
        return self._sio

    async def _join_on(self, sio: socketio.AsyncClient, room_id: str) -> list[str]:
        ack = await call(sio, "room:join", {"roomId": room_id})
        if not isinstance(ack, dict) or not ack.get("ok"):
            raise error_from_ack(ack.get("error") if isinstance(ack, dict) else None)
        return [str(agent_id) for agent_id in ack.get("present", [])]

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

            def queue(kind: str, events: asyncio.Queue[tuple[str, Any]] = events) -> Any:
                return lambda data=None: events.put_nowait((kind, data))

            try:
                sio = await open_socket(
                    self._url,
                    self._sessions,
                    {
                        "connected": queue("connected"),
                        "room:added": queue("added"),
                        "room:removed": queue("removed"),
                        "disconnect": queue("disconnect"),
                    },
                )
            except AgentHubError as exc:
                self._error = exc
                attempt += 1
                # A refused API token will not heal soon: ask rarely rather than flood the
                # server with failed logins.
                cap = REFUSED_RETRY_S if isinstance(exc, Unauthorized) else RECONNECT_MAX_DELAY_S
                await asyncio.sleep(backoff(attempt, cap=cap))
                continue
            attempt, self._error, self._sio = 0, None, sio
            try:
                await self._serve(sio, events)
            finally:
                self._up.clear()
                self._sio = None
                with contextlib.suppress(Exception):
                    await sio.disconnect()

    async def _serve(
        self, sio: socketio.AsyncClient, events: asyncio.Queue[tuple[str, Any]]
    ) -> None:
        for room_id in sorted(self._rooms):  # present again where we were before a reconnect
            await self._join_quietly(sio, room_id)
        self._up.set()
        while True:
            kind, data = await events.get()
            if kind == "disconnect":
                log.warning("presence connection lost; reconnecting")
                return
            if not isinstance(data, dict):
                continue
            if kind == "removed":
                self._member_rooms.discard(str(data.get("roomId")))
                self._rooms.discard(str(data.get("roomId")))
                continue
            rooms: list[Any] = data.get("rooms", []) if kind == "connected" else [data.get("id")]
            for ref in rooms:
                if not isinstance(ref, str):
                    continue
                self._member_rooms.add(ref)
                if self._everywhere:
                    self._rooms.add(ref)
                    await self._join_quietly(sio, ref)

    async def _join_quietly(self, sio: socketio.AsyncClient, room_id: str) -> None:
        try:
            await self._join_on(sio, room_id)
        except (Forbidden, NotFound):
            self._rooms.discard(room_id)  # no longer a member
        except AgentHubError as exc:
            log.warning("could not be present in room %s: %s", room_id, exc)
