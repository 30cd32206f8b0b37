"""`agenthub.cursors`, directly: opaque cursors round-trip, and anything else is refused with
the contract's 400 naming the parameter (never a crash)."""

from __future__ import annotations

import base64
import uuid

import pytest

from agenthub import cursors
from agenthub.errors import InvalidRequest


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize("seq", [0, 1, 42, 10**17, 10**18 - 1])
def test_seq_cursors_round_trip(seq: int) -> None:
    cursor = cursors.encode_seq(seq)
    assert cursors.decode_seq(cursor) == seq
    assert "=" not in cursor  # URL-safe, unpadded: it travels in a query string as is
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_id_cursors_round_trip() -> None:
    value = uuid.uuid4()
    assert cursors.decode_id(cursors.encode_id(value)) == value


def test_a_cursor_of_one_list_is_refused_by_the_other() -> None:
    with pytest.raises(InvalidRequest):
        cursors.decode_id(cursors.encode_seq(5))
    with pytest.raises(InvalidRequest):
        cursors.decode_seq(cursors.encode_id(uuid.uuid4()))


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "not base64 at all",
        b64("m1"),  # no position
        b64("m1:"),
        b64("m2:5"),  # another kind
        b64("m1:-5"),
        b64("m1:5.0"),
        b64("m1:" + "9" * 19),  # more digits than a seq ever has
        base64.urlsafe_b64encode(b"m1:\xff\xfe").decode(),  # not UTF-8
        b64("m1:" + "1" * 200),  # over the length bound
    ],
)
def test_bad_seq_cursors_are_invalid_requests(cursor: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        cursors.decode_seq(cursor)
    assert refused.value.message == "query parameter 'cursor' is invalid"
    assert refused.value.status == 400


@pytest.mark.parametrize("cursor", [b64("a1:"), b64("a1:not-a-uuid"), b64("a1:" + "0" * 31)])
def test_bad_id_cursors_are_invalid_requests(cursor: str) -> None:
    with pytest.raises(InvalidRequest):
        cursors.decode_id(cursor)
