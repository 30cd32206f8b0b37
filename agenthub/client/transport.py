"""REST calls with the session JWT: renew once on a 401, retry what is safe to retry.

Retried (bounded, with backoff): transport failures and 503s of requests that are idempotent —
GETs, adding a member (a repeat answers 200) and sends that carry a `clientMsgId` (a repeat
returns the stored message). Never retried: anything else, and 429 (the caller gets
`RateLimited.retry_after` and decides).

The client may be pointed at anything, so every answer is read within `Bounds` (`fetch`): the
whole request, retries included, ends by one deadline (httpx's own timeout is per read, which a
server sending one byte a second never trips), the answer is read as a stream and abandoned past
`max_bytes`, JSON too deeply nested is refused (`decode_json`), and redirects are never followed
— a redirect would carry the API token or the session JWT to wherever it points. Each of these
is a `BadResponse` (or a `ConnectionError` for the deadline), never a traceback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json as jsonlib
import logging
import random
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from agenthub.client.errors import (
    BadResponse,
    ConnectionError,
    ResponseTooLarge,
    Unavailable,
    error_from_response,
)

log = logging.getLogger("agenthub.client")


class _Issued(Protocol):
    @property
    def token(self) -> str: ...


class Sessions(Protocol):
    """Where `Rest` gets its JWTs (`session.SessionCache` is one); a protocol, so this module
    needs nothing from session.py, which fetches through it."""

    async def token(self) -> str: ...

    async def renew(self, stale: str | None) -> _Issued: ...


DEFAULT_ATTEMPTS = 5  # first try + 4 retries: about 4 s of backoff in all
BACKOFF_BASE_S = 0.25
BACKOFF_MAX_S = 2.0
DEFAULT_DEADLINE_S = 30.0
# The largest legitimate answer is a page of 200 messages of 64 KiB, about 14 MB as ordinary
# text; bodies the server must escape heavily can make a page larger, and the SDK then asks
# for smaller pages (see `AgentHubClient.catch_up`).
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
# Dropped from a response rebuilt from the bytes read: they described the stream, not them.
_STREAM_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}


@dataclass(frozen=True, slots=True)
class Bounds:
    """How long one request may take in all, and how large its answer may be."""

    deadline_s: float = DEFAULT_DEADLINE_S
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES


def plaintext_warning(url: str) -> str | None:
    """Why sending credentials to `url` is unsafe, or None: plain http to another machine.

    The long-lived API token and the session JWTs travel in headers; over http anyone on the
    network path can read and reuse them. Loopback never leaves the machine."""
    parsed = urlsplit(url)
    if parsed.scheme != "http":
        return None
    host = (parsed.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a name, not an address: it may resolve anywhere
    return (
        f"the API token is sent unencrypted to {parsed.scheme}://{parsed.netloc}: anyone on the "
        "network path can read and reuse it; use https:// for a server on another machine"
    )


def backoff(attempt: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_MAX_S) -> float:
    """Delay before retry number `attempt` (1, 2, …): doubling from `base` up to `cap`, ±20 %.

    The jitter keeps many clients from retrying in lockstep after a server restart."""
    delay = min(cap, base * 2 ** (attempt - 1))
    return float(delay * random.uniform(0.8, 1.2))


class Rest:
    """Authorized requests against one server; raises the SDK's typed errors."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        sessions: Sessions,
        attempts: int,
        bounds: Bounds | None = None,
    ) -> None:
        self.http = http
        self.sessions = sessions
        self.attempts = max(1, attempts)
        self.bounds = bounds or Bounds()

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        retry: bool = False,
    ) -> httpx.Response:
        """The successful response, read whole; `retry` only for requests safe to repeat.

        Retries included, it ends within `bounds.deadline_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.bounds.deadline_s
        attempt = 1
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    return await self._authorized(method, path, json, params)
            except TimeoutError:
                raise ConnectionError(
                    f"AgentHub at {self.http.base_url} did not answer {method} {path} "
                    f"within {self.bounds.deadline_s:g}s"
                ) from None
            except (ConnectionError, Unavailable) as exc:
                delay = backoff(attempt)
                if not retry or attempt >= self.attempts or loop.time() + delay >= deadline:
                    raise
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
        return await fetch(
            self.http, self.bounds, method, path, headers=headers, json=json, params=params
        )


async def fetch(
    http: httpx.AsyncClient,
    bounds: Bounds,
    method: str,
    path: str,
    *,
    headers: dict[str, str],
    json: Any = None,
    params: dict[str, Any] | None = None,
) -> httpx.Response:
    """One request with its whole answer read, within `bounds`; a redirect is a `BadResponse`.

    The caller's own deadline (an enclosing `asyncio.timeout`) may be shorter; this one is the
    most a single request is ever given."""
    request = http.build_request(method, path, json=json, params=params, headers=headers)
    try:
        async with asyncio.timeout(bounds.deadline_s):
            response = await http.send(request, stream=True, follow_redirects=False)
            try:
                body = await _read_bounded(response, bounds.max_bytes)
            finally:
                await response.aclose()
    except TimeoutError:
        raise ConnectionError(
            f"AgentHub at {http.base_url} sent no complete answer within {bounds.deadline_s:g}s"
        ) from None
    except httpx.DecodingError:
        raise BadResponse(
            f"the answer from {http.base_url} could not be decoded ({method} {path})"
        ) from None
    except httpx.LocalProtocolError:
        # Its text quotes the offending header, which may be the token: never shown.
        raise ConnectionError(
            f"the request to {http.base_url} could not be sent: a header is malformed"
        ) from None
    except httpx.TransportError as exc:
        detail = str(exc) or type(exc).__name__
        raise ConnectionError(f"cannot reach AgentHub at {http.base_url}: {detail}") from exc
    if 300 <= response.status_code < 400:
        where = response.headers.get("location", "elsewhere")
        raise BadResponse(
            f"{http.base_url} answered {response.status_code} redirecting to {where}; "
            "AgentHub clients do not follow redirects: use the server's own address"
        )
    headers_kept = [
        (k, v) for k, v in response.headers.multi_items() if k.lower() not in _STREAM_HEADERS
    ]
    return httpx.Response(response.status_code, headers=headers_kept, content=body, request=request)


async def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(response, limit)
    chunks: list[bytes] = []
    size = 0
    # Decoded bytes are counted: a small gzip bomb must not expand without bound either.
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _too_large(response, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(response: httpx.Response, limit: int) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"the answer to {response.request.method} {response.request.url.path} is larger "
        f"than {limit} bytes; refused"
    )


def decode_json(response: httpx.Response) -> Any:
    """The answer's JSON; `BadResponse` when it is not JSON, or nested too deeply to parse."""
    try:
        return jsonlib.loads(response.content)
    except (ValueError, RecursionError):
        raise BadResponse(
            f"the answer to {response.request.method} {response.request.url.path} "
            "is not the JSON AgentHub sends"
        ) from None
