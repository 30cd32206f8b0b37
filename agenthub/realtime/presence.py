"""Who is present in which room: agents with a live socket that sent `room:join`.

In memory and per process, like the seed's. `changed()` tells the caller which rooms' sets
changed, so `presence:update` goes out only when a set really changes.
"""

from __future__ import annotations


class Presence:
    def __init__(self) -> None:
        # room id -> agent id -> sids that joined
        self._rooms: dict[str, dict[str, set[str]]] = {}
        self._published: dict[str, tuple[str, ...]] = {}

    def add(self, room_id: str, agent_id: str, sid: str) -> None:
        self._rooms.setdefault(room_id, {}).setdefault(agent_id, set()).add(sid)

    def remove(self, room_id: str, agent_id: str, sid: str) -> None:
        agents = self._rooms.get(room_id)
        if agents is None:
            return
        sids = agents.get(agent_id)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del agents[agent_id]
        if not agents:
            del self._rooms[room_id]

    def present(self, room_id: str) -> list[str]:
        return sorted(self._rooms.get(room_id, {}))

    def changed(self, room_id: str) -> list[str] | None:
        """The room's present set if it differs from the last one published (and record it)."""
        now = tuple(self.present(room_id))
        if self._published.get(room_id, ()) == now:
            return None
        if now:
            self._published[room_id] = now
        else:
            self._published.pop(room_id, None)
        return list(now)
