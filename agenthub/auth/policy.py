"""Who may do what, decided once for every edge (HTTP, Socket.IO, MCP, console)."""

from __future__ import annotations

from agenthub.auth.jwt import Principal
from agenthub.errors import Forbidden


def require_admin(actor: Principal) -> None:
    if not actor.is_admin:
        raise Forbidden("only an admin may do this")
