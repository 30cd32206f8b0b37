"""Messages over real HTTP: the message object, seq order, idempotency, history and limits."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import httpx
import pytest

from tests.databases import query
from tests.support import Agent, Server, assert_error, uniq

MESSAGE_KEYS = {"id", "roomId", "seq", "senderId", "body", "clientMsgId", "createdAt"}
# Coordination (docs/API.md, "Coordination") adds these to every message object.
MESSAGE_KEYS |= {"replyTo", "mentions", "acks"}
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
MAX_MESSAGE_BYTES = 65536
GATHER_TIMEOUT_S = 120


def count(server: Server, sql: str, *args: Any) -> int:
    return int(query(server.database_url, sql, *args)[0][0])


def stored_messages(server: Server, slug: str) -> int:
    return count(
        server,
        "SELECT count(*) FROM messages m JOIN rooms r ON r.id = m.room_id WHERE r.slug = $1",
        slug,
    )


def stored_seqs(server: Server, slug: str) -> list[int]:
    rows = query(
        server.database_url,
        "SELECT m.seq FROM messages m JOIN rooms r ON r.id = m.room_id WHERE r.slug = $1",
        slug,
    )
    return sorted(int(r[0]) for r in rows)


def stored_bodies(server: Server, slug: str) -> list[str]:
    rows = query(
        server.database_url,
        "SELECT m.body FROM messages m JOIN rooms r ON r.id = m.room_id WHERE r.slug = $1 "
        "ORDER BY m.seq",
        slug,
    )
    return [str(r[0]) for r in rows]


def last_seq(server: Server, slug: str) -> int:
    return count(server, "SELECT last_seq FROM rooms WHERE slug = $1", slug)


def message_sent_audits(server: Server, room_id: str) -> int:
    """message-sent audit rows whose payload names the room."""
    if server.backend == "sqlite":
        sql = (
            "SELECT count(*) FROM audit_events WHERE type = 'message-sent' "
            "AND json_extract(payload, '$.roomId') = $1"
        )
    else:
        sql = (
            "SELECT count(*) FROM audit_events WHERE type = 'message-sent' "
            "AND payload->>'roomId' = $1"
        )
    return count(server, sql, room_id)


def send(agent: Agent, room: str, body: str, client_msg_id: str | None = None) -> httpx.Response:
    payload: dict[str, Any] = {"body": body}
    if client_msg_id is not None:
        payload["clientMsgId"] = client_msg_id
    return agent.post(f"/api/v1/rooms/{room}/messages", payload)


def send_ok(agent: Agent, room: str, body: str, client_msg_id: str | None = None) -> dict[str, Any]:
    r = send(agent, room, body, client_msg_id)
    assert r.status_code == 201, r.text
    message: dict[str, Any] = r.json()
    return message


def history(agent: Agent, room: str, **params: Any) -> dict[str, Any]:
    r = agent.get(f"/api/v1/rooms/{room}/messages", params=params)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    assert set(page) == {"messages", "nextCursor"}
    return page


def seqs(page: dict[str, Any]) -> list[int]:
    return [m["seq"] for m in page["messages"]]


def async_client(server: Server, agent: Agent) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {agent.jwt}"},
        timeout=60,
    )


# --- the message object -------------------------------------------------------------------


def test_send_returns_the_message_object(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)
    r = send(alice, room["slug"], "Hello", "c-123")
    assert r.status_code == 201, r.text
    msg = r.json()
    assert set(msg) == MESSAGE_KEYS
    assert str(uuid.UUID(msg["id"])) == msg["id"]
    assert msg["roomId"] == room["id"]
    assert msg["seq"] == 1
    assert msg["senderId"] == alice.id
    assert msg["body"] == "Hello"
    assert msg["clientMsgId"] == "c-123"
    assert RFC3339_Z.match(msg["createdAt"]), msg["createdAt"]

    plain = send_ok(bob, room["id"], "no client id")
    assert plain["clientMsgId"] is None
    assert plain["senderId"] == bob.id
    assert plain["seq"] == 2
    assert history(alice, room["slug"])["messages"] == [plain, msg]
    assert stored_messages(server, room["slug"]) == 2


def test_message_is_audited(server: Server, admin: Agent, alice: Agent) -> None:
    room = server.new_room(alice)
    msg = send_ok(alice, room["slug"], "audit me")
    r = admin.get("/api/v1/audit-events", params={"type": "message-sent", "agent": alice.id})
    events = r.json()["events"]
    assert len(events) == 1
    assert events[0]["agentId"] == alice.id
    assert msg["id"] in events[0]["payload"].values()


def test_seq_starts_at_one_and_grows_by_one(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)
    other = server.new_room(bob)
    got = [send_ok(alice if i % 2 else bob, room["slug"], f"m{i}")["seq"] for i in range(1, 8)]
    assert got == [1, 2, 3, 4, 5, 6, 7]
    # Each room counts on its own.
    assert send_ok(bob, other["slug"], "elsewhere")["seq"] == 1
    assert send_ok(alice, room["id"], "m8")["seq"] == 8
    assert stored_seqs(server, room["slug"]) == list(range(1, 9))
    assert last_seq(server, room["slug"]) == 8
    assert last_seq(server, other["slug"]) == 1


@pytest.mark.parametrize(
    "body",
    [
        "emoji \U0001f600\U0001f680 and a family \U0001f468\u200d\U0001f469\u200d\U0001f467",
        "\u4e2d\u6587\u3001\u65e5\u672c\u8a9e\u3001\ud55c\uad6d\uc5b4",
        "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 RTL \u200f mark",
        "combining: e\u0301 a\u0308 n\u0303 \u1e9b\u0323 (not normalized)",
        'lines\nand\ttabs\r\n and \\ backslashes and "quotes"',
        "\U0001d4d7\U0001d4ee\U0001d4f5\U0001d4f5\U0001d4f8 astral math",
        " leading and trailing spaces ",
    ],
)
def test_unicode_bodies_round_trip(server: Server, alice: Agent, body: str) -> None:
    room = server.new_room(alice)
    msg = send_ok(alice, room["slug"], body)
    assert msg["body"] == body
    assert history(alice, room["slug"])["messages"][0]["body"] == body
    assert stored_bodies(server, room["slug"]) == [body]


# --- idempotency --------------------------------------------------------------------------


def test_repeat_with_same_client_msg_id_returns_the_original(server: Server, alice: Agent) -> None:
    room = server.new_room(alice)
    first = send(alice, room["slug"], "once", "c-1")
    assert first.status_code == 201
    again = send(alice, room["slug"], "once", "c-1")
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    # The first stored message wins, even when the repeat's body differs.
    third = send(alice, room["id"], "a different body", "c-1")
    assert third.status_code == 200, third.text
    assert third.json() == first.json()

    assert stored_messages(server, room["slug"]) == 1
    assert last_seq(server, room["slug"]) == 1
    assert message_sent_audits(server, room["id"]) == 1
    assert history(alice, room["slug"])["messages"] == [first.json()]
    # No seq was burnt by the repeats.
    assert send_ok(alice, room["slug"], "next")["seq"] == 2
    assert send_ok(alice, room["slug"], "next", "c-2")["seq"] == 3


def test_same_client_msg_id_from_another_sender_or_room_is_new(
    server: Server, alice: Agent, bob: Agent
) -> None:
    room = server.new_room(alice, bob)
    other = server.new_room(alice)
    mine = send_ok(alice, room["slug"], "mine", "shared-id")
    theirs = send(bob, room["slug"], "theirs", "shared-id")
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["id"] != mine["id"]
    assert theirs.json()["seq"] == 2
    assert theirs.json()["senderId"] == bob.id
    elsewhere = send(alice, other["slug"], "elsewhere", "shared-id")
    assert elsewhere.status_code == 201, elsewhere.text
    assert elsewhere.json()["seq"] == 1
    assert elsewhere.json()["roomId"] == other["id"]
    assert stored_messages(server, room["slug"]) == 2
    assert stored_messages(server, other["slug"]) == 1


def test_client_msg_id_length(server: Server, alice: Agent) -> None:
    room = server.new_room(alice)
    assert send_ok(alice, room["slug"], "x", "k" * 128)["clientMsgId"] == "k" * 128
    for bad in ("k" * 129, "k" * 10_000, ""):
        r = send(alice, room["slug"], "x", bad)
        assert "clientMsgId" in assert_error(r, 400, "invalid_request")
    assert stored_messages(server, room["slug"]) == 1


# --- concurrency --------------------------------------------------------------------------


async def test_concurrent_sends_get_gapless_unique_seqs(server: Server) -> None:
    senders = [server.new_agent() for _ in range(5)]
    room = server.new_room(senders[0], *senders[1:])
    clients = [async_client(server, a) for a in senders]
    url = f"/api/v1/rooms/{room['slug']}/messages"
    try:
        async with asyncio.timeout(GATHER_TIMEOUT_S):
            responses = await asyncio.gather(
                *(clients[i % 5].post(url, json={"body": f"msg {i}"}) for i in range(50))
            )
    finally:
        for c in clients:
            await c.aclose()
    assert [r.status_code for r in responses] == [201] * 50, [r.text for r in responses[:3]]
    sent = [r.json() for r in responses]
    assert sorted(m["seq"] for m in sent) == list(range(1, 51))
    assert len({m["id"] for m in sent}) == 50

    def stored() -> tuple[list[int], int, int]:
        return (
            stored_seqs(server, room["slug"]),
            last_seq(server, room["slug"]),
            message_sent_audits(server, room["id"]),
        )

    seq_list, last, audits = await asyncio.to_thread(stored)
    assert seq_list == list(range(1, 51))
    assert last == 50
    assert audits == 50

    page = await asyncio.to_thread(history, senders[0], room["slug"], afterSeq=0, limit=200)
    by_seq = {m["seq"]: m for m in sent}
    assert page["messages"] == [by_seq[s] for s in range(1, 51)]


async def test_concurrent_repeats_store_one_message(server: Server, alice: Agent) -> None:
    room = server.new_room(alice)
    url = f"/api/v1/rooms/{room['slug']}/messages"
    async with async_client(server, alice) as client, asyncio.timeout(GATHER_TIMEOUT_S):
        responses = await asyncio.gather(
            *(client.post(url, json={"body": "only once", "clientMsgId": "dup"}) for _ in range(20))
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert all(r.json()["seq"] == 1 for r in responses)

    def stored() -> tuple[int, int, int]:
        return (
            stored_messages(server, room["slug"]),
            last_seq(server, room["slug"]),
            message_sent_audits(server, room["id"]),
        )

    assert await asyncio.to_thread(stored) == (1, 1, 1)


# --- history ------------------------------------------------------------------------------


def test_history_newest_first_with_cursor(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)
    sent = [send_ok(alice, room["slug"], f"m{i}") for i in range(1, 13)]
    everything = history(bob, room["slug"])
    assert everything["messages"] == list(reversed(sent))
    assert everything["nextCursor"] is None

    page = history(bob, room["slug"], limit=5)
    assert seqs(page) == [12, 11, 10, 9, 8]
    assert isinstance(page["nextCursor"], str)
    page = history(bob, room["slug"], limit=5, cursor=page["nextCursor"])
    assert seqs(page) == [7, 6, 5, 4, 3]
    page = history(bob, room["id"], limit=5, cursor=page["nextCursor"])
    assert seqs(page) == [2, 1]
    assert page["nextCursor"] is None
    assert page["messages"] == [sent[1], sent[0]]


def test_history_without_a_trailing_empty_page(server: Server, alice: Agent) -> None:
    room = server.new_room(alice)
    for i in range(10):
        send_ok(alice, room["slug"], f"m{i}")
    page = history(alice, room["slug"], limit=5)
    assert seqs(page) == [10, 9, 8, 7, 6]
    page = history(alice, room["slug"], limit=5, cursor=page["nextCursor"])
    assert seqs(page) == [5, 4, 3, 2, 1]
    assert page["nextCursor"] is None
    assert history(alice, room["slug"], limit=10) == {
        "messages": history(alice, room["slug"])["messages"],
        "nextCursor": None,
    }


def test_history_of_an_empty_room(server: Server, alice: Agent) -> None:
    room = server.new_room(alice)
    assert history(alice, room["slug"]) == {"messages": [], "nextCursor": None}
    assert history(alice, room["slug"], afterSeq=0) == {"messages": [], "nextCursor": None}


def test_history_limits_at_the_bounds(server: Server, alice: Agent) -> None:
    room = server.new_room(alice)
    for i in range(3):
        send_ok(alice, room["slug"], f"m{i}")
    page = history(alice, room["slug"], limit=1)
    assert seqs(page) == [3]
    assert page["nextCursor"] is not None
    assert seqs(history(alice, room["slug"], limit=200)) == [3, 2, 1]


async def test_paging_while_messages_arrive(server: Server) -> None:
    reader, *writers = [server.new_agent() for _ in range(4)]
    room = server.new_room(reader, *writers)
    url = f"/api/v1/rooms/{room['slug']}/messages"
    prefill = [send_ok(writers[i % 3], room["slug"], f"old {i}") for i in range(60)]
    assert prefill[-1]["seq"] == 60

    clients = [async_client(server, w) for w in writers]
    # The writers send only as the reader lets them: a few messages arrive between every two
    # pages (at least one of them stored before the next page is read, the others racing it),
    # whatever the machine's speed.
    permits = asyncio.Semaphore(0)
    stored_count = 0
    progress = asyncio.Event()

    async def flood_parallel() -> list[httpx.Response]:
        # Three writers, each sending its share one after another: a steady stream.
        async def one(w: int) -> list[httpx.Response]:
            nonlocal stored_count
            out = []
            for i in range(w, 100, 3):
                await permits.acquire()
                out.append(await clients[w].post(url, json={"body": f"new {w}.{i}"}))
                stored_count += 1
                progress.set()
            return out

        parts = await asyncio.gather(*(one(w) for w in range(3)))
        return [r for part in parts for r in part]

    released = 0

    async def let_through(count: int, stored: int) -> None:
        """Allow `count` more sends, then wait until `stored` sends are done."""
        nonlocal released
        count = min(count, 100 - released)
        released += count
        for _ in range(count):
            permits.release()
        while stored_count < stored:
            progress.clear()
            await progress.wait()

    pages: list[dict[str, Any]] = []
    try:
        async with async_client(server, reader) as rc, asyncio.timeout(GATHER_TIMEOUT_S):
            writer = asyncio.create_task(flood_parallel())
            await let_through(5, stored=5)  # 5 new ones before the first page
            params: dict[str, Any] = {"limit": 7}
            while True:
                r = await rc.get(url, params=params)
                assert r.status_code == 200, r.text
                pages.append(r.json())
                cursor = r.json()["nextCursor"]
                if cursor is None:
                    break
                params = {"limit": 7, "cursor": cursor}
                await let_through(5, stored=stored_count + 1)
            during_paging = stored_count
            await let_through(100, stored=0)
            sent = await writer
    finally:
        for c in clients:
            await c.aclose()

    assert all(r.status_code == 201 for r in sent)
    assert all(len(p["messages"]) <= 7 for p in pages)
    read = [m["seq"] for p in pages for m in p["messages"]]
    top = read[0]
    assert top == 65  # the first page starts at the newest message when it was read
    assert during_paging > 5 + len(pages) - 2, "no message arrived between the pages"
    # Every message that existed at the first page, newest first, each exactly once.
    assert read == list(range(top, 0, -1))
    by_seq = {m["seq"]: m for p in pages for m in p["messages"]}
    assert [by_seq[m["seq"]] for m in prefill] == prefill
    # What arrived meanwhile is what afterSeq catches up on.
    caught_up = await asyncio.to_thread(history, reader, room["slug"], afterSeq=top, limit=200)
    assert seqs(caught_up) == list(range(top + 1, 161))
    assert await asyncio.to_thread(stored_seqs, server, room["slug"]) == list(range(1, 161))


def test_after_seq_returns_oldest_first(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)
    sent = [send_ok(alice, room["slug"], f"m{i}") for i in range(1, 11)]
    page = history(bob, room["slug"], afterSeq=3, limit=4)
    assert page == {"messages": sent[3:7], "nextCursor": None}
    page = history(bob, room["slug"], afterSeq=7)
    assert page == {"messages": sent[7:], "nextCursor": None}
    page = history(bob, room["id"], afterSeq=0)
    assert page == {"messages": sent, "nextCursor": None}
    assert history(bob, room["slug"], afterSeq=10) == {"messages": [], "nextCursor": None}
    assert history(bob, room["slug"], afterSeq=999) == {"messages": [], "nextCursor": None}

    # Catching up page by page with the last seq received.
    got: list[int] = []
    last = 0
    for _ in range(10):
        page = history(bob, room["slug"], afterSeq=last, limit=3)
        assert page["nextCursor"] is None
        if not page["messages"]:
            break
        assert len(page["messages"]) <= 3
        got.extend(seqs(page))
        last = got[-1]
    assert got == list(range(1, 11))


def test_cursor_and_after_seq_together_is_400(server: Server, alice: Agent) -> None:
    room = server.new_room(alice)
    for i in range(4):
        send_ok(alice, room["slug"], f"m{i}")
    cursor = history(alice, room["slug"], limit=2)["nextCursor"]
    assert cursor is not None
    r = alice.get(
        f"/api/v1/rooms/{room['slug']}/messages", params={"cursor": cursor, "afterSeq": 1}
    )
    message = assert_error(r, 400, "invalid_request")
    assert "cursor" in message
    assert "afterSeq" in message


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "!!!!"}, "cursor"),
        ({"cursor": "x" * 500}, "cursor"),
        ({"cursor": "YTE6MDE5"}, "cursor"),  # a well-formed cursor of another list
        ({"afterSeq": "-1"}, "afterSeq"),
        ({"afterSeq": "abc"}, "afterSeq"),
        ({"afterSeq": "1.5"}, "afterSeq"),
        ({"afterSeq": "99999999999999999999999"}, "afterSeq"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": ""}, "limit"),
    ],
)
def test_invalid_history_parameters_are_400(
    server: Server, alice: Agent, params: dict[str, str], name: str
) -> None:
    room = server.new_room(alice)
    send_ok(alice, room["slug"], "one")
    r = alice.get(f"/api/v1/rooms/{room['slug']}/messages", params=params)
    assert name in assert_error(r, 400, "invalid_request")


# --- size limits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "repeat", "tail"),
    [
        ("a", 65536, ""),  # 1 byte each
        ("\u00e9", 32768, ""),  # 2 bytes each
        ("\u20ac", 21845, "a"),  # 3 bytes each, plus one
        ("\U0001f600", 16384, ""),  # 4 bytes each
    ],
)
def test_body_of_exactly_max_bytes_is_accepted_one_more_is_413(
    server: Server, alice: Agent, unit: str, repeat: int, tail: str
) -> None:
    room = server.new_room(alice)
    body = unit * repeat + tail
    assert len(body.encode()) == MAX_MESSAGE_BYTES
    msg = send_ok(alice, room["slug"], body)
    assert msg["body"] == body
    assert stored_bodies(server, room["slug"]) == [body]

    over = body + "b"
    assert len(over.encode()) == MAX_MESSAGE_BYTES + 1
    r = send(alice, room["slug"], over)
    assert "body" in assert_error(r, 413, "payload_too_large")
    # The last character pushes it over: multi-byte characters count by their bytes.
    over = unit * (repeat - 1) + tail + ("\U0001f600" if len(unit.encode()) < 4 else "\u20ac\u20ac")
    assert len(over.encode()) > MAX_MESSAGE_BYTES
    assert len(over) <= MAX_MESSAGE_BYTES
    r = send(alice, room["slug"], over, "too-big")
    assert_error(r, 413, "payload_too_large")
    assert stored_messages(server, room["slug"]) == 1
    assert last_seq(server, room["slug"]) == 1
    assert message_sent_audits(server, room["id"]) == 1


def test_empty_or_nul_body_is_400(server: Server, alice: Agent) -> None:
    room = server.new_room(alice)
    for body in ("", "a\x00b", "\x00"):
        r = send(alice, room["slug"], body)
        assert "body" in assert_error(r, 400, "invalid_request")
    assert stored_messages(server, room["slug"]) == 0
    assert last_seq(server, room["slug"]) == 0


def test_uniq_rooms_do_not_share_history(server: Server, alice: Agent) -> None:
    one = server.new_room(alice, slug=uniq("hist"))
    two = server.new_room(alice, slug=uniq("hist"))
    a = send_ok(alice, one["slug"], "in one")
    b = send_ok(alice, two["slug"], "in two")
    assert history(alice, one["slug"])["messages"] == [a]
    assert history(alice, two["slug"])["messages"] == [b]
