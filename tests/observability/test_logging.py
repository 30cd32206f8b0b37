"""Logs, read from a real server's output: one JSON object per line in production with the
request context, readable text in development, and never an API token, a JWT or a secret."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import socketio

from tests.support import Server, start_server, stop_process

NS = "/agents"
WAIT = 10  # seconds: the bound on any single expected event
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@dataclass
class Run:
    """What one server run logged, and every secret it was handed during the run."""

    log: str
    secrets: dict[str, str] = field(default_factory=dict)
    request_ids: dict[str, str] = field(default_factory=dict)
    agent_id: str = ""


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def socket(url: str, transports: list[str], auth: Any = None) -> AsyncIterator[Any]:
    client = socketio.AsyncSimpleClient(reconnection=False)
    await client.connect(url, auth=auth, namespace=NS, transports=transports, wait_timeout=WAIT)
    try:
        yield client
    finally:
        await client.disconnect()


async def refused(url: str, transports: list[str], auth: Any = None) -> None:
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            url, auth=auth, namespaces=[NS], transports=transports, wait_timeout=WAIT
        )
    await client.disconnect()


async def exercise(srv: Server, jwt_secret: str) -> Run:
    """Use every kind of credential the server knows, over HTTP and Socket.IO, with a few
    refusals and errors; return the secrets handed out (the log is read after the stop)."""
    found: dict[str, str] = {"JWT_SECRET": jwt_secret}
    api = srv.api

    def keep_token(label: str, token: str) -> None:
        found[label] = token
        found[f"{label} secret"] = token[11:]  # agt_xxxxxx_<secret>

    def keep_jwt(label: str, token: str) -> None:
        found[label] = token
        found[f"{label} signature"] = token.rsplit(".", 1)[1]

    keep_token("admin token", srv.admin.token)
    keep_jwt("admin jwt", srv.admin.jwt)
    alice, bob = srv.new_agent(), srv.new_agent()
    for who, agent in (("alice", alice), ("bob", bob)):
        keep_token(f"{who} token", agent.token)
        keep_jwt(f"{who} jwt", agent.jwt)
    keep_jwt("alice second jwt", api.login(alice.token))

    # Failed logins: a wrong secret for a known prefix, an unknown prefix, a revoked token.
    wrong = alice.token[:11] + secrets.token_urlsafe(32)
    keep_token("wrong-secret token", wrong)
    assert api.session(wrong).status_code == 401
    unknown = "agt_zz9zz9_" + secrets.token_urlsafe(32)
    keep_token("unknown token", unknown)
    assert api.session(unknown).status_code == 401
    issued = srv.admin.post(f"/api/v1/agents/{bob.name}/tokens", {})
    assert issued.status_code == 201
    revoked = issued.json()["token"]
    keep_token("revoked token", revoked)
    keep_jwt("jwt from the revoked token", api.login(revoked))
    assert srv.admin.delete(f"/api/v1/tokens/{issued.json()['prefix']}").status_code == 204
    assert api.session(revoked).status_code == 401

    # JWTs in headers, in a query string and in a path; a tampered one.
    ids = {"alice me": f"log-{uuid.uuid4().hex}", "anonymous": f"log-{uuid.uuid4().hex}"}
    r = alice.get("/api/v1/agents/me", headers={"X-Request-ID": ids["alice me"]})
    assert r.status_code == 200
    r = api.http.get("/api/v1/agents/me", headers={"X-Request-ID": ids["anonymous"]})
    assert r.status_code == 401
    tampered = alice.jwt[:-6] + ("AAAAAA" if not alice.jwt.endswith("AAAAAA") else "BBBBBB")
    keep_jwt("tampered jwt", tampered)
    assert api.http.get("/api/v1/agents", headers=bearer(tampered)).status_code == 401
    assert api.http.get(f"/api/v1/agents?token={alice.jwt}").status_code == 401
    assert alice.get(f"/api/v1/agents/{bob.jwt}").status_code in (400, 404)
    assert api.http.get(f"/api/v1/nothing/{alice.token}").status_code == 404
    # API tokens where a JWT belongs.
    assert api.http.get("/api/v1/agents", headers=bearer(alice.token)).status_code == 401

    # Errors, none of them a 500.
    room = srv.new_room(alice, bob)
    assert alice.post("/api/v1/rooms", {"slug": "Not A Slug", "name": "x"}).status_code == 400
    r = alice.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "a\x00b"})
    assert r.status_code == 400
    r = alice.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "over http"})
    assert r.status_code == 201

    # Socket.IO: ?token= over polling, websocket and polling-then-upgrade; an auth object.
    query_url = f"{srv.base_url}?token={bob.jwt}"
    for transports in (["polling"], ["websocket"], ["polling", "websocket"]):
        async with socket(query_url, transports) as c:
            ack = await c.call(
                "message:send", {"roomId": room["id"], "body": f"via {transports}"}, timeout=WAIT
            )
            assert ack["ok"] is True, ack
            ack = await c.call(
                "message:send", {"roomId": "no-such-room", "body": "x"}, timeout=WAIT
            )
            assert ack["ok"] is False
    async with socket(srv.base_url, ["websocket"], auth={"token": alice.jwt}) as c:
        ack = await c.call("room:join", {"roomId": room["slug"]}, timeout=WAIT)
        assert ack["ok"] is True
        ack = await c.call("message:send", {"roomId": room["id"], "body": "auth"}, timeout=WAIT)
        assert ack["ok"] is True
    # Refused handshakes: a tampered JWT, an API token, a foreign origin.
    await refused(f"{srv.base_url}?token={tampered}", ["polling"])
    await refused(f"{srv.base_url}?token={tampered}", ["websocket"])
    await refused(srv.base_url, ["websocket"], auth={"token": alice.token})
    r = api.http.get(
        f"/socket.io/?EIO=4&transport=polling&token={alice.jwt}",
        headers={"Origin": "http://evil.example"},
    )
    assert r.status_code == 400
    # Not a single 500 during the run.
    metrics = api.http.get("/metrics").text
    assert not re.search(r'status_code="5\d\d"', metrics), "a 5xx during the run"
    return Run(log="", secrets=found, request_ids=ids, agent_id=alice.id)


async def complete_run(backend: str, database_url: str, data_dir: Path, **env: str) -> Run:
    """Start a server, exercise it, stop it; the run's log is complete once it has exited."""
    jwt_secret = "log-test-" + secrets.token_urlsafe(40)
    srv = start_server(
        backend,
        database_url,
        data_dir,
        JWT_SECRET=jwt_secret,
        # A polling client's disconnect waits for its parked GET, which engine.io holds for up
        # to ping interval + ping timeout once the session is closed.
        SOCKETIO_PING_INTERVAL="1",
        SOCKETIO_PING_TIMEOUT="2",
        **env,
    )
    try:
        run = await asyncio.wait_for(exercise(srv, jwt_secret), 120)
    finally:
        srv.api.close()
        stop_process(srv.proc)
    assert srv.proc.returncode is not None
    run.log = srv.log_text()
    return run


