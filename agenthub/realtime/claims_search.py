"""Socket.IO events for claims and search: `claim:acquire`, `claim:renew`, `claim:release`,
`claim:list` and `message:search`. Like the hub's own handlers they only translate, calling
the same services as the REST routes; the hub registers `HANDLERS` beside its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agenthub.errors import InvalidRequest, NotFound, clip

if TYPE_CHECKING:
    from agenthub.realtime.hub import Running, SocketState

Ack = dict[str, Any]


def _room_ref(payload: dict[str, Any], required: bool = True) -> str | None:
    ref = payload.get("roomId")
    if ref is None and not required:
        return None
    if not isinstance(ref, str) or not ref:
        raise InvalidRequest("field 'roomId' is required (a room id or slug)")
    if len(ref) > 64:
        raise NotFound(f"room '{clip(ref)}' does not exist")
    return ref


def _optional_text(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"field '{key}' must be a string")
    return value or None


async def claim_acquire(running: Running, state: SocketState, payload: dict[str, Any]) -> Ack:
    claim, created = await running.services.claims.claim(
        state.principal,
        str(_room_ref(payload)),
        payload.get("resource"),
        payload.get("ttlSeconds"),
        payload.get("exclusive", True),
    )
    return {"ok": True, "claim": claim.model_dump(mode="json", by_alias=True), "created": created}


async def claim_renew(running: Running, state: SocketState, payload: dict[str, Any]) -> Ack:
    claim = await running.services.claims.renew(
        state.principal, str(_room_ref(payload)), payload.get("resource"), payload.get("ttlSeconds")
    )
    return {"ok": True, "claim": claim.model_dump(mode="json", by_alias=True)}


async def claim_release(running: Running, state: SocketState, payload: dict[str, Any]) -> Ack:
    await running.services.claims.release(
        state.principal, str(_room_ref(payload)), payload.get("resource")
    )
    return {"ok": True}


async def claim_list(running: Running, state: SocketState, payload: dict[str, Any]) -> Ack:
    claims = await running.services.claims.list(
        state.principal, str(_room_ref(payload)), payload.get("resource")
    )
    return {"ok": True, "claims": [c.model_dump(mode="json", by_alias=True) for c in claims]}


async def message_search(running: Running, state: SocketState, payload: dict[str, Any]) -> Ack:
    page = await running.services.search.search(
        state.principal,
        payload.get("query"),
        room=_room_ref(payload, required=False),
        sender=_optional_text(payload, "sender"),
        cursor=_optional_text(payload, "cursor"),
        limit=payload.get("limit", 20),
    )
    return {"ok": True, **page.model_dump(mode="json", by_alias=True)}


HANDLERS = {
    "claim:acquire": claim_acquire,
    "claim:renew": claim_renew,
    "claim:release": claim_release,
    "claim:list": claim_list,
    "message:search": message_search,
}
