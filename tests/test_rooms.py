"""Rooms and members over real HTTP: shapes, membership, and who may see or change what."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.databases import execute, query
from tests.support import Agent, Server, assert_error, uniq

ROOM_KEYS = {"id", "slug", "name", "createdBy", "createdAt", "kind"}  # kind: "Coordination"
AGENT_KEYS = {"id", "name", "displayName", "role", "createdAt"}
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and str(uuid.UUID(value)) == value


def count(server: Server, sql: str, *args: Any) -> int:
    return int(query(server.database_url, sql, *args)[0][0])


def rooms_with_slug(server: Server, slug: str) -> int:
    return count(server, "SELECT count(*) FROM rooms WHERE slug = $1", slug)


def member_rows(server: Server, slug: str) -> int:
    return count(
        server,
        "SELECT count(*) FROM room_members m JOIN rooms r ON r.id = m.room_id WHERE r.slug = $1",
        slug,
    )


def messages_in(server: Server, slug: str) -> int:
    return count(
        server,
        "SELECT count(*) FROM messages m JOIN rooms r ON r.id = m.room_id WHERE r.slug = $1",
        slug,
    )


def member_ids(agent: Agent, room: str) -> list[str]:
    """The room's member ids, sorted (the contract does not order the list)."""
    r = agent.get(f"/api/v1/rooms/{room}/members")
    assert r.status_code == 200, r.text
    return sorted(m["id"] for m in r.json()["members"])


def room_slugs(agent: Agent, query_string: str = "") -> list[str]:
    r = agent.get(f"/api/v1/rooms{query_string}")
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"rooms"}
    return [room["slug"] for room in r.json()["rooms"]]


def missing_room_refs() -> list[str]:
    return [uniq("nowhere"), str(uuid.uuid4())]


# --- create -------------------------------------------------------------------------------


def test_create_room_returns_the_room_and_makes_the_creator_a_member(
    server: Server, alice: Agent
) -> None:
    slug = uniq("room")
    r = alice.post("/api/v1/rooms", {"slug": slug, "name": "Planning Room"})
    assert r.status_code == 201, r.text
    room = r.json()
    assert set(room) == ROOM_KEYS
    assert is_uuid(room["id"])
    assert room["slug"] == slug
    assert room["name"] == "Planning Room"
    assert room["createdBy"] == alice.id
    assert RFC3339_Z.match(room["createdAt"]), room["createdAt"]

    assert member_ids(alice, slug) == [alice.id]
    assert member_rows(server, slug) == 1
    assert rooms_with_slug(server, slug) == 1
    assert slug in room_slugs(alice)
    r = alice.get(f"/api/v1/rooms/{room['id']}")
    assert r.status_code == 200
    assert r.json() == room


def test_create_room_is_audited(server: Server, admin: Agent, alice: Agent) -> None:
    room = server.new_room(alice)
    r = admin.get("/api/v1/audit-events", params={"type": "room-created", "agent": alice.id})
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    assert len(events) == 1
    assert events[0]["agentId"] == alice.id
    assert room["id"] in events[0]["payload"].values()


def test_duplicate_slug_is_a_conflict_and_stores_nothing(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice)
    r = bob.post("/api/v1/rooms", {"slug": room["slug"], "name": "Another"})
    message = assert_error(r, 409, "conflict")
    assert room["slug"] in message
    assert rooms_with_slug(server, room["slug"]) == 1
    assert room_slugs(bob) == []
    r = alice.get(f"/api/v1/rooms/{room['slug']}")
    assert r.json()["name"] == room["name"]
    assert member_ids(alice, room["slug"]) == [alice.id]


@pytest.mark.parametrize(
    "slug",
    [
        "",
        "a",
        "Upper-Case",
        "-leading-dash",
        "has space",
        "under_score",
        "dot.ted",
        "slash/ed",
        "x" * 64,
        "x" * 10_000,
        "caf\u00e9",
        "trailing-newline\n",
        "nul\x00byte",
    ],
)
def test_bad_slug_is_refused(server: Server, alice: Agent, slug: str) -> None:
    before = count(server, "SELECT count(*) FROM rooms")
    r = alice.post("/api/v1/rooms", {"slug": slug, "name": "Bad"})
    message = assert_error(r, 400, "invalid_request")
    assert "slug" in message
    assert count(server, "SELECT count(*) FROM rooms") == before


