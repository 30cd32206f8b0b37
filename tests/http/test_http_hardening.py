"""HTTP hardening, from outside: rate limits (in memory and shared through Redis), security
headers on every kind of answer, request ids, CORS for HTTP and Socket.IO, start-up refusal of
bad ALLOWED_ORIGINS, the offline API docs page, and size limits on HTTP and Socket.IO."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import socketio
import websockets
from websockets.exceptions import InvalidHandshake
from websockets.typing import Origin

from tests.databases import query
from tests.support import Agent, Server, base_env, cli, free_port, start_server, stop_process

NS = "/agents"
WAIT = 10  # seconds: the bound on any single expected event
REDIS_URL = os.environ.get("AGENTHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
REQUIRE_REDIS = os.environ.get("AGENTHUB_REQUIRE_REDIS") == "1"
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'",
    "x-frame-options": "DENY",
    "referrer-policy": "strict-origin",
    "x-content-type-options": "nosniff",
}
ALLOWED = "http://localhost:3000,http://192.168.1.0/24"
HSTS = "31536000"
ONE_MIB = 1024 * 1024


def security_header_faults(r: httpx.Response) -> list[str]:
    faults = [
        f"{name}: {r.headers.get(name)!r}, expected {value!r}"
        for name, value in SECURITY_HEADERS.items()
        if r.headers.get(name) != value
    ]
    if not r.headers.get("x-request-id"):
        faults.append("no x-request-id")
    return faults


def assert_security_headers(r: httpx.Response) -> None:
    faults = security_header_faults(r)
    assert not faults, f"{r.request.method} {r.request.url.path} -> {r.status_code}: {faults}"


def assert_rate_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, f"{r.status_code} {r.text}"
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == "rate_limited", body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    retry = r.headers.get("retry-after", "")
    assert retry.isdigit(), f"Retry-After {retry!r} is not whole seconds"
    assert 1 <= int(retry) <= 60, retry
    assert_security_headers(r)


def loopback_address() -> str:
    """An address of its own on the loopback network (127.x.y.z), so that a per-IP rate-limit
    counter starts at zero whatever this process did from 127.0.0.1 before (logins included)."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


def client_at(server: Server, address: str | None = None) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address or loopback_address())
    return httpx.Client(base_url=server.base_url, transport=transport, timeout=30)


def with_window_room(seconds: float = 15) -> None:
    """Wait, if needed, until the current wall-clock minute has `seconds` left.

    The limiter counts in per-minute windows (and weighs the previous one by how much of it
    still overlaps), so a burst that straddles a minute boundary would be counted fuzzily."""
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 0.2)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- servers of their own ----


