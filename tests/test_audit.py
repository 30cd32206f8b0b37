"""The audit log: who did what, readable by admins only, filtered and paged newest first."""

from __future__ import annotations

import base64
import json
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tests.databases import query
from tests.support import Agent, Server, assert_error, uniq

EVENT_FIELDS = {"id", "type", "agentId", "payload", "createdAt"}
FULL_TOKEN_RE = re.compile(r"agt_[A-Za-z0-9_-]{6}_[A-Za-z0-9_-]{43}")
JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# Upper bound on pages read by any loop here, so that a cursor bug cannot loop forever.
MAX_PAGES = 1000

Event = dict[str, Any]


def page(caller: Agent, **params: Any) -> dict[str, Any]:
    r = caller.get("/api/v1/audit-events", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"events", "nextCursor"}, body
    for event in body["events"]:
        assert set(event) == EVENT_FIELDS, event
        assert str(uuid.UUID(event["id"])) == event["id"]
        assert event["createdAt"].endswith("Z")
        assert isinstance(event["payload"], dict)
    return body


def all_events(caller: Agent, limit: int = 200, **params: Any) -> list[Event]:
    """Every page, following nextCursor until it is null (at most MAX_PAGES pages)."""
    events: list[Event] = []
    cursor = None
    for _ in range(MAX_PAGES):
        query_params = dict(params, limit=limit)
        if cursor is not None:
            query_params["cursor"] = cursor
        body = page(caller, **query_params)
        assert len(body["events"]) <= limit
        events.extend(body["events"])
        cursor = body["nextCursor"]
        if cursor is None:
            return events
        assert body["events"], "a page with a next cursor must not be empty"
    raise AssertionError(f"nextCursor still set after {MAX_PAGES} pages")


def values(payload: Any) -> set[str]:
    """Every string anywhere in a payload."""
    if isinstance(payload, dict):
        return set().union(*(values(v) for v in payload.values())) if payload else set()
    if isinstance(payload, list):
        return set().union(*(values(v) for v in payload)) if payload else set()
    return {payload} if isinstance(payload, str) else set()


def find(admin: Agent, type_: str, match: Callable[[Event], bool], **params: Any) -> list[Event]:
    """Events of `type_` that satisfy `match`, from the newest 200 of that type (and filter)."""
    return [e for e in page(admin, type=type_, limit=200, **params)["events"] if match(e)]


def one(admin: Agent, type_: str, match: Callable[[Event], bool], **params: Any) -> Event:
    found = find(admin, type_, match, **params)
    assert len(found) == 1, (type_, found)
    return found[0]


def created(event: Event) -> datetime:
    return datetime.fromisoformat(event["createdAt"].replace("Z", "+00:00"))


def random_token(prefix: str | None = None) -> str:
    prefix = prefix or "agt_" + secrets.token_urlsafe(6)[:6]
    return f"{prefix}_{secrets.token_urlsafe(32)}"


# --- Access ---------------------------------------------------------------------------------------


def test_audit_is_admin_only(server: Server, alice: Agent) -> None:
    r = alice.get("/api/v1/audit-events")
    assert_error(r, 403, "forbidden")
    assert "events" not in r.json()
    assert_error(alice.get("/api/v1/audit-events", params={"agent": alice.id}), 403, "forbidden")
    assert_error(server.api.http.get("/api/v1/audit-events"), 401, "unauthorized")


def test_audit_is_open_to_every_admin(server: Server, admin: Agent) -> None:
    other_admin = server.new_agent(role="admin")
    body = page(other_admin, agent=other_admin.id)
    assert [e["type"] for e in body["events"]] == ["login"]


# --- Events and their payloads ------------------------------------------------------------------


def test_login_event(server: Server, alice: Agent) -> None:
    # new_agent opened a session with alice's token: that is her one login so far.
    events = page(server.admin, type="login", agent=alice.id)["events"]
    assert len(events) == 1
    event = events[0]
    assert event["type"] == "login"
    assert event["agentId"] == alice.id
    assert alice.token[:10] in values(event["payload"])
    server.api.login(alice.token)
    assert len(page(server.admin, type="login", agent=alice.name)["events"]) == 2


