"""The indexed client manager (agenthub/realtime/manager.py) against python-socketio's own: the
same operations leave the same rooms, and a sid's rooms read from the index are the ones the
stock manager finds by walking every room. No database or socket: the manager holds only
dictionaries, and the servers' tests (test_realtime, test_session_lifetime, test_nodes) run
it under real clients."""

from __future__ import annotations

import random
from typing import Any

import pytest
from socketio import AsyncManager

from agenthub.realtime.manager import IndexedManager

NAMESPACES = ["/agents", "/"]
ROOMS = ["agent:a", "agent:b", "room-1", "room-2", "room-3"]


def state(manager: AsyncManager) -> dict[str, Any]:
    return {
        "rooms": {
            ns: {room: dict(members) for room, members in by_room.items()}
            for ns, by_room in manager.rooms.items()
        },
        "callbacks": sorted(manager.callbacks),
        "pending_connect": manager.pending_connect,
        "pending_disconnect": manager.pending_disconnect,
    }


def rooms_of(manager: AsyncManager, sid: str, ns: str) -> set[Any]:
    return set(manager.get_rooms(sid, ns))


def apply(manager: AsyncManager, op: tuple[Any, ...]) -> str | None:
    """Run one operation; the name of the exception it raised, if any."""
    kind, ns, sid, room = op
    try:
        if kind == "connect":  # as python-socketio's pre_connect and connect do
            manager.basic_enter_room(sid, ns, None, eio_sid="e" + sid)
            manager.basic_enter_room(sid, ns, sid, eio_sid="e" + sid)
            manager.pending_connect.setdefault(ns, []).append(sid)
        elif kind == "enter":
            manager.basic_enter_room(sid, ns, room)
        elif kind == "leave":
            manager.basic_leave_room(sid, ns, room)
        elif kind == "close":
            manager.basic_close_room(room, ns)
        elif kind == "ack":
            manager._generate_ack_id(sid, lambda *args: None)
        elif kind == "pre_disconnect":
            manager.pre_disconnect(sid, ns)
        elif kind == "disconnect":
            manager.basic_disconnect(sid, ns)
    except Exception as exc:
        return type(exc).__name__
    return None


@pytest.mark.parametrize("seed", range(20))
def test_the_same_operations_leave_the_same_rooms(seed: int) -> None:
    rng = random.Random(seed)
    stock, indexed = AsyncManager(), IndexedManager()
    sids: list[str] = []
    kinds = ["connect", "enter", "enter", "leave", "close", "ack"]
    kinds += ["pre_disconnect", "disconnect", "disconnect"]
    for step in range(400):
        kind = rng.choice(kinds)
        if kind == "connect" or not sids:
            kind, sid = "connect", f"s{step}"
            sids.append(sid)
        else:
            sid = rng.choice(sids)
        # Now and then a sid's own room, or a room name that is another sid.
        room = rng.choice([*ROOMS, sid, rng.choice(sids), "unknown"])
        op = (kind, rng.choice(NAMESPACES), sid, room)
        assert apply(stock, op) == apply(indexed, op), op
        assert state(indexed) == state(stock), op
        for ns in NAMESPACES:
            for each in sids:
                assert rooms_of(indexed, each, ns) == rooms_of(stock, each, ns), (op, each)


def test_a_disconnect_leaves_no_trace_in_the_index() -> None:
    manager = IndexedManager()
    for i in range(3):
        sid = f"s{i}"
        manager.basic_enter_room(sid, "/agents", None, eio_sid=f"e{i}")
        manager.basic_enter_room(sid, "/agents", sid, eio_sid=f"e{i}")
        manager.basic_enter_room(sid, "/agents", "room-1")
    assert manager.get_rooms("s1", "/agents") == ["s1", "room-1"]
    for i in range(3):
        manager.basic_disconnect(f"s{i}", "/agents")
    assert manager.rooms == {}
    assert manager._rooms_of == {}
    assert manager.get_rooms("s1", "/agents") == []
