"""The console's session: a session JWT in an HttpOnly cookie, and its CSRF defences.

- `agenthub_console` holds the session JWT: HttpOnly (no script reads it), `SameSite=Strict`
  (no other site's page sends it), `Secure` when the request came over TLS, `Path=/console`
  (the bearer API never sees it, so cookie auth cannot weaken the API's CSRF immunity).
- `agenthub_csrf` holds a random value that every console page repeats in its forms and in a
  `<meta name="csrf-token">` for the script. A state-changing console request must carry the
  same value (form field `csrf` or header `X-CSRF-Token`) and, when the browser sends an
  `Origin`, come from the hub's own origin: the double-submit and the origin check each stop a
  cross-site request; SameSite=Strict is a third layer.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from agenthub.http.origins import same_origin

SESSION_COOKIE = "agenthub_console"
CSRF_COOKIE = "agenthub_csrf"
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def is_tls(scope: Mapping[str, Any]) -> bool:
    return scope.get("scheme") in ("https", "wss")


def csrf_token(request: Request) -> tuple[str, bool]:
    """The request's CSRF value, and whether it is new (and so must be set as a cookie)."""
    given = request.cookies.get(CSRF_COOKIE)
    if given and 20 <= len(given) <= 100 and given.replace("-", "").replace("_", "").isalnum():
        return given, False
    return secrets.token_urlsafe(32), True


def set_cookie(
    response: Response, request: Request, name: str, value: str, max_age: int | None
) -> None:
    """`max_age` None: a browser-session cookie. The session cookie is one, so that a JWT that
    expired while the tab was closed is still there to say so ("your session has ended")."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_tls(request.scope),
    )


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=is_tls(request.scope),
    )


def csrf_ok(request: Request, submitted: str | None) -> bool:
    """A state-changing request from the console's own page: same CSRF value as the cookie,
    and no foreign `Origin` (a browser sends one on every cross-origin POST)."""
    origin = request.headers.get("origin")
    if origin is not None and not same_origin(request.scope, origin):
        return False
    if request.headers.get("sec-fetch-site") not in (None, "same-origin", "none"):
        return False
    cookie = request.cookies.get(CSRF_COOKIE)
    return bool(cookie and submitted and hmac.compare_digest(cookie, submitted))
