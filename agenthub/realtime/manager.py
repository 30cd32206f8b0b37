"""python-socketio's client manager, with each socket's rooms indexed.

The stock manager keeps only `rooms[namespace][room] -> {sid: eio_sid}`, so finding the rooms
of one sid (`get_rooms`, and `basic_disconnect`, which also copies the namespace's dict first)
walks every room of the namespace, and every socket has a room of its own. At 10,000 sockets
of as many agents that was 4 ms per `get_rooms` and 2 ms per disconnect, all of it on the event
loop: 20 s to disconnect them all (a restart, a network cut) and 40 s for a cluster resync's
pass over every socket (`Hub._reconcile_rooms`), while no socket was served
(bench/rooms_index.py). Here both
read an index kept by `basic_enter_room` and `basic_leave_room`, through which every change of
a room goes (connect, disconnect, `enter_room`, `leave_room`, `close_room`).
"""

from __future__ import annotations

from typing import Any

from socketio import AsyncManager


class IndexedManager(AsyncManager):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        # namespace -> sid -> the rooms it is in, None (connected) and its own room included.
        # A tuple: most sockets are in three or four rooms, and a set would cost 216 bytes.
        self._rooms_of: dict[str, dict[str, tuple[Any, ...]]] = {}

    def basic_enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid)
        by_sid = self._rooms_of.setdefault(namespace, {})
        rooms = by_sid.get(sid, ())
        if room not in rooms:
            by_sid[sid] = (*rooms, room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        by_sid = self._rooms_of.get(namespace)
        rooms = by_sid.get(sid) if by_sid is not None else None
        if by_sid is None or rooms is None or room not in rooms:
            return
        rest = tuple(r for r in rooms if r != room)
        if rest:
            by_sid[sid] = rest
            return
        del by_sid[sid]
        if not by_sid:
            del self._rooms_of[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        """The rooms `sid` is in (not None, the connected sockets' entry)."""
        return [r for r in self._rooms_of.get(namespace, {}).get(sid, ()) if r is not None]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """python-socketio's own, with the sid's rooms read from the index."""
        if namespace not in self.rooms:
            return
        for room in self._rooms_of.get(namespace, {}).get(sid, ()):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]
