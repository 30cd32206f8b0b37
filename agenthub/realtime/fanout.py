"""Putting events on this process's sockets: encoded once, queued at once, in call order.

Everything the hub emits to rooms goes through `Fanout.emit`, synchronously: it encodes the
packet once and writes it straight to each recipient (what python-socketio does per
recipient, minus a task and an await each): for a websocket session of the lean transport
(realtime/transport.py) as one websocket frame serialized once for all of them, otherwise on
engine.io's queue. So a burst of emits reaches every socket in the order of the calls:
messages committed in seq order leave in seq order, and a `room:added` queued before a
message is received before it.

Only this process's sockets: another node's sockets get the same events through that node's
own fan-out (realtime/cluster.py carries the notifications between nodes).
"""

from __future__ import annotations

from typing import Any

import engineio
import orjson
import socketio

from agenthub.realtime.transport import LeanSocket, text_frame

NAMESPACE = "/agents"


def agent_room(agent_id: Any) -> str:
    """The Socket.IO room holding every socket of one agent."""
    return f"agent:{agent_id}"


class Fanout:
    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio

    def emit(self, event: str, data: Any, room: str) -> None:
        """Emit `event` to every socket in `room` of this process, now, in call order."""
        # Socket.IO v5 text encoding of an EVENT packet: type, namespace, JSON array.
        encoded = f"{socketio.packet.EVENT}{NAMESPACE}," + orjson.dumps([event, data]).decode()
        frame = engineio.packet.Packet(engineio.packet.MESSAGE, encoded)
        sockets = self.sio.eio.sockets
        text: str | None = None
        raw = b""
        for _sid, eio_sid in self.sio.manager.get_participants(NAMESPACE, room):
            sock = sockets.get(eio_sid)
            if sock is None or sock.closed:
                continue
            if type(sock) is LeanSocket:  # the same websocket frame for each: framed once
                if text is None:
                    text = frame.encode()
                    raw = text_frame(text)
                sock.write_shared(frame, raw, text)
            else:  # long-polling, or upgraded from it: engine.io's own queue
                sock.queue.put_nowait(frame)

    def enter(self, sid: str, room: str) -> None:
        self.sio.manager.basic_enter_room(sid, NAMESPACE, room)

    def leave(self, sid: str, room: str) -> None:
        self.sio.manager.basic_leave_room(sid, NAMESPACE, room)

    def occupied(self, room: str) -> bool:
        """Whether any socket of this process is in `room`."""
        return bool(self.sio.manager.rooms.get(NAMESPACE, {}).get(room))

    def occupied_rooms(self) -> list[str]:
        """Every room (Socket.IO's sense: agents' and sids' too) with a socket of this process."""
        return [name for name, sids in self.sio.manager.rooms.get(NAMESPACE, {}).items() if sids]

    def rooms_of(self, sid: str) -> list[str]:
        return [r for r in self.sio.manager.get_rooms(sid, NAMESPACE) if r != sid]
