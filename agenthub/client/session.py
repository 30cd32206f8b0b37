"""The session JWT: traded for the API token, cached, renewed before it expires.

The renewal rule (`renew_margin`): a JWT is replaced `min(60 s, lifetime / 5)` before it
expires — one minute for the contract's 15-minute sessions, a fifth of the lifetime for
lifetimes under five minutes (a 3-second test lifetime is renewed after about 1.6 s).

The lifetime is read from the JWT's own `exp - iat`, measured on the local monotonic clock from
the moment the exchange was sent, so a client whose wall clock is wrong still renews in time.
The claims are whole seconds and `iat` is rounded down, so up to one second of the lifetime may
already be gone when the token arrives: one second is subtracted first.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from agenthub.client.errors import BadResponse, Unauthorized, error_from_response
from agenthub.client.models import Agent, parse_time
from agenthub.client.transport import Bounds, decode_json, fetch

RENEW_MARGIN_MAX_S = 60.0
RENEW_MARGIN_FRACTION = 0.2
CLAIM_GRANULARITY_S = 1.0
SESSIONS_PATH = "/api/v1/sessions"


def renew_margin(lifetime: float) -> float:
    """How long before expiry a JWT of this usable lifetime is replaced."""
    return min(RENEW_MARGIN_MAX_S, max(0.0, lifetime) * RENEW_MARGIN_FRACTION)


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    expires_at: datetime  # as the server stated it (its clock)
    agent: Agent
    renew_at: float  # local monotonic time after which the token is no longer handed out


class SessionCache:
    """Hands out a JWT that is valid for a while yet; one exchange at a time."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_token: str,
        clock: Callable[[], float] = time.monotonic,
        bounds: Bounds | None = None,
    ) -> None:
        self._http = http
        # A token read from a CRLF file or pasted with a newline: the whitespace is not part of it.
        self._api_token = api_token.strip()
        self._bounds = bounds or Bounds()
        self._clock = clock
        self._session: Session | None = None
        self._lock = asyncio.Lock()
        self.exchanges = 0  # how many sessions this cache opened (for diagnostics and tests)

    @property
    def session(self) -> Session | None:
        return self._session

    async def token(self) -> str:
        """A JWT not yet due for renewal, opening a new session when needed."""
        current = self._session
        if current is not None and self._clock() < current.renew_at:
            return current.token
        return (await self.renew(current.token if current else None)).token

    async def current(self) -> Session:
        await self.token()
        assert self._session is not None
        return self._session

    async def renew(self, stale: str | None) -> Session:
        """Open a new session unless another caller already replaced `stale` meanwhile.

        Pass the token a request was refused with: concurrent 401s then cause one exchange."""
        async with self._lock:
            current = self._session
            if current is not None and current.token != stale and self._clock() < current.renew_at:
                return current
            self._session = await self._exchange()
            return self._session

    def seconds_until_renewal(self, token: str) -> float:
        """How long `token` may still be handed out; 0 once it is due or no longer current."""
        current = self._session
        if current is None or current.token != token:
            return 0.0
        return max(0.0, current.renew_at - self._clock())

    def forget(self) -> None:
        self._session = None

    async def _exchange(self) -> Session:
        check_api_token(self._api_token)
        sent_at = self._clock()
        response = await fetch(
            self._http,
            self._bounds,
            "POST",
            SESSIONS_PATH,
            headers={"Authorization": f"Bearer {self._api_token}"},
        )
        if response.status_code != 201:
            error = error_from_response(response)
            if isinstance(error, Unauthorized):
                raise Unauthorized(f"the API token was refused: {error.message}") from None
            raise error
        body = decode_json(response)
        try:
            token = body["token"]
            expires_at = parse_time(body["expiresAt"])
            agent = Agent.from_wire(body["agent"])
        except (KeyError, TypeError, ValueError, OverflowError):
            raise BadResponse("the server's answer to opening a session is malformed") from None
        if not isinstance(token, str) or not token.isascii() or not token.isprintable():
            raise BadResponse("the server's session token is malformed")
        lifetime = _claimed_lifetime(token)
        if lifetime is None:  # unreadable claims: trust the stated expiry and our wall clock
            lifetime = (expires_at - datetime.now(UTC)).total_seconds()
        usable = lifetime - CLAIM_GRANULARITY_S
        self.exchanges += 1
        return Session(
            token=token,
            expires_at=expires_at,
            agent=agent,
            renew_at=sent_at + usable - renew_margin(usable),
        )


def check_api_token(token: str) -> None:
    """Refuse, without quoting it, a token that cannot be one: what it holds is a secret, and
    httpx would otherwise fail on it with the whole header in its message (or a traceback)."""
    if not token:
        raise Unauthorized("the API token is empty")
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise Unauthorized(
            "the API token is malformed: it holds a space, a control character or a non-ASCII "
            "character, which no AgentHub token has; copy it again"
        )


def _claimed_lifetime(token: str) -> float | None:
    """`exp - iat` from the JWT's payload (read, not verified: only the server can verify)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"]) - float(claims["iat"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None
