"""Session JWTs: HS256 only, claims sub, role, iat, exp, jti and tid.

`tid` is the id of the API token the session was opened with, so that revoking that token can
end the session (see auth/revocations.py). A JWT without it (issued before the claim existed)
is refused like any malformed one: clients open a new session on a 401.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from agenthub.db.types import as_uuid
from agenthub.errors import Unauthorized

ALGORITHM = "HS256"
ROLES = ("admin", "agent")
CLAIMS = ("sub", "role", "iat", "exp", "jti", "tid")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as the session JWT says.

    `token_id` and `expires_at` (Unix time) are None and infinity for the operator at the
    command line, who acts without a session."""

    agent_id: uuid.UUID
    role: str
    token_id: uuid.UUID | None = None
    expires_at: float = math.inf

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

    @property
    def ttl_seconds(self) -> float:
        return self._ttl.total_seconds()

    def issue(self, agent_id: uuid.UUID, role: str, token_id: uuid.UUID) -> IssuedSession:
        now = datetime.now(UTC).replace(microsecond=0)
        expires = now + self._ttl
        jti = str(uuid.uuid4())
        claims = {
            "sub": str(agent_id),
            "role": role,
            "iat": now,
            "exp": expires,
            "jti": jti,
            "tid": str(token_id),
        }
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM)
        return IssuedSession(token=token, jti=jti, expires_at=expires)

    def verify(self, token: str) -> Principal:
        """The caller named by a valid, unexpired HS256 token; Unauthorized otherwise.

        Says nothing about revocation: `AuthService.authenticate` adds that."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], options={"require": list(CLAIMS)}
            )
        except jwt.PyJWTError:
            raise Unauthorized("invalid or expired session token") from None
        agent_id = as_uuid(claims.get("sub"))
        token_id = as_uuid(claims.get("tid"))
        exp = claims.get("exp")
        if (
            agent_id is None
            or token_id is None
            or claims.get("role") not in ROLES
            or not isinstance(exp, int | float)
        ):
            raise Unauthorized("invalid or expired session token")
        return Principal(
            agent_id=agent_id, role=claims["role"], token_id=token_id, expires_at=float(exp)
        )
