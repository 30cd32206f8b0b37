"""The contract's error codes as exceptions, plus one for failures of the network itself.

Every exception the SDK raises on purpose is an `AgentHubError`; `code` is the contract's
machine code and `message` is the server's own sentence (or ours, for transport failures).
"""

from __future__ import annotations

import builtins
from typing import Any

import httpx

MESSAGE_MAX_CHARS = 500
RETRY_AFTER_MAX_S = 3600.0


class AgentHubError(Exception):
    """Base of every SDK error: `code` (the contract's), `status` (HTTP, 0 if none), `message`."""

    code = "internal"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(AgentHubError):
    code = "invalid_request"
    status = 400


class Unauthorized(AgentHubError):
    code = "unauthorized"
    status = 401


class Forbidden(AgentHubError):
    code = "forbidden"
    status = 403


class NotFound(AgentHubError):
    code = "not_found"
    status = 404


class Conflict(AgentHubError):
    code = "conflict"
    status = 409


class PayloadTooLarge(AgentHubError):
    code = "payload_too_large"
    status = 413


class RateLimited(AgentHubError):
    """Over the server's rate limit; try again after `retry_after` seconds."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(AgentHubError):
    """The server is up but cannot serve now (database unreachable, shutting down)."""

    code = "unavailable"
    status = 503


class Internal(AgentHubError):
    code = "internal"
    status = 500


class ConnectionError(AgentHubError, builtins.ConnectionError):
    """The server could not be reached, or the connection broke before an answer came.

    Also a built-in `ConnectionError`, so generic network handling catches it too."""

    code = "connection_error"
    status = 0


class BadResponse(AgentHubError):
    """What answered is not behaving like an AgentHub server: a redirect, an answer too large or
    too deeply nested, not JSON, or not the shape (or count) the contract promises.

    Not retried: a server that answers like this will most likely answer like this again."""

    code = "bad_response"
    status = 0


class ResponseTooLarge(BadResponse):
    """The answer was larger than the client accepts (`max_response_bytes`)."""


BY_CODE: dict[str, type[AgentHubError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        RateLimited,
        Unavailable,
        Internal,
    )
}
BY_STATUS: dict[int, type[AgentHubError]] = {cls.status: cls for cls in BY_CODE.values()}


def error_from_response(response: httpx.Response) -> AgentHubError:
    """The exception for a 4xx/5xx answer: by the envelope's code, else by the status."""
    code, message = _envelope(response)
    cls = BY_CODE.get(code or "") or BY_STATUS.get(response.status_code)
    if cls is None:
        cls = InvalidRequest if response.status_code < 500 else Internal
    if not message:
        message = f"the server answered {response.status_code} {response.reason_phrase}".strip()
    elif len(message) > MESSAGE_MAX_CHARS:  # a sentence, not whatever a server sends
        message = message[:MESSAGE_MAX_CHARS] + "…"
    if cls is RateLimited:
        return RateLimited(message, _retry_after(response))
    return cls(message)


def error_from_ack(error: Any) -> AgentHubError:
    """The exception for a Socket.IO error ack `{"code", "message"}`."""
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    cls = BY_CODE.get(code if isinstance(code, str) else "", Internal)
    text = message if isinstance(message, str) and message else "the server refused the event"
    text = text[:MESSAGE_MAX_CHARS]
    return RateLimited(text) if cls is RateLimited else cls(text)


def _envelope(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return None, None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else None,
    )


def _retry_after(response: httpx.Response) -> float:
    try:
        value = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        return 1.0
    return min(RETRY_AFTER_MAX_S, max(0.0, value)) if value == value else 1.0  # NaN: 1
