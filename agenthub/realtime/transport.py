"""A lean Engine.IO websocket transport: what an idle socket costs, and what setting one up costs.

python-engineio serves a websocket with, per connection, a reader that wraps every frame wait in
a task and a timer (`wait_for`), a writer task draining an `asyncio.Queue` through the ASGI
`send` chain, and a task sleeping until the next ping; uvicorn adds its own receive queue, and
the connection keeps the handshake's headers several times over. At 10,000 idle sockets that
was 49 KB each (ADR 0012). Here a session opened directly over websocket (the official
clients' `transports: ["websocket"]`, and our Python client) is served instead by:

- `LeanSocket`: one loop in the connection's ASGI task reading frames; packets written at once,
  in call order, straight to the connection (no queue, no writer task); the heartbeat from the
  server's grid of timers (`slots.SlotTimers`, no timer of its own: ping every
  `ping_interval`; the session closes when the pong has not come `ping_timeout` later).
- `LeanWebSocketProtocol`: uvicorn's sans-I/O websocket protocol that also writes a frame
  synchronously (the ASGI scope extension `EXTENSION`), receives through a smaller queue, and
  drops the handshake request and response once accepted.

Sessions opened over long-polling (and their upgrades to websocket) keep engine.io's own
`AsyncSocket`, and so does every session when the server does not offer the extension.

Guarantees kept: packets leave in the order they are written (which `fanout.py` relies on); a
slow peer's packets wait in the transport's buffer, unbounded, as they waited in engine.io's
unbounded queue; the Engine.IO packets on the wire are the same; `sock.queue.put_nowait(pkt)`
writes a packet and `put_nowait(None)` ends the websocket, as with engine.io's queue.

This relies on private parts of python-engineio (`AsyncServer._handle_connect`,
`AsyncSocket`'s attributes), python-socketio (`_engineio_server_class`, `_handle_connect`,
`environ`) and uvicorn (`WebSocketsSansIOProtocol`'s attributes), pinned in requirements.lock;
tests/realtime/test_transport.py exercises each through real clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, cast

import engineio
import socketio
from engineio import exceptions, packet
from engineio.async_socket import AsyncSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State

from agenthub.realtime.slots import Slot, SlotTimers

log = logging.getLogger("agenthub.realtime")

EXTENSION = "agenthub.websocket.nowait"  # in the ASGI scope's "extensions": the protocol

# Pings and pongs' deadlines are due on a grid of this step (seconds): see
# `LeanSocket.schedule_ping`.
PING_SLOT_S = 0.05

_PING = packet.Packet(packet.PING)
_CLOSE = packet.Packet(packet.CLOSE)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websocket protocol, offering itself to the app as `EXTENSION` for
    `send_nowait` and `close_nowait`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Writable()  # type: ignore[assignment]
        self.writable.set()
        self.reader: LeanSocket | None = None  # while the session reads: see below

    def send_receive_event_to_app(self) -> None:
        """A text message the session's reader would take at once (it is waiting, nothing is
        queued before it) goes to `LeanSocket.take_text` now, rather than through the
        receive queue, a wake-up of the reading task, and uvicorn's pause and resumption
        of reading around each message (two `epoll_ctl` calls)."""
        reader = self.reader
        if (
            reader is not None
            and self.curr_msg_data_type == "text"
            and len(self.frames) == 1
            and not self.close_sent
            and cast(_Inbox, self.queue).idle()
        ):
            try:
                text = self.frames[0].decode()
            except UnicodeDecodeError:
                text = None  # (uvicorn's own way closes the connection)
            if text is not None and reader.take_text(text):
                self.frames = []
                return
        super().send_receive_event_to_app()

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:
            self.scope["extensions"][EXTENSION] = self  # type: ignore[assignment]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The handshake's request and response, and the scope's copy of the request's
            # headers: nothing reads them once the websocket is accepted (engine.io and the
            # middleware read the headers before accepting). The request is cleared in place
            # because the websockets parser keeps it for the connection's life.
            self.request.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]
            self.scope["headers"] = []

    def send_nowait(self, data: str | bytes) -> bool:
        """Write one message now; False once the connection is closing or closed.

        What the peer has not taken yet waits in the transport's buffer: uvicorn's `send`
        would instead wait for `writable`, which only makes its caller wait."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.transport.is_closing()
        ):
            return False
        try:
            if isinstance(data, str):
                self.conn.send_text(data.encode())
            else:
                self.conn.send_binary(data)
        except InvalidState:  # the peer's close has been received
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True

    def write_frame(self, frame: bytes, text: str) -> bool:
        """Write a text frame serialized beforehand (`text_frame`): the same bytes for every
        recipient of a broadcast, so a room's fan-out frames each message once. `text` goes
        the ordinary way on a connection with an extension (none is offered: per-message
        deflate is off, and a frame's bytes then depend only on its text)."""
        if self.conn.extensions:
            return self.send_nowait(text)
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.transport.is_closing()
            or self.conn.state is not State.OPEN  # (send_text's InvalidState)
        ):
            return False
        self.transport.write(frame)
        return True

    def close_nowait(self, code: int = 1000) -> None:
        """What uvicorn does for an ASGI `websocket.close`, now: the app's next `receive`
        returns the disconnect."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.transport.is_closing()
        ):
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": ""})
        try:
            self.conn.send_close(code)
        except InvalidState:
            return
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.close)


def text_frame(text: str) -> bytes:
    """`text` as a server's websocket text frame (unmasked, no extension), as
    `websockets` writes it: what `write_frame` writes to every recipient of a broadcast."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])


