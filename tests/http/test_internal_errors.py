"""A genuine unexpected error in a real server: a row corrupted behind AgentHub's back (an audit
event whose payload is a JSON array, which the wire schema cannot carry) makes the audit service
raise while it answers. The client gets the contract's 500 `internal` with no detail, and the
log one line with the error's type and the request id, never a traceback or the row's content.

A database of the test's own: the corrupted row must not reach other tests.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.databases import fresh_pg_database
from tests.support import Server, assert_error, start_server, stop_process

MARKER = "corrupted-" + uuid.uuid4().hex  # in the bad row: must reach no client and no log


@pytest.fixture
def corruptible(backend: str, tmp_path: Path) -> Iterator[Server]:
    """A server on a database of its own, logging JSON lines (LOG_FORMAT=json) at info."""

    def start(url: str) -> Server:
        return start_server(backend, url, tmp_path / "data", LOG_FORMAT="json", LOG_LEVEL="info")

    if backend == "sqlite":
        srv = start(f"sqlite:///{tmp_path / 'corruptible.db'}")
        try:
            yield srv
        finally:
            srv.api.close()
            stop_process(srv.proc)
        return
    with fresh_pg_database("corrupt") as url:
        srv = start(url)
        try:
            yield srv
        finally:
            srv.api.close()
            stop_process(srv.proc)


def execute(database_url: str, sql: str) -> None:
    """A statement written straight to the database, committed (no AgentHub involved)."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.split("///", 1)[1])
        try:
            conn.execute(sql)
            conn.commit()
        finally:
            conn.close()
        return

    async def run() -> None:
        conn = await asyncpg.connect(database_url, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def log_records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_an_unexpected_error_is_a_500_internal_and_one_log_line_by_type(
    corruptible: Server,
) -> None:
    srv = corruptible
    srv.new_agent()  # an audit event or two to corrupt
    r = srv.admin.get("/api/v1/audit-events")
    assert r.status_code == 200, r.text
    assert r.json()["events"]
    corrupt = f"UPDATE audit_events SET payload = '[\"{MARKER}\"]'"  # noqa: S608 (our constant)
    execute(srv.database_url, corrupt)
    mark = srv.log_mark()
    rid = f"internal-{uuid.uuid4().hex}"

    r = srv.admin.get("/api/v1/audit-events", headers={"X-Request-ID": rid})

    assert_error(r, 500, "internal")
    assert r.json() == {"error": {"code": "internal", "message": "internal server error"}}
    assert r.headers["x-request-id"] == rid
    assert MARKER not in r.text
    assert "ValidationError" not in r.text
    log = srv.log_text_with(rid, since=mark)
    records = [rec for rec in log_records(log) if rec.get("request_id") == rid]
    errors = [rec for rec in records if rec["level"] == "error"]
    assert len(errors) == 1, records
    assert errors[0]["error_type"] == "ValidationError"
    assert errors[0]["msg"] == "unhandled ValidationError"
    access = [rec for rec in records if rec.get("status") == 500]
    assert len(access) == 1, records
    assert access[0]["route"] == "/api/v1/audit-events"
    assert "Traceback" not in log
    assert MARKER not in log
    # One request's failure is its own: the server goes on answering.
    assert srv.admin.get("/api/v1/agents/me").status_code == 200
    assert srv.proc.poll() is None
