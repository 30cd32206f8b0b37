"""Coordination over Socket.IO: the client events `direct:send` and `message:ack` (handlers
in the hub's table, see realtime/hub.py), and what the hub emits for coordination
(`inbox:new`, `ack:update`). Handlers only translate, to the same services as HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agenthub.errors import InvalidRequest, NotFound, clip

if TYPE_CHECKING:
    from agenthub.realtime.hub import Ack, Running, SocketState

MAX_SEQ = 2**63 - 1


def _agent_ref(payload: dict[str, Any]) -> str:
    ref = payload.get("agent")
    if not isinstance(ref, str) or not ref:
        raise InvalidRequest("field 'agent' is required (an agent name or id)")
    if len(ref) > 64:
        raise NotFound(f"agent '{clip(ref)}' does not exist")
    return ref


def _room_ref(payload: dict[str, Any]) -> str:
    # As the hub's own handlers read `roomId`.
    ref = payload.get("roomId")
    if not isinstance(ref, str) or not ref:
        raise InvalidRequest("field 'roomId' is required (a room id or slug)")
    if len(ref) > 64:
        raise NotFound(f"room '{clip(ref)}' does not exist")
    return ref


def _seq(payload: dict[str, Any]) -> int:
    seq = payload.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SEQ:
        raise InvalidRequest("field 'seq' must be a message's seq (an integer of at least 1)")
    return seq


async def direct_send(running: Running, state: SocketState, payload: dict[str, Any]) -> Ack:
    """`direct:send` `{"agent", "body", "clientMsgId"?}`."""
    message, _ = await running.services.coordination.send_direct(
        state.principal, _agent_ref(payload), payload.get("body"), payload.get("clientMsgId")
    )
    return {"ok": True, "message": message}


async def message_ack(running: Running, state: SocketState, payload: dict[str, Any]) -> Ack:
    """`message:ack` `{"roomId", "seq", "status", "note"?}`."""
    ack = await running.services.coordination.answer(
        state.principal,
        _room_ref(payload),
        _seq(payload),
        payload.get("status"),
        payload.get("note"),
    )
    return {"ok": True, "ack": ack}