def test_login_failed_unknown_prefix(server: Server, admin: Agent) -> None:
    token = random_token()
    assert server.api.session(token).status_code == 401
    event = one(admin, "login-failed", lambda e: token[:10] in values(e["payload"]))
    assert event["agentId"] is None


def test_login_failed_known_prefix(server: Server, admin: Agent, alice: Agent) -> None:
    forged = random_token(alice.token[:10])
    assert forged != alice.token
    assert server.api.session(forged).status_code == 401
    events = page(admin, type="login-failed", agent=alice.id)["events"]
    assert len(events) == 1
    assert events[0]["agentId"] == alice.id
    assert alice.token[:10] in values(events[0]["payload"])


def test_login_failed_revoked_token(server: Server, admin: Agent, alice: Agent) -> None:
    assert alice.delete(f"/api/v1/tokens/{alice.token[:10]}").status_code == 204
    assert server.api.session(alice.token).status_code == 401
    events = page(admin, type="login-failed", agent=alice.id)["events"]
    assert len(events) == 1
    assert alice.token[:10] in values(events[0]["payload"])


def test_login_failed_malformed_token(server: Server, admin: Agent) -> None:
    marker = "garbage-" + uuid.uuid4().hex
    assert server.api.session(marker).status_code == 401
    newest = page(admin, type="login-failed", limit=1)["events"]
    assert len(newest) == 1
    assert newest[0]["agentId"] is None
    # What the caller sent is not echoed into the log: it may have been a mistyped secret.
    assert marker not in json.dumps(newest[0]["payload"])


def test_token_issued_and_revoked_events(server: Server, admin: Agent, alice: Agent) -> None:
    r = admin.post(f"/api/v1/agents/{alice.name}/tokens", {})
    assert r.status_code == 201, r.text
    prefix = r.json()["prefix"]
    issued = one(admin, "token-issued", lambda e: prefix in values(e["payload"]), agent=admin.id)
    assert issued["agentId"] == admin.id
    assert r.json()["token"] not in json.dumps(issued["payload"])

    assert alice.delete(f"/api/v1/tokens/{prefix}").status_code == 204
    revoked = one(admin, "token-revoked", lambda e: prefix in values(e["payload"]))
    assert revoked["agentId"] == alice.id
    assert created(revoked) >= created(issued)
    # Revoking again changes nothing, so it records nothing.
    assert alice.delete(f"/api/v1/tokens/{prefix}").status_code == 204
    assert len(find(admin, "token-revoked", lambda e: prefix in values(e["payload"]))) == 1
    # The admin revoking one of alice's tokens is the actor of that event.
    assert admin.delete(f"/api/v1/tokens/{alice.token[:10]}").status_code == 204
    by_admin = one(admin, "token-revoked", lambda e: alice.token[:10] in values(e["payload"]))
    assert by_admin["agentId"] == admin.id


def test_agent_created_event(server: Server, admin: Agent) -> None:
    name = uniq("audited")
    r = admin.post("/api/v1/agents", {"name": name, "displayName": "Audited"})
    assert r.status_code == 201, r.text
    agent_id = r.json()["id"]
    event = one(admin, "agent-created", lambda e: agent_id in values(e["payload"]), agent=admin.id)
    assert event["agentId"] == admin.id
    # A refused creation records nothing.
    assert admin.post("/api/v1/agents", {"name": name, "displayName": "Again"}).status_code == 409
    assert len(find(admin, "agent-created", lambda e: agent_id in values(e["payload"]))) == 1
    # And a non-admin's attempt records nothing either.
    other = uniq("refused")
    alice = server.new_agent()
    assert alice.post("/api/v1/agents", {"name": other, "displayName": "No"}).status_code == 403
    assert page(admin, type="agent-created", agent=alice.id)["events"] == []