class _Inbox:
    """The receive queue uvicorn's protocol needs (`put_nowait`, `get`, `empty`), for one
    reader: an `asyncio.Queue` costs three deques, about 1.9 KB per idle connection."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def idle(self) -> bool:
        """The reader is waiting and nothing is queued."""
        return not self._items and self._waiter is not None

    async def get(self) -> Any:
        while not self._items:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if not self._items:
            self._items = None  # an empty deque is 600 bytes
        return item


class _Writable:
    """The `writable` flag uvicorn's protocol waits on before each ASGI send (`set`, `clear`,
    `wait`): an `asyncio.Event` costs a deque, 600 bytes per idle connection."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def set(self) -> None:
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    def is_set(self) -> bool:
        return self._value

    async def wait(self) -> None:
        while not self._value:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            await waiter


class LeanEngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """engine.io's server, serving sessions opened directly over websocket with `LeanSocket`
    when the ASGI server offers `EXTENSION`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.closing_tasks: set[asyncio.Task[None]] = set()
        self.heartbeats: SlotTimers[LeanSocket] = SlotTimers(PING_SLOT_S, LeanSocket.beat)
        # A lean socket's text frames go here first; False means "not mine" (the frame then
        # takes engine.io's and python-socketio's way). Set by LeanSocketIOServer.
        self.on_text: Callable[[str, str], bool] | None = None

    async def _handle_connect(
        self, environ: dict[str, Any], transport: str, jsonp_index: Any = None
    ) -> Any:
        scope = environ.get("asgi.scope") or {}
        wire = (scope.get("extensions") or {}).get(EXTENSION) if transport == "websocket" else None
        if not isinstance(wire, LeanWebSocketProtocol):
            return await super()._handle_connect(environ, transport, jsonp_index)
        # As engine.io's own `_handle_connect`, for a websocket.
        if self.start_service_task:  # type: ignore[has-type]
            self.start_service_task = False
            self.service_task_handle = self.start_background_task(self._service_task)
        sid = self.generate_id()
        sock = LeanSocket(self, sid, wire)
        self.sockets[sid] = sock
        opening = packet.Packet(
            packet.OPEN,
            {
                "sid": sid,
                "upgrades": [],
                "pingTimeout": int(self.ping_timeout * 1000),
                "pingInterval": int(self.ping_interval + self.ping_interval_grace_period) * 1000,
                "maxPayload": self.max_http_buffer_size,
            },
        )
        ret = await self._trigger_event("connect", sid, environ, run_async=False)
        if ret is not None and ret is not True:
            self.sockets.pop(sid, None)
            return self._unauthorized(ret or None)
        try:
            await environ["asgi.send"]({"type": "websocket.accept"})
            await sock.serve(opening, environ["asgi.receive"])
        finally:
            # (already done when the peer closed; this is for an accept that failed)
            await sock.close(wait=False, abort=True, reason=self.reason.TRANSPORT_CLOSE)
            if self.sockets.get(sid) is sock:
                del self.sockets[sid]
        return ""

    async def _service_task(self) -> None:
        """engine.io's watch over silent peers, for the sessions engine.io serves itself
        (long-polling, and its upgrades): a `LeanSocket` closes a silent peer by its own
        timer. engine.io's loop visits every session once per `ping_timeout`, one wake-up
        per session: 500 a second at 10,000 sockets, a third of what they cost idle
        (bench/EXPERIMENTS.md, seventh round). This one wakes once per `ping_timeout` and
        visits only engine.io's sessions, which then time out as late as they did before."""
        self.service_task_event = self.create_event()
        while not self.service_task_event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.service_task_event.wait(), self.ping_timeout)
                break
            for sock in [s for s in self.sockets.values() if not isinstance(s, LeanSocket)]:
                try:
                    if sock.closed:
                        if self.sockets.get(sock.sid) is sock:
                            del self.sockets[sock.sid]
                    elif not sock.closing:
                        await sock.check_ping_timeout()
                except Exception as exc:  # (as engine.io's loop: the watch goes on)
                    log.warning("engine.io session check failed: %s", type(exc).__name__)


class LeanSocket(AsyncSocket):  # type: ignore[misc]
    """One Engine.IO session over websocket, served from its connection's ASGI task."""

    upgrade_protocols: list[str] = []  # (already a websocket)

    def __init__(self, server: LeanEngineServer, sid: str, wire: LeanWebSocketProtocol) -> None:
        # Not BaseSocket.__init__, which makes the queue this class does without.
        self.server = server
        self.sid = sid
        self.wire = wire
        self.last_ping: float | None = time.time()  # (`schedule_ping` clears it)
        self.connected = False
        self.upgrading = False
        self.upgraded = False
        self.closing = False
        self.closed = False
        self.session: dict[str, Any] = {}
        self._timer: asyncio.Handle | None = None  # the close's grace, or the ping's next step
        self._beat: Slot[LeanSocket] | None = None  # the heartbeat's slot
        self._early: list[Any] | None = []  # written before the websocket was accepted

    # ---- engine.io's queue, as fanout.py and admission.py use it ----

    @property
    def queue(self) -> LeanSocket:
        return self

    def put_nowait(self, pkt: Any) -> None:
        """Write `pkt` now; None ends the websocket (as it ends engine.io's writer)."""
        if pkt is None:
            self._end()
        else:
            self._write(pkt)

    async def put(self, pkt: Any) -> None:
        self.put_nowait(pkt)

    async def join(self) -> None:
        """Everything put is already written."""

    def empty(self) -> bool:
        return True

    # ---- writing ----

    def _write(self, pkt: Any) -> None:
        if self._early is not None:
            self._early.append(pkt)
        else:
            self.wire.send_nowait(pkt.encode())

    def write_text(self, text: str) -> None:
        """Write an Engine.IO packet already encoded (`text`)."""
        if self._early is not None:
            self._early.append(packet.Packet(encoded_packet=text))
        else:
            self.wire.send_nowait(text)

    def write_shared(self, pkt: Any, frame: bytes, text: str) -> None:
        """Write `pkt`, already encoded (`text`) and framed (`frame`) for a broadcast."""
        if self._early is not None:
            self._early.append(pkt)
        else:
            self.wire.write_frame(frame, text)

    async def send(self, pkt: Any) -> None:
        if self.closed:
            raise exceptions.SocketIsClosedError()
        self._write(pkt)

    def _end(self) -> None:
        self._disarm()
        self.wire.close_nowait()

    # ---- reading ----

    async def serve(self, opening: Any, receive: Any) -> None:
        """Write `opening` and what came before it, then read the client's packets until the
        connection ends. The websocket has been accepted."""
        self.connected = self.upgraded = True
        early, self._early = self._early or [], None
        for pkt in [opening, *early]:
            self._write(pkt)
        if self.closed:  # (closed while the websocket was being accepted)
            self._arm(self._grace(), self._end)
        else:
            self.schedule_ping()
        limit = self.server.max_http_buffer_size
        self.wire.reader = self
        try:
            while True:
                event = await receive()
                if event["type"] != "websocket.receive":
                    break
                data = event.get("text")
                if data is None:
                    data = event.get("bytes")
                event = None  # (not kept while the next frame is awaited)
                if data is None or len(data) > limit:
                    break
                if type(data) is str and self.take_text(data):
                    data = None
                    continue
                pkt, data = packet.Packet(encoded_packet=data), None
                try:
                    await self.receive(pkt)
                except exceptions.UnknownPacketError:
                    pass
                except exceptions.SocketIsClosedError:
                    break
                except Exception:
                    self.server.logger.exception("Unknown receive error")
                pkt = None
        finally:
            self.wire.reader = None
            self._end()
            await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)

    def take_text(self, text: str) -> bool:
        """Whether the server's `on_text` took this text message (else it goes the way of
        every packet): for `serve`, and for the protocol while `serve` waits for a message."""
        on_text = self.server.on_text
        return (
            on_text is not None
            and not self.closed
            and len(text) <= self.server.max_http_buffer_size
            and on_text(self.sid, text)
        )

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        if self.closed or self.closing:
            return
        self.closing = True
        self._disarm()
        await self.server._trigger_event(
            "disconnect", self.sid, reason or self.server.reason.SERVER_DISCONNECT, run_async=False
        )
        if not abort:
            self._write(_CLOSE)
            # The peer ends the websocket when it reads CLOSE; one that does not is cut off
            # when engine.io's writer would have given up on it.
            self._arm(self._grace(), self._end)
        self.closed = True

    # ---- heartbeat: one slot of the server's grid, either the next ping or the pong's deadline

    def schedule_ping(self) -> None:
        """After a pong (and once at the start): the next ping in `ping_interval`, at the
        next `PING_SLOT_S` after it. Pings due within one slot are then written in one
        wake-up of the loop instead of one each: 10,000 sockets ping 400 times a second, and
        the wake-ups were another third of their idle cost (bench/EXPERIMENTS.md, seventh
        round); and the socket holds no timer of its own (600 bytes each). A ping that much
        later is far within the client's allowance (`pingInterval` + `pingTimeout`)."""
        if self.last_ping:
            self.last_ping = None
            self._disarm()
            beats = self.server.heartbeats
            self._beat = beats.add(self, beats.now() + self.server.ping_interval)

    def beat(self) -> None:
        """The heartbeat's slot has come: the next ping is due, or the pong is overdue."""
        self._beat = None
        if self.last_ping is None:
            self._ping()
        else:
            self._pong_overdue()

    async def check_ping_timeout(self) -> bool:
        """(engine.io's API; its monitor skips lean sockets, whose timer below closes a
        silent peer)"""
        if self.closed:
            raise exceptions.SocketIsClosedError()
        return True

    def _ping(self) -> None:
        # One step later, as engine.io's sleeping ping task would wake: a close begun by a
        # timer due at the same moment (admission's deadline) goes first, and no PING is
        # written just before its CLOSE.
        self._timer = asyncio.get_running_loop().call_soon(self._ping_now)

    def _ping_now(self) -> None:
        self._timer = None
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        self._write(_PING)
        beats = self.server.heartbeats
        self._beat = beats.add(self, beats.now() + self.server.ping_timeout)

    def _pong_overdue(self) -> None:
        if self.last_ping is None or self.closing or self.closed:
            return
        task = asyncio.get_running_loop().create_task(self._ping_timed_out())
        self.server.closing_tasks.add(task)
        task.add_done_callback(self.server.closing_tasks.discard)

    async def _ping_timed_out(self) -> None:
        await self.close(wait=False, abort=False, reason=self.server.reason.PING_TIMEOUT)
        self._end()  # the peer is gone: no point waiting for it to close

    def _grace(self) -> float:
        return float(self.server.ping_interval + self.server.ping_timeout)

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._beat is not None:
            self._beat.pop(self, None)
            self._beat = None


class LeanSocketIOServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server on `LeanEngineServer`, keeping of each session's `environ`
    only what a later namespace connect reads, handling a lean socket's events itself
    (`_text_event`), and never running `connect` or `disconnect` for a client's event of
    that name (python-socketio would, with the client's arguments as the request)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eio.on_text = self._text_event
        self._event_tasks: set[asyncio.Task[None]] = set()

    def _engineio_server_class(self) -> type[LeanEngineServer]:
        return LeanEngineServer

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        await super()._handle_connect(eio_sid, namespace, data)
        environ = self.environ.get(eio_sid)
        if environ is not None and len(environ) > len(KEPT_ENVIRON):
            # In place: engine.io's request handler still holds the same dict.
            kept = {key: environ[key] for key in KEPT_ENVIRON if key in environ}
            environ.clear()
            environ.update(kept)

    async def _handle_event(self, eio_sid: str, namespace: str, id: Any, data: Any) -> None:
        if isinstance(data, list) and data and data[0] in self.reserved_events:
            return  # the server's own events
        await super()._handle_event(eio_sid, namespace, id, data)

    def _text_event(self, eio_sid: str, text: str) -> bool:
        """Handle a client's EVENT packet (`text`: the websocket frame, Engine.IO's MESSAGE
        then Socket.IO's EVENT) as python-socketio would: the handler in a task of its own,
        then the ACK if the client asked for one. Without python-socketio's generic decoding
        and encoding, engine.io's event dispatch and its send chain, a paced message costs
        about a tenth less server CPU (ADR 0012). False leaves the packet to python-socketio:
        anything but a plain event to a coroutine handler of a connected namespace."""
        if not text.startswith("42"):
            return False
        namespace, start = "/", 2
        if text.startswith("/", 2):
            start = text.find(",", 2) + 1
            if start <= 0:
                return False
            namespace = text[2 : start - 1]
        bracket = text.find("[", start)
        digits = text[start:bracket]
        if bracket < 0 or (
            # (python-socketio refuses an id of 100 digits or more)
            digits and not (len(digits) < 100 and digits.isascii() and digits.isdigit())
        ):
            return False
        if eio_sid in self._binary_packet:  # (its attachments are being read)
            return False
        try:
            data = self.packet_class.json.loads(text[bracket:])
        except ValueError:
            return False
        if type(data) is not list or not data or type(data[0]) is not str:
            return False
        if data[0] in self.reserved_events:
            return True  # the server's own events: dropped, as `_handle_event` drops them
        handler = self.handlers.get(namespace, {}).get(data[0])
        if handler is None or not inspect.iscoroutinefunction(handler):
            return False
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            return False
        ack = None
        if digits:
            ack = "43" + ("" if namespace == "/" else namespace + ",") + str(int(digits))
        task = asyncio.get_running_loop().create_task(
            self._run_event(handler(sid, *data[1:]), eio_sid, ack)
        )
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)
        return True

    async def _run_event(
        self, handling: Coroutine[Any, Any, Any], eio_sid: str, ack: str | None
    ) -> None:
        try:
            result = await handling
        except asyncio.CancelledError:
            result = None  # (as python-socketio answers a cancelled handler)
        except Exception as exc:  # (the hub's handlers answer errors themselves)
            log.error("event handler failed: %s", type(exc).__name__)
            return
        if ack is None:
            return
        sock = self.eio.sockets.get(eio_sid)
        if sock is None or sock.closed:
            return
        if result is None:
            data: list[Any] = []
        else:
            data = list(result) if isinstance(result, tuple) else [result]
        sock.write_text(ack + self.packet_class.json.dumps(data))


# What the `/agents` handshake reads of a session's environ (realtime/handshake.py): the token
# in the query string, and the ASGI scope (admission's ticket, the client's address), which the
# connection holds anyway.
KEPT_ENVIRON = ("QUERY_STRING", "asgi.scope")