@pytest.fixture(scope="module")
async def production_run(
    backend: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    return await complete_run(
        backend,
        database_url,
        Path(tmp_path_factory.mktemp(f"logs-prod-{backend}")),
        AGENTHUB_ENV="production",
        LOG_LEVEL="info",
    )


@pytest.fixture(scope="module")
async def development_run(
    backend: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Run:
    # Debug level: the most a development log ever says.
    return await complete_run(
        backend,
        database_url,
        Path(tmp_path_factory.mktemp(f"logs-dev-{backend}")),
        AGENTHUB_ENV="development",
        LOG_LEVEL="debug",
    )


def json_lines(log: str) -> list[dict[str, Any]]:
    """Every line of a production log as an object; only the CLI's two start-up lines, printed
    before logging is set up, may be something else."""
    out = []
    for line in log.splitlines():
        if not line.strip():
            continue
        if not line.startswith("{"):
            assert line.startswith("agenthub: "), f"not a JSON line: {line[:300]!r}"
            continue
        record = json.loads(line)
        assert isinstance(record, dict), line
        out.append(record)
    return out


FRAGMENT = 12  # characters: 72 random bits, never in a log by chance


def assert_no_secret(log: str, found: dict[str, str]) -> None:
    """No value in full, and no FRAGMENT-long piece of any secret part (a token's secret, a
    JWT's signature, JWT_SECRET): a log that shortens a long value keeps its head and tail."""
    assert len(log) > 1000, "suspiciously little log output"
    leaked = [label for label, value in found.items() if value and value in log]
    assert not leaked, f"in the log: {leaked}"
    for label, value in found.items():
        if label == "JWT_SECRET" or label.endswith((" secret", " signature")):
            for i in range(len(value) - FRAGMENT + 1):
                piece = value[i : i + FRAGMENT]
                assert piece not in log, f"a piece of the {label} is in the log: {piece!r}"


# ---- tests ----


def test_production_logs_are_one_json_object_per_line(production_run: Run) -> None:
    records = json_lines(production_run.log)
    assert len(records) > 20, production_run.log[:2000]
    for record in records:
        for key in ("ts", "level", "logger", "msg"):
            assert isinstance(record.get(key), str), (key, record)
        assert TS.match(record["ts"]), record["ts"]
        assert record["level"] in ("debug", "info", "warning", "error", "critical"), record
    assert not any(r["level"] == "debug" for r in records), "debug lines at LOG_LEVEL=info"


def test_request_lines_carry_id_agent_route_status_and_duration(production_run: Run) -> None:
    records = json_lines(production_run.log)
    rid = production_run.request_ids["alice me"]
    lines = [r for r in records if r.get("request_id") == rid and "status" in r]
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["agent_id"] == production_run.agent_id
    assert line["route"] == "/api/v1/agents/me"
    assert line["status"] == 200
    assert line.get("method") == "GET"
    assert isinstance(line["duration_ms"], int | float)
    assert 0 <= line["duration_ms"] < 60_000
    anonymous = production_run.request_ids["anonymous"]
    lines = [r for r in records if r.get("request_id") == anonymous and "status" in r]
    assert len(lines) == 1, lines
    assert lines[0]["status"] == 401
    assert lines[0].get("agent_id") is None
    # Every request line has a request id, a route and no raw path with a query string.
    requests = [r for r in records if "status" in r and "route" in r]
    assert len(requests) > 20
    for r in requests:
        assert r.get("request_id"), r
        assert "?" not in r["route"], r


def test_production_logs_hold_no_token_jwt_or_secret(production_run: Run) -> None:
    assert_no_secret(production_run.log, production_run.secrets)


def test_development_logs_are_text_and_hold_no_token_jwt_or_secret(development_run: Run) -> None:
    log = development_run.log
    rid = development_run.request_ids["alice me"]
    lines = [line for line in log.splitlines() if rid in line]
    assert lines, "the request id is not in the development log"
    assert not any(line.lstrip().startswith("{") for line in lines), lines
    assert any("/api/v1/agents/me" in line and "200" in line for line in lines), lines
    assert_no_secret(log, development_run.secrets)


def test_the_scan_would_see_a_leak(tmp_path: Path) -> None:
    """The scan itself: a secret anywhere in a line is found, redacted forms are not."""
    token = "agt_abcdef_" + secrets.token_urlsafe(32)
    found = {"token": token, "token secret": token[11:]}
    filler = "x" * 1000
    with pytest.raises(AssertionError):
        assert_no_secret(filler + f'{{"msg": "login with {token}"}}', found)
    with pytest.raises(AssertionError):
        assert_no_secret(filler + f"secret={token[11:]}", found)
    with pytest.raises(AssertionError):  # shortened: head and tail
        assert_no_secret(filler + f"{token[:24]}...{token[-14:]}", found)
    assert_no_secret(filler + '{"msg": "login with [redacted]"}', found)


@pytest.mark.parametrize(
    ("env", "log_format", "as_json"),
    [("development", "json", True), ("production", "text", False)],
)
def test_log_format_overrides_the_environments_default(
    tmp_path: Path, env: str, log_format: str, as_json: bool
) -> None:
    """LOG_FORMAT=json in development and LOG_FORMAT=text in production: the variable wins
    over the environment's default (which the runs above check)."""
    srv = start_server(
        "sqlite",
        f"sqlite:///{tmp_path / 'format.db'}",
        tmp_path / "data",
        AGENTHUB_ENV=env,
        LOG_FORMAT=log_format,
        LOG_LEVEL="info",
    )
    rid = f"format-{uuid.uuid4().hex}"
    try:
        assert srv.admin.get("/api/v1/agents/me", headers={"X-Request-ID": rid}).status_code == 200
    finally:
        srv.api.close()
        stop_process(srv.proc)
    lines = [line for line in srv.log_text().splitlines() if line.strip()]
    ours = [line for line in lines if rid in line]
    assert len(ours) == 1, lines
    if as_json:
        records = json_lines("\n".join(lines))
        assert len(records) >= len(lines) - 2  # only the CLI's start-up lines are not JSON
        assert next(r for r in records if r.get("request_id") == rid)["status"] == 200
    else:
        assert not any(line.lstrip().startswith("{") for line in lines), lines[:5]
        assert f"request_id={rid}" in ours[0]
        assert "status=200" in ours[0]
