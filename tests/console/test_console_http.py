"""The console's HTTP edge, without a browser: who reaches which page, the cookie's flags,
CSRF on every state-changing request, bad and oversized input, renewal, the hub's own origin
allowed for HTTP and Socket.IO, and the size of a first load."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import closing
from html.parser import HTMLParser
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from starlette.requests import Request
from starlette.responses import Response

from agenthub.console.session import set_cookie
from tests.support import (
    JWT_SECRET,
    Agent,
    Server,
    assert_error,
    jwt_claims,
    loopback_address,
    start_server,
    stop_process,
)

FIRST_LOAD_BUDGET = 300 * 1024  # bytes, the bound on a first load of a room page


def browser(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=30, follow_redirects=False)


@pytest.fixture
def anonymous(server: Server) -> Iterator[httpx.Client]:
    with browser(server) as client:
        yield client


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found, page.text
    return found[1]


def signed_in(server: Server, agent: Agent) -> tuple[httpx.Client, str]:
    """A client holding the console's cookies for `agent`, and the page's CSRF value."""
    client = browser(server)
    csrf = csrf_of(client.get("/console/sign-in"))
    r = client.post("/console/sign-in", data={"csrf": csrf, "token": agent.token})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/console/rooms"
    return client, csrf


def test_pages_send_the_unauthenticated_to_sign_in(anonymous: httpx.Client) -> None:
    for path in ("/console", "/console/rooms", "/console/rooms/general", "/console/admin"):
        r = anonymous.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/console/sign-in"), path
    page = anonymous.get("/console/sign-in")
    assert page.status_code == 200
    assert '<label for="token">API token</label>' in page.text
    # The hub's CSP, unrelaxed, and no inline script on any page.
    assert page.headers["content-security-policy"] == "default-src 'self'"
    assert "<script>" not in page.text
    assert "onclick" not in page.text


def test_a_forged_or_foreign_cookie_is_no_session(anonymous: httpx.Client, server: Server) -> None:
    anonymous.cookies.set("agenthub_console", "not.a.jwt", path="/console")
    r = anonymous.get("/console/rooms")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/sign-in?reason=expired"
    # The cookie is the console's only: the API never takes it in place of a Bearer JWT.
    alice = server.new_agent()
    client, _ = signed_in(server, alice)
    with closing(client):
        assert client.get("/api/v1/agents/me").status_code == 401


def test_sign_in_sets_a_strict_httponly_cookie_and_refuses_bad_tokens(
    anonymous: httpx.Client, server: Server
) -> None:
    csrf = csrf_of(anonymous.get("/console/sign-in"))
    r = anonymous.post("/console/sign-in", data={"csrf": csrf, "token": "agt_nope00_" + "x" * 43})
    assert r.status_code == 401
    assert "invalid, expired or revoked API token" in r.text
    assert "agenthub_console" not in r.headers.get("set-cookie", "")
    r = anonymous.post("/console/sign-in", data={"csrf": csrf, "token": "a" * 201})
    assert r.status_code == 400
    r = anonymous.post("/console/sign-in", data={"csrf": csrf})
    assert r.status_code == 400

    alice = server.new_agent()
    r = anonymous.post("/console/sign-in", data={"csrf": csrf, "token": alice.token})
    assert r.status_code == 303
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("agenthub_console="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/console" in flags
    assert "secure" not in flags  # plain HTTP here; Secure over TLS (test_cookie_flags_over_tls)
    rooms = anonymous.get("/console/rooms")
    assert rooms.status_code == 200
    assert alice.name in rooms.text


def test_every_state_changing_request_needs_the_csrf_value_and_the_own_origin(
    server: Server,
) -> None:
    alice = server.new_agent()
    client, csrf = signed_in(server, alice)
    with closing(client):
        # sign-in without the value, with a wrong one, from a foreign origin
        assert client.post("/console/sign-in", data={"token": alice.token}).status_code == 403
        r = client.post("/console/sign-in", data={"csrf": "x" * 43, "token": alice.token})
        assert r.status_code == 403
        foreign = {"Origin": "http://evil.example"}
        r = client.post(
            "/console/sign-in", data={"csrf": csrf, "token": alice.token}, headers=foreign
        )
        assert r.status_code == 403
        cross_site = {"Sec-Fetch-Site": "cross-site"}
        r = client.post("/console/session", headers={"X-CSRF-Token": csrf, **cross_site})
        assert_error(r, 403, "forbidden")
        # renewal
        assert_error(client.post("/console/session"), 403, "forbidden")
        r = client.post("/console/session", headers={"X-CSRF-Token": csrf, **foreign})
        assert_error(r, 403, "forbidden")
        own = {"X-CSRF-Token": csrf, "Origin": server.base_url}
        assert client.post("/console/session", headers=own).status_code == 200
        # sign-out
        assert_error(client.post("/console/sign-out", data={}), 403, "forbidden")
        r = client.post("/console/sign-out", data={"csrf": csrf}, headers=foreign)
        assert_error(r, 403, "forbidden")
        assert client.get("/console/rooms").status_code == 200  # still signed in
        r = client.post("/console/sign-out", data={"csrf": csrf})
        assert r.status_code == 303
        assert r.headers["location"] == "/console/sign-in?reason=signed-out"
        assert client.get("/console/rooms").status_code == 303


def test_renewal_gives_a_fresh_jwt_for_the_api_and_ends_with_the_token(server: Server) -> None:
    alice = server.new_agent()
    client, csrf = signed_in(server, alice)
    with closing(client):
        r = client.post("/console/session", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        body = r.json()
        assert body["agent"]["name"] == alice.name
        claims = jwt_claims(body["token"])
        assert claims["sub"] == alice.id
        assert claims["tid"] == jwt_claims(alice.jwt)["tid"]  # the same API token's session
        me = server.api.request("GET", "/api/v1/agents/me", jwt=body["token"])
        assert me.status_code == 200
        assert client.cookies.get("agenthub_console") == body["token"]

        other, _ = signed_in(server, alice)  # a second tab, signed in the same way
        assert server.admin.delete(f"/api/v1/tokens/{alice.token[:10]}").status_code == 204
        r = client.post("/console/session", headers={"X-CSRF-Token": csrf})
        assert_error(r, 401, "unauthorized")
        assert r.headers["x-console-reason"] == "revoked"
        with closing(other):
            r = other.get("/console/rooms")
            assert r.status_code == 303
            assert r.headers["location"] == "/console/sign-in?reason=revoked"


def test_an_unauthenticated_renewal_is_refused(anonymous: httpx.Client) -> None:
    csrf = csrf_of(anonymous.get("/console/sign-in"))
    r = anonymous.post("/console/session", headers={"X-CSRF-Token": csrf})
    assert_error(r, 401, "unauthorized")


def test_rooms_are_the_agents_own_and_other_rooms_are_refused(server: Server) -> None:
    alice, bob = server.new_agent(), server.new_agent()
    mine = server.new_room(alice)
    theirs = server.new_room(bob)
    client, _ = signed_in(server, alice)
    with closing(client):
        rooms = client.get("/console/rooms").text
        assert mine["slug"] in rooms
        assert theirs["slug"] not in rooms
        r = client.get(f"/console/rooms/{theirs['slug']}")
        assert r.status_code == 403
        assert theirs["name"] not in r.text
        assert client.get("/console/rooms/no-such-room-here").status_code == 404
        assert client.get(f"/console/rooms/{mine['slug']}").status_code == 200
        assert client.get("/console/admin").status_code == 403
    admin = server.new_agent(role="admin")
    client, _ = signed_in(server, admin)
    with closing(client):  # an admin sees every room, and reads one it is not a member of
        rooms = client.get("/console/rooms").text
        assert mine["slug"] in rooms
        assert theirs["slug"] in rooms
        page = client.get(f"/console/rooms/{theirs['slug']}")
        assert page.status_code == 200
        assert "not a member of this room" in page.text
        assert client.get("/console/admin/audit").status_code == 200


def direct_row(page: str, slug: str) -> str | None:
    """The rooms page's row of the room `slug`, or None."""
    for row in re.findall(r"<tr>.*?</tr>", page, re.S):
        if f'href="/console/rooms/{slug}"' in row:
            return str(row)
    return None


