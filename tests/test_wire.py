"""`agenthub.wire`, directly: the shared wire types (times, names, bounded strings) and the
OpenAPI error entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

from agenthub.wire import (
    SLUG_PATTERN,
    ErrorEnvelope,
    Ref,
    RequestModel,
    Slug,
    Text200,
    Timestamp,
    WireModel,
    error_responses,
    iso_z,
)


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (datetime(2026, 5, 2, 10, 30, tzinfo=UTC), "2026-05-02T10:30:00.000Z"),
        (datetime(2026, 5, 2, 10, 30, 0, 123456, tzinfo=UTC), "2026-05-02T10:30:00.123Z"),
        (  # another offset: converted to UTC
            datetime(2026, 5, 2, 12, 30, tzinfo=timezone(timedelta(hours=2))),
            "2026-05-02T10:30:00.000Z",
        ),
        (datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "2026-12-31T23:59:59.999Z"),
    ],
)
def test_iso_z_is_utc_milliseconds_and_a_z(value: datetime, wire: str) -> None:
    assert iso_z(value) == wire


def test_timestamps_serialize_as_iso_z_and_document_a_date_time() -> None:
    adapter = TypeAdapter(Timestamp)
    moment = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    assert adapter.dump_python(moment) == "2026-01-02T03:04:05.006Z"
    assert adapter.json_schema(mode="serialization") == {"type": "string", "format": "date-time"}


class Thing(WireModel):
    room_id: str
    created_by: str


class Asked(RequestModel):
    display_name: Text200


def test_wire_names_are_camel_case_and_python_names_still_work() -> None:
    thing = Thing.model_validate({"roomId": "r", "createdBy": "a"})
    assert thing.model_dump(by_alias=True) == {"roomId": "r", "createdBy": "a"}
    assert Thing(room_id="r", created_by="a") == thing


def test_request_models_ignore_unknown_fields() -> None:
    assert Asked.model_validate({"displayName": "Bob", "extra": 1}).display_name == "Bob"


@pytest.mark.parametrize("bad", ["", "x" * 201, "nul\x00inside"])
def test_text200_is_one_to_200_characters_without_nul(bad: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Text200).validate_python(bad)
    assert TypeAdapter(Text200).validate_python("x" * 200) == "x" * 200


def test_nul_is_refused_with_a_message_that_names_the_character() -> None:
    with pytest.raises(ValidationError, match=r"U\+0000"):
        TypeAdapter(Ref).validate_python("a\x00b")


@pytest.mark.parametrize("ok", ["ab", "general", "a-b-c", "0ops", "x" * 63])
def test_slugs_that_are_accepted(ok: str) -> None:
    assert TypeAdapter(Slug).validate_python(ok) == ok


@pytest.mark.parametrize("bad", ["a", "-ab", "Ab", "a_b", "a b", "x" * 64, "é-room"])
def test_slugs_that_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Slug).validate_python(bad)
    assert SLUG_PATTERN.startswith("^")


def test_error_responses_always_list_the_common_errors_plus_the_ones_asked() -> None:
    assert sorted(error_responses()) == [400, 401, 413, 429, 503]
    entries = error_responses(404, 403, 400)
    assert sorted(entries) == [400, 401, 403, 404, 413, 429, 503]
    assert all(entry["model"] is ErrorEnvelope for entry in entries.values())
    assert entries[404]["description"].startswith("not_found")
    with pytest.raises(KeyError):
        error_responses(418)  # no description: not one of the contract's errors
