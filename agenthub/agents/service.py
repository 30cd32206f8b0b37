"""Agents: who exists, and creating new ones (admins only)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agenthub.agents import store
from agenthub.agents.schemas import AgentPublic, agent_out
from agenthub.audit import store as audit
from agenthub.auth.jwt import Principal
from agenthub.auth.policy import require_admin
from agenthub.db.engine import Database
from agenthub.errors import Conflict, NotFound, Unauthorized, clip


class AgentService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, actor: Principal | None, name: str, display_name: str, role: str
    ) -> AgentPublic:
        """Create an agent. `actor` None is the operator at the command line."""
        if actor is not None:
            require_admin(actor)
        try:
            async with self.db.write() as conn:
                row = await self._insert(conn, actor, name, display_name, role)
        except sa.exc.IntegrityError:
            raise Conflict(f"agent name '{name}' is already taken") from None
        return agent_out(row)

    async def create_first(self, name: str, display_name: str, role: str) -> AgentPublic | None:
        """The operator's first agent, created only on an empty database (None otherwise):
        how `agenthub serve` makes its admin. Counted and written in one write transaction."""
        try:
            async with self.db.write() as conn:
                if await store.count(conn) > 0:
                    return None
                row = await self._insert(conn, None, name, display_name, role)
        except sa.exc.IntegrityError:
            raise Conflict(f"agent name '{name}' is already taken") from None
        return agent_out(row)

    async def _insert(
        self,
        conn: AsyncConnection,
        actor: Principal | None,
        name: str,
        display_name: str,
        role: str,
    ) -> dict[str, Any]:
        row = await store.insert(conn, name, display_name, role)
        payload = {"agentId": str(row["id"]), "name": name, "role": role}
        await audit.record(conn, "agent-created", actor.agent_id if actor else None, payload)
        return row

    async def list_all(self) -> list[AgentPublic]:
        async with self.db.read() as conn:
            return [agent_out(r) for r in await store.list_all(conn)]

    async def get(self, ref: str) -> AgentPublic:
        async with self.db.read() as conn:
            row = await store.get_by_ref(conn, ref)
        if row is None:
            raise NotFound(f"agent '{clip(ref)}' does not exist")
        return agent_out(row)

    async def me(self, actor: Principal) -> AgentPublic:
        async with self.db.read() as conn:
            row = await store.get_by_id(conn, actor.agent_id)
        if row is None:
            raise Unauthorized("the agent of this session no longer exists")
        return agent_out(row)
