"""Opaque pagination cursors: a kind tag and a position, base64url-encoded.

Clients must treat them as opaque; the tag stops a cursor of one list being used on another.
"""

from __future__ import annotations

import base64
import binascii
import uuid

from agenthub.errors import InvalidRequest

_MAX_LEN = 128


def encode(kind: str, position: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


def _decode(kind: str, cursor: str) -> str:
    if len(cursor) > _MAX_LEN:
        raise InvalidRequest("query parameter 'cursor' is invalid")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("query parameter 'cursor' is invalid") from None
    tag, _, position = raw.partition(":")
    if tag != kind or not position:
        raise InvalidRequest("query parameter 'cursor' is invalid")
    return position


def decode_seq(cursor: str) -> int:
    position = _decode("m1", cursor)
    if not position.isdigit() or len(position) > 18:
        raise InvalidRequest("query parameter 'cursor' is invalid")
    return int(position)


def encode_seq(seq: int) -> str:
    return encode("m1", str(seq))


def decode_id(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(_decode("a1", cursor))
    except ValueError:
        raise InvalidRequest("query parameter 'cursor' is invalid") from None


def encode_id(value: uuid.UUID) -> str:
    return encode("a1", value.hex)


def decode_inbox(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(_decode("i1", cursor))
    except ValueError:
        raise InvalidRequest("query parameter 'cursor' is invalid") from None


def encode_inbox(value: uuid.UUID) -> str:
    return encode("i1", value.hex)


def decode_offset(cursor: str) -> int:
    position = _decode("s1", cursor)
    if not position.isdigit() or len(position) > 9:
        raise InvalidRequest("query parameter 'cursor' is invalid")
    return int(position)


def encode_offset(offset: int) -> str:
    return encode("s1", str(offset))
