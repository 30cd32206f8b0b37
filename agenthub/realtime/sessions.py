"""How long a socket may live: as long as its session, which ends when its JWT expires or when
the API token it was opened from is revoked.

The handshake checks the JWT once; this module holds the socket to it afterwards:
- the socket is ended at the JWT's `exp` by a timer of the sockets whose JWTs expire in that
  second (`slots.SlotTimers`: not a timer handle per socket, nor a scan of every socket), and
  `session:renew` moves the socket to a fresh JWT of the same agent, which moves it to that
  JWT's `exp`;
- the socket is indexed by its session's API token id, so a revocation (heard from
  auth/revocations.py: this process's own at once, others' within a sweep) ends exactly the
  sockets of that token;
- `refusal()` is the hot path's check, a float comparison and a set look-up per event: an event
  that arrives after the end and before the timer's task has run is refused all the same.

Ending a socket emits `session:ended` `{"reason": "expired" | "revoked", "message"}` to it and
then disconnects it from the namespace; both go through the socket's one packet queue, so the
client receives the reason first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import socketio

from agenthub.auth.jwt import Principal
from agenthub.auth.service import AuthService
from agenthub.errors import Forbidden, InvalidRequest, Unauthorized
from agenthub.realtime.slots import Slot, SlotTimers
from agenthub.wire import iso_z

log = logging.getLogger("agenthub.realtime")

SESSION_ENDED = "session:ended"
EXPIRED = "expired"
REVOKED = "revoked"
MESSAGES = {
    EXPIRED: "the session has expired; open a new session and reconnect "
    "(renew before expiry with session:renew to keep this socket)",
    REVOKED: "the API token of this session has been revoked",
}


class SessionLifetimes:
    def __init__(self, sio: socketio.AsyncServer, namespace: str, auth: AuthService) -> None:
        self._sio = sio
        self._namespace = namespace
        self._auth = auth
        # A JWT's `exp` is a whole second: a step of one second ends each socket on time.
        self._expiries: SlotTimers[str] = SlotTimers(1.0, self._expired, wall=True)
        self._expiry_of: dict[str, Slot[str]] = {}
        self._token_of: dict[str, uuid.UUID] = {}
        self._by_token: dict[uuid.UUID, set[str]] = {}
        self._ending: dict[str, asyncio.Task[None]] = {}
        auth.revocations.subscribe(self._revoked)

    def track(self, sid: str, principal: Principal) -> None:
        """Hold the socket to this session (at the handshake, and again at each renewal)."""
        self.forget(sid)
        if math.isfinite(principal.expires_at):  # (the operator's session does not expire)
            self._expiry_of[sid] = self._expiries.add(sid, principal.expires_at)
        if principal.token_id is not None:
            self._token_of[sid] = principal.token_id
            self._by_token.setdefault(principal.token_id, set()).add(sid)

    def forget(self, sid: str) -> None:
        """The socket is gone (or moves to another session)."""
        slot = self._expiry_of.pop(sid, None)
        if slot is not None:
            slot.pop(sid, None)
        token_id = self._token_of.pop(sid, None)
        if token_id is not None:
            sids = self._by_token.get(token_id)
            if sids is not None:
                sids.discard(sid)
                if not sids:
                    del self._by_token[token_id]

    def refusal(self, sid: str, principal: Principal) -> Unauthorized | None:
        """Why an event of this socket must be refused now (and the socket ended), if it must."""
        if principal.token_id in self._auth.revocations:
            reason = REVOKED
        elif principal.expires_at <= time.time():
            reason = EXPIRED
        else:
            return None
        self.end(sid, reason)
        return Unauthorized(MESSAGES[reason])

    def renew(self, sid: str, current: Principal, payload: dict[str, Any]) -> Principal:
        """Move the socket to the session of `payload["token"]`; the socket keeps its current
        session when this raises."""
        token = payload.get("token")
        if not isinstance(token, str) or not token:
            raise InvalidRequest("field 'token' is required (a session JWT)")
        fresh = self._auth.authenticate(token)
        if fresh.agent_id != current.agent_id:
            raise Forbidden("that session is another agent's; a socket keeps its agent")
        self.track(sid, fresh)
        return fresh

    @staticmethod
    def expires_at(principal: Principal) -> str:
        return iso_z(datetime.fromtimestamp(principal.expires_at, UTC))

    def _expired(self, sid: str) -> None:
        self._expiry_of.pop(sid, None)
        self.end(sid, EXPIRED)

    def end(self, sid: str, reason: str) -> None:
        """Tell the socket why, then disconnect it; once, however often it is asked."""
        if sid in self._ending:
            return
        self.forget(sid)
        # At once, before the task below runs: a message committed from now on must not reach
        # this socket (the fan-out goes by Socket.IO rooms; the socket keeps only its own).
        manager = self._sio.manager
        for room in manager.get_rooms(sid, self._namespace):
            if room != sid:
                manager.basic_leave_room(sid, self._namespace, room)
        self._ending[sid] = asyncio.get_running_loop().create_task(
            self._end(sid, reason), name="agenthub-session-end"
        )

    async def _end(self, sid: str, reason: str) -> None:
        try:
            await self._sio.emit(
                SESSION_ENDED,
                {"reason": reason, "message": MESSAGES[reason]},
                to=sid,
                namespace=self._namespace,
            )
            await self._sio.disconnect(sid, namespace=self._namespace)
        except Exception as exc:  # the socket went away meanwhile
            log.info("ending a %s session: %s", reason, type(exc).__name__)
        finally:
            self._ending.pop(sid, None)

    def _revoked(self, token_ids: set[uuid.UUID]) -> None:
        for token_id in token_ids:
            for sid in list(self._by_token.get(token_id, ())):
                self.end(sid, REVOKED)

    async def stop(self) -> None:
        for sid in {*self._expiry_of, *self._token_of}:
            self.forget(sid)
        self._expiries.clear()
        for task in list(self._ending.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
