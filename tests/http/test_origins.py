"""`agenthub.http.origins`, directly: parsing ALLOWED_ORIGINS and matching an Origin header."""

from __future__ import annotations

import pytest

from agenthub.http.origins import origin_allowed, parse_origins


@pytest.mark.parametrize(
    ("entries", "origin", "allowed"),
    [
        (["http://localhost:3000"], "http://localhost:3000", True),
        (["http://localhost:3000"], "HTTP://LocalHost:3000", True),  # scheme and host: any case
        (["http://localhost:3000"], "http://localhost:3000/", True),  # a bare trailing slash
        (["http://localhost:3000"], "http://localhost:3001", False),
        (["http://localhost:3000"], "https://localhost:3000", False),
        (["http://localhost:3000"], "http://localhost", False),  # the port is part of it
        (["http://localhost"], "http://localhost:80", False),  # as written, not as defaulted
        (["http://localhost:3000"], "http://localhost:3000.evil.example", False),
        (["http://localhost:3000"], "http://evil.example#http://localhost:3000", False),
        (["http://localhost:3000"], "http://localhost:3000/path", False),
        (["http://localhost:3000"], "http://user@localhost:3000", False),
        (["http://localhost:3000"], "null", False),
        (["http://localhost:3000"], "", False),
        (["http://localhost:3000"], None, False),
        (["http://192.168.1.0/24"], "http://192.168.1.77", True),
        (["http://192.168.1.0/24"], "http://192.168.1.77:8080", True),  # any port
        (["http://192.168.1.0/24"], "https://192.168.1.77", False),  # that scheme only
        (["http://192.168.1.0/24"], "http://192.168.2.1", False),
        (["http://192.168.1.0/24"], "http://192.168.1.77.evil.example", False),
        (["http://192.168.1.0/24"], "http://lan-host", False),  # names are not in networks
        (["http://192.168.1.5/24"], "http://192.168.1.200", True),  # host bits are ignored
        (["http://10.0.0.0/8", "https://app.example"], "https://app.example", True),
        ([], "http://localhost:3000", False),
    ],
)
def test_origin_allowed(entries: list[str], origin: str | None, allowed: bool) -> None:
    assert origin_allowed(parse_origins(entries), origin) is allowed


@pytest.mark.parametrize(
    "entry",
    [
        "*",
        "http://*",  # a wildcard in the host is refused too, not taken as a literal host name
        "http://*.example.com",
        "localhost:3000",
        "ftp://files.example",
        "http://localhost:3000/app",
        "http://localhost:3000?x=1",
        "http://localhost:99999",
        "http://192.168.1.0/33",
        "http://999.168.1.0/24",
        "",
    ],
)
def test_entries_that_are_not_origins_or_cidrs_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match=r"not a valid IPv4 CIDR|neither an origin"):
        parse_origins([entry])


def test_a_wildcard_is_refused_with_a_sentence_that_says_so() -> None:
    with pytest.raises(ValueError, match="wildcards are not accepted"):
        parse_origins(["http://localhost:3000", "*"])


def test_parsed_rules_keep_the_normalized_origin_and_the_network() -> None:
    exact, cidr = parse_origins(["HTTPS://App.Example:8443", "HTTP://10.1.0.0/16"])
    assert (exact.scheme, exact.origin, exact.network) == (
        "https",
        "https://app.example:8443",
        None,
    )
    assert (cidr.scheme, cidr.origin, str(cidr.network)) == ("http", None, "10.1.0.0/16")
