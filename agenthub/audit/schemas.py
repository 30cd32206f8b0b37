from __future__ import annotations

import uuid
from typing import Any

from agenthub.wire import Timestamp, WireModel


class AuditEventPublic(WireModel):
    id: uuid.UUID
    type: str
    agent_id: uuid.UUID | None
    payload: dict[str, Any]
    created_at: Timestamp


class AuditEventPage(WireModel):
    events: list[AuditEventPublic]
    next_cursor: str | None
