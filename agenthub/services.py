"""The services of one running app, built in its lifespan and reached through `app.state`."""

from __future__ import annotations

from dataclasses import dataclass

from agenthub.agents.service import AgentService
from agenthub.audit.service import AuditService
from agenthub.auth.jwt import SessionSigner
from agenthub.auth.revocations import Revocations
from agenthub.auth.service import AuthService
from agenthub.config import Settings
from agenthub.db.engine import Database
from agenthub.events import Events, NullEvents
from agenthub.messages.service import MessageService
from agenthub.observability.metrics import Metrics
from agenthub.rooms.service import RoomService


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

    @classmethod
    def build(
        cls,
        settings: Settings,
        db: Database,
        events: Events | None = None,
        metrics: Metrics | None = None,
        signer: SessionSigner | None = None,
    ) -> Services:
        events = events or NullEvents()
        signer = signer or SessionSigner(
            settings.secret(), settings.jwt_ttl_seconds, settings.jwt_previous_secrets
        )
        rooms = RoomService(db, events)
        return cls(
            settings=settings,
            db=db,
            signer=signer,
            agents=AgentService(db),
            auth=AuthService(db, signer, Revocations(db, signer.ttl_seconds)),
            rooms=rooms,
            messages=MessageService(db, rooms, events, settings.max_message_bytes, metrics),
            audit=AuditService(db),
        )
