"""The coordination fields of the message object, and the objects coordination adds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agenthub.wire import iso_z


def ack_wire(row: Mapping[Any, Any]) -> dict[str, Any]:
    answered = row["answered_at"]
    return {
        "agentId": str(row["agent_id"]),
        "status": row["status"],
        "note": row["note"],
        "answeredAt": iso_z(answered) if answered is not None else None,
    }


def acks_wire(
    ack_from: list[str] | None, answers: Iterable[Mapping[Any, Any]] | None
) -> list[dict[str, Any]]:
    """Every agent the message asked, in the order it asked them, with its answer (status
    null until it answers)."""
    if not ack_from:
        return []
    by_agent = {str(a["agent_id"]): ack_wire(a) for a in answers or ()}
    return [
        by_agent.get(a) or {"agentId": a, "status": None, "note": None, "answeredAt": None}
        for a in ack_from
    ]


def item_wire(
    item_id: Any, reasons: list[str], room_slug: str, message: dict[str, Any]
) -> dict[str, Any]:
    return {"id": str(item_id), "reasons": reasons, "roomSlug": room_slug, "message": message}