@pytest.mark.parametrize("slug_len", [2, 63])
def test_slug_length_bounds_are_accepted(server: Server, alice: Agent, slug_len: int) -> None:
    slug = uuid.uuid4().hex[:slug_len] if slug_len <= 32 else uniq("r").ljust(slug_len, "z")
    assert len(slug) == slug_len
    r = alice.post("/api/v1/rooms", {"slug": slug, "name": "Edge"})
    assert r.status_code == 201, r.text
    assert r.json()["slug"] == slug
    assert rooms_with_slug(server, slug) == 1


def test_room_name_is_required_and_bounded(server: Server, alice: Agent) -> None:
    slug = uniq("room")
    for body, field in [
        ({"slug": slug}, "name"),
        ({"slug": slug, "name": ""}, "name"),
        ({"slug": slug, "name": "n" * 201}, "name"),
        ({"slug": slug, "name": "n" * 10_000}, "name"),
        ({"name": "No slug"}, "slug"),
    ]:
        r = alice.post("/api/v1/rooms", body)
        assert field in assert_error(r, 400, "invalid_request")
    assert rooms_with_slug(server, slug) == 0
    r = alice.post("/api/v1/rooms", {"slug": slug, "name": "n" * 200})
    assert r.status_code == 201, r.text


# --- list ---------------------------------------------------------------------------------


def test_list_rooms_shows_only_the_callers_rooms(
    server: Server, admin: Agent, alice: Agent, bob: Agent
) -> None:
    mine = server.new_room(alice)
    theirs = server.new_room(bob)
    admins = server.new_room(admin)

    r = alice.get("/api/v1/rooms")
    assert r.status_code == 200
    assert r.json() == {"rooms": [mine]}
    assert room_slugs(bob) == [theirs["slug"]]
    assert room_slugs(alice, "?all=false") == [mine["slug"]]

    r = bob.post(f"/api/v1/rooms/{theirs['slug']}/members", {"agent": alice.name})
    assert r.status_code == 201, r.text
    assert sorted(room_slugs(alice)) == sorted([mine["slug"], theirs["slug"]])

    admin_own = room_slugs(admin)
    assert admins["slug"] in admin_own
    assert mine["slug"] not in admin_own
    assert theirs["slug"] not in admin_own


def test_all_rooms_is_for_admins_only(
    server: Server, admin: Agent, alice: Agent, bob: Agent
) -> None:
    mine = server.new_room(alice)
    theirs = server.new_room(bob)
    r = admin.get("/api/v1/rooms", params={"all": "true"})
    assert r.status_code == 200, r.text
    every = {room["slug"]: room for room in r.json()["rooms"]}
    assert every[mine["slug"]] == mine
    assert every[theirs["slug"]] == theirs
    # Direct rooms are not listed (an admin sees them in the audit log only), and an earlier test
    # on this server may have made one.
    assert len(every) == count(server, "SELECT count(*) FROM rooms WHERE kind <> 'direct'")

    r = alice.get("/api/v1/rooms", params={"all": "true"})
    assert_error(r, 403, "forbidden")


def test_list_rooms_rejects_a_non_boolean_all(alice: Agent) -> None:
    r = alice.get("/api/v1/rooms", params={"all": "maybe"})
    assert "all" in assert_error(r, 400, "invalid_request")


# --- one room -----------------------------------------------------------------------------


def test_get_room_by_id_and_by_slug(server: Server, alice: Agent) -> None:
    room = server.new_room(alice)
    by_id = alice.get(f"/api/v1/rooms/{room['id']}")
    by_slug = alice.get(f"/api/v1/rooms/{room['slug']}")
    assert by_id.status_code == 200
    assert by_slug.status_code == 200
    assert by_id.json() == room
    assert by_slug.json() == room


@pytest.mark.parametrize("spelling", [str, str.upper, lambda u: "{" + u + "}"])
def test_a_slug_spelled_like_an_id_is_refused(server: Server, alice: Agent, spelling: Any) -> None:
    other = server.new_room(alice)
    before = count(server, "SELECT count(*) FROM rooms")
    for value in (other["id"], str(uuid.uuid4())):
        r = alice.post("/api/v1/rooms", {"slug": spelling(value), "name": "Squatter"})
        message = assert_error(r, 400, "invalid_request")
        assert "'slug'" in message, message
    assert count(server, "SELECT count(*) FROM rooms") == before
    # 32 hex digits without dashes are not read as an id anywhere: a slug like any other.
    assert server.new_room(alice, slug=uuid.uuid4().hex)["slug"]


def test_id_wins_over_a_slug_equal_to_another_rooms_id(server: Server, alice: Agent) -> None:
    first = server.new_room(alice)
    # Such a slug can no longer be created, but a database from before may hold one.
    second = server.new_room(alice)
    execute(
        server.database_url,
        "UPDATE rooms SET slug = $1 WHERE slug = $2",
        first["id"],
        second["slug"],
    )
    second["slug"] = first["id"]

    r = alice.get(f"/api/v1/rooms/{first['id']}")
    assert r.status_code == 200
    assert r.json() == first
    r = alice.get(f"/api/v1/rooms/{second['id']}")
    assert r.json() == second

    r = alice.post(f"/api/v1/rooms/{first['id']}/messages", {"body": "to the first room"})
    assert r.status_code == 201, r.text
    assert r.json()["roomId"] == first["id"]
    assert messages_in(server, first["slug"]) == 1
    assert messages_in(server, second["slug"]) == 0


def test_members_list_has_agent_objects(
    server: Server, admin: Agent, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice, bob)
    r = alice.get(f"/api/v1/rooms/{room['slug']}/members")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"members"}
    by_id = {m["id"]: m for m in body["members"]}
    assert set(by_id) == {alice.id, bob.id}
    for member in body["members"]:
        assert set(member) == AGENT_KEYS
        assert member == admin.get(f"/api/v1/agents/{member['id']}").json()
    assert by_id[bob.id]["name"] == bob.name
    assert by_id[bob.id]["role"] == "agent"


# --- add member ---------------------------------------------------------------------------


def test_add_member_returns_the_agent_then_200_when_repeated(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice)
    expected = alice.get(f"/api/v1/agents/{bob.id}").json()

    r = alice.post(f"/api/v1/rooms/{room['slug']}/members", {"agent": bob.name})
    assert r.status_code == 201, r.text
    assert r.json() == expected

    r = alice.post(f"/api/v1/rooms/{room['slug']}/members", {"agent": bob.name})
    assert r.status_code == 200, r.text
    assert r.json() == expected
    r = alice.post(f"/api/v1/rooms/{room['id']}/members", {"agent": bob.id})
    assert r.status_code == 200, r.text
    assert r.json() == expected

    assert member_ids(alice, room["slug"]) == sorted([alice.id, bob.id])
    assert member_rows(server, room["slug"]) == 2
    r = bob.get(f"/api/v1/rooms/{room['slug']}")
    assert r.status_code == 200


def test_add_member_by_id(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice)
    r = alice.post(f"/api/v1/rooms/{room['id']}/members", {"agent": bob.id})
    assert r.status_code == 201, r.text
    assert r.json()["id"] == bob.id
    assert r.json()["name"] == bob.name
    assert bob.id in member_ids(alice, room["id"])


def test_add_member_audited(server: Server, admin: Agent, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)
    r = admin.get("/api/v1/audit-events", params={"type": "member-added", "agent": alice.id})
    events = r.json()["events"]
    assert len(events) == 1
    assert events[0]["payload"]["roomId"] == room["id"]
    assert events[0]["payload"]["agentId"] == bob.id


@pytest.mark.parametrize("ref", ["no-such-agent-here", "00000000-0000-4000-8000-000000000000"])
def test_add_unknown_agent_is_404(server: Server, alice: Agent, ref: str) -> None:
    room = server.new_room(alice)
    r = alice.post(f"/api/v1/rooms/{room['slug']}/members", {"agent": ref})
    assert_error(r, 404, "not_found")
    assert member_rows(server, room["slug"]) == 1


