"""Fixtures: every storage-touching test runs once per backend against a real server.

SQLite always runs. PostgreSQL runs when reachable at AGENTHUB_TEST_PG_URL (default
postgresql://postgres@127.0.0.1:5432/postgres), each run in a fresh database of its own;
with AGENTHUB_REQUIRE_PG=1 (as `.ci/run` sets) an unreachable PostgreSQL fails the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import fresh_pg_database, pg_reachable
from tests.support import Agent, Server, start_server, stop_process

REQUIRE_PG = os.environ.get("AGENTHUB_REQUIRE_PG") == "1"
PG_OK = pg_reachable()
if REQUIRE_PG and not PG_OK:
    raise pytest.UsageError(
        "AGENTHUB_REQUIRE_PG=1 but PostgreSQL is not reachable at "
        + os.environ.get("AGENTHUB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
BACKENDS = ["sqlite", "postgres"] if PG_OK else ["sqlite"]

# Short presence timings so pruning is observable within a test; 50 socket events/s so that
# the 40-concurrent-sends test fits (the rate-limit test reads the configured value).
SERVER_ENV = {
    "PRESENCE_TTL_SECONDS": "3",
    "PRESENCE_SWEEP_SECONDS": "0.5",
    "SOCKETIO_PING_INTERVAL": "1",
    "SOCKETIO_PING_TIMEOUT": "30",
    "RATE_LIMIT_SOCKET_PER_SEC": "50",
}


def pytest_report_header() -> str:
    missing = "" if PG_OK else " (PostgreSQL not reachable: its runs are not collected)"
    return f"agenthub backends: {', '.join(BACKENDS)}{missing}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(f"agenthub backends tested: {', '.join(BACKENDS)}")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'agenthub.db'}"
    else:
        with fresh_pg_database("srv") as url:
            yield url


@pytest.fixture(scope="session")
def server(
    backend: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    srv = start_server(
        backend, database_url, Path(tmp_path_factory.mktemp(f"data-{backend}")), **SERVER_ENV
    )
    try:
        yield srv
    finally:
        srv.api.close()
        stop_process(srv.proc)


@pytest.fixture
def admin(server: Server) -> Agent:
    return server.admin


@pytest.fixture
def alice(server: Server) -> Agent:
    return server.new_agent()


@pytest.fixture
def bob(server: Server) -> Agent:
    return server.new_agent()
