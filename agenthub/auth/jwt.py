"""Session JWTs: HS256 only, claims sub, role, iat, exp, jti. Stateless by design."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from agenthub.db.types import as_uuid
from agenthub.errors import Unauthorized

ALGORITHM = "HS256"
ROLES = ("admin", "agent")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as the session JWT says."""

    agent_id: uuid.UUID
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class IssuedSession:
    token: str
    jti: str
    expires_at: datetime


class SessionSigner:
    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._ttl = timedelta(seconds=ttl_seconds)

    def issue(self, agent_id: uuid.UUID, role: str) -> IssuedSession:
        now = datetime.now(UTC).replace(microsecond=0)
        expires = now + self._ttl
        jti = str(uuid.uuid4())
        claims = {"sub": str(agent_id), "role": role, "iat": now, "exp": expires, "jti": jti}
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM)
        return IssuedSession(token=token, jti=jti, expires_at=expires)

    def verify(self, token: str) -> Principal:
        """The caller named by a valid, unexpired HS256 token; Unauthorized otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "role", "iat", "exp", "jti"]},
            )
        except jwt.PyJWTError:
            raise Unauthorized("invalid or expired session token") from None
        agent_id = as_uuid(claims.get("sub"))
        if agent_id is None or claims.get("role") not in ROLES:
            raise Unauthorized("invalid or expired session token")
        return Principal(agent_id=agent_id, role=claims["role"])
