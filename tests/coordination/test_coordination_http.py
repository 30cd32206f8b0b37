"""Coordination over REST, on both backends: mentions and the inbox, direct messages,
threads and acknowledgements; each refusal stores nothing."""

from __future__ import annotations

from typing import Any

from tests.databases import query
from tests.support import Agent, Server, assert_error, uniq


def count(server: Server, sql: str, *args: Any) -> int:
    return int(query(server.database_url, sql, *args)[0][0])


def stored(server: Server) -> tuple[int, int, int]:
    """How many messages, inbox items and asked acknowledgements exist."""
    return (
        count(server, "SELECT count(*) FROM messages"),
        count(server, "SELECT count(*) FROM inbox_items"),
        count(server, "SELECT count(*) FROM message_acks"),
    )


def send(agent: Agent, room: str, body: str, **extra: Any) -> dict[str, Any]:
    r = agent.post(f"/api/v1/rooms/{room}/messages", {"body": body, **extra})
    assert r.status_code == 201, r.text
    message: dict[str, Any] = r.json()
    return message


def inbox(agent: Agent, **params: Any) -> dict[str, Any]:
    r = agent.get("/api/v1/inbox", params=params)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page


def test_a_mention_of_a_member_lands_in_its_inbox(server: Server) -> None:
    alice, bob, carol = server.new_agent(), server.new_agent(), server.new_agent()
    room = server.new_room(alice, bob)["slug"]
    msg = send(alice, room, f"@{bob.name} please look, cc @{carol.name} and me@example.com")
    assert msg["mentions"] == [bob.id]
    assert msg["ignoredMentions"] == [carol.name]  # not a member: kept as text, said so
    assert msg["replyTo"] is None
    assert msg["acks"] == []
    page = inbox(bob)
    assert [(i["reasons"], i["message"]["seq"], i["roomSlug"]) for i in page["items"]] == [
        (["mention"], msg["seq"], room)
    ]
    assert page["items"][0]["unread"] is True
    assert page["unread"] == 1
    assert "ignoredMentions" not in page["items"][0]["message"]
    assert inbox(carol)["items"] == []
    assert inbox(alice)["items"] == []  # one's own messages never land in one's inbox
    history = alice.get(f"/api/v1/rooms/{room}/messages").json()["messages"]
    assert history[0]["mentions"] == [bob.id]


