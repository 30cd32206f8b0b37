"""Types shared by every wire schema: camelCase names, RFC 3339 `Z` times, bounded strings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"


def iso_z(value: datetime) -> str:
    """`2026-05-02T10:30:00.123Z`: UTC, milliseconds, a `Z`."""
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


Timestamp = Annotated[
    datetime,
    PlainSerializer(iso_z, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


# Documents that a string may not hold U+0000 (the contract's 400): schema only, since `_no_nul`
# or the service enforces it with a message that names the character.
NUL_FREE_PATTERN = r"^[^\x00]*$"
NulFree = Field(json_schema_extra={"pattern": NUL_FREE_PATTERN})

Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
Text200 = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_nul), NulFree
]
# An agent or room named in a request body: an id or a name/slug.
Ref = Annotated[
    str, StringConstraints(min_length=1, max_length=63), AfterValidator(_no_nul), NulFree
]


class WireModel(BaseModel):
    """Fields are snake_case in Python and camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class RequestModel(WireModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorEnvelope(BaseModel):
    error: ErrorBody


_DESCRIPTIONS = {
    400: "invalid_request: the body or query fails validation",
    401: "unauthorized: missing, malformed, expired, tampered or revoked credential",
    403: "forbidden: authenticated, but not allowed",
    404: "not_found: no such agent, room or token",
    409: "conflict: the name or slug is already taken",
    413: "payload_too_large: request body or message body over the limit",
    429: "rate_limited: over the rate limit (see Retry-After)",
    503: "unavailable: database unreachable",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the contract's error envelope."""
    every = (400, 401, 413, 429, 503)
    return {
        status: {"model": ErrorEnvelope, "description": _DESCRIPTIONS[status]}
        for status in sorted({*every, *statuses})
    }