def test_a_direct_room_is_labelled_for_its_two_members_only(server: Server) -> None:
    admin, alice, carol = server.new_agent(role="admin"), server.new_agent(), server.new_agent()
    group = server.new_room(alice)
    r = admin.post(f"/api/v1/direct/{alice.name}/messages", {"body": "just between us"})
    assert r.status_code == 201, r.text
    slug = next(
        room["slug"]
        for room in alice.get("/api/v1/rooms").json()["rooms"]
        if room["id"] == r.json()["roomId"]
    )
    # Both members see it labelled, the admin too (whose "every room" leaves direct ones out).
    for agent in (alice, admin):
        client, _ = signed_in(server, agent)
        with closing(client):
            row = direct_row(client.get("/console/rooms").text, slug)
            assert row is not None, agent.name
            assert "direct messages" in row
            assert "just between us" in row
            page = client.get(f"/console/rooms/{slug}")
            assert page.status_code == 200
            assert re.search(
                r"<h1>[^<]*<span class=\"tag direct\">direct messages</span></h1>", page.text
            )
            group_row = direct_row(client.get("/console/rooms").text, group["slug"])
            assert group_row is not None
            assert "direct messages" not in group_row
    # Nobody else: neither another agent nor another admin lists or reads it.
    for agent in (carol, server.new_agent(role="admin")):
        client, _ = signed_in(server, agent)
        with closing(client):
            assert direct_row(client.get("/console/rooms").text, slug) is None
            page = client.get(f"/console/rooms/{slug}")
            assert page.status_code == 403
            assert "just between us" not in page.text


