from __future__ import annotations

import uuid
from datetime import datetime

from agenthub.agents.schemas import AgentPublic
from agenthub.wire import RequestModel, Timestamp, WireModel


class SessionPublic(WireModel):
    token: str
    expires_at: Timestamp
    agent: AgentPublic


class TokenCreate(RequestModel):
    expires_at: datetime | None = None


class TokenIssued(WireModel):
    id: uuid.UUID
    prefix: str
    token: str
    expires_at: Timestamp | None
    created_at: Timestamp


class TokenPublic(WireModel):
    id: uuid.UUID
    prefix: str
    expires_at: Timestamp | None
    created_at: Timestamp
    last_used_at: Timestamp | None
    revoked_at: Timestamp | None


class TokenList(WireModel):
    tokens: list[TokenPublic]
