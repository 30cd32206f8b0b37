"""The inbox and pending-acknowledgement queries read their indexes (SQLite's plan, which
does not depend on table sizes): `make bench` measures them on large rooms."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from agenthub.config import async_url
from agenthub.coordination import store
from agenthub.db.engine import Database
from agenthub.db.migrate import upgrade


async def test_inbox_queries_use_their_indexes(tmp_path: Path) -> None:
    path = tmp_path / "plan.db"
    db = Database(async_url(f"sqlite:///{path}"))
    executed: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            executed.append((statement, params))

    try:
        await upgrade(db)
        sa.event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
        agent = uuid.uuid4()
        async with db.read() as conn:
            await store.inbox_page(conn, agent, uuid.uuid4(), 51)
            await store.inbox_page(conn, agent, None, 50, newest=True)
            await store.unread_count(conn, agent, uuid.uuid4())
            await store.pending_acks(conn, agent, 50)
    finally:
        await db.dispose()
    assert len(executed) == 4
    with sqlite3.connect(path) as raw:
        plans = [
            " | ".join(r[-1] for r in raw.execute("EXPLAIN QUERY PLAN " + sql, params))
            for sql, params in executed
        ]
    for plan in plans[:3]:
        assert "USING INDEX ix_inbox_items_agent_id_id (agent_id=?" in plan, plan
        assert "SCAN inbox_items" not in plan, plan
    assert "USING INDEX ix_message_acks_agent_id_status (agent_id=? AND status=?)" in plans[3]