def test_a_member_may_add_others(server: Server, alice: Agent, bob: Agent) -> None:
    carol = server.new_agent()
    room = server.new_room(alice, bob)
    r = bob.post(f"/api/v1/rooms/{room['slug']}/members", {"agent": carol.name})
    assert r.status_code == 201, r.text
    assert r.json()["id"] == carol.id
    assert carol.get(f"/api/v1/rooms/{room['slug']}").status_code == 200


def test_admin_may_add_members_without_joining(
    server: Server, admin: Agent, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice)
    r = admin.post(f"/api/v1/rooms/{room['slug']}/members", {"agent": bob.name})
    assert r.status_code == 201, r.text
    assert member_ids(alice, room["slug"]) == sorted([alice.id, bob.id])
    assert room["slug"] not in room_slugs(admin)
    r = admin.post(f"/api/v1/rooms/{room['slug']}/members", {"agent": admin.name})
    assert r.status_code == 201, r.text
    assert room["slug"] in room_slugs(admin)


# --- remove member ------------------------------------------------------------------------


def test_an_agent_may_leave_by_removing_itself(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)
    r = bob.delete(f"/api/v1/rooms/{room['slug']}/members/{bob.name}")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert member_ids(alice, room["slug"]) == [alice.id]
    assert member_rows(server, room["slug"]) == 1
    assert_error(bob.get(f"/api/v1/rooms/{room['slug']}"), 403, "forbidden")
    assert room["slug"] not in room_slugs(bob)
    # Not a member any more: removing again is a 404.
    r = bob.delete(f"/api/v1/rooms/{room['slug']}/members/{bob.id}")
    assert_error(r, 404, "not_found")


def test_admin_may_remove_anyone(server: Server, admin: Agent, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)
    r = admin.delete(f"/api/v1/rooms/{room['id']}/members/{bob.id}")
    assert r.status_code == 204, r.text
    assert member_ids(alice, room["slug"]) == [alice.id]
    r = admin.delete(f"/api/v1/rooms/{room['slug']}/members/{alice.name}")
    assert r.status_code == 204, r.text
    assert member_rows(server, room["slug"]) == 0
    assert_error(alice.get(f"/api/v1/rooms/{room['slug']}"), 403, "forbidden")


def test_removal_is_audited(server: Server, admin: Agent, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)
    assert bob.delete(f"/api/v1/rooms/{room['slug']}/members/{bob.name}").status_code == 204
    r = admin.get("/api/v1/audit-events", params={"type": "member-removed", "agent": bob.id})
    events = r.json()["events"]
    assert len(events) == 1
    assert events[0]["payload"]["roomId"] == room["id"]
    assert events[0]["payload"]["agentId"] == bob.id


def test_another_agent_may_not_remove_a_member(server: Server, alice: Agent, bob: Agent) -> None:
    carol = server.new_agent()
    room = server.new_room(alice, bob)
    # Neither the room's creator, another member, nor an outsider may remove someone else.
    for actor in (alice, carol):
        r = actor.delete(f"/api/v1/rooms/{room['slug']}/members/{bob.name}")
        assert_error(r, 403, "forbidden")
    assert member_ids(alice, room["slug"]) == sorted([alice.id, bob.id])
    assert member_rows(server, room["slug"]) == 2


def test_remove_non_member_or_unknown_is_404(
    server: Server, admin: Agent, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice)
    r = admin.delete(f"/api/v1/rooms/{room['slug']}/members/{bob.name}")
    assert_error(r, 404, "not_found")
    r = bob.delete(f"/api/v1/rooms/{room['slug']}/members/{bob.name}")
    assert_error(r, 404, "not_found")
    r = admin.delete(f"/api/v1/rooms/{room['slug']}/members/{uniq('ghost')}")
    assert_error(r, 404, "not_found")
    for ref in missing_room_refs():
        r = admin.delete(f"/api/v1/rooms/{ref}/members/{alice.name}")
        assert_error(r, 404, "not_found")
        r = alice.delete(f"/api/v1/rooms/{ref}/members/{alice.name}")
        assert_error(r, 404, "not_found")
    assert member_ids(alice, room["slug"]) == [alice.id]


# --- the permission matrix ----------------------------------------------------------------

READS = [
    ("GET", "/api/v1/rooms/{room}"),
    ("GET", "/api/v1/rooms/{room}/members"),
    ("GET", "/api/v1/rooms/{room}/messages"),
]


