"""The services of one running app and everything they keep running, reached through
`app.state`.

`Services.open` is the one answer to "what runs in this process" besides the real-time hub
(which receives these services when it starts, see realtime/hub.py): the message writer, the
token-revocation sweeper, the expired-claims sweeper and the Argon2 hashing limiter start when
it is entered and stop when it is left. The server's lifespan and the CLI's commands both go
through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from agenthub.agents.service import AgentService
from agenthub.audit.service import AuditService
from agenthub.auth.jwt import SessionSigner
from agenthub.auth.revocations import Revocations
from agenthub.auth.service import AuthService
from agenthub.auth.tokens import hashing_limiter
from agenthub.claims.service import ClaimService
from agenthub.config import Settings
from agenthub.coordination.service import CoordinationService
from agenthub.db.engine import Database
from agenthub.events import Events, NullEvents
from agenthub.messages.service import MessageService
from agenthub.observability.metrics import Metrics
from agenthub.rooms.service import RoomService
from agenthub.search.service import SearchService

log = logging.getLogger("agenthub")


@dataclass
class Services:
    settings: Settings
    db: Database
    signer: SessionSigner
    agents: AgentService
    auth: AuthService
    rooms: RoomService
    messages: MessageService
    audit: AuditService
    coordination: CoordinationService
    claims: ClaimService
    search: SearchService

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        settings: Settings,
        db: Database,
        events: Events | None = None,
        metrics: Metrics | None = None,
        signer: SessionSigner | None = None,
        *,
        sessions: bool = True,
    ) -> AsyncIterator[Services]:
        """The services with their background work running; stopped on the way out (the
        database stays open: its owner disposes of it). `sessions=False` is for one-shot
        commands, which authenticate no session: no revocation sweep then (it would read a
        database that `migrate` or `restore` is still building)."""
        events = events or NullEvents()
        signer = signer or SessionSigner(
            settings.secret(), settings.jwt_ttl_seconds, settings.jwt_previous_secrets
        )
        rooms = RoomService(db, events)
        revocations = Revocations(db, signer.ttl_seconds)
        # Created here, inside the event loop whose worker threads it limits.
        auth = AuthService(db, signer, revocations, hashing_limiter())
        messages = MessageService(db, rooms, events, settings.max_message_bytes, metrics)
        services = cls(
            settings=settings,
            db=db,
            signer=signer,
            agents=AgentService(db),
            auth=auth,
            rooms=rooms,
            messages=messages,
            audit=AuditService(db),
            coordination=CoordinationService(db, rooms, messages, events),
            claims=ClaimService(db, rooms, events),
            search=SearchService(db, rooms),
        )
        sweeping: asyncio.Task[None] | None = None
        claim_sweep: asyncio.Task[None] | None = None
        if sessions:
            try:  # before serving: a token revoked minutes ago must not slip through
                await revocations.refresh()
            except Exception as exc:
                log.warning("cannot read token revocations yet: %s", type(exc).__name__)
            sweeping = asyncio.create_task(revocations.run(), name="agenthub-revocations")
            # Expired claims are announced (and their rows deleted) by this sweep.
            claim_sweep = asyncio.create_task(services.claims.run(), name="agenthub-claims")
        messages.writer.start()
        try:
            yield services
        finally:
            for task in (sweeping, claim_sweep):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await messages.writer.stop()
