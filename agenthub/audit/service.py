"""Reading the audit log (admins only). Events are written by the services they record."""

from __future__ import annotations

from agenthub import cursors
from agenthub.agents import store as agents_store
from agenthub.audit import store
from agenthub.audit.schemas import AuditEventPage, AuditEventPublic
from agenthub.auth.jwt import Principal
from agenthub.auth.policy import require_admin
from agenthub.db.engine import Database
from agenthub.errors import NotFound, clip


class AuditService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(
        self,
        actor: Principal,
        *,
        type_: str | None,
        agent_ref: str | None,
        cursor: str | None,
        limit: int,
    ) -> AuditEventPage:
        require_admin(actor)
        before = cursors.decode_id(cursor) if cursor else None
        async with self.db.read() as conn:
            agent_id = None
            if agent_ref:
                agent = await agents_store.get_by_ref(conn, agent_ref)
                if agent is None:
                    raise NotFound(f"agent '{clip(agent_ref)}' does not exist")
                agent_id = agent["id"]
            rows = await store.page(
                conn, type_=type_ or None, agent_id=agent_id, before=before, limit=limit + 1
            )
        events = [
            AuditEventPublic(
                id=r["id"],
                type=r["type"],
                agent_id=r["agent_id"],
                payload=r["payload"],
                created_at=r["created_at"],
            )
            for r in rows[:limit]
        ]
        more = len(rows) > limit
        return AuditEventPage(
            events=events, next_cursor=cursors.encode_id(events[-1].id) if more else None
        )