def test_room_and_membership_events(server: Server, admin: Agent, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)
    created_ev = one(admin, "room-created", lambda e: room["id"] in values(e["payload"]))
    assert created_ev["agentId"] == alice.id

    added = one(
        admin,
        "member-added",
        lambda e: {room["id"], bob.id} <= values(e["payload"]),
    )
    assert added["agentId"] == alice.id

    r = bob.delete(f"/api/v1/rooms/{room['id']}/members/{bob.id}")
    assert r.status_code == 204, r.text
    removed = one(
        admin,
        "member-removed",
        lambda e: {room["id"], bob.id} <= values(e["payload"]),
    )
    assert removed["agentId"] == bob.id

    # Re-adding (201) and then an idempotent re-add (200) record one more member-added only.
    assert alice.post(f"/api/v1/rooms/{room['id']}/members", {"agent": bob.id}).status_code == 201
    assert alice.post(f"/api/v1/rooms/{room['id']}/members", {"agent": bob.id}).status_code == 200

    def match_bob(e: Event) -> bool:
        return {room["id"], bob.id} <= values(e["payload"])

    assert len(find(admin, "member-added", match_bob)) == 2

    # The admin removing a member is the actor of that event.
    r = admin.delete(f"/api/v1/rooms/{room['slug']}/members/{bob.name}")
    assert r.status_code == 204, r.text
    removals = find(admin, "member-removed", match_bob)
    assert [e["agentId"] for e in removals] == [admin.id, bob.id]


