"""Two-tier auth: API tokens (issued, listed, revoked) traded for session JWTs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn

import anyio
import sqlalchemy as sa

from agenthub.agents import store as agents_store
from agenthub.agents.schemas import AgentPublic
from agenthub.audit import store as audit
from agenthub.auth import store, tokens
from agenthub.auth.jwt import IssuedSession, Principal, SessionSigner
from agenthub.auth.policy import require_admin
from agenthub.auth.revocations import Revocations
from agenthub.auth.schemas import TokenIssued, TokenPublic, token_out
from agenthub.db.engine import Database, on_commit
from agenthub.db.types import utcnow
from agenthub.errors import Forbidden, InvalidRequest, NotFound, Unauthorized, clip

_PREFIX_ATTEMPTS = 5


class AuthService:
    def __init__(
        self,
        db: Database,
        signer: SessionSigner,
        revocations: Revocations,
        hashing: anyio.CapacityLimiter,
    ) -> None:
        self.db = db
        self.signer = signer
        self.revocations = revocations
        self.hashing = hashing  # the Argon2 threads' limiter (see auth/tokens.py)

    def authenticate(self, jwt: str) -> Principal:
        """The caller of a valid session whose API token is not revoked; Unauthorized otherwise.

        No database round trip: revocations are known from the process's view, at most about
        half a second old (see auth/revocations.py)."""
        return self.ensure_live(self.signer.verify(jwt))

    def ensure_live(self, principal: Principal) -> Principal:
        """`principal` (from a verified JWT) unless its API token has been revoked."""
        if principal.token_id in self.revocations:
            raise Unauthorized("the session's API token has been revoked")
        return principal

    async def open_session(
        self, api_token: str | None, client: str | None = None
    ) -> tuple[IssuedSession, AgentPublic]:
        """Trade an API token for a session JWT; every failure is the same 401 to the caller.

        Every well-formed token costs exactly one Argon2 verify, whatever its prefix finds
        (against a dummy hash for an unknown prefix): an unknown, revoked or expired prefix
        must take as long as a wrong secret, or the answer's timing tells which prefixes exist.
        Malformed tokens skip it (their sender knows they are malformed). The per-IP rate limit
        and the hashing's CPU limiter bound what unknown prefixes can cost, as for known ones.
        `client` is the caller's address (see http/proxies.py), recorded in the audit row."""
        prefix = tokens.prefix_of(api_token) if api_token else None
        if api_token is None or prefix is None:
            await self._login_failed(None, "malformed", None, client)
        async with self.db.read() as conn:
            row = await store.with_agent_by_prefix(conn, prefix)
        matches = await tokens.verify_token(
            row["hash_argon2id"] if row else None, api_token, self.hashing
        )
        if row is None:
            await self._login_failed(None, "unknown", prefix, client)
        agent_id = row["agent_id"]
        if row["revoked_at"] is not None:
            await self._login_failed(agent_id, "revoked", prefix, client)
        if row["expires_at"] is not None and row["expires_at"] <= utcnow():
            await self._login_failed(agent_id, "expired", prefix, client)
        if not matches:
            await self._login_failed(agent_id, "mismatch", prefix, client)

        session = self.signer.issue(agent_id, row["agent_role"], row["id"])
        async with self.db.write() as conn:
            await store.touch(conn, row["id"])
            payload = {"prefix": prefix, "jti": session.jti, "ip": client}
            await audit.record(conn, "login", agent_id, payload)
        agent = AgentPublic(
            id=agent_id,
            name=row["agent_name"],
            display_name=row["agent_display_name"],
            role=row["agent_role"],
            created_at=row["agent_created_at"],
        )
        return session, agent

    async def _login_failed(
        self, agent_id: Any, reason: str, prefix: str | None, client: str | None
    ) -> NoReturn:
        payload = {"reason": reason, "prefix": prefix, "ip": client}
        async with self.db.write() as conn:
            await audit.record(conn, "login-failed", agent_id, payload)
        raise Unauthorized("invalid, expired or revoked API token")

    async def issue_token(
        self, actor: Principal | None, agent_ref: str, expires_at: datetime | None
    ) -> TokenIssued:
        """A new API token for an agent. `actor` None is the operator at the command line."""
        if actor is not None:
            require_admin(actor)
        if expires_at is not None and expires_at <= utcnow():
            raise InvalidRequest("field 'expiresAt' must be in the future")
        async with self.db.read() as conn:
            agent = await agents_store.get_by_ref(conn, agent_ref)
        if agent is None:
            raise NotFound(f"agent '{clip(agent_ref)}' does not exist")
        agent_id = agent["id"]
        for attempt in range(_PREFIX_ATTEMPTS):
            prefix, token = tokens.new_token()
            hashed = await tokens.hash_token(token, self.hashing)
            try:
                async with self.db.write() as conn:
                    row = await store.insert(conn, agent_id, prefix, hashed, expires_at)
                    payload = {
                        "tokenId": str(row["id"]),
                        "prefix": prefix,
                        "forAgentId": str(agent_id),
                    }
                    await audit.record(
                        conn, "token-issued", actor.agent_id if actor else None, payload
                    )
            except sa.exc.IntegrityError:
                if attempt + 1 == _PREFIX_ATTEMPTS:
                    raise
                continue  # 6 random characters collided with an existing prefix: draw again
            return TokenIssued(
                id=row["id"],
                prefix=prefix,
                token=token,
                expires_at=expires_at,
                created_at=row["created_at"],
            )
        raise AssertionError("unreachable")

    async def list_tokens(self, actor: Principal | None, agent_ref: str) -> list[TokenPublic]:
        async with self.db.read() as conn:
            agent = await agents_store.get_by_ref(conn, agent_ref)
            if agent is None:
                raise NotFound(f"agent '{clip(agent_ref)}' does not exist")
            if actor is not None and not actor.is_admin and actor.agent_id != agent["id"]:
                raise Forbidden("only an admin or the agent itself may list its tokens")
            return [token_out(r) for r in await store.list_for_agent(conn, agent["id"])]

    async def revoke(self, actor: Principal | None, prefix: str) -> None:
        """Revoke by prefix; revoking twice is not an error."""
        row = None
        if tokens.PREFIX_RE.match(prefix):
            async with self.db.read() as conn:
                row = await store.get_by_prefix(conn, prefix)
        if row is None:
            raise NotFound(f"token '{clip(prefix)}' does not exist")
        token_id, agent_id = row["id"], row["agent_id"]
        if actor is not None and not actor.is_admin and actor.agent_id != agent_id:
            raise Forbidden("only an admin or the token's agent may revoke it")
        async with self.db.write() as conn:
            # Once committed (or if revoked already), this process ends the token's sessions at
            # once; the other processes see it at their next sweep.
            on_commit(conn, lambda: self.revocations.mark(token_id))
            if await store.revoke(conn, token_id):
                payload = {
                    "tokenId": str(token_id),
                    "prefix": prefix,
                    "forAgentId": str(agent_id),
                }
                await audit.record(
                    conn, "token-revoked", actor.agent_id if actor else None, payload
                )
