"""A room ref (an id, or a slug; the id wins) names the same room over HTTP and over Socket.IO,
even where an old database holds a slug spelled like another room's id."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any
from urllib.parse import quote

from tests.databases import execute, query
from tests.realtime.test_realtime import WAIT, connected
from tests.support import Agent, Server


def outcome_rest(agent: Agent, ref: str, body: str) -> tuple[str, str]:
    """("ok", room id) or ("error", code) for a send over HTTP."""
    r = agent.post(f"/api/v1/rooms/{quote(ref, safe='')}/messages", {"body": body})
    if r.status_code == 201:
        return "ok", r.json()["roomId"]
    return "error", r.json()["error"]["code"]


def outcome_socket(ack: dict[str, Any]) -> tuple[str, str]:
    if ack.get("ok") is True:
        return "ok", ack["message"]["roomId"]
    return "error", ack["error"]["code"]


def stored_in(server: Server, body: str) -> list[str]:
    rows = query(server.database_url, "SELECT room_id FROM messages WHERE body = $1", body)
    return [str(uuid.UUID(str(r[0]))) for r in rows]


async def test_a_socket_send_resolves_a_room_ref_as_http_does(
    server: Server, alice: Agent, bob: Agent
) -> None:
    carol = server.new_agent()
    target = server.new_room(alice, bob)
    squatter = server.new_room(alice)
    orphan = server.new_room(alice)
    # Slugs the API refuses today, as a database from before the rule may hold them: one equal
    # to another room's id, one spelled like an id that no room has.
    free_id = str(uuid.uuid4())
    for slug, room in ((target["id"], squatter), (free_id, orphan)):
        sql = "UPDATE rooms SET slug = $1 WHERE slug = $2"
        execute(server.database_url, sql, slug, room["slug"])
    # Carol joins the squatting room once its slug is the target's id (so a process that
    # learnt slugs from membership events would have learnt that one).
    r = alice.post(f"/api/v1/rooms/{squatter['id']}/members", {"agent": carol.name})
    assert r.status_code == 201, r.text

    cases = [
        (carol, target["id"]),  # not a member of the room the id names
        (carol, squatter["id"]),
        (alice, target["id"]),  # a member of both rooms: the id wins
        (alice, target["id"].upper()),
        (alice, target["slug"]),
        (alice, free_id),  # no room has that id: the slug names the orphan
        (bob, target["id"]),
        (bob, squatter["id"]),
        (bob, "no-such-room"),
    ]
    expected = {
        0: ("error", "forbidden"),
        1: ("ok", squatter["id"]),
        2: ("ok", target["id"]),
        3: ("ok", target["id"]),
        4: ("ok", target["id"]),
        5: ("ok", orphan["id"]),
        6: ("ok", target["id"]),
        7: ("error", "forbidden"),
        8: ("error", "not_found"),
    }
    async with contextlib.AsyncExitStack() as stack:
        sockets = {
            agent.id: await stack.enter_async_context(connected(server, agent))
            for agent in (alice, bob, carol)
        }
        for i, (agent, ref) in enumerate(cases):
            rest_body, socket_body = f"rest-{uuid.uuid4()}", f"socket-{uuid.uuid4()}"
            over_http = outcome_rest(agent, ref, rest_body)
            ack = await sockets[agent.id].call(
                "message:send", {"roomId": ref, "body": socket_body}, timeout=WAIT
            )
            over_socket = outcome_socket(ack)
            assert over_socket == over_http, (i, agent.name, ref, over_http, over_socket)
            assert over_http == expected[i], (i, ref, over_http)
            # Stored where the answer says, or nowhere.
            where = [over_http[1]] if over_http[0] == "ok" else []
            assert stored_in(server, rest_body) == where, (i, ref)
            assert stored_in(server, socket_body) == where, (i, ref)


async def test_a_removed_member_is_refused_at_once_from_every_edge(
    server: Server, admin: Agent, alice: Agent, bob: Agent
) -> None:
    """Sends already succeeded by id and by slug over both transports (so the server knows
    Bob as a member without asking the database); his removal must refuse the very next send
    everywhere, and re-adding him must let him send again."""
    room = server.new_room(alice, bob)
    refs = (room["id"], room["slug"])
    members = f"/api/v1/rooms/{room['id']}/members"

    sent: dict[str, list[str]] = {}  # body -> where it must be stored

    async def outcomes(sock: Any) -> list[tuple[str, str]]:
        found = []
        for ref in refs:
            rest_body, socket_body = f"rest-{uuid.uuid4()}", f"socket-{uuid.uuid4()}"
            found.append(outcome_rest(bob, ref, rest_body))
            ack = await sock.call(
                "message:send", {"roomId": ref, "body": socket_body}, timeout=WAIT
            )
            found.append(outcome_socket(ack))
            for body, result in ((rest_body, found[-2]), (socket_body, found[-1])):
                sent[body] = [result[1]] if result[0] == "ok" else []
        return found

    async with connected(server, bob) as b:
        assert await outcomes(b) == [("ok", room["id"])] * 4
        assert admin.delete(f"{members}/{bob.name}").status_code == 204
        assert await outcomes(b) == [("error", "forbidden")] * 4
        joined = await b.call("room:join", {"roomId": room["slug"]}, timeout=WAIT)
        assert joined["ok"] is False
        assert joined["error"]["code"] == "forbidden"
        assert alice.post(members, {"agent": bob.name}).status_code == 201
        assert await outcomes(b) == [("ok", room["id"])] * 4
    for body, where in sent.items():
        assert stored_in(server, body) == where, body
