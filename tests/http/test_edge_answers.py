"""The server's own refusals at the edge: Engine.IO's answers to a bad session id, transport,
protocol version or origin carry the security headers and a request id on both transports, and
nothing answers a refused origin with Access-Control-Allow-Credentials.

(Requests that are not HTTP at all are refused by uvicorn's parser before the app sees them:
those 400s cannot carry the app's headers, see docs/SECURITY.md.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from tests.http.test_http_hardening import WAIT, security_header_faults
from tests.support import Server

ALLOWED = "http://localhost:3000"  # the default ALLOWED_ORIGINS of the shared test server
FOREIGN = "http://evil.example"
SIO = "/socket.io/?EIO=4"


def header_faults(headers: Any) -> list[str]:
    """The security-header faults of any response with `.headers` (httpx or websockets)."""
    return security_header_faults(httpx.Response(200, headers=dict(headers.raw_items())))


async def refused_upgrade(server: Server, query: str, origin: str | None = None) -> Any:
    url = server.base_url.replace("http://", "ws://") + f"/socket.io/?{query}"
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(
            url,
            origin=Origin(origin) if origin else None,
            additional_headers={"X-Request-ID": "edge-test-1"},
            open_timeout=WAIT,
        ):
            pass
    return refused.value.response


@pytest.mark.parametrize(
    ("query", "origin", "reason"),
    [
        ("EIO=4&transport=websocket&sid=no-such-session", None, "Invalid session"),
        ("EIO=3&transport=websocket", None, "unsupported version"),
        ("EIO=4&transport=websocket", FOREIGN, "not an accepted origin"),
    ],
)
async def test_refused_socketio_upgrades_carry_the_security_headers(
    server: Server, query: str, origin: str | None, reason: str
) -> None:
    response = await refused_upgrade(server, query, origin)
    assert response.status_code == 403, response.status_code
    faults = header_faults(response.headers)
    assert not faults, faults
    assert response.headers["x-request-id"] == "edge-test-1"
    assert response.headers["content-type"].startswith("text/plain")
    assert reason in response.body.decode(), response.body
    assert "access-control-allow-credentials" not in response.headers


async def test_an_accepted_upgrade_carries_them_too(server: Server) -> None:
    url = server.base_url.replace("http://", "ws://") + f"{SIO}&transport=websocket"
    async with websockets.connect(url, open_timeout=WAIT) as ws:
        assert ws.response is not None
        assert not header_faults(ws.response.headers)


@pytest.mark.parametrize(
    ("method", "query"),
    [
        ("GET", f"{SIO}&transport=polling&sid=no-such-session"),
        ("POST", f"{SIO}&transport=polling&sid=no-such-session"),
        ("GET", f"{SIO}&transport=carrier-pigeon"),
        ("GET", "/socket.io/?EIO=3&transport=polling"),
    ],
)
def test_socketio_polling_400s_carry_the_security_headers(
    server: Server, method: str, query: str
) -> None:
    r = server.api.http.request(method, query, content=b"x" if method == "POST" else None)
    assert r.status_code == 400, r.text
    assert not security_header_faults(r), security_header_faults(r)
    assert "access-control-allow-credentials" not in r.headers, r.headers


@pytest.mark.parametrize("origin", [FOREIGN, "null", None])
def test_refused_origins_get_no_allow_credentials(server: Server, origin: str | None) -> None:
    http = server.api.http
    headers = {"Origin": origin} if origin else {}
    answers = {
        "socket.io handshake": http.get(f"{SIO}&transport=polling", headers=headers),
        "socket.io preflight": http.options(
            f"{SIO}&transport=polling",
            headers={**headers, "Access-Control-Request-Method": "POST"},
        ),
        "api": http.get("/api/v1/agents", headers=headers),
        "api with a session": server.admin.get("/api/v1/agents", headers=headers),
        "api preflight": http.options(
            "/api/v1/rooms", headers={**headers, "Access-Control-Request-Method": "POST"}
        ),
        "healthz": http.get("/healthz", headers=headers),
    }
    faults = {
        kind: dict(r.headers)
        for kind, r in answers.items()
        if "access-control-allow-credentials" in r.headers
        or "access-control-allow-origin" in r.headers
    }
    assert not faults, faults


def test_allowed_origins_are_reflected_without_credentials(server: Server) -> None:
    http = server.api.http
    for r in (
        http.get(f"{SIO}&transport=polling", headers={"Origin": ALLOWED}),
        http.get("/api/v1/agents", headers={"Origin": ALLOWED}),
    ):
        assert r.headers.get("access-control-allow-origin") == ALLOWED, r.headers
        assert "access-control-allow-credentials" not in r.headers, r.headers
