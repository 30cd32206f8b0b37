"""`/mcp` under the rate limits, like the REST API: per agent once its API token is known, so
one agent over its limit does not stop another calling from the same address. A server of its
own (a low RATE_LIMIT_AUTH_PER_MIN) on the shared database, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.mcp.test_http_endpoint import ACCEPT, INIT
from tests.support import Server, start_server, stop_process

LIMIT = 5


@pytest.fixture
def limited(backend: str, database_url: str, tmp_path: Path) -> Iterator[Server]:
    srv = start_server(backend, database_url, tmp_path / "data", RATE_LIMIT_AUTH_PER_MIN=str(LIMIT))
    try:
        yield srv
    finally:
        srv.api.close()
        stop_process(srv.proc)


def test_each_agent_has_its_own_budget(limited: Server) -> None:
    alice, bob = limited.new_agent(), limited.new_agent()

    def initialize(token: str) -> httpx.Response:
        headers = {**ACCEPT, "Authorization": f"Bearer {token}"}
        return httpx.post(f"{limited.base_url}/mcp", json=INIT, headers=headers, timeout=30)

    answers = [initialize(alice.token) for _ in range(LIMIT + 3)]
    statuses = [r.status_code for r in answers]
    assert 429 in statuses, statuses
    refused = answers[statuses.index(429)]
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    # The first call, its token not yet known, is counted by address. And the limiter's sliding
    # window counter (limits' SlidingWindowCounterRateLimiter) floors the weighted count of the
    # previous minute, so a run that crosses a minute's boundary may be allowed one call more.
    assert statuses.count(200) <= LIMIT + 2
    assert initialize(bob.token).status_code == 200  # same address, another agent's budget