def test_room_names_and_previews_are_escaped(server: Server) -> None:
    alice = server.new_agent()
    slug = server.new_room(alice)["slug"]
    r = alice.post(f"/api/v1/rooms/{slug}/messages", {"body": '<script>alert("x")</script>'})
    assert r.status_code == 201
    hostile = "<img src=x onerror=alert(1)>"
    assert alice.post("/api/v1/rooms", {"slug": slug + "-x", "name": hostile}).status_code == 201
    client, _ = signed_in(server, alice)
    with closing(client):
        page = client.get("/console/rooms").text
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
        assert "<img" not in page
        assert client.get(f"/console/rooms/{slug}-x").text.count("<img") == 0


def test_an_oversized_sign_in_is_refused_before_it_is_read(anonymous: httpx.Client) -> None:
    r = anonymous.post(
        "/console/sign-in",
        content=b"token=" + b"a" * (2 * 1024 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(r, 413, "payload_too_large")


def test_the_hubs_own_origin_is_allowed_for_http_and_the_socket(
    anonymous: httpx.Client, server: Server
) -> None:
    own = server.base_url  # not in ALLOWED_ORIGINS (the default, http://localhost:3000)
    r = anonymous.get("/healthz", headers={"Origin": own})
    assert r.headers.get("access-control-allow-origin") == own
    r = anonymous.get("/socket.io/?EIO=4&transport=polling", headers={"Origin": own})
    assert r.status_code == 200, r.text
    assert r.headers.get("access-control-allow-origin") == own
    host = own.split("://", 1)[1]
    other = f"http://{host.replace('127.0.0.1', 'localhost')}"  # the same port, another name
    r = anonymous.get("/socket.io/?EIO=4&transport=polling", headers={"Origin": other})
    assert r.status_code == 400
    r = anonymous.get(
        "/socket.io/?EIO=4&transport=polling", headers={"Origin": own, "Host": "evil.example"}
    )
    assert r.status_code == 400  # "same origin" is the Host the request names, nothing else


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.urls.append(str(a["src"]))
        if tag == "link" and a.get("href"):
            self.urls.append(str(a["href"]))


def test_a_first_load_of_a_room_is_under_300_kb(server: Server) -> None:
    """A size, not a timing: the bytes of the room page and everything it loads before its
    first data (docs/BENCHMARKS.md has the figure)."""
    alice = server.new_agent()
    slug = server.new_room(alice)["slug"]
    client, _ = signed_in(server, alice)
    with closing(client):
        page = client.get(f"/console/rooms/{slug}")
        assets = _Assets()
        assets.feed(page.text)
        assert any(u.endswith("socket.io.min.js") for u in assets.urls), assets.urls
        total = len(page.content)
        for url in assets.urls:
            r = client.get(url)
            assert r.status_code == 200, url
            total += len(r.content)
    assert total < FIRST_LOAD_BUDGET, total


def test_an_expired_session_says_so(server: Server) -> None:
    alice = server.new_agent()
    claims = jwt_claims(alice.jwt)
    now = int(time.time())
    claims.update(iat=now - 1000, exp=now - 100)
    expired = pyjwt.encode(claims, JWT_SECRET, algorithm="HS256")
    with browser(server) as client:
        client.cookies.set("agenthub_console", expired, path="/console")
        r = client.get(f"/console/rooms/{server.new_room(alice)['slug']}")
        assert r.status_code == 303
        assert r.headers["location"] == "/console/sign-in?reason=expired"
        page = client.get(r.headers["location"])
        assert "Your console session has ended" in page.text


@pytest.mark.parametrize(("scheme", "secure"), [("http", False), ("https", True)])
def test_the_cookies_are_secure_over_tls(scheme: str, secure: bool) -> None:
    scope = {"type": "http", "scheme": scheme, "headers": [(b"host", b"hub.lan")]}
    response = Response()
    set_cookie(response, Request(scope), "agenthub_console", "v", None)
    flags = response.headers["set-cookie"].lower()
    assert ("secure" in flags) is secure
    assert "max-age" not in flags  # a browser-session cookie


def test_sign_in_attempts_count_in_the_per_address_limit(tmp_path: Path) -> None:
    """Signing in trades an API token like POST /sessions, so guessing tokens through the
    console is limited the same way."""
    srv = start_server(
        "sqlite",
        f"sqlite:///{tmp_path / 'agenthub.db'}",
        tmp_path,
        client_address=loopback_address(),  # the harness's own login is not counted here
        RATE_LIMIT_UNAUTH_PER_MIN="3",
    )
    try:
        with browser(srv) as client:
            csrf = csrf_of(client.get("/console/sign-in"))
            for _ in range(3):
                data = {"csrf": csrf, "token": "agt_nope00_" + "x" * 43}
                assert client.post("/console/sign-in", data=data).status_code == 401
            data = {"csrf": csrf, "token": srv.admin.token}
            assert_error(client.post("/console/sign-in", data=data), 429, "rate_limited")
            assert client.get("/console/sign-in").status_code == 200  # pages are not counted
    finally:
        srv.api.close()
        stop_process(srv.proc)
