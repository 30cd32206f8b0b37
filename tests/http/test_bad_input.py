"""Hostile and malformed input: every refusal is a 400 (or 404/413) in the envelope, names what
was wrong, stores nothing, and never leaks a stack trace, SQL or the JWT secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests import support
from tests.databases import query
from tests.support import JWT_SECRET, Agent, Server, uniq

ONE_MIB = 1024 * 1024
LEAKS = ("Traceback", "sqlalchemy", "SELECT", "INSERT", "asyncpg", "aiosqlite", JWT_SECRET)
TABLES = ("agents", "rooms", "room_members", "messages", "api_tokens")


def assert_no_leak(r: httpx.Response) -> None:
    for needle in LEAKS:
        assert needle not in r.text, f"{needle!r} leaked in {r.status_code}: {r.text[:300]}"
        assert needle not in str(r.headers), f"{needle!r} leaked in headers"


def assert_error(r: httpx.Response, status: int, code: str) -> str:
    assert_no_leak(r)
    return support.assert_error(r, status, code)


def snapshot(server: Server) -> dict[str, int]:
    """Row counts of every table a refused request might have written to."""
    return {t: int(query(server.database_url, f"SELECT count(*) FROM {t}")[0][0]) for t in TABLES}  # noqa: S608


def future() -> str:
    return (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Endpoint:
    """A POST endpoint taking a JSON body, with a valid body to start mutations from."""

    name: str
    caller: Agent
    url: str
    valid: dict[str, Any]
    required: tuple[str, ...]
    strings: tuple[str, ...]


@dataclass
class World:
    server: Server
    admin: Agent
    alice: Agent
    bob: Agent
    room: dict[str, Any]

    def endpoint(self, name: str) -> Endpoint:
        slug = self.room["slug"]
        return {
            "agents": Endpoint(
                "agents",
                self.admin,
                "/api/v1/agents",
                {"name": uniq("agent"), "displayName": "Some One", "role": "agent"},
                ("name", "displayName"),
                ("name", "displayName", "role"),
            ),
            "rooms": Endpoint(
                "rooms",
                self.alice,
                "/api/v1/rooms",
                {"slug": uniq("room"), "name": "A Room"},
                ("slug", "name"),
                ("slug", "name"),
            ),
            "members": Endpoint(
                "members",
                self.alice,
                f"/api/v1/rooms/{slug}/members",
                {"agent": self.bob.name},
                ("agent",),
                ("agent",),
            ),
            "messages": Endpoint(
                "messages",
                self.alice,
                f"/api/v1/rooms/{slug}/messages",
                {"body": "hello", "clientMsgId": uniq("c")},
                ("body",),
                ("body", "clientMsgId"),
            ),
            "tokens": Endpoint(
                "tokens",
                self.admin,
                f"/api/v1/agents/{self.bob.name}/tokens",
                {"expiresAt": future()},
                (),
                ("expiresAt",),
            ),
        }[name]


ENDPOINTS = ["agents", "rooms", "members", "messages", "tokens"]


@pytest.fixture
def world(server: Server, admin: Agent, alice: Agent, bob: Agent) -> World:
    return World(server, admin, alice, bob, server.new_room(alice))


def post_raw(
    agent: Agent, url: str, content: bytes | str | Iterator[bytes], content_type: str | None
) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return agent.client.request("POST", url, jwt=agent.jwt, content=content, headers=headers)


# --- field-level faults -------------------------------------------------------------------

WRONG_TYPES: list[Any] = [123, 1.5, True, [], ["text"], {}, {"a": "b"}]


@pytest.mark.parametrize("which", ENDPOINTS)
def test_wrong_types_are_400_naming_the_field(world: World, which: str) -> None:
    ep = world.endpoint(which)
    before = snapshot(world.server)
    for field in ep.strings:
        bad_values = [*WRONG_TYPES, *([None] if field in ep.required else [])]
        for value in bad_values:
            body = {**ep.valid, field: value}
            r = ep.caller.post(ep.url, body)
            message = assert_error(r, 400, "invalid_request")
            assert field in message, (field, value, message)
    assert snapshot(world.server) == before


@pytest.mark.parametrize("which", [e for e in ENDPOINTS if e != "tokens"])
def test_missing_fields_are_400_naming_the_field(world: World, which: str) -> None:
    ep = world.endpoint(which)
    before = snapshot(world.server)
    for field in ep.required:
        body = {k: v for k, v in ep.valid.items() if k != field}
        message = assert_error(ep.caller.post(ep.url, body), 400, "invalid_request")
        assert field in message
    message = assert_error(ep.caller.post(ep.url, {}), 400, "invalid_request")
    assert any(field in message for field in ep.required)
    assert snapshot(world.server) == before


@pytest.mark.parametrize("which", ENDPOINTS)
def test_empty_strings_are_400_naming_the_field(world: World, which: str) -> None:
    ep = world.endpoint(which)
    before = snapshot(world.server)
    for field in ep.strings:
        r = ep.caller.post(ep.url, {**ep.valid, field: ""})
        assert field in assert_error(r, 400, "invalid_request")
    assert snapshot(world.server) == before


@pytest.mark.parametrize("which", [e for e in ENDPOINTS if e != "tokens"])
def test_nul_character_is_400_naming_the_field(world: World, which: str) -> None:
    ep = world.endpoint(which)
    before = snapshot(world.server)
    for field in ep.strings:
        if field == "role":
            continue
        for value in (f"{ep.valid[field]}\x00", "\x00", f"a\x00{ep.valid[field]}"):
            r = ep.caller.post(ep.url, {**ep.valid, field: value})
            message = assert_error(r, 400, "invalid_request")
            assert field in message, (field, message)
    assert snapshot(world.server) == before


def test_nul_in_expires_at_is_400(world: World) -> None:
    ep = world.endpoint("tokens")
    before = snapshot(world.server)
    r = ep.caller.post(ep.url, {"expiresAt": future() + "\x00"})
    assert "expiresAt" in assert_error(r, 400, "invalid_request")
    assert snapshot(world.server) == before


@pytest.mark.parametrize(
    ("which", "field"),
    [
        ("agents", "name"),
        ("agents", "displayName"),
        ("rooms", "slug"),
        ("rooms", "name"),
        ("members", "agent"),
        ("messages", "clientMsgId"),
    ],
)
def test_ten_thousand_character_values_are_400(world: World, which: str, field: str) -> None:
    ep = world.endpoint(which)
    before = snapshot(world.server)
    r = ep.caller.post(ep.url, {**ep.valid, field: "a" * 10_000})
    assert field in assert_error(r, 400, "invalid_request")
    assert snapshot(world.server) == before


@pytest.mark.parametrize(
    "value",
    [
        4_102_444_800,  # a Unix time: times travel as RFC 3339 strings
        "not a time",
        "2100-01-01T00:00:00",  # no offset
        "2100-01-01",
        "2000-01-01T00:00:00Z",  # not in the future
    ],
)
def test_bad_expires_at_is_400(world: World, value: Any) -> None:
    ep = world.endpoint("tokens")
    before = snapshot(world.server)
    r = ep.caller.post(ep.url, {"expiresAt": value})
    assert "expiresAt" in assert_error(r, 400, "invalid_request")
    assert snapshot(world.server) == before


def test_bad_role_is_400(world: World) -> None:
    ep = world.endpoint("agents")
    before = snapshot(world.server)
    for role in ("root", "Admin", "superuser"):
        r = ep.caller.post(ep.url, {**ep.valid, "role": role})
        assert "role" in assert_error(r, 400, "invalid_request")
    assert snapshot(world.server) == before


@pytest.mark.parametrize("which", ENDPOINTS)
def test_valid_bodies_are_accepted(world: World, which: str) -> None:
    """The control for the refusals above: the unmutated body goes through."""
    ep = world.endpoint(which)
    before = snapshot(world.server)
    r = ep.caller.post(ep.url, ep.valid)
    assert r.status_code == 201, r.text
    table = {
        "agents": "agents",
        "rooms": "rooms",
        "members": "room_members",
        "messages": "messages",
        "tokens": "api_tokens",
    }[which]
    after = snapshot(world.server)
    assert after[table] == before[table] + 1
    r = post_raw(ep.caller, ep.url, json.dumps(world.endpoint(which).valid), "text/plain")
    assert_error(r, 400, "invalid_request")


# --- body-level faults --------------------------------------------------------------------

RAW_BODIES: list[tuple[str, bytes, str | None]] = [
    ("not json", b'{"name": ', "application/json"),
    ("not json at all", b"hello there", "application/json"),
    ("json array", b'[{"name": "x"}]', "application/json"),
    ("json string", b'"just a string"', "application/json"),
    ("json number", b"42", "application/json"),
    ("invalid utf-8", b'{"body": "\xff\xfe"}', "application/json"),
    ("deep nesting", b"[" * 50_000 + b"]" * 50_000, "application/json"),
    ("form encoded", b"slug=abc&name=x", "application/x-www-form-urlencoded"),
]


@pytest.mark.parametrize("which", ENDPOINTS)
@pytest.mark.parametrize(("label", "content", "content_type"), RAW_BODIES, ids=lambda x: x)
def test_malformed_bodies_are_400(
    world: World, which: str, label: str, content: bytes, content_type: str | None
) -> None:
    ep = world.endpoint(which)
    before = snapshot(world.server)
    r = post_raw(ep.caller, ep.url, content, content_type)
    assert_error(r, 400, "invalid_request")
    assert snapshot(world.server) == before


@pytest.mark.parametrize("which", ENDPOINTS)
@pytest.mark.parametrize("content_type", ["text/plain", "text/plain; charset=utf-8", "text/json"])
def test_valid_json_with_another_content_type_is_400(
    world: World, which: str, content_type: str
) -> None:
    ep = world.endpoint(which)
    before = snapshot(world.server)
    r = post_raw(ep.caller, ep.url, json.dumps(ep.valid), content_type)
    message = assert_error(r, 400, "invalid_request")
    assert "JSON" in message or "body" in message
    assert snapshot(world.server) == before


@pytest.mark.parametrize("which", [e for e in ENDPOINTS if e != "tokens"])
@pytest.mark.parametrize("content", [b"", b"null"], ids=["empty", "null"])
def test_empty_or_null_body_is_400(world: World, which: str, content: bytes) -> None:
    ep = world.endpoint(which)
    before = snapshot(world.server)
    r = post_raw(ep.caller, ep.url, content, "application/json")
    assert "body" in assert_error(r, 400, "invalid_request")
    assert snapshot(world.server) == before


def test_json_with_charset_is_accepted(world: World) -> None:
    ep = world.endpoint("rooms")
    r = post_raw(ep.caller, ep.url, json.dumps(ep.valid), "application/json; charset=utf-8")
    assert r.status_code == 201, r.text


# --- lookups by hostile references --------------------------------------------------------

HOSTILE_REFS = [
    "a%00b",
    "%00",
    "x" * 10_000,
    "' or '1'='1",
    "1; drop table rooms; --",
    "%25",
    "..%2F..%2Fetc%2Fpasswd",
    "%FF%FE",
    "%ED%A0%80",  # an encoded lone surrogate
]


@pytest.mark.parametrize("ref", HOSTILE_REFS)
def test_hostile_path_references_are_404(world: World, ref: str) -> None:
    admin, alice = world.admin, world.alice
    room = world.room["slug"]
    before = snapshot(world.server)
    calls = [
        admin.get(f"/api/v1/rooms/{ref}"),
        admin.get(f"/api/v1/rooms/{ref}/members"),
        admin.get(f"/api/v1/rooms/{ref}/messages"),
        alice.post(f"/api/v1/rooms/{ref}/messages", {"body": "x"}),
        alice.post(f"/api/v1/rooms/{ref}/members", {"agent": alice.name}),
        admin.delete(f"/api/v1/rooms/{ref}/members/{alice.name}"),
        admin.delete(f"/api/v1/rooms/{room}/members/{ref}"),
        admin.get(f"/api/v1/agents/{ref}"),
        admin.get(f"/api/v1/agents/{ref}/tokens"),
        admin.post(f"/api/v1/agents/{ref}/tokens", {}),
        admin.delete(f"/api/v1/tokens/{ref}"),
        admin.get(f"/api/v1/audit-events?agent={ref[:63]}"),
    ]
    for r in calls:
        if r.status_code == 400:  # a query value over its bound, for instance
            assert_error(r, 400, "invalid_request")
        else:
            assert_error(r, 404, "not_found")
    assert snapshot(world.server) == before
    assert alice.get(f"/api/v1/rooms/{room}").status_code == 200


@pytest.mark.parametrize("ref", ["a\x00b", "\x00", "' or '1'='1", "x" * 63])
def test_unknown_member_reference_in_the_body(world: World, ref: str) -> None:
    before = snapshot(world.server)
    r = world.alice.post(f"/api/v1/rooms/{world.room['slug']}/members", {"agent": ref})
    if "\x00" in ref:
        assert "agent" in assert_error(r, 400, "invalid_request")
    else:
        assert_error(r, 404, "not_found")
    assert snapshot(world.server) == before


# --- oversized requests -------------------------------------------------------------------


def padded(body: dict[str, Any], size: int) -> bytes:
    """`body` as JSON, padded with trailing whitespace to exactly `size` bytes."""
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("which", ["messages", "rooms", "agents"])
def test_body_over_one_mib_is_413(world: World, which: str) -> None:
    ep = world.endpoint(which)
    before = snapshot(world.server)
    data = padded(ep.valid, ONE_MIB + 1)
    assert len(data) == 1_048_577
    r = post_raw(ep.caller, ep.url, data, "application/json")
    assert_error(r, 413, "payload_too_large")
    assert snapshot(world.server) == before


@pytest.mark.parametrize("which", ["messages", "rooms", "agents"])
def test_chunked_body_over_one_mib_is_413(world: World, which: str) -> None:
    ep = world.endpoint(which)
    before = snapshot(world.server)
    data = padded(ep.valid, ONE_MIB + 1)
    request = ep.caller.client.http.build_request(
        "POST",
        ep.url,
        content=chunks(data),
        headers={"Authorization": f"Bearer {ep.caller.jwt}", "Content-Type": "application/json"},
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    r = ep.caller.client.http.send(request)
    assert_error(r, 413, "payload_too_large")
    assert snapshot(world.server) == before


def test_huge_message_body_field_in_a_huge_request_is_413(world: World) -> None:
    ep = world.endpoint("messages")
    before = snapshot(world.server)
    r = ep.caller.post(ep.url, {"body": "x" * (ONE_MIB + 10)})
    assert_error(r, 413, "payload_too_large")
    data = json.dumps({"body": "y" * (2 * ONE_MIB)}).encode()
    r = post_raw(ep.caller, ep.url, chunks(data), "application/json")
    assert_error(r, 413, "payload_too_large")
    assert snapshot(world.server) == before


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_of_exactly_one_mib_is_accepted(world: World, chunked: bool) -> None:
    ep = world.endpoint("messages")
    data = padded(ep.valid, ONE_MIB)
    r = post_raw(ep.caller, ep.url, chunks(data) if chunked else data, "application/json")
    assert r.status_code == 201, r.text[:300]
    assert r.json()["body"] == ep.valid["body"]


def test_server_still_serves_after_oversized_requests(world: World) -> None:
    ep = world.endpoint("messages")
    r = post_raw(ep.caller, ep.url, chunks(padded(ep.valid, 3 * ONE_MIB)), "application/json")
    assert_error(r, 413, "payload_too_large")
    r = ep.caller.post(ep.url, {"body": "still here"})
    assert r.status_code == 201, r.text
    assert r.json()["seq"] == 1


# --- routes and leaks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/nope"),
        ("GET", "/api/v1"),
        ("GET", "/api/v1/"),
        ("POST", "/api/v1/rooms/x/nope"),
        ("GET", "/api/v1/rooms/x/members/y/z"),
        ("DELETE", "/api/v1/agents/me/everything"),
        ("GET", "/api/v1/messages"),
    ],
)
def test_unknown_routes_are_404_in_the_envelope(
    server: Server, alice: Agent, method: str, path: str
) -> None:
    r = server.api.request(method, path, jwt=alice.jwt)
    assert_error(r, 404, "not_found")
    r = server.api.request(method, path)
    assert r.status_code in (401, 404), r.text
    assert_error(r, r.status_code, "not_found" if r.status_code == 404 else "unauthorized")


def test_errors_never_leak(server: Server, admin: Agent, alice: Agent) -> None:
    """A tour of refusals of every kind; none may carry a trace, SQL, or the secret."""
    room = server.new_room(alice)
    tampered = alice.jwt[:-4] + ("AAAA" if not alice.jwt.endswith("AAAA") else "BBBB")
    responses = [
        server.api.request("GET", "/api/v1/agents/me"),
        server.api.request("GET", "/api/v1/agents/me", jwt=tampered),
        server.api.request("GET", "/api/v1/agents/me", jwt=JWT_SECRET),
        server.api.session("agt_nothere_" + "x" * 43),
        server.api.session(JWT_SECRET),
        alice.post("/api/v1/agents", {"name": uniq("a"), "displayName": "x"}),
        alice.post("/api/v1/rooms", {"slug": room["slug"], "name": "dup"}),
        admin.post("/api/v1/rooms", {"slug": uniq("r"), "name": "x\x00"}),
        admin.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "not a member"}),
        alice.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "x" * 70_000}),
        alice.get(f"/api/v1/rooms/{room['slug']}/messages", params={"cursor": "garbage"}),
        alice.get(f"/api/v1/rooms/{room['slug']}/messages", params={"limit": "lots"}),
        post_raw(alice, "/api/v1/rooms", b"{bad json", "application/json"),
        post_raw(alice, "/api/v1/rooms", b"[" * 50_000, "application/json"),
        admin.get("/api/v1/audit-events", params={"type": "x' OR 1=1"}),
        server.api.request("PUT", "/api/v1/rooms", jwt=alice.jwt),
    ]
    for r in responses:
        assert 400 <= r.status_code < 500, r.text
        assert_no_leak(r)
        body = r.json()
        assert set(body) == {"error"}
        assert set(body["error"]) == {"code", "message"}
