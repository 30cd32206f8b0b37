"""REST calls with the session JWT: renew once on a 401, retry what is safe to retry.

Retried (bounded, with backoff): transport failures and 503s of requests that are idempotent —
GETs, adding a member (a repeat answers 200) and sends that carry a `clientMsgId` (a repeat
returns the stored message). Never retried: anything else, and 429 (the caller gets
`RateLimited.retry_after` and decides).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import httpx

from agenthub.client.errors import (
    ConnectionError,
    Unavailable,
    error_from_response,
)
from agenthub.client.session import SessionCache

log = logging.getLogger("agenthub.client")

DEFAULT_ATTEMPTS = 5  # first try + 4 retries: about 4 s of backoff in all
BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 2.0


def backoff(attempt: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_MAX_S) -> float:
    """Delay before retry number `attempt` (1, 2, …): doubling from `base` up to `cap`, ±20 %.

    The jitter keeps many clients from retrying in lockstep after a server restart."""
    delay = min(cap, base * 2 ** (attempt - 1))
    return float(delay * random.uniform(0.8, 1.2))


class Rest:
    """Authorized requests against one server; raises the SDK's typed errors."""

    def __init__(self, http: httpx.AsyncClient, sessions: SessionCache, attempts: int) -> None:
        self.http = http
        self.sessions = sessions
        self.attempts = max(1, attempts)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        retry: bool = False,
    ) -> httpx.Response:
        """The successful response; `retry` only for requests that are safe to repeat."""
        attempt = 1
        while True:
            try:
                return await self._authorized(method, path, json, params)
            except (ConnectionError, Unavailable) as exc:
                if not retry or attempt >= self.attempts:
                    raise
                delay = backoff(attempt)
                log.info("%s %s failed (%s); retry %d in %.2fs", method, path, exc, attempt, delay)
                attempt += 1
                await asyncio.sleep(delay)

    async def _authorized(
        self, method: str, path: str, json: Any, params: dict[str, Any] | None
    ) -> httpx.Response:
        token = await self.sessions.token()
        response = await self._send(method, path, token, json, params)
        if response.status_code == 401:
            # The JWT may have expired in flight, or the server's key changed: one new session,
            # one more try. A second 401 is the server's final word.
            token = (await self.sessions.renew(token)).token
            response = await self._send(method, path, token, json, params)
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    async def _send(
        self, method: str, path: str, token: str, json: Any, params: dict[str, Any] | None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            return await self.http.request(method, path, json=json, params=params, headers=headers)
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            raise ConnectionError(
                f"cannot reach AgentHub at {self.http.base_url}: {detail}"
            ) from exc
