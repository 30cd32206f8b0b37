"""Claims over REST and Socket.IO, on both backends: exclusive and shared claims, the refusal
naming holder and expiry, renew, release, list, expiry by time, audit rows, `claim:changed`
events for the room's members only, bad input that stores nothing, and racing claimers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.databases import query
from tests.realtime.test_realtime import connected, next_event
from tests.support import Agent, Server, assert_error, parse_time, uniq

CLAIM_KEYS = {"roomId", "resource", "agentId", "agentName", "exclusive", "createdAt", "expiresAt"}
WAIT = 15.0  # seconds: the bound on any one expected event or condition


def claim(agent: Agent, room: str, resource: str, ttl: Any = 60, **extra: Any) -> httpx.Response:
    return agent.post(
        f"/api/v1/rooms/{room}/claims", {"resource": resource, "ttlSeconds": ttl, **extra}
    )


def claims_of(agent: Agent, room: str) -> list[dict[str, Any]]:
    r = agent.get(f"/api/v1/rooms/{room}/claims")
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["claims"]
    for c in found:
        assert set(c) == CLAIM_KEYS, c
    return found


def stored_claims(server: Server) -> int:
    return int(query(server.database_url, "SELECT count(*) FROM claims")[0][0])


def audits(server: Server, type_: str, resource: str) -> int:
    if server.backend == "sqlite":
        sql = (
            "SELECT count(*) FROM audit_events WHERE type = $1 "
            "AND json_extract(payload, '$.resource') = $2"
        )
    else:
        sql = "SELECT count(*) FROM audit_events WHERE type = $1 AND payload->>'resource' = $2"
    return int(query(server.database_url, sql, type_, resource)[0][0])


def until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT}s: {what}"
        time.sleep(0.1)


def test_exclusive_claim_is_refused_naming_the_holder_and_expiry(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice, bob)["slug"]
    r = claim(alice, room, "src/app.py", 120)
    assert r.status_code == 201, r.text
    made = r.json()
    assert set(made) == CLAIM_KEYS
    assert made["agentName"] == alice.name
    assert made["exclusive"] is True
    lasts = parse_time(made["expiresAt"]) - parse_time(made["createdAt"])
    assert 119 <= lasts.total_seconds() <= 121

    before = stored_claims(server)
    message = assert_error(claim(bob, room, "src/app.py", 60), 409, "conflict")
    assert alice.name in message, message
    assert made["expiresAt"] in message, message
    # A shared claim is refused too while an exclusive one is held; nothing is stored.
    assert_error(claim(bob, room, "src/app.py", 60, exclusive=False), 409, "conflict")
    assert stored_claims(server) == before
    assert [c["agentName"] for c in claims_of(bob, room)] == [alice.name]
    assert audits(server, "claim-acquired", "src/app.py") >= 1

    # Another resource, or the same name in another room, is free.
    assert claim(bob, room, "src/other.py").status_code == 201
    other = server.new_room(bob)["slug"]
    assert claim(bob, other, "src/app.py").status_code == 201


def test_shared_claims_coexist_and_exclude_an_exclusive_one(
    server: Server, alice: Agent, bob: Agent
) -> None:
    carol = server.new_agent()
    room = server.new_room(alice, bob, carol)["slug"]
    assert claim(alice, room, "task-42", exclusive=False).status_code == 201
    assert claim(bob, room, "task-42", exclusive=False).status_code == 201
    message = assert_error(claim(carol, room, "task-42"), 409, "conflict")
    assert "(shared)" in message, message
    assert "1 other agent" in message, message
    holders = {c["agentName"]: c["exclusive"] for c in claims_of(carol, room)}
    assert holders == {alice.name: False, bob.name: False}
    # The only holder may turn its shared claim exclusive; with a second holder it may not.
    assert_error(claim(alice, room, "task-42"), 409, "conflict")
    r = bob.delete(f"/api/v1/rooms/{room}/claims", params={"resource": "task-42"})
    assert r.status_code == 204, r.text
    r = claim(alice, room, "task-42", 30)
    assert r.status_code == 200, r.text  # held already: renewed, and now exclusive
    assert r.json()["exclusive"] is True
    assert audits(server, "claim-renewed", "task-42") == 1
    assert audits(server, "claim-released", "task-42") == 1


def test_renew_and_release(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)["slug"]
    resource = uniq("deploy")
    first = claim(alice, room, resource, 10).json()
    r = alice.post(f"/api/v1/rooms/{room}/claims/renew", {"resource": resource, "ttlSeconds": 300})
    assert r.status_code == 200, r.text
    assert parse_time(r.json()["expiresAt"]) > parse_time(first["expiresAt"])
    assert r.json()["createdAt"] == first["createdAt"]
    # Only the holder renews or releases.
    msg = assert_error(
        bob.post(f"/api/v1/rooms/{room}/claims/renew", {"resource": resource, "ttlSeconds": 5}),
        404,
        "not_found",
    )
    assert "you hold no claim" in msg
    assert_error(
        bob.delete(f"/api/v1/rooms/{room}/claims", params={"resource": resource}), 404, "not_found"
    )
    r = alice.delete(f"/api/v1/rooms/{room}/claims", params={"resource": resource})
    assert r.status_code == 204, r.text
    assert claims_of(bob, room) == []
    assert claim(bob, room, resource).status_code == 201
    assert audits(server, "claim-released", resource) == 1


def test_claims_expire_by_themselves(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)["slug"]
    resource = uniq("lock")
    assert claim(alice, room, resource, 1).status_code == 201
    until(lambda: claims_of(bob, room) == [], "the claim stops being listed")
    assert claim(bob, room, resource, 60).status_code == 201
    assert_error(
        alice.post(f"/api/v1/rooms/{room}/claims/renew", {"resource": resource, "ttlSeconds": 9}),
        404,
        "not_found",
    )
    until(lambda: audits(server, "claim-expired", resource) == 1, "the expiry is audited")


def test_bad_input_is_refused_and_stores_nothing(server: Server, alice: Agent) -> None:
    room = server.new_room(alice)["slug"]
    before = stored_claims(server)
    bad: list[dict[str, Any]] = [
        {"resource": "x", "ttlSeconds": 0},
        {"resource": "x", "ttlSeconds": 86_401},
        {"resource": "x", "ttlSeconds": -5},
        {"resource": "x", "ttlSeconds": "60"},
        {"resource": "x", "ttlSeconds": 1.5},
        {"resource": "x"},
        {"resource": "", "ttlSeconds": 60},
        {"resource": "x" * 257, "ttlSeconds": 60},
        {"resource": "a\x00b", "ttlSeconds": 60},
        {"resource": "a\x1b[2Jb", "ttlSeconds": 60},
        {"resource": ["x"], "ttlSeconds": 60},
        {"resource": "x", "ttlSeconds": 60, "exclusive": "yes"},
        {"ttlSeconds": 60},
    ]
    for body in bad:
        r = alice.post(f"/api/v1/rooms/{room}/claims", body)
        assert_error(r, 400, "invalid_request")
    r = alice.post(f"/api/v1/rooms/{room}/claims/renew", {"resource": "x", "ttlSeconds": 0})
    assert_error(r, 400, "invalid_request")
    r = alice.delete(f"/api/v1/rooms/{room}/claims", params={"resource": "x" * 257})
    assert_error(r, 400, "invalid_request")
    r = alice.delete(f"/api/v1/rooms/{room}/claims")
    assert_error(r, 400, "invalid_request")
    # An oversized request body is refused before it is read.
    r = alice.post(f"/api/v1/rooms/{room}/claims", {"resource": "x" * 2_000_000, "ttlSeconds": 5})
    assert_error(r, 413, "payload_too_large")
    assert stored_claims(server) == before


def test_who_may_claim_and_list(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice)["slug"]
    assert claim(alice, room, "shared-doc").status_code == 201
    base = f"/api/v1/rooms/{room}/claims"
    # Not authenticated.
    for method, path, kw in [
        ("GET", base, {}),
        ("POST", base, {"json": {"resource": "x", "ttlSeconds": 5}}),
        ("POST", base + "/renew", {"json": {"resource": "x", "ttlSeconds": 5}}),
        ("DELETE", base, {"params": {"resource": "x"}}),
    ]:
        assert_error(server.api.request(method, path, **kw), 401, "unauthorized")
        r = server.api.request(method, path, jwt="not.a.jwt", **kw)
        assert_error(r, 401, "unauthorized")
    # Not a member: 403 for every call; an unknown room: 404.
    assert_error(bob.get(base), 403, "forbidden")
    assert_error(claim(bob, room, "x"), 403, "forbidden")
    r = bob.post(base + "/renew", {"resource": "shared-doc", "ttlSeconds": 5})
    assert_error(r, 403, "forbidden")
    assert_error(bob.delete(base, params={"resource": "shared-doc"}), 403, "forbidden")
    assert_error(claim(bob, uniq("nowhere"), "x"), 404, "not_found")
    # An admin lists any room's claims, but claims only where it is a member.
    assert [c["resource"] for c in claims_of(server.admin, room)] == ["shared-doc"]
    assert_error(claim(server.admin, room, "x"), 403, "forbidden")
    assert [c["agentName"] for c in claims_of(alice, room)] == [alice.name]


async def test_racing_exclusive_claims_have_one_winner(server: Server, alice: Agent) -> None:
    agents = [server.new_agent() for _ in range(8)]
    room = server.new_room(alice, *agents)["slug"]
    resource = uniq("race")

    async def attempt(http: httpx.AsyncClient, agent: Agent) -> int:
        r = await http.post(
            f"/api/v1/rooms/{room}/claims",
            json={"resource": resource, "ttlSeconds": 60},
            headers={"Authorization": f"Bearer {agent.jwt}"},
        )
        return r.status_code

    async with httpx.AsyncClient(base_url=server.base_url, timeout=WAIT) as http:
        async with asyncio.timeout(60):
            statuses = await asyncio.gather(*(attempt(http, a) for a in agents))
    assert sorted(statuses) == [201] + [409] * (len(agents) - 1), statuses
    assert len(claims_of(alice, room)) == 1


async def test_members_see_claim_events_over_socketio(
    server: Server, alice: Agent, bob: Agent
) -> None:
    outsider = server.new_agent()
    room = server.new_room(alice, bob)
    own = server.new_room(outsider)
    resource = uniq("file")
    async with (
        connected(server, alice) as a,
        connected(server, bob) as b,
        connected(server, outsider) as o,
    ):
        ack = await a.call(
            "claim:acquire",
            {"roomId": room["slug"], "resource": resource, "ttlSeconds": 60},
            timeout=WAIT,
        )
        assert ack["ok"] is True, ack
        assert ack["created"] is True, ack
        assert set(ack["claim"]) == CLAIM_KEYS
        seen = await next_event(b, "claim:changed", WAIT)
        assert seen == {"roomId": room["id"], "action": "claimed", "claim": ack["claim"]}

        refused = await b.call(
            "claim:acquire",
            {"roomId": room["slug"], "resource": resource, "ttlSeconds": 60},
            timeout=WAIT,
        )
        assert refused["ok"] is False, refused
        assert refused["error"]["code"] == "conflict", refused
        assert alice.name in refused["error"]["message"]
        bad = await b.call(
            "claim:acquire",
            {"roomId": room["slug"], "resource": "x", "ttlSeconds": 0},
            timeout=WAIT,
        )
        assert bad["error"]["code"] == "invalid_request", bad

        renewed = await a.call(
            "claim:renew",
            {"roomId": room["slug"], "resource": resource, "ttlSeconds": 120},
            timeout=WAIT,
        )
        assert renewed["ok"] is True, renewed
        assert (await next_event(b, "claim:changed", WAIT))["action"] == "renewed"
        listed = await b.call("claim:list", {"roomId": room["slug"]}, timeout=WAIT)
        assert [c["resource"] for c in listed["claims"]] == [resource]
        released = await a.call(
            "claim:release", {"roomId": room["slug"], "resource": resource}, timeout=WAIT
        )
        assert released == {"ok": True}
        assert (await next_event(b, "claim:changed", WAIT))["action"] == "released"
        outside = await o.call("claim:list", {"roomId": room["slug"]}, timeout=WAIT)
        assert outside["error"]["code"] == "forbidden", outside

        # An expiry is announced too (by the server's sweep, within a few seconds).
        short = await b.call(
            "claim:acquire",
            {"roomId": room["slug"], "resource": resource, "ttlSeconds": 1},
            timeout=WAIT,
        )
        assert short["ok"] is True, short
        assert (await next_event(b, "claim:changed", WAIT))["action"] == "claimed"
        expired = await next_event(b, "claim:changed", WAIT)
        assert expired["action"] == "expired"
        assert expired["claim"]["agentName"] == bob.name

        # The outsider got none of it: its own room's message, sent after all of the above
        # through the same ordered queue, is the first thing it receives.
        r = outsider.post(f"/api/v1/rooms/{own['slug']}/messages", {"body": "after"})
        assert r.status_code == 201, r.text
        while True:
            event = await o.receive(timeout=WAIT)
            assert event[0] != "claim:changed", event
            if event[0] == "message:new":
                assert event[1]["body"] == "after"
                break


async def test_socket_claims_need_a_member(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice)["slug"]
    async with connected(server, bob) as b:
        for event, payload in [
            ("claim:acquire", {"roomId": room, "resource": "x", "ttlSeconds": 5}),
            ("claim:renew", {"roomId": room, "resource": "x", "ttlSeconds": 5}),
            ("claim:release", {"roomId": room, "resource": "x"}),
        ]:
            ack = await b.call(event, payload, timeout=WAIT)
            assert ack["error"]["code"] == "forbidden", (event, ack)
        ack = await b.call("claim:acquire", {"resource": "x", "ttlSeconds": 5}, timeout=WAIT)
        assert ack["error"]["code"] == "invalid_request", ack
        ack = await b.call("claim:list", "not an object", timeout=WAIT)
        assert ack["error"]["code"] == "invalid_request", ack