def test_message_sent_event(server: Server, admin: Agent, alice: Agent) -> None:
    room = server.new_room(alice)
    r = alice.post(
        f"/api/v1/rooms/{room['id']}/messages", {"body": "audit me", "clientMsgId": "c1"}
    )
    assert r.status_code == 201, r.text
    message = r.json()
    event = one(admin, "message-sent", lambda e: message["id"] in values(e["payload"]))
    assert event["agentId"] == alice.id
    # The body is the message's business, not the log's.
    assert "audit me" not in json.dumps(event["payload"])
    # An idempotent repeat stores nothing and logs nothing.
    again = alice.post(
        f"/api/v1/rooms/{room['id']}/messages", {"body": "audit me", "clientMsgId": "c1"}
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == message["id"]
    assert len(find(admin, "message-sent", lambda e: True, agent=alice.id)) == 1


# --- Filters, order and paging --------------------------------------------------------------------


def make_history(server: Server, alice: Agent, bob: Agent) -> list[str]:
    """Give alice a known history; returns her event types, oldest first."""
    room = server.new_room(alice, bob)
    for i in range(3):
        r = alice.post(f"/api/v1/rooms/{room['id']}/messages", {"body": f"m{i}"})
        assert r.status_code == 201, r.text
    r = alice.delete(f"/api/v1/rooms/{room['id']}/members/{alice.id}")
    assert r.status_code == 204, r.text
    return [
        "login",
        "room-created",
        "member-added",
        "message-sent",
        "message-sent",
        "message-sent",
        "member-removed",
    ]


def test_filter_by_agent_id_and_name(
    server: Server, admin: Agent, alice: Agent, bob: Agent
) -> None:
    expected = make_history(server, alice, bob)
    by_id = page(admin, agent=alice.id)
    by_name = page(admin, agent=alice.name)
    assert by_id == by_name
    assert by_id["nextCursor"] is None
    assert all(e["agentId"] == alice.id for e in by_id["events"])
    assert [e["type"] for e in by_id["events"]] == expected[::-1]


def test_filter_by_unknown_agent(server: Server, admin: Agent) -> None:
    assert_error(
        admin.get("/api/v1/audit-events", params={"agent": uniq("nobody")}), 404, "not_found"
    )
    r = admin.get("/api/v1/audit-events", params={"agent": str(uuid.uuid4())})
    assert_error(r, 404, "not_found")


def test_filter_by_type(server: Server, admin: Agent, alice: Agent, bob: Agent) -> None:
    make_history(server, alice, bob)
    for type_ in ("login", "message-sent", "member-added", "room-created", "agent-created"):
        events = page(admin, type=type_, limit=200)["events"]
        assert events, type_
        assert {e["type"] for e in events} == {type_}
    sent = page(admin, type="message-sent", agent=alice.id)["events"]
    assert len(sent) == 3
    assert all(e["agentId"] == alice.id for e in sent)
    assert page(admin, type="no-such-type", agent=alice.id) == {"events": [], "nextCursor": None}
    assert page(admin, type="agent-created", agent=alice.id) == {"events": [], "nextCursor": None}


def test_newest_first(server: Server, admin: Agent, alice: Agent, bob: Agent) -> None:
    expected = make_history(server, alice, bob)
    events = page(admin, agent=alice.id)["events"]
    assert [e["type"] for e in events] == expected[::-1]
    times = [created(e) for e in events]
    assert times == sorted(times, reverse=True)
    # The whole log, unfiltered, is newest first too.
    newest = page(admin, limit=200)["events"]
    times = [created(e) for e in newest]
    assert times == sorted(times, reverse=True)
    # The most recent action of all is alice leaving the room.
    assert newest[0]["type"] == "member-removed"
    assert newest[0]["agentId"] == alice.id


def test_paging_returns_every_event_once(
    server: Server, admin: Agent, alice: Agent, bob: Agent
) -> None:
    make_history(server, alice, bob)
    whole = page(admin, agent=alice.id, limit=200)["events"]
    assert len(whole) == 7
    for limit in (1, 2, 3, 6, 7):
        paged = all_events(admin, limit=limit, agent=alice.id)
        assert [e["id"] for e in paged] == [e["id"] for e in whole], limit
    # A page that ends exactly at the last event says there is no more.
    assert page(admin, agent=alice.id, limit=7)["nextCursor"] is None
    assert page(admin, agent=alice.id, limit=6)["nextCursor"] is not None


def test_paging_is_stable_while_events_arrive(
    server: Server, admin: Agent, alice: Agent, bob: Agent
) -> None:
    make_history(server, alice, bob)
    snapshot = [e["id"] for e in page(admin, agent=alice.id, limit=200)["events"]]
    first = page(admin, agent=alice.id, limit=3)
    seen = [e["id"] for e in first["events"]]
    # New events arrive between pages: they are newer than the cursor and not returned.
    room = server.new_room(alice)
    assert alice.post(f"/api/v1/rooms/{room['id']}/messages", {"body": "late"}).status_code == 201
    cursor = first["nextCursor"]
    for _ in range(MAX_PAGES):
        if cursor is None:
            break
        body = page(admin, agent=alice.id, limit=3, cursor=cursor)
        seen.extend(e["id"] for e in body["events"])
        cursor = body["nextCursor"]
    assert cursor is None
    assert seen == snapshot
    # room-created and message-sent arrived meanwhile, newer than everything paged.
    now = [e["id"] for e in page(admin, agent=alice.id, limit=200)["events"]]
    assert now[2:] == snapshot
    assert len(now) == len(snapshot) + 2


def test_paging_whole_log_matches_database(server: Server, admin: Agent) -> None:
    stored = query(server.database_url, "SELECT count(*) FROM audit_events")[0][0]
    events = all_events(admin, limit=200)
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids))
    # Nothing else writes to this server while the test runs; the read itself logs nothing.
    assert len(ids) == stored
    times = [created(e) for e in events]
    assert times == sorted(times, reverse=True)
    assert events[-1]["type"] in ("agent-created", "token-issued")  # the CLI's first admin


def test_paging_with_type_filter(server: Server, admin: Agent, alice: Agent, bob: Agent) -> None:
    make_history(server, alice, bob)
    paged = all_events(admin, limit=1, type="message-sent", agent=alice.id)
    assert len(paged) == 3
    assert len({e["id"] for e in paged}) == 3
    assert {e["type"] for e in paged} == {"message-sent"}


