"""Session JWTs: HS256 only, claims sub, role, iat, exp, jti and tid.

`tid` is the id of the API token the session was opened with, so that revoking that token can
end the session (see auth/revocations.py). A JWT without it (issued before the claim existed)
is refused like any malformed one: clients open a new session on a 401.

Rotation (docs/RUNBOOK.md, "Rotate the JWT secret"): one key signs (JWT_SECRET), the previous
ones (JWT_PREVIOUS_SECRETS) still verify, so sessions opened before a restart stay valid until
they expire. Each JWT names its key in the `kid` header, a digest that reveals nothing of the
key, so verification tries only that key; a JWT without `kid` (minted before the header existed)
is tried against every key, current first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm

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


def key_id(secret: str) -> str:
    """The `kid` of a key: an HMAC of a constant under the key, so it names the key without
    letting anyone who reads a JWT's header test guesses of the secret offline any faster than
    the signature already does."""
    return hmac.new(secret.encode(), b"agenthub session key id", hashlib.sha256).hexdigest()[:16]


class SessionSigner:
    def __init__(self, secret: str, ttl_seconds: int, previous: Sequence[str] = ()) -> None:
        self._secret = secret
        self._ttl = timedelta(seconds=ttl_seconds)
        self._kid = key_id(secret)
        # Current first: a JWT without `kid` is most likely signed by the current key.
        keys = [secret, *(p for p in previous if p != secret)]
        self._keys: dict[str, str] = {key_id(k): k for k in keys}
        self._jwt = jwt.PyJWT()
        # PyJWS's own registry (public methods); PyJWT keeps its PyJWS in `_jws`, which
        # tests/test_session_signer.py checks is what decodes.
        self._jwt._jws.unregister_algorithm(ALGORITHM)
        self._jwt._jws.register_algorithm(ALGORITHM, _PreparedKeys(keys))

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
        token = self._jwt.encode(
            claims, self._secret, algorithm=ALGORITHM, headers={"kid": self._kid}
        )
        return IssuedSession(token=token, jti=jti, expires_at=expires)

    def verify(self, token: str) -> Principal:
        """The caller named by a valid, unexpired HS256 token; Unauthorized otherwise.

        Signed by the current key or a previous one. Says nothing about revocation:
        `AuthService.authenticate` adds that."""
        claims = self._decode(token)
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

    def _decode(self, token: str) -> dict[str, Any]:
        kid = _unverified_kid(token)
        if kid is None:
            candidates = list(self._keys.values())
        elif isinstance(kid, str) and kid in self._keys:
            candidates = [self._keys[kid]]
        else:  # a key this node does not hold (dropped, or not rolled out here yet)
            raise Unauthorized("invalid or expired session token")
        for key in candidates:
            try:
                claims: dict[str, Any] = self._jwt.decode(
                    token, key, algorithms=[ALGORITHM], options={"require": list(CLAIMS)}
                )
            except jwt.InvalidSignatureError:
                continue  # another key may have signed it
            except jwt.PyJWTError:
                break  # expired or malformed: no other key makes it valid
            return claims
        raise Unauthorized("invalid or expired session token")


class _PreparedKeys(HMACAlgorithm):
    """HS256 with the signer's keys checked once: PyJWT checks an HMAC key on every use (that
    it is no PEM, SSH or DER key, nor a JWK's JSON), a third of a verification's time, when
    these keys are the process's own settings and do not change."""

    def __init__(self, keys: Sequence[str]) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._prepared = {k: super(_PreparedKeys, self).prepare_key(k) for k in keys}

    def prepare_key(self, key: str | bytes) -> bytes:
        prepared = self._prepared.get(key) if isinstance(key, str) else None
        return prepared if prepared is not None else super().prepare_key(key)


def _unverified_kid(token: str) -> Any:
    """The `kid` a token's header names (None if none): only which key to try, since PyJWT's
    decode then checks the whole token. Read here because `jwt.get_unverified_header` checks
    every character of every segment before `decode` does it again: about a fifth of a
    verification's time."""
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, TypeError, RecursionError):
        raise Unauthorized("invalid or expired session token") from None
    if not isinstance(header, dict):
        raise Unauthorized("invalid or expired session token")
    return header.get("kid")
