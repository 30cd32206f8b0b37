from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from agenthub.agents.schemas import AgentPublic
from agenthub.wire import RequestModel, Timestamp, WireModel


def _timestamp_text(value: object) -> object:
    """Times travel as RFC 3339 strings: a JSON number is refused, not read as Unix time."""
    if value is not None and not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 timestamp string, e.g. 2026-05-02T10:30:00Z")
    return value


def _in_utc(value: datetime | None) -> datetime | None:
    """Normalized to UTC, which is how it is stored; 9999-12-31T23:59:59-14:00 has no UTC year."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


class SessionPublic(WireModel):
    token: str
    expires_at: Timestamp
    agent: AgentPublic


class TokenCreate(RequestModel):
    # Aware only: a time without an offset is ambiguous (and cannot be compared with now).
    expires_at: Annotated[
        AwareDatetime | None, BeforeValidator(_timestamp_text), AfterValidator(_in_utc)
    ] = None


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


def token_out(row: Mapping[Any, Any]) -> TokenPublic:
    return TokenPublic(
        id=row["id"],
        prefix=row["prefix"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )
