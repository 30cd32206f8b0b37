"""What finding one socket's rooms costs in python-socketio's client manager and in ours
(agenthub/realtime/manager.py), as the number of connected sockets grows: the CPU of one
`get_rooms` (a session ended, a cluster resync's pass over every socket) and of disconnecting
every socket (a restart, a network cut). Each socket is in the rooms an agent's socket is in:
the connected entry, its own room, its agent's room and one of twenty rooms.

    python -m bench.rooms_index                 # 1,000 and 10,000 sockets
    python -m bench.rooms_index --sockets 20000
"""

from __future__ import annotations

import argparse
import time

from socketio import AsyncManager

from agenthub.realtime.manager import IndexedManager

NS = "/agents"


def filled(manager: AsyncManager, sockets: int) -> list[str]:
    sids = []
    for i in range(sockets):
        sid, eio_sid = f"s{i:08d}", f"e{i:08d}"
        manager.basic_enter_room(sid, NS, None, eio_sid=eio_sid)
        manager.basic_enter_room(sid, NS, sid, eio_sid=eio_sid)
        manager.basic_enter_room(sid, NS, f"agent:{i}")
        manager.basic_enter_room(sid, NS, f"room-{i % 20}")
        sids.append(sid)
    return sids


def measure(kind: type[AsyncManager], sockets: int) -> tuple[float, float]:
    """(µs of CPU per get_rooms, seconds of CPU to disconnect every socket)."""
    manager = kind()
    sids = filled(manager, sockets)
    sample = sids[:: max(1, sockets // 500)]
    started = time.process_time()
    for sid in sample:
        manager.get_rooms(sid, NS)
    per_lookup = (time.process_time() - started) / len(sample) * 1e6
    started = time.process_time()
    for sid in sids:
        manager.basic_disconnect(sid, NS)
    assert not manager.rooms
    return per_lookup, time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, action="append")
    args = parser.parse_args()
    print("| manager | sockets | get_rooms (µs of CPU) | disconnect all (s of CPU) |")
    print("|---|---|---|---|")
    for sockets in args.sockets or [1_000, 10_000]:
        for kind in (AsyncManager, IndexedManager):
            lookup, disconnect = measure(kind, sockets)
            print(f"| {kind.__name__} | {sockets:,} | {lookup:,.1f} | {disconnect:.3f} |")


if __name__ == "__main__":
    main()
