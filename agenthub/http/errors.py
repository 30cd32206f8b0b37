"""Every error from the HTTP side leaves in the contract's envelope.

Domain errors carry their code; FastAPI's validation errors become 400 `invalid_request`
naming the field; anything unexpected is a 500 `internal` whose details stay in the log
(the exception type only: no SQL, parameters or stack trace there either).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import Send

from agenthub.db.engine import is_unavailable
from agenthub.errors import AppError, RateLimited, Unavailable, clip

log = logging.getLogger("agenthub.http")


def error_body(code: str, message: str) -> bytes:
    """The contract's error envelope, `{"error": {"code", "message"}}`, as JSON bytes: every
    HTTP refusal is built here, by the routes' handlers and by the middleware alike."""
    envelope = {"error": {"code": code, "message": message}}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def envelope(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(error_body(code, message), status, headers, media_type="application/json")


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    websocket: bool = False,
) -> None:
    """Answer with the envelope from ASGI middleware, before or instead of the app; with
    `websocket`, as the HTTP answer that denies a WebSocket handshake."""
    body = error_body(code, message)
    kind = "websocket.http.response" if websocket else "http.response"
    await send(
        {
            "type": f"{kind}.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": f"{kind}.body", "body": body})


def _where(loc: tuple[Any, ...]) -> str:
    source = loc[0] if loc else "body"
    path = ".".join(str(p) for p in loc[1:])
    if source == "body":
        return f"field '{path}'" if path else "request body"
    kind = {"query": "query parameter", "path": "path parameter", "header": "header"}.get(
        str(source), str(source)
    )
    return f"{kind} '{path}'"


def describe_validation(errors: list[Any]) -> str:
    err = errors[0] if errors else {}
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    if kind == "json_invalid":
        return "request body is not valid JSON"
    where = _where(loc)
    if kind == "missing":
        return f"{where} is required"
    if where == "request body":
        return "request body must be a JSON object (Content-Type: application/json)"
    msg = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
    return f"{where}: {clip(msg, 200)}"


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    return envelope(exc.status, exc.code, exc.message, headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return envelope(400, "invalid_request", describe_validation(list(exc.errors())))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return envelope(404, "not_found", f"no route {request.method} {clip(request.url.path)}")
    if exc.status_code == 405:  # RFC 9110: a 405 lists the methods the resource supports
        allow = {"Allow": _allowed_methods(request, exc)}
        return envelope(
            405, "invalid_request", f"method {request.method} is not allowed here", allow
        )
    if exc.status_code == 413:
        return envelope(413, "payload_too_large", "request body is too large")
    code = "internal" if exc.status_code >= 500 else "invalid_request"
    headers = dict(exc.headers) if exc.headers else None
    return envelope(exc.status_code, code, "request could not be processed", headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request, exc: StarletteHTTPException) -> str:
    """The methods some route answers at this path: Starlette's own header names one route's only
    (GET and POST /api/v1/rooms are two routes). Mounts (static files) keep their own header."""
    routes = [r for r in request.app.router.routes if not isinstance(r, Mount)]
    allowed = [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]
    return ", ".join(allowed) or (exc.headers or {}).get("Allow", "")


async def _unexpected(request: Request, exc: Exception) -> Response:
    if is_unavailable(exc):
        err = Unavailable()
        return envelope(err.status, err.code, err.message)
    # Logged once, by type, by the request middleware (Starlette re-raises it there).
    return envelope(500, "internal", "internal server error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
