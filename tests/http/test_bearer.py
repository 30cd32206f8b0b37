"""The one `Authorization: Bearer` rule that the routes, the session exchange and the rate
limiter share (agenthub/http/bearer.py)."""

from __future__ import annotations

import pytest

from agenthub.http.bearer import bearer_token


@pytest.mark.parametrize(
    ("header", "token"),
    [
        pytest.param("Bearer abc.def.ghi", "abc.def.ghi", id="jwt"),
        pytest.param("bearer agt_abcdef_xyz", "agt_abcdef_xyz", id="scheme-lowercase"),
        pytest.param("BEARER tok", "tok", id="scheme-uppercase"),
        pytest.param("Bearer   tok", "tok", id="several-spaces"),
        pytest.param("Bearer tok ", "tok", id="trailing-space"),
    ],
)
def test_a_bearer_header_gives_its_token(header: str, token: str) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="absent"),
        pytest.param("", id="empty"),
        pytest.param("Bearer", id="scheme-only"),
        pytest.param("Bearer ", id="scheme-and-space"),
        pytest.param("Bearer    ", id="scheme-and-spaces"),
        pytest.param("Basic dXNlcjpwYXNz", id="other-scheme"),
        pytest.param("Bearertok", id="no-separator"),
        pytest.param("Bearer\ttok", id="tab-separator"),
        pytest.param("Bearer a b", id="space-inside-token"),
        pytest.param("Bearer a\tb", id="tab-inside-token"),
        pytest.param("Token Bearer tok", id="scheme-not-first"),
    ],
)
def test_anything_else_is_no_bearer_token(header: str | None) -> None:
    assert bearer_token(header) is None