def call(agent: Agent, method: str, path: str, room: str, body: Any = None) -> httpx.Response:
    url = path.format(room=room)
    return agent.get(url) if method == "GET" else agent.post(url, body)


@pytest.mark.parametrize(("method", "path"), READS)
def test_reads_member_admin_and_outsider(
    server: Server, admin: Agent, alice: Agent, bob: Agent, method: str, path: str
) -> None:
    room = server.new_room(alice)
    for ref in (room["id"], room["slug"]):
        assert call(alice, method, path, ref).status_code == 200
        assert call(admin, method, path, ref).status_code == 200
        message = assert_error(call(bob, method, path, ref), 403, "forbidden")
        assert room["slug"] in message
    for ref in missing_room_refs():
        for agent in (alice, admin, bob):
            assert_error(call(agent, method, path, ref), 404, "not_found")


def test_add_member_member_admin_and_outsider(
    server: Server, admin: Agent, alice: Agent, bob: Agent
) -> None:
    carol = server.new_agent()
    room = server.new_room(alice)
    path = "/api/v1/rooms/{room}/members"
    r = call(bob, "POST", path, room["slug"], {"agent": carol.name})
    assert_error(r, 403, "forbidden")
    r = call(bob, "POST", path, room["id"], {"agent": bob.name})
    assert_error(r, 403, "forbidden")
    assert member_rows(server, room["slug"]) == 1
    for ref in missing_room_refs():
        for agent in (alice, admin, bob):
            r = call(agent, "POST", path, ref, {"agent": carol.name})
            assert_error(r, 404, "not_found")
    assert call(admin, "POST", path, room["id"], {"agent": carol.name}).status_code == 201
    assert call(alice, "POST", path, room["slug"], {"agent": bob.id}).status_code == 201
    assert member_rows(server, room["slug"]) == 3


def test_admin_reads_any_room_but_sends_only_where_a_member(
    server: Server, admin: Agent, alice: Agent
) -> None:
    room = server.new_room(alice)
    sent = alice.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "hi"}).json()
    r = admin.get(f"/api/v1/rooms/{room['slug']}/messages")
    assert r.status_code == 200
    assert r.json()["messages"] == [sent]

    r = admin.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "from the admin"})
    assert_error(r, 403, "forbidden")
    r = admin.post(f"/api/v1/rooms/{room['id']}/messages", {"body": "x", "clientMsgId": "a-1"})
    assert_error(r, 403, "forbidden")
    assert messages_in(server, room["slug"]) == 1

    assert admin.post(f"/api/v1/rooms/{room['slug']}/members", {"agent": admin.id}).status_code == (
        201
    )
    r = admin.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "now a member"})
    assert r.status_code == 201, r.text
    assert r.json()["seq"] == 2


def test_outsider_cannot_send(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice)
    r = bob.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "let me in"})
    assert_error(r, 403, "forbidden")
    for ref in missing_room_refs():
        r = bob.post(f"/api/v1/rooms/{ref}/messages", {"body": "anyone?"})
        assert_error(r, 404, "not_found")
    assert messages_in(server, room["slug"]) == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/rooms"),
        ("GET", "/api/v1/rooms"),
        ("GET", "/api/v1/rooms/{room}"),
        ("GET", "/api/v1/rooms/{room}/members"),
        ("POST", "/api/v1/rooms/{room}/members"),
        ("DELETE", "/api/v1/rooms/{room}/members/{agent}"),
        ("GET", "/api/v1/rooms/{room}/messages"),
        ("POST", "/api/v1/rooms/{room}/messages"),
    ],
)
def test_rooms_need_a_session(server: Server, alice: Agent, method: str, path: str) -> None:
    room = server.new_room(alice)
    url = path.format(room=room["slug"], agent=alice.name)
    body = {"slug": uniq("room"), "name": "x", "agent": alice.name, "body": "x"}
    r = server.api.request(method, url, json=body if method == "POST" else None)
    assert_error(r, 401, "unauthorized")
    r = server.api.request(method, url, jwt=alice.token, json=body if method == "POST" else None)
    assert_error(r, 401, "unauthorized")
    assert member_ids(alice, room["slug"]) == [alice.id]
    assert messages_in(server, room["slug"]) == 0
