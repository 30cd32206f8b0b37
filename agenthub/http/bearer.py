"""Reading `Authorization: Bearer <token>`, the one rule every part of the HTTP edge uses.

The scheme is matched case-insensitively (RFC 9110 §11.1), then one or more spaces, then a
token with no whitespace in it (a JWT and an API token never hold any). Anything else is "no
bearer token": the route answers 401, and the rate limiter counts the caller by address.
"""

from __future__ import annotations

import re

_BEARER = re.compile(r"bearer +(\S+)\s*", re.IGNORECASE)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization` header value, or None when it is not a Bearer one."""
    found = _BEARER.fullmatch(authorization) if authorization else None
    return found[1] if found else None
