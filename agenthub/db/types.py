"""Column types that behave the same on PostgreSQL and SQLite."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite stores them naive, so UTC is attached on read."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

# Integer primary keys must be INTEGER on SQLite to autoincrement.
BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


_uuid7_lock = threading.Lock()
_uuid7_last = 0


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 v7), strictly increasing within this process.

    Ids sort by creation time, which keeps index inserts local and lets the audit log page by id.
    """
    global _uuid7_last
    with _uuid7_lock:
        # 48 bits of milliseconds, then 12 bits used as a sub-millisecond counter.
        now = time.time_ns() // 1_000_000 << 12
        _uuid7_last = max(now, _uuid7_last + 1)
        ts = _uuid7_last
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ts >> 12) << 80 | 0x7 << 76 | (ts & 0xFFF) << 64 | 0b10 << 62 | rand
    return uuid.UUID(int=value)


def as_uuid(value: Any) -> uuid.UUID | None:
    """Parse a path value as a UUID, or None when it is not one.

    Only the canonical 8-4-4-4-12 spelling counts: `uuid.UUID` also reads hyphens anywhere
    (`<32 hex>----`), which is a valid name or slug and must stay one.
    """
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str) or len(value) != 36:
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    return parsed if str(parsed) == value.lower() else None