@pytest.fixture(scope="module")
def configured(
    backend: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server with the seed's ALLOWED_ORIGINS (a LAN CIDR included) and HSTS turned on."""
    srv = start_server(
        backend,
        database_url,
        Path(tmp_path_factory.mktemp(f"configured-{backend}")),
        ALLOWED_ORIGINS=ALLOWED,
        HSTS_MAX_AGE=HSTS,
    )
    try:
        yield srv
    finally:
        srv.api.close()
        stop_process(srv.proc)


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    """A client of REDIS_URL's database; skipped when Redis is unreachable (failed when required).

    The instance is shared (other runs, other suites): never flushed. A test's counters are its
    own by their keys (fresh agent ids, loopback addresses of its own), and it deletes those."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        if REQUIRE_REDIS:
            pytest.fail(
                f"AGENTHUB_REQUIRE_REDIS=1 but Redis is not reachable at {REDIS_URL}: {exc}"
            )
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    try:
        yield client
    finally:
        client.close()


def keys_naming(client: redis.Redis, *names: str) -> list[bytes]:
    """The keys that hold one of `names` (an agent id, a client address)."""
    return [key for name in names for key in client.scan_iter(match=f"*{name}*", count=1000)]


# ---- security headers and request ids ----


def test_security_headers_on_every_kind_of_answer(server: Server, alice: Agent) -> None:
    api = server.api.http
    slug = f"hdr-{random.randint(0, 10**9)}"
    issued = server.admin.post(f"/api/v1/agents/{alice.name}/tokens", {})
    assert issued.status_code == 201
    answers: dict[str, tuple[httpx.Response, int]] = {
        "200 json": (alice.get("/api/v1/agents/me"), 200),
        "201": (alice.post("/api/v1/rooms", {"slug": slug, "name": "Headers"}), 201),
        "204": (alice.delete(f"/api/v1/tokens/{issued.json()['prefix']}"), 204),
        "400": (alice.post("/api/v1/rooms", {"slug": "NOT A SLUG"}), 400),
        "401": (api.get("/api/v1/agents/me"), 401),
        "404 unknown route": (api.get("/no/such/route"), 404),
        "405": (alice.client.request("PUT", "/api/v1/rooms", jwt=alice.jwt), 405),
        "413": (
            alice.client.request(
                "POST",
                "/api/v1/rooms",
                jwt=alice.jwt,
                content=b"x" * (ONE_MIB + 1),
                headers={"Content-Type": "application/json"},
            ),
            413,
        ),
        "healthz": (api.get("/healthz"), 200),
        "readyz": (api.get("/readyz"), 200),
        "metrics": (api.get("/metrics"), 200),
        "docs": (api.get("/docs"), 200),
        "docs asset": (api.get("/docs/assets/swagger-ui.css"), 200),
        "openapi": (api.get("/openapi.json"), 200),
        "socket.io handshake": (api.get("/socket.io/?EIO=4&transport=polling"), 200),
        "socket.io bad request": (api.get("/socket.io/?EIO=4&transport=nope"), 400),
    }
    faults = {}
    for kind, (r, status) in answers.items():
        if r.status_code != status:
            faults[kind] = f"status {r.status_code}, expected {status}: {r.text[:200]}"
        elif problems := security_header_faults(r):
            faults[kind] = ", ".join(problems)
        elif "strict-transport-security" in r.headers:
            faults[kind] = "Strict-Transport-Security without HSTS_MAX_AGE"
    assert not faults, json.dumps(faults, indent=1)
    assert answers["413"][0].json()["error"]["code"] == "payload_too_large"


def test_body_over_one_mib_is_413_with_or_without_content_length(
    server: Server, alice: Agent
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):  # 1.25 MiB in 64 KiB chunks, no Content-Length
            yield b" " * 65536

    r = alice.client.request(
        "POST",
        "/api/v1/rooms",
        jwt=alice.jwt,
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    assert_security_headers(r)
    # Just under the limit is read and judged on its content.
    body = json.dumps({"slug": "x" * (ONE_MIB - 100), "name": "n"}).encode()[:ONE_MIB]
    r = alice.client.request(
        "POST",
        "/api/v1/rooms",
        jwt=alice.jwt,
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text


def test_request_id_is_echoed_when_sane_and_replaced_when_not(server: Server) -> None:
    api = server.api.http
    sane = "req-1234_abc.DEF:5"
    r = api.get("/healthz", headers={"X-Request-ID": sane})
    assert r.headers["x-request-id"] == sane
    r = api.get("/api/v1/agents", headers={"X-Request-ID": sane})  # errors too
    assert r.status_code == 401
    assert r.headers["x-request-id"] == sane
    for insane in ("a" * 200, "has spaces in it", "semi;colon", "new\tline", ""):
        r = api.get("/healthz", headers={"X-Request-ID": insane})
        got = r.headers.get("x-request-id", "")
        assert got, insane
        assert got != insane
        assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", got), got
    # Without one, every answer gets a fresh id.
    ids = {api.get("/healthz").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_hsts_is_absent_by_default_and_present_when_configured(
    server: Server, configured: Server
) -> None:
    assert "strict-transport-security" not in server.api.http.get("/healthz").headers
    for path in ("/healthz", "/api/v1/agents", "/no/such/route"):
        r = configured.api.http.get(path)
        assert r.headers.get("strict-transport-security", "").startswith(f"max-age={HSTS}"), path
        assert_security_headers(r)


# ---- CORS ----


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://192.168.1.77:8080"])
def test_allowed_origins_are_reflected_errors_included(configured: Server, origin: str) -> None:
    api = configured.api.http
    admin = configured.admin
    for r in (
        api.get("/healthz", headers={"Origin": origin}),
        admin.get("/api/v1/agents", headers={"Origin": origin}),
        api.get("/api/v1/agents", headers={"Origin": origin}),  # 401
        api.get("/no/such/route", headers={"Origin": origin}),  # 404
    ):
        assert r.headers.get("access-control-allow-origin") == origin, (r.status_code, r.headers)
        assert_security_headers(r)
    pre = api.options(
        "/api/v1/rooms",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert pre.status_code == 204, pre.text
    assert pre.headers.get("access-control-allow-origin") == origin
    methods = {m.strip() for m in pre.headers.get("access-control-allow-methods", "").split(",")}
    assert {"GET", "POST", "DELETE"} <= methods, methods
    headers = {h.strip().lower() for h in pre.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= headers, headers
    assert_security_headers(pre)


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://192.168.2.5",
        "https://192.168.1.77",  # the CIDR entry is for http only
        "http://localhost:3001",
        "http://localhost:3000.evil.example",
        "null",
    ],
)
def test_other_origins_get_no_cors_headers(configured: Server, origin: str) -> None:
    api = configured.api.http
    for r in (
        api.get("/healthz", headers={"Origin": origin}),
        configured.admin.get("/api/v1/agents", headers={"Origin": origin}),
        api.get("/api/v1/agents", headers={"Origin": origin}),
    ):
        assert "access-control-allow-origin" not in r.headers, (origin, r.headers)
    pre = api.options(
        "/api/v1/rooms", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in pre.headers
    assert "access-control-allow-methods" not in pre.headers


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://192.168.1.77:8080"])
async def test_socketio_handshake_from_an_allowed_origin(configured: Server, origin: str) -> None:
    r = configured.api.http.get("/socket.io/?EIO=4&transport=polling", headers={"Origin": origin})
    assert r.status_code == 200, r.text
    assert r.headers.get("access-control-allow-origin") == origin
    assert r.text.startswith("0{"), r.text[:100]
    assert_security_headers(r)
    url = configured.base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with websockets.connect(url, origin=Origin(origin), open_timeout=WAIT) as ws:
        opened = await asyncio.wait_for(ws.recv(), WAIT)
        assert str(opened).startswith("0{"), opened


@pytest.mark.parametrize("origin", ["http://evil.example", "http://192.168.2.5"])
async def test_socketio_refuses_foreign_origins(configured: Server, origin: str) -> None:
    r = configured.api.http.get("/socket.io/?EIO=4&transport=polling", headers={"Origin": origin})
    assert r.status_code == 400, r.text
    assert "access-control-allow-origin" not in r.headers
    assert_security_headers(r)
    url = configured.base_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    with pytest.raises(InvalidHandshake):
        async with websockets.connect(url, origin=Origin(origin), open_timeout=WAIT):
            pass


@pytest.mark.parametrize("value", ["*", "http://x/path", "http://300.1.1.0/24"])
def test_bad_allowed_origins_stop_start_up(tmp_path: Path, value: str) -> None:
    env = base_env(f"sqlite:///{tmp_path / 'agenthub.db'}", tmp_path, ALLOWED_ORIGINS=value)
    done = cli(env, "serve", "--host", "127.0.0.1", "--port", str(free_port()), timeout=60)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "ALLOWED_ORIGINS" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "agenthub.db").exists()  # refused before touching anything


# ---- the docs page ----


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.links: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True
        elif tag == "link":
            self.links.append(dict(attrs))
        for name, value in attrs:
            assert not name.startswith("on"), f"inline handler {name}={value!r}"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)


def test_docs_page_works_offline_under_its_csp(server: Server) -> None:
    api = server.api.http
    r = api.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == "default-src 'self'"
    page = _Assets()
    page.feed(r.text)
    assert page.scripts, "no script on the docs page"
    assert not page.inline, f"inline script: {page.inline}"
    assert "<style" not in r.text.lower(), "inline style on the docs page"
    refs = [s.get("src") for s in page.scripts] + [
        link.get("href") for link in page.links if link.get("rel") == "stylesheet"
    ]
    assert all(refs), f"a script without src: {page.scripts}"
    for ref in refs:
        assert ref is not None
        assert ref.startswith("/"), f"{ref} is not same-origin"
        assert not ref.startswith("//"), f"{ref} is not same-origin"
    assert not re.search(r"https?://", r.text), "the page references another host"
    expected = {
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/docs/app/docs-init.js",
    }
    assert expected <= set(refs), refs
    for ref in refs:
        asset = api.get(str(ref))
        assert asset.status_code == 200, ref
        assert len(asset.content) > 100, ref
        assert_security_headers(asset)
    init = api.get("/docs/app/docs-init.js").text
    assert "/openapi.json" in init
    assert not re.search(r"https?://", init), "docs-init.js loads something from another host"
    spec = api.get("/openapi.json")
    assert spec.status_code == 200
    assert "/api/v1/rooms" in spec.json()["paths"]


# ---- rate limits ----


def test_unauthenticated_requests_are_limited_per_ip_and_health_is_exempt(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    srv = start_server(backend, database_url, tmp_path, RATE_LIMIT_UNAUTH_PER_MIN="5")
    try:
        with client_at(srv) as c:
            with_window_room()
            answers = [
                c.get("/api/v1/agents"),  # no credential
                c.post("/api/v1/sessions"),  # no credential
                c.post("/api/v1/sessions", headers=bearer("agt_nope00_" + "x" * 43)),
                c.post("/api/v1/sessions", headers=bearer(srv.admin.token)),  # a good login
                c.get("/api/v1/agents/me", headers=bearer("not.a.jwt")),
            ]
            assert [a.status_code for a in answers] == [401, 401, 401, 201, 401]
            assert_rate_limited(c.get("/api/v1/agents"))
            # Logging in counts as unauthenticated: refused now too, even with a good token.
            assert_rate_limited(c.post("/api/v1/sessions", headers=bearer(srv.admin.token)))
            # Health, readiness and metrics are never limited, even for a limited address.
            for _ in range(50):
                for path in ("/healthz", "/readyz", "/metrics"):
                    r = c.get(path)
                    assert r.status_code == 200, (path, r.status_code)
            # Another address has a budget of its own, and a valid JWT is counted per agent.
            with client_at(srv) as other:
                assert other.get("/api/v1/agents").status_code == 401
            assert c.get("/api/v1/agents", headers=bearer(srv.admin.jwt)).status_code == 200
        # 429s are counted in the metrics under the route they were refused at.
        metrics = srv.api.http.get("/metrics").text
        sample = (
            'agenthub_http_requests_total{method="GET",route="/api/v1/agents",status_code="429"}'
        )
        assert f"{sample} 1.0" in metrics, [line for line in metrics.splitlines() if "429" in line]
        # …and in the refusals counter the operator's alert watches: the two 429s above.
        refusals = 'agenthub_rate_limit_refusals_total{transport="http"}'
        assert f"{refusals} 2.0" in metrics, [x for x in metrics.splitlines() if "refusal" in x]
    finally:
        srv.api.close()
        stop_process(srv.proc)


def test_authenticated_requests_are_limited_per_agent(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    srv = start_server(
        backend,
        database_url,
        tmp_path,
        RATE_LIMIT_UNAUTH_PER_MIN="5",
        RATE_LIMIT_AUTH_PER_MIN="8",
    )
    try:
        a, b = srv.new_agent(), srv.new_agent()
        with client_at(srv) as c:
            with_window_room()
            for i in range(8):
                r = c.get("/api/v1/agents/me", headers=bearer(a.jwt))
                assert r.status_code == 200, (i, r.text)
            assert_rate_limited(c.get("/api/v1/agents/me", headers=bearer(a.jwt)))
            assert_rate_limited(c.get("/api/v1/rooms", headers=bearer(a.jwt)))
            # B, from the same address, is not limited by A's use.
            for i in range(8):
                r = c.get("/api/v1/agents/me", headers=bearer(b.jwt))
                assert r.status_code == 200, (i, r.text)
            assert_rate_limited(c.get("/api/v1/agents/me", headers=bearer(b.jwt)))
            # A's being limited did not use up the address's unauthenticated budget either;
            # a garbage Bearer token is unauthenticated, so it counts against the address.
            forged = a.jwt[:-4] + ("AAAA" if not a.jwt.endswith("AAAA") else "BBBB")
            for token in ("garbage", forged, "x.y.z", a.token, "another-garbage"):
                r = c.get("/api/v1/agents/me", headers=bearer(token))
                assert r.status_code == 401, (token, r.text)
            assert_rate_limited(c.get("/api/v1/agents/me", headers=bearer("garbage")))
            assert_rate_limited(c.get("/api/v1/agents/me"))
        metrics = srv.api.http.get("/metrics").text
        refusals = 'agenthub_rate_limit_refusals_total{transport="http"}'
        assert f"{refusals} 5.0" in metrics, [x for x in metrics.splitlines() if "refusal" in x]
    finally:
        srv.api.close()
        stop_process(srv.proc)


def test_redis_shares_counters_between_servers(
    backend: str, database_url: str, tmp_path: Path, redis_db: redis.Redis
) -> None:
    limits = {"RATE_LIMIT_UNAUTH_PER_MIN": "6", "RATE_LIMIT_AUTH_PER_MIN": "8"}
    # The harness's own logins come from an address of this test's, not 127.0.0.1, whose
    # counter in the shared Redis other runs use too.
    harness = loopback_address()
    address = loopback_address()  # one client address, seen by both servers
    one = start_server(
        backend,
        database_url,
        tmp_path / "one",
        client_address=harness,
        REDIS_URL=REDIS_URL,
        **limits,
    )
    two = None
    ours = [harness, address, one.admin.id]
    try:
        two = start_server(
            backend,
            database_url,
            tmp_path / "two",
            client_address=harness,
            REDIS_URL=REDIS_URL,
            **limits,
        )
        ours.append(two.admin.id)
        servers = [one, two]
        for srv in servers:
            r = srv.api.http.get("/readyz")
            assert r.status_code == 200, r.text
            assert r.json() == {"status": "ready", "checks": {"db": "ok", "redis": "ok"}}
        agent = one.new_agent()
        ours.append(agent.id)
        clients = [client_at(one, address), client_at(two, address)]
        try:
            with_window_room()
            for i in range(8):  # split across both servers
                r = clients[i % 2].get("/api/v1/agents/me", headers=bearer(agent.jwt))
                assert r.status_code == 200, (i, r.text)
            for c in clients:
                assert_rate_limited(c.get("/api/v1/agents/me", headers=bearer(agent.jwt)))
            for i in range(6):
                r = clients[i % 2].get("/api/v1/agents")
                assert r.status_code == 401, (i, r.text)
            for c in clients:
                assert_rate_limited(c.get("/api/v1/agents"))
        finally:
            for c in clients:
                c.close()
        assert keys_naming(redis_db, f"agent:{agent.id}"), "no agent counter in Redis"
        assert keys_naming(redis_db, f"ip:{address}"), "no address counter in Redis"
    finally:
        one.api.close()
        stop_process(one.proc)
        if two is not None:
            two.api.close()
            stop_process(two.proc)
        mine = keys_naming(redis_db, *ours)
        if mine:
            redis_db.delete(*mine)


def test_readyz_reports_an_unreachable_redis(tmp_path: Path) -> None:
    # Nothing listens on that port: readiness says so, and requests are still served.
    env = base_env(
        f"sqlite:///{tmp_path / 'agenthub.db'}",
        tmp_path,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    base = f"http://127.0.0.1:{free_port()}"
    with (tmp_path / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agenthub",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                base.rsplit(":", 1)[1],
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        ready: httpx.Response | None = None
        while ready is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"{base}/readyz", timeout=5)
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ready is not None, (tmp_path / "server.log").read_text()
        assert ready.status_code == 503, ready.text
        assert ready.json() == {"status": "not_ready", "checks": {"db": "ok", "redis": "error"}}
        assert httpx.get(f"{base}/api/v1/agents", timeout=10).status_code == 401
    finally:
        stop_process(proc)


# ---- Socket.IO size limit ----


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_socket_message_over_one_mib_is_refused(
    server: Server, alice: Agent, transport: str
) -> None:
    room = server.new_room(alice)
    bystander = socketio.AsyncSimpleClient(reconnection=False)
    big = socketio.AsyncSimpleClient(reconnection=False)
    await bystander.connect(
        server.base_url,
        auth={"token": alice.jwt},
        namespace=NS,
        transports=["websocket"],
        wait_timeout=WAIT,
    )
    try:
        await big.connect(
            server.base_url,
            auth={"token": alice.jwt},
            namespace=NS,
            transports=[transport],
            wait_timeout=WAIT,
        )
        body = "x" * (ONE_MIB + ONE_MIB // 5)
        await big.emit("message:send", {"roomId": room["id"], "body": body})
        deadline = time.monotonic() + WAIT
        while big.connected and time.monotonic() < deadline:  # noqa: ASYNC110 (a client flag)
            await asyncio.sleep(0.1)
        assert not big.connected, "the server kept a connection that sent 1.2 MiB"
        # The server still serves the other socket.
        ack: dict[str, Any] = await bystander.call(
            "message:send", {"roomId": room["id"], "body": "small"}, timeout=WAIT
        )
        assert ack["ok"] is True, ack
    finally:
        await big.disconnect()
        await bystander.disconnect()
    rows = query(
        server.database_url,
        "SELECT m.body FROM messages m JOIN rooms r ON r.id = m.room_id WHERE r.slug = $1",
        room["slug"],
    )
    assert [r[0] for r in rows] == ["small"]
    assert server.api.http.get("/readyz").status_code == 200
