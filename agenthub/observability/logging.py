"""Logging: one JSON object per line in production, readable text elsewhere.

Formatters never print tracebacks (a stack trace can carry SQL, parameters or secrets);
unexpected errors are logged by type with the request id, which is what an operator needs to
find the request. As a last net, anything shaped like an API token or a JWT is redacted.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from agenthub.observability import context

_SECRETS = re.compile(
    r"agt_[A-Za-z0-9_-]{6}_[A-Za-z0-9_-]{20,}"  # API tokens
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"  # JWTs
    r"|(?<=[?&]token=)[^&\s\"]+"  # a token in a query string, whatever its shape
)
# Fields an `extra=` may add to a line (anything else is ignored).
FIELDS = ("method", "route", "status", "duration_ms", "event", "error_type", "client")


def redact(text: str) -> str:
    return _SECRETS.sub("[redacted]", text)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = context.request_id.get()
        record.agent_id = context.agent_id.get()
        return True


class _QuietUvicorn(logging.Filter):
    """uvicorn logs each WebSocket upgrade with its full URL, query string included (where a
    handshake token may travel); our own access line replaces it. At debug level the websockets
    library also traces every frame and handshake line through uvicorn's logger, shortened to
    head and tail, which the redaction cannot recognise (a token's head and tail are most of
    its secret): those lines go too."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if record.levelno <= logging.DEBUG and msg[:2] in ("< ", "> ", "= "):
            return False
        return not ("WebSocket" in msg or msg.startswith("connection "))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key in ("request_id", "agent_id", *FIELDS):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        parts = [f"{stamp} {record.levelname:<7} {redact(record.getMessage())}"]
        for key in ("request_id", "agent_id", *FIELDS):
            value = getattr(record, key, None)
            if value is not None:
                parts.append(f"{key}={value}")
        return " ".join(parts)


def setup(level: str, json_lines: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    logging.getLogger("uvicorn.error").addFilter(_QuietUvicorn())
    # engine.io and python-socketio give a logger whose level is unset a plain handler of their
    # own (raw lines, not JSON); with a level set they log through ours, errors only (at info
    # they would print every event's payload).
    for name in ("engineio.server", "socketio.server"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.setLevel(logging.ERROR)
    # aiosqlite's debug lines print every statement with its parameters (hashes, bodies).
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, root.level))
    # Our access line replaces uvicorn's, which prints raw paths with their query strings.
    logging.getLogger("uvicorn.access").disabled = True
