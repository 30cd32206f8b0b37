"""`client.messages()`: every message of the followed rooms exactly once, in seq order, for as
long as you iterate — across dropped connections and server restarts.

How it keeps that promise:
- The subscription remembers, per room, the last seq it handed out (`cursors`).
- On every (re)connect it first has the socket in its rooms, then catches each room up over
  REST with `afterSeq=<cursor>` (page after page), so nothing committed meanwhile is missed.
- A live `message:new` is handed out only if its seq is the cursor + 1; a lower seq was already
  handed out and is dropped; a higher one reveals a gap, which is filled over REST first.
- Everything runs in the consumer's task, one step per `__anext__`, so the order of the steps
  is the order of the code; socket handlers only queue what arrives.

Where a room starts: at `after[room]` if given (resume from a seq you stored), else at the
room's first message with `from_beginning=True`, else after its latest message when the
subscription first connects — on `async with` entry, `start()`, or the first iteration —
(only new messages). A room that becomes yours while subscribed
(`rooms=None` only) is followed from its first message: what was said when you were added is
for you. A room you leave stops; if you are added back, it resumes after its cursor.

The first connection's failures are raised (a wrong URL or token fails fast); once connected,
lost connections are retried forever with backoff (at most 5 s apart). Seq order holds within a
room; rooms interleave in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from agenthub.client.errors import (
    BadResponse,
    ConnectionError,
    Forbidden,
    NotFound,
    Unavailable,
)
from agenthub.client.models import InboxItem, Message, Room
from agenthub.client.sockets import open_socket
from agenthub.client.transport import backoff

if TYPE_CHECKING:
    import socketio

    from agenthub.client.session import SessionCache

log = logging.getLogger("agenthub.client")

PAGE = 200  # the contract's largest `limit`
RECONNECT_MAX_DELAY_S = 5.0
TRANSIENT = (ConnectionError, Unavailable)


class RoomReader(Protocol):
    """The REST calls a subscription catches up with (`AgentHubClient` is one); a protocol, so
    this module needs nothing from client.py, which builds subscriptions."""

    async def rooms(self) -> list[Room]: ...

    async def room(self, room: str) -> Room: ...

    async def catch_up(self, room: str, after_seq: int, *, limit: int = ...) -> list[Message]: ...

    async def latest_seq(self, room: str) -> int: ...


class Subscription:
    """An async iterator of `Message`; also an async context manager that closes it."""

    def __init__(
        self,
        reader: RoomReader,
        rooms: Sequence[str] | None,
        after: Mapping[str, int] | None,
        from_beginning: bool,
        *,
        url: str,
        sessions: SessionCache,
        on_close: Callable[[Subscription], None],
        on_inbox: Callable[[InboxItem], None] | None = None,
    ) -> None:
        self._reader = reader
        self._on_inbox = on_inbox
        self._url = url
        self._sessions = sessions
        self._on_close = on_close
        self._wanted = list(rooms) if rooms is not None else None
        self._wanted_ids: set[str] = set()
        self._after = dict(after or {})
        self._from_beginning = from_beginning
        self.cursors: dict[str, int] = {}  # room id -> last seq handed out
        self.connections = 0  # successful (re)connects so far
        self._active: set[str] = set()  # rooms followed now (a member, and wanted)
        self._pending: dict[str, None] = {}  # rooms to catch up over REST, in order
        self._ready: deque[Message] = deque()
        self._events: asyncio.Queue[tuple[int, str, Any]] = asyncio.Queue()
        self._sio: socketio.AsyncClient | None = None
        self._gen = 0  # which connection an event came from; older ones are ignored
        self._started = False
        self._closed = False

    # ---- iteration ----

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        while not self._ready:
            if self._closed:
                raise StopAsyncIteration
            await self._step()
        return self._ready.popleft()

    def take_buffered(self) -> list[Message]:
        """The messages already received and not yet handed out, without waiting."""
        out = list(self._ready)
        self._ready.clear()
        return out

    async def start(self) -> None:
        """Connect now rather than at the first iteration (`async with` does it for you).

        "Only new messages" means new from this moment; the first connection's failures are
        raised here."""
        if self._sio is None and not self._started and not self._closed:
            await self._connect()

    async def __aenter__(self) -> Subscription:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._events.put_nowait((self._gen, "closed", None))  # wakes a waiting __anext__
        await self._drop_socket()
        self._on_close(self)

    # ---- one step: connect, or catch up one page, or take one event ----

    async def _step(self) -> None:
        if self._sio is None:
            await self._connect()
        elif self._pending:
            await self._catch_up_page(next(iter(self._pending)))
        else:
            gen, kind, data = await self._events.get()
            if gen == self._gen and not self._closed:
                await self._handle(kind, data)

    async def _handle(self, kind: str, data: Any) -> None:
        if kind == "message":
            self._on_message(Message.from_wire(data))
        elif kind == "added":
            room = Room.from_wire(data)
            if self._follows(room.id):
                self.cursors.setdefault(room.id, 0)  # a new membership: from its first message
                self._active.add(room.id)
                self._pending[room.id] = None
        elif kind == "removed" and isinstance(data, dict):
            room_id = str(data.get("roomId"))
            self._active.discard(room_id)
            self._pending.pop(room_id, None)
        elif kind == "disconnect":
            log.warning("real-time connection lost; reconnecting")
            await self._drop_socket()

    def _inbox_item(self, data: Any = None) -> None:
        try:
            item = InboxItem.from_wire(data)
        except BadResponse as exc:
            log.warning("ignoring a malformed inbox item (%s)", exc)
            return
        if self._on_inbox is not None and not self._closed:
            self._on_inbox(item)

    def _on_message(self, message: Message) -> None:
        room_id = message.room_id
        if room_id not in self._active:
            return
        last = self.cursors[room_id]
        if message.seq == last + 1:
            self._deliver(message)
        elif message.seq > last + 1:
            self._pending[room_id] = None  # a gap: fetch what is missing, in order

    def _deliver(self, message: Message) -> None:
        self._ready.append(message)
        self.cursors[message.room_id] = message.seq

    async def _catch_up_page(self, room_id: str) -> None:
        try:
            page = await self._reader.catch_up(room_id, self.cursors[room_id], limit=PAGE)
        except (Forbidden, NotFound):
            # No longer a member (or the room is gone); `room:removed` is on its way.
            self._active.discard(room_id)
            self._pending.pop(room_id, None)
            return
        except TRANSIENT as exc:
            log.warning("catching up failed (%s); reconnecting", exc)
            await self._drop_socket()
            return
        for message in page:
            if message.seq > self.cursors[room_id]:
                self._deliver(message)
        if len(page) < PAGE:
            self._pending.pop(room_id, None)

    # ---- connecting ----

    async def _connect(self) -> None:
        attempt = 0
        while not self._closed:
            try:
                await self._open()
                return
            except TRANSIENT as exc:
                if not self._started:
                    raise
                attempt += 1
                delay = backoff(attempt, cap=RECONNECT_MAX_DELAY_S)
                log.warning("reconnect failed (%s); next attempt in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    async def _open(self) -> None:
        self._gen += 1
        gen = self._gen

        def queue(kind: str) -> Any:
            def handler(data: Any = None) -> None:
                self._events.put_nowait((gen, kind, data))

            return handler

        handlers = {
            "message:new": queue("message"),
            "room:added": queue("added"),
            "room:removed": queue("removed"),
            "disconnect": queue("disconnect"),
        }
        if self._on_inbox is not None:
            handlers["inbox:new"] = self._inbox_item
        sio = await open_socket(self._url, self._sessions, handlers)
        self._sio = sio
        try:
            # The socket is in every room of ours now: whatever is committed from here on
            # arrives live, and the catch-up below covers everything before.
            await self._sync_rooms()
        except BaseException:
            await self._drop_socket()
            raise
        self._started = True
        self.connections += 1

    async def _sync_rooms(self) -> None:
        mine = {room.id: room for room in await self._reader.rooms()}
        if not self._started:
            if self._wanted is None:
                targets = list(mine)
            else:
                targets = [await self._resolve(ref, mine) for ref in self._wanted]
                self._wanted_ids = set(targets)
            for room_id in targets:
                self.cursors[room_id] = await self._start_of(mine[room_id])
        else:
            for room_id in mine:
                if self._follows(room_id):
                    self.cursors.setdefault(room_id, 0)  # joined while we were away
        self._active = {room_id for room_id in self.cursors if room_id in mine}
        self._pending = dict.fromkeys(sorted(self._active))

    async def _resolve(self, ref: str, mine: Mapping[str, Room]) -> str:
        for room in mine.values():
            if ref in (room.id, room.slug):
                return room.id
        room = await self._reader.room(ref)  # raises NotFound, or Forbidden for a non-member
        raise Forbidden(
            f"you are not a member of room '{room.slug}'; live messages reach members only"
        )

    async def _start_of(self, room: Room) -> int:
        for key in (room.id, room.slug):
            if key in self._after:
                return self._after[key]
        if self._from_beginning:
            return 0
        return await self._reader.latest_seq(room.id)

    def _follows(self, room_id: str) -> bool:
        return self._wanted is None or room_id in self._wanted_ids

    async def _drop_socket(self) -> None:
        sio, self._sio = self._sio, None
        if sio is not None:
            with contextlib.suppress(Exception):
                await sio.disconnect()