def test_inbox_pages_and_the_unread_state_advances(server: Server) -> None:
    alice, bob = server.new_agent(), server.new_agent()
    room = server.new_room(alice, bob)["slug"]
    seqs = [send(alice, room, f"@{bob.name} item {i}")["seq"] for i in range(5)]
    send(alice, room, "no mention here")
    first = inbox(bob, limit=2)
    assert [i["message"]["seq"] for i in first["items"]] == seqs[:2]
    assert first["unread"] == 5
    assert first["nextCursor"]
    newest = inbox(bob, limit=2, newest="true")
    assert [i["message"]["seq"] for i in newest["items"]] == seqs[3:]
    assert newest["nextCursor"] is None
    both = bob.get("/api/v1/inbox", params={"newest": "true", "cursor": first["nextCursor"]})
    assert_error(both, 400, "invalid_request")
    rest = inbox(bob, limit=10, cursor=first["nextCursor"])
    assert [i["message"]["seq"] for i in rest["items"]] == seqs[2:]
    assert rest["nextCursor"] is None

    r = bob.post("/api/v1/inbox/read", {"upTo": first["items"][1]["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["unread"] == 3
    unread = inbox(bob, unread="true")
    assert [i["message"]["seq"] for i in unread["items"]] == seqs[2:]
    assert all(i["unread"] for i in unread["items"])
    assert [i["unread"] for i in inbox(bob)["items"]] == [False, False, True, True, True]
    # Never backwards: marking an older item changes nothing.
    r = bob.post("/api/v1/inbox/read", {"upTo": first["items"][0]["id"]})
    assert r.json()["unread"] == 3
    # Someone else's item, or no item at all: 404, nothing moves.
    assert_error(
        alice.post("/api/v1/inbox/read", {"upTo": unread["items"][0]["id"]}), 404, "not_found"
    )
    assert_error(bob.post("/api/v1/inbox/read", {"upTo": "nope"}), 404, "not_found")
    assert_error(bob.get("/api/v1/inbox", params={"cursor": "garbage"}), 400, "invalid_request")
    assert inbox(bob)["unread"] == 3


def test_inbox_hides_rooms_the_agent_left(server: Server) -> None:
    alice, bob = server.new_agent(), server.new_agent()
    room = server.new_room(alice, bob)["slug"]
    send(alice, room, f"hi @{bob.name}")
    assert len(inbox(bob)["items"]) == 1
    assert bob.delete(f"/api/v1/rooms/{room}/members/{bob.name}").status_code == 204
    page = inbox(bob)
    assert page["items"] == []
    assert page["unread"] == 0


def test_direct_messages(server: Server) -> None:
    alice, bob, carol = server.new_agent(), server.new_agent(), server.new_agent()
    r = alice.post(f"/api/v1/direct/{bob.name}/messages", {"body": "just between us"})
    assert r.status_code == 201, r.text
    first = r.json()
    r = bob.post(f"/api/v1/direct/{alice.id}/messages", {"body": "agreed", "clientMsgId": "k1"})
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["roomId"] == first["roomId"]
    assert answer["seq"] == 2
    again = bob.post(
        f"/api/v1/direct/{alice.name}/messages", {"body": "agreed", "clientMsgId": "k1"}
    )
    assert again.status_code == 200
    assert again.json()["id"] == answer["id"]

    rooms = {r["id"]: r for r in bob.get("/api/v1/rooms").json()["rooms"]}
    dm = rooms[first["roomId"]]
    assert dm["kind"] == "direct"
    assert dm["slug"].startswith("dm-")
    members = {
        m["name"] for m in alice.get(f"/api/v1/rooms/{dm['slug']}/members").json()["members"]
    }
    assert members == {alice.name, bob.name}
    assert [i["reasons"] for i in inbox(bob)["items"]] == [["direct"]]
    assert [i["reasons"] for i in inbox(alice)["items"]] == [["direct"]]

    # Closed: no one is added, not even by an admin; outsiders and admins cannot read it.
    assert_error(
        alice.post(f"/api/v1/rooms/{dm['slug']}/members", {"agent": carol.name}), 403, "forbidden"
    )
    admin = server.admin
    assert_error(
        admin.post(f"/api/v1/rooms/{dm['slug']}/members", {"agent": carol.name}), 403, "forbidden"
    )
    assert_error(admin.get(f"/api/v1/rooms/{dm['slug']}/messages"), 403, "forbidden")
    assert_error(carol.get(f"/api/v1/rooms/{dm['slug']}/messages"), 403, "forbidden")
    assert_error(admin.delete(f"/api/v1/rooms/{dm['slug']}/members/{bob.name}"), 403, "forbidden")
    all_rooms = admin.get("/api/v1/rooms", params={"all": "true"}).json()["rooms"]
    assert dm["id"] not in {r["id"] for r in all_rooms}
    # …but the audit log has it.
    events = admin.get("/api/v1/audit-events", params={"type": "room-created", "agent": alice.name})
    payloads = [e["payload"] for e in events.json()["events"]]
    assert {
        "roomId": dm["id"],
        "slug": dm["slug"],
        "kind": "direct",
        "members": [alice.id, bob.id],
    } in payloads


def test_bad_direct_messages_store_nothing(server: Server) -> None:
    alice = server.new_agent()
    before = stored(server)
    rooms_before = count(server, "SELECT count(*) FROM rooms")
    assert_error(
        alice.post(f"/api/v1/direct/{alice.name}/messages", {"body": "me"}), 400, "invalid_request"
    )
    assert_error(
        alice.post(f"/api/v1/direct/{uniq('ghost')}/messages", {"body": "x"}), 404, "not_found"
    )
    bob = server.new_agent()
    big = "x" * 70_000
    assert_error(
        alice.post(f"/api/v1/direct/{bob.name}/messages", {"body": big}), 413, "payload_too_large"
    )
    assert_error(
        alice.post(f"/api/v1/direct/{bob.name}/messages", {"body": ""}), 400, "invalid_request"
    )
    r = alice.client.request("POST", f"/api/v1/direct/{bob.name}/messages", json={"body": "x"})
    assert_error(r, 401, "unauthorized")
    assert stored(server) == before
    assert count(server, "SELECT count(*) FROM rooms") == rooms_before


def test_threads(server: Server) -> None:
    alice, bob = server.new_agent(), server.new_agent()
    room = server.new_room(alice, bob)["slug"]
    root = send(alice, room, "plan: ship on friday?")
    send(bob, room, "unrelated")
    r1 = send(bob, room, "yes", replyTo=root["seq"])
    r2 = send(alice, room, "why yes?", replyTo=r1["seq"])
    assert r1["replyTo"] == root["seq"]
    assert r2["replyTo"] == r1["seq"]
    for seq in (root["seq"], r2["seq"]):
        r = bob.get(f"/api/v1/rooms/{room}/messages/{seq}/thread")
        assert r.status_code == 200, r.text
        thread = r.json()
        assert thread["root"]["seq"] == root["seq"]
        assert [m["seq"] for m in thread["replies"]] == [r1["seq"], r2["seq"]]
        assert thread["more"] is False
    page = bob.get(
        f"/api/v1/rooms/{room}/messages/{root['seq']}/thread", params={"limit": 1}
    ).json()
    assert [m["seq"] for m in page["replies"]] == [r1["seq"]]
    assert page["more"] is True
    # The author of the message answered hears of it.
    assert [i["reasons"] for i in inbox(alice)["items"]] == [["reply"]]
    assert [i["reasons"] for i in inbox(bob)["items"]] == [["reply"]]

    before = stored(server)
    r = bob.post(f"/api/v1/rooms/{room}/messages", {"body": "x", "replyTo": 999})
    assert "no message #999" in assert_error(r, 400, "invalid_request")
    assert_error(
        bob.post(f"/api/v1/rooms/{room}/messages", {"body": "x", "replyTo": 0}),
        400,
        "invalid_request",
    )
    assert_error(
        bob.post(f"/api/v1/rooms/{room}/messages", {"body": "x", "replyTo": 2**64}),
        400,
        "invalid_request",
    )
    assert stored(server) == before
    assert_error(bob.get(f"/api/v1/rooms/{room}/messages/999/thread"), 404, "not_found")
    outsider = server.new_agent()
    assert_error(outsider.get(f"/api/v1/rooms/{room}/messages/1/thread"), 403, "forbidden")


def test_a_reply_in_another_room_is_refused(server: Server) -> None:
    alice = server.new_agent()
    one = server.new_room(alice)["slug"]
    two = server.new_room(alice)["slug"]
    send(alice, one, "a")
    send(alice, one, "b")
    r = alice.post(f"/api/v1/rooms/{two}/messages", {"body": "x", "replyTo": 2})
    assert_error(r, 400, "invalid_request")


def test_acknowledgements(server: Server) -> None:
    alice, bob, carol = server.new_agent(), server.new_agent(), server.new_agent()
    room = server.new_room(alice, bob, carol)["slug"]
    ask = send(alice, room, "deploy it, then tell me", ackFrom=[bob.name, carol.id])
    assert [(a["agentId"], a["status"]) for a in ask["acks"]] == [(bob.id, None), (carol.id, None)]
    pending = bob.get("/api/v1/acks/pending").json()["pending"]
    assert [(p["roomSlug"], p["message"]["seq"]) for p in pending] == [(room, ask["seq"])]
    assert [i["reasons"] for i in inbox(bob)["items"]] == [["ack"]]

    url = f"/api/v1/rooms/{room}/messages/{ask['seq']}/acks"
    r = bob.post(url, {"status": "seen"})
    assert r.status_code == 200, r.text
    r = bob.post(url, {"status": "done", "note": "deployed v2"})
    assert r.status_code == 200, r.text
    ack = r.json()
    assert (ack["agentId"], ack["status"], ack["note"], ack["seq"]) == (
        bob.id,
        "done",
        "deployed v2",
        ask["seq"],
    )
    assert bob.get("/api/v1/acks/pending").json()["pending"] == []
    assert len(carol.get("/api/v1/acks/pending").json()["pending"]) == 1
    shown = alice.get(f"/api/v1/rooms/{room}/messages", params={"afterSeq": ask["seq"] - 1}).json()
    acks = {a["agentId"]: (a["status"], a["note"]) for a in shown["messages"][0]["acks"]}
    assert acks == {bob.id: ("done", "deployed v2"), carol.id: (None, None)}

    before = stored(server)
    audits = count(server, "SELECT count(*) FROM audit_events WHERE type = 'message-acked'")
    # The sender was not asked; a message that asked no one; a seq that does not exist.
    assert "did not ask you" in assert_error(alice.post(url, {"status": "done"}), 403, "forbidden")
    plain = send(alice, room, "no ack asked")
    assert_error(
        bob.post(f"/api/v1/rooms/{room}/messages/{plain['seq']}/acks", {"status": "done"}),
        403,
        "forbidden",
    )
    assert_error(
        bob.post(f"/api/v1/rooms/{room}/messages/9999/acks", {"status": "done"}), 404, "not_found"
    )
    assert_error(bob.post(url, {"status": "maybe"}), 400, "invalid_request")
    assert_error(bob.post(url, {"status": "done", "note": "n" * 2001}), 400, "invalid_request")
    outsider = server.new_agent()
    assert_error(outsider.post(url, {"status": "done"}), 403, "forbidden")
    r = bob.client.request("POST", url, json={"status": "done"})
    assert_error(r, 401, "unauthorized")
    assert count(server, "SELECT count(*) FROM audit_events WHERE type = 'message-acked'") == audits
    assert stored(server)[0] == before[0] + 1  # only `plain`


def test_bad_ack_requests_store_nothing(server: Server) -> None:
    alice, bob = server.new_agent(), server.new_agent()
    outsider = server.new_agent()
    room = server.new_room(alice, bob)["slug"]
    before = stored(server)
    post = lambda extra: alice.post(f"/api/v1/rooms/{room}/messages", {"body": "x", **extra})  # noqa: E731
    assert "not a member" in assert_error(
        post({"ackFrom": [outsider.name]}), 400, "invalid_request"
    )
    assert_error(post({"ackFrom": [alice.name]}), 400, "invalid_request")
    assert_error(post({"ackFrom": [uniq("ghost")]}), 404, "not_found")
    assert_error(post({"ackFrom": [bob.name] * 21}), 400, "invalid_request")
    assert_error(post({"ackFrom": "bob"}), 400, "invalid_request")
    assert stored(server) == before


def test_coordinating_sends_are_idempotent(server: Server) -> None:
    alice, bob = server.new_agent(), server.new_agent()
    room = server.new_room(alice, bob)["slug"]
    root = send(alice, room, "root")
    payload = {
        "body": f"@{bob.name} ok?",
        "replyTo": root["seq"],
        "ackFrom": [bob.name],
        "clientMsgId": "c1",
    }
    first = alice.post(f"/api/v1/rooms/{room}/messages", payload)
    before = stored(server)
    again = alice.post(f"/api/v1/rooms/{room}/messages", payload)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["replyTo"] == root["seq"]
    assert again.json()["mentions"] == [bob.id]
    assert stored(server) == before
    assert [i["reasons"] for i in inbox(bob)["items"]] == [["mention", "ack"]]


def test_new_endpoints_refuse_without_a_session(server: Server) -> None:
    api = server.api
    for method, path in [
        ("GET", "/api/v1/inbox"),
        ("POST", "/api/v1/inbox/read"),
        ("GET", "/api/v1/acks/pending"),
        ("GET", "/api/v1/rooms/general/messages/1/thread"),
        ("POST", "/api/v1/rooms/general/messages/1/acks"),
        ("POST", "/api/v1/direct/someone/messages"),
    ]:
        assert_error(api.request(method, path, json={}), 401, "unauthorized")
