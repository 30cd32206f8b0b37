"""What the hub keeps per socket, and what its handlers receive once it runs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agenthub.auth.jwt import Principal
from agenthub.errors import AppError
from agenthub.realtime.ratelimit import SlidingWindow
from agenthub.realtime.sessions import SessionLifetimes
from agenthub.services import Services

Ack = dict[str, Any]


def error_ack(exc: AppError) -> Ack:
    return {"ok": False, "error": exc.to_dict()}


@dataclass(eq=False, slots=True)  # one per socket: thousands of idle ones must stay small
class SocketState:
    sid: str
    principal: Principal
    window: SlidingWindow
    last_active: float = field(default_factory=time.monotonic)
    # Rooms where this socket is present; made on its first join (an empty set is 216 bytes,
    # and most sockets of a fleet never join presence).
    joined: set[str] | None = None

    @property
    def agent_id(self) -> str:
        return str(self.principal.agent_id)


@dataclass(frozen=True, slots=True)
class Running:
    """What the hub serves with once the app's lifespan has started it: sockets are accepted
    only then, and every handler receives this."""

    services: Services
    lifetimes: SessionLifetimes
