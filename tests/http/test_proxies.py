"""Whose address a request comes from: X-Forwarded-For is ignored unless TRUSTED_PROXIES names
the peer that sent it; then the client is the right-most untrusted hop of the chain, and the rate
limits, the access log and the audit log all see that one address."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http.test_http_hardening import (
    assert_rate_limited,
    bearer,
    client_at,
    loopback_address,
    with_window_room,
)
from tests.support import Server, base_env, cli, free_port, start_server, stop_process

LIMIT = 5
PROXY = "127.0.0.1"  # the address the test client connects from when it plays the proxy
BAD_TOKEN = "agt_nope00_" + "x" * 43


def xff(value: str) -> dict[str, str]:
    return {"X-Forwarded-For": value}


def spend(c: httpx.Client, headers: dict[str, str], n: int) -> list[int]:
    """`n` unauthenticated requests with these headers; their statuses."""
    return [c.get("/api/v1/agents", headers=headers).status_code for _ in range(n)]


@pytest.fixture
def limited(backend: str, database_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Start servers with a small unauthenticated budget on demand; stop them all at the end."""
    started: list[Server] = []

    def start(**env: str) -> Server:
        srv = start_server(
            backend,
            database_url,
            tmp_path / f"srv{len(started)}",
            RATE_LIMIT_UNAUTH_PER_MIN=str(LIMIT),
            LOG_LEVEL="info",
            LOG_FORMAT="json",
            **env,
        )
        started.append(srv)
        return srv

    try:
        yield {"start": start}
    finally:
        for srv in started:
            srv.api.close()
            stop_process(srv.proc)


def access_clients(srv: Server, forwarded: str) -> set[str]:
    """The `client` of every access-log line for requests carrying this X-Forwarded-For
    marker address (found by the request id the test gave them)."""
    request_id = f"xff-{forwarded}"
    found = set()
    for line in srv.log_text_with(request_id).splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("request_id") == request_id:
            found.add(record.get("client"))
    return found


def failed_login_ips(srv: Server) -> list[Any]:
    r = srv.admin.get("/api/v1/audit-events", params={"type": "login-failed"})
    assert r.status_code == 200, r.text
    return [event["payload"].get("ip") for event in r.json()["events"]]


def test_forwarded_for_is_ignored_by_default(limited: dict[str, Any]) -> None:
    srv = limited["start"]()
    # From 127.0.0.1 exactly: the peer uvicorn itself would believe by default.
    with client_at(srv, PROXY) as c:
        with_window_room()
        statuses = [
            c.get("/api/v1/agents", headers=xff(f"198.51.100.{i}")).status_code
            for i in range(1, 2 * LIMIT + 1)
        ]
        assert 429 in statuses, f"rotating X-Forwarded-For escaped the limit: {statuses}"
        assert_rate_limited(c.get("/api/v1/agents", headers=xff("198.51.100.250")))
        r = c.post(
            "/api/v1/sessions",
            headers={**bearer(BAD_TOKEN), **xff("203.0.113.99"), "X-Request-ID": "xff-x"},
        )
        assert_rate_limited(r)  # the address's budget is spent, whatever the header says
    assert access_clients(srv, "x") == {PROXY}


def test_trusted_proxy_forwards_the_client_address(limited: dict[str, Any]) -> None:
    srv = limited["start"](TRUSTED_PROXIES=f"{PROXY},10.0.0.0/8")
    with client_at(srv, PROXY) as c:
        with_window_room()
        # Two forwarded clients behind the same proxy: a budget each.
        one = {**xff("203.0.113.7"), "X-Request-ID": "xff-203.0.113.7"}
        assert spend(c, one, LIMIT) == [401] * LIMIT
        assert_rate_limited(c.get("/api/v1/agents", headers=one))
        two = {**xff("203.0.113.8"), "X-Request-ID": "xff-203.0.113.8"}
        assert spend(c, two, LIMIT) == [401] * LIMIT
        assert_rate_limited(c.get("/api/v1/agents", headers=two))

        # A client that forges its own entries: the proxy appends the real address, and the
        # right-most hop that is not a trusted proxy (10.1.2.3 is one) is the client.
        statuses = [
            c.get(
                "/api/v1/agents", headers=xff(f"198.51.100.{i}, 203.0.113.9, 10.1.2.3")
            ).status_code
            for i in range(1, LIMIT + 1)
        ]
        assert statuses == [401] * LIMIT
        assert_rate_limited(c.get("/api/v1/agents", headers=xff("192.0.2.1, 203.0.113.9")))

        # The address reaches the audit log (a failed login) and the access log.
        login = {**bearer(BAD_TOKEN), **xff("203.0.113.10"), "X-Request-ID": "xff-203.0.113.10"}
        assert c.post("/api/v1/sessions", headers=login).status_code == 401
    assert failed_login_ips(srv)[0] == "203.0.113.10"
    for forwarded in ("203.0.113.7", "203.0.113.8", "203.0.113.10"):
        assert access_clients(srv, forwarded) == {forwarded}

    # A peer that is not a trusted proxy is its own client, whatever it forwards.
    peer = loopback_address()
    with client_at(srv, peer) as c:
        statuses = [
            c.get("/api/v1/agents", headers=xff(f"198.51.100.{i}")).status_code
            for i in range(1, 2 * LIMIT + 1)
        ]
        assert 429 in statuses, f"an untrusted peer's X-Forwarded-For was believed: {statuses}"
        r = c.post("/api/v1/sessions", headers={**bearer(BAD_TOKEN), **xff("192.0.2.77")})
        assert_rate_limited(r)


def test_failed_login_records_the_peer_address_without_proxies(limited: dict[str, Any]) -> None:
    srv = limited["start"]()
    peer = loopback_address()
    with client_at(srv, peer) as c:
        r = c.post("/api/v1/sessions", headers={**bearer(BAD_TOKEN), **xff("192.0.2.5")})
        assert r.status_code == 401, r.text
    assert failed_login_ips(srv)[0] == peer


@pytest.mark.parametrize("value", ["*", "localhost", "10.0.0.0/33", "127.0.0.1,nope"])
def test_bad_trusted_proxies_stop_start_up(tmp_path: Path, value: str) -> None:
    env = base_env(f"sqlite:///{tmp_path / 'agenthub.db'}", tmp_path, TRUSTED_PROXIES=value)
    done = cli(env, "serve", "--host", "127.0.0.1", "--port", str(free_port()), timeout=60)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "TRUSTED_PROXIES" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
