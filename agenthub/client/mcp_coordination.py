"""The MCP tools of coordination: `check_inbox`, `send_direct_message`, `ack`,
`pending_acks` (and the `reply_to` / `ack_from` arguments of `send_message`, which lives with
the other tools in mcp_server.py).

Self-contained on purpose, so it moves as one block wherever the tool definitions live: a
mixin over the `Tools` of mcp_server.py (it uses `client`, `names`, `_call` and `_render`),
its descriptions (`DESCRIPTIONS`) and which of its tools only read (`READ_ONLY`). Results
name each message by room slug, seq, sender name and body; bodies are bounded like every
other tool's (`_render`, `RESULT_BUDGET_CHARS`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Annotated, Any, Literal, Protocol, TypeVar

from pydantic import Field

from agenthub.client.client import AgentHubClient
from agenthub.client.models import InboxItem, Message
from agenthub.client.names import Names

T = TypeVar("T")

INBOX_LIMIT_MAX = 100
BUDGET_CHARS = 40_000  # as mcp_server.RESULT_BUDGET_CHARS

AckStatus = Literal["seen", "done", "blocked", "rejected"]


class _ToolBase(Protocol):
    @property
    def client(self) -> AgentHubClient: ...

    @property
    def names(self) -> Names: ...

    async def _call(
        self, work: Awaitable[T], room: str | None = None, agent: str | None = None
    ) -> T: ...

    async def _render(self, room: str, message: Message) -> dict[str, Any]: ...


async def _message(tools: _ToolBase, room: str, message: Message) -> dict[str, Any]:
    out = {"room": room, **await tools._render(room, message)}
    if message.reply_to is not None:
        out["replyTo"] = message.reply_to
    if message.acks:
        out["acks"] = [
            {"agent": await tools.names.agent(a.agent_id), "status": a.status, "note": a.note}
            for a in message.acks
        ]
    return out


async def _within_budget(
    tools: _ToolBase, rendered: list[tuple[str, Message, dict[str, Any]]]
) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    used = 0
    for room, message, extra in rendered:
        item = {**await _message(tools, room, message), **extra}
        size = len(json.dumps(item, ensure_ascii=False))
        if kept and used + size > BUDGET_CHARS:
            break
        kept.append(item)
        used += size
    return kept


class CoordinationTools:
    """Mixed into mcp_server.Tools."""

    async def check_inbox(
        self: _ToolBase,
        unread_only: Annotated[
            bool, Field(description="Only unread items, which this call then marks read.")
        ] = True,
        limit: Annotated[int, Field(ge=1, le=INBOX_LIMIT_MAX)] = 20,
    ) -> dict[str, Any]:
        page = await self._call(
            self.client.inbox(unread_only=unread_only, newest=not unread_only, limit=limit)
        )
        entries: list[tuple[str, Message, dict[str, Any]]] = [
            (i.room_slug, i.message, {"why": list(i.reasons)}) for i in page.items
        ]
        kept = await _within_budget(self, entries)
        shown: list[InboxItem] = page.items[: len(kept)]
        unread = page.unread
        if unread_only and shown:
            unread = await self._call(self.client.mark_inbox_read(shown[-1].id))
        result: dict[str, Any] = {"items": kept, "unread": unread}
        if unread_only and unread:
            result["note"] = f"{unread} more unread: call check_inbox again"
        return result

    async def send_direct_message(
        self: _ToolBase,
        agent: Annotated[str, Field(description="The agent's name.")],
        body: Annotated[str, Field(min_length=1)],
    ) -> dict[str, Any]:
        sent = await self._call(self.client.send_direct(agent, body), agent=agent)
        return {"room": await self.names.room(sent.room_id), "seq": sent.seq, "to": agent}

    async def ack(
        self: _ToolBase,
        room: Annotated[str, Field(description="Room slug.")],
        seq: Annotated[int, Field(ge=1)],
        status: AckStatus,
        note: Annotated[str | None, Field(max_length=2000)] = None,
    ) -> dict[str, Any]:
        done = await self._call(self.client.ack(room, seq, status, note), room)
        return {"room": room, "seq": done.seq, "status": done.status}

    async def pending_acks(self: _ToolBase) -> dict[str, Any]:
        pending = await self._call(self.client.pending_acks(limit=INBOX_LIMIT_MAX))
        kept = await _within_budget(self, [(p.room_slug, p.message, {}) for p in pending])
        result: dict[str, Any] = {"pending": kept}
        if len(kept) < len(pending):
            result["omitted"] = len(pending) - len(kept)
        return result


DESCRIPTIONS = {
    "check_inbox": "Messages addressed to you: mentions, direct messages, replies to yours, "
    "acknowledgements asked of you (`why`). unread_only marks what it returns read.",
    "send_direct_message": "Send a private message to one agent.",
    "ack": "Answer a message that asked you to acknowledge it.",
    "pending_acks": "Messages still awaiting your acknowledgement.",
}

READ_ONLY = {"pending_acks"}
