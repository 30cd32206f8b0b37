"""One exception tree for the domain, each class carrying the contract's code and HTTP status.

Services raise these; the HTTP layer and the Socket.IO layer both turn them into the contract's
error shape (`{"error": {"code", "message"}}` and `{"ok": false, "error": {...}}`).
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    code = "internal"
    status = 500

    def __init__(self, message: str = "internal server error") -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class InvalidRequest(AppError):
    code = "invalid_request"
    status = 400


class Unauthorized(AppError):
    code = "unauthorized"
    status = 401

    def __init__(self, message: str = "missing or invalid credentials") -> None:
        super().__init__(message)


class Forbidden(AppError):
    code = "forbidden"
    status = 403


class NotFound(AppError):
    code = "not_found"
    status = 404


class Conflict(AppError):
    code = "conflict"
    status = 409


class PayloadTooLarge(AppError):
    code = "payload_too_large"
    status = 413


class RateLimited(AppError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(AppError):
    code = "unavailable"
    status = 503

    def __init__(self, message: str = "database unavailable") -> None:
        super().__init__(message)


def clip(value: object, limit: int = 80) -> str:
    """A user-supplied value made safe to quote back in an error message."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"
