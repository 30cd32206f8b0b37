"""ALLOWED_ORIGINS: exact origins (`scheme://host[:port]`) or IPv4 CIDR entries like the seed's
`http://192.168.1.0/24` (any host of that network, any port, that scheme). Anything else, a
wildcard included, is refused at start-up: an allow-list never silently allows everyone."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

_CIDR = re.compile(r"^(https?)://(\d{1,3}(?:\.\d{1,3}){3})/(\d{1,2})$", re.IGNORECASE)


@dataclass(frozen=True)
class OriginRule:
    scheme: str
    origin: str | None = None
    network: ipaddress.IPv4Network | None = None

    def matches(self, scheme: str, host: str, origin: str) -> bool:
        if self.origin is not None:
            return self.origin == origin
        if scheme != self.scheme or self.network is None:
            return False
        try:
            return ipaddress.IPv4Address(host) in self.network
        except ValueError:
            return False


# A DNS name, an IPv4 address or (without its brackets) an IPv6 address; nothing else.
_HOST = re.compile(r"^[a-z0-9.:-]+$")


def _normalize(origin: str) -> str | None:
    """`scheme://host[:port]` in lower case, or None when `origin` is not exactly that."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    host = parts.hostname.lower()
    if not _HOST.match(host):  # a wildcard or other non-host character is not a literal host
        return None
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


def parse_origins(entries: list[str]) -> list[OriginRule]:
    rules = []
    for entry in entries:
        cidr = _CIDR.match(entry)
        if cidr:
            try:
                network = ipaddress.IPv4Network(f"{cidr[2]}/{cidr[3]}", strict=False)
            except ValueError:
                raise ValueError(f"'{entry}' is not a valid IPv4 CIDR entry") from None
            rules.append(OriginRule(scheme=cidr[1].lower(), network=network))
            continue
        origin = _normalize(entry)
        if origin is None:
            raise ValueError(
                f"'{entry}' is neither an origin (scheme://host[:port]) nor an IPv4 CIDR entry "
                "(http://a.b.c.d/bits); wildcards are not accepted"
            )
        rules.append(OriginRule(scheme=origin.split(":", 1)[0], origin=origin))
    return rules


def origin_allowed(rules: list[OriginRule], origin: str | None) -> bool:
    if not origin:
        return False
    normal = _normalize(origin)
    if normal is None or normal != origin.lower().rstrip("/"):
        return False
    scheme, _, rest = normal.partition("://")
    host = rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest
    return any(rule.matches(scheme, host, normal) for rule in rules)


_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def own_origin(scope: Mapping[str, Any]) -> str | None:
    """The origin a request was addressed to: its scheme (as a trusted proxy reported it, see
    http/proxies.py) and its `Host` header, normalised as `_canonical` does. None without a
    usable `Host`."""
    scheme = _SCHEMES.get(str(scope.get("scheme", "")))
    host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), None)
    if scheme is None or not host:
        return None
    return _canonical(f"{scheme}://{host}")


def _canonical(origin: str) -> str | None:
    """`_normalize` without a default port (a browser writes none in `Origin`)."""
    normal = _normalize(origin)
    if normal is None:
        return None
    default = f":{_DEFAULT_PORTS[normal.split(':', 1)[0]]}"
    return normal.removesuffix(default)


def same_origin(scope: Mapping[str, Any], origin: str | None) -> bool:
    """`origin` is the one the request was addressed to: the hub's own pages (the console)
    calling the hub, at whatever address it is reached by, whatever ALLOWED_ORIGINS says."""
    if not origin:
        return False
    mine = own_origin(scope)
    return mine is not None and _canonical(origin) == mine
