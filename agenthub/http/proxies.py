"""Whose address a request comes from: the TCP peer, unless TRUSTED_PROXIES names that peer.

uvicorn believes `X-Forwarded-For` from 127.0.0.1 out of the box, so anyone who reaches the
server through a local hop (or runs on the same host) could pick a new address per request and
escape the per-IP rate limit. AgentHub turns uvicorn's own handling off (server.py) and applies
uvicorn's `ProxyHeadersMiddleware` only when TRUSTED_PROXIES lists the proxies to believe, as the
outermost layer of the app: rate limits, the access log, the audit log and Socket.IO all read
the one `scope["client"]` it leaves.

With proxies trusted, the client is the right-most address of the `X-Forwarded-For` chain that
is not itself a trusted proxy (uvicorn's documented rule): a client's own forged entries sit to
the left of the address its proxy appends, so they are never chosen.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, cast

from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

UNKNOWN = "unknown"


def parse_trusted_proxies(entries: list[str]) -> list[str]:
    """Addresses and CIDR networks, normalised; raises with a sentence naming the bad entry.

    uvicorn would take an unparsable entry as a literal host name that never matches, so a
    typo would silently trust no one (or a wildcard everyone): both are refused here."""
    parsed = []
    for entry in entries:
        if entry == "*":
            raise ValueError(
                "'*' would believe X-Forwarded-For from anyone; list the proxies' addresses"
            )
        try:
            if "/" in entry:
                parsed.append(str(ipaddress.ip_network(entry, strict=False)))
            else:
                parsed.append(str(ipaddress.ip_address(entry)))
        except ValueError:
            raise ValueError(f"'{entry}' is neither an IP address nor a CIDR network") from None
    return parsed


def trust_proxies(app: ASGIApp, trusted: list[str]) -> ASGIApp:
    """`app` behind uvicorn's proxy-header handling for `trusted` peers, or as is when none."""
    if not trusted:
        return app
    # uvicorn types its middleware with its own (narrower) ASGI types: the same protocol.
    return cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=trusted))


def client_host(scope: Mapping[str, Any]) -> str:
    """The client's address as the whole app sees it.

    Socket.IO handlers get an environ whose REMOTE_ADDR engine.io always sets to 127.0.0.1;
    they must call this with `environ["asgi.scope"]`."""
    client = scope.get("client")
    return str(client[0]) if client else UNKNOWN
