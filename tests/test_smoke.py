from __future__ import annotations

from tests.support import Agent, Server


def test_health_and_readiness(server: Server) -> None:
    r = server.api.http.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert isinstance(r.json()["uptime"], float)
    r = server.api.http.get("/readyz")
    assert r.json() == {"status": "ready", "checks": {"db": "ok"}}


def test_send_and_read_back(server: Server, alice: Agent, bob: Agent) -> None:
    room = server.new_room(alice, bob)
    r = alice.post(f"/api/v1/rooms/{room['slug']}/messages", {"body": "hello"})
    assert r.status_code == 201, r.text
    msg = r.json()
    assert msg["seq"] == 1
    assert msg["senderId"] == alice.id
    assert msg["clientMsgId"] is None
    assert msg["createdAt"].endswith("Z")
    r = bob.get(f"/api/v1/rooms/{room['id']}/messages")
    assert r.status_code == 200
    assert r.json() == {"messages": [msg], "nextCursor": None}
