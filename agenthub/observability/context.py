"""Per-request context that every log line carries."""

from __future__ import annotations

from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
agent_id: ContextVar[str | None] = ContextVar("agent_id", default=None)