def test_default_page_is_the_newest(server: Server, admin: Agent) -> None:
    server.new_agent()
    default = page(admin)["events"]
    assert default
    assert default == page(admin, limit=200)["events"][: len(default)]


@pytest.mark.parametrize(
    "limit", ["0", "201", "abc", "-1", "1.5", "", "1e2", "99999999999999999999"]
)
def test_invalid_limit(server: Server, admin: Agent, limit: str) -> None:
    r = admin.get("/api/v1/audit-events", params={"limit": limit})
    assert_error(r, 400, "invalid_request")
    assert "limit" in r.json()["error"]["message"]


@pytest.mark.parametrize("limit", [1, 200])
def test_limit_bounds_accepted(server: Server, admin: Agent, limit: int) -> None:
    server.new_agent()  # at least two events exist
    events = page(admin, limit=limit)["events"]
    assert 1 <= len(events) <= limit
    if limit == 1:
        assert len(events) == 1


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("not a cursor!", id="garbage"),
        pytest.param("%%%%", id="symbols"),
        pytest.param("x" * 129, id="too-long"),
        pytest.param(_b64("m1:5"), id="messages-cursor"),
        pytest.param(_b64("a1:"), id="empty-position"),
        pytest.param(_b64("a1:not-a-uuid"), id="bad-position"),
        pytest.param(_b64("nope"), id="no-tag"),
        pytest.param("AAAA", id="zero-bytes"),
        pytest.param(str(uuid.uuid4()), id="raw-uuid"),
    ],
)
def test_invalid_cursor(server: Server, admin: Agent, cursor: str) -> None:
    r = admin.get("/api/v1/audit-events", params={"cursor": cursor})
    assert_error(r, 400, "invalid_request")
    assert "cursor" in r.json()["error"]["message"]


def test_cursor_from_another_list_is_refused(server: Server, alice: Agent, admin: Agent) -> None:
    room = server.new_room(alice)
    for i in range(3):
        assert (
            alice.post(f"/api/v1/rooms/{room['id']}/messages", {"body": str(i)}).status_code == 201
        )
    r = alice.get(f"/api/v1/rooms/{room['id']}/messages", params={"limit": 1})
    assert r.status_code == 200, r.text
    cursor = r.json()["nextCursor"]
    assert cursor
    r = admin.get("/api/v1/audit-events", params={"cursor": cursor})
    assert_error(r, 400, "invalid_request")


# --- No secrets -----------------------------------------------------------------------------------


def test_payloads_hold_no_secrets(server: Server, admin: Agent, alice: Agent, bob: Agent) -> None:
    make_history(server, alice, bob)
    r = admin.post(f"/api/v1/agents/{alice.name}/tokens", {})
    assert r.status_code == 201, r.text
    extra_token = r.json()["token"]
    extra_jwt = server.api.login(extra_token)
    assert server.api.session(random_token(alice.token[:10])).status_code == 401
    assert server.api.session(random_token()).status_code == 401
    assert alice.delete(f"/api/v1/tokens/{r.json()['prefix']}").status_code == 204
    secrets_ = [admin.token, alice.token, bob.token, extra_token]
    jwts = [admin.jwt, alice.jwt, bob.jwt, extra_jwt]

    def check(text: str) -> None:
        assert not FULL_TOKEN_RE.search(text), FULL_TOKEN_RE.search(text)
        assert not JWT_RE.search(text), JWT_RE.search(text)
        assert "$argon2" not in text
        for secret in secrets_:
            assert secret not in text
            assert secret[11:] not in text
        for token in jwts:
            assert token not in text
            assert token.rsplit(".", 1)[1] not in text  # not even the signature

    # Through the API: every event, every field.
    events = all_events(admin, limit=200)
    assert len(events) > 10
    check(json.dumps(events))
    # And in the table itself.
    rows = query(server.database_url, "SELECT id, type, agent_id, payload FROM audit_events")
    assert len(rows) >= len(events)
    check(repr(rows))
