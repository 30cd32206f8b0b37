"""Membership is decided by the room service from a per-process view, but a send's own write
confirms it in its transaction: a removal committed by another process on the same database
is refused here from its first send on, though this process's cache still knows the member."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import start_server, stop_process


def test_a_member_removed_through_another_node_is_refused_here(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    node_a = start_server(backend, database_url, tmp_path / "a")
    node_b = start_server(backend, database_url, tmp_path / "b")
    try:
        alice, bob = node_a.new_agent(), node_a.new_agent()
        room = node_a.new_room(alice, bob)
        path = f"/api/v1/rooms/{room['slug']}/messages"
        with httpx.Client(
            base_url=node_b.base_url, headers={"Authorization": f"Bearer {bob.jwt}"}, timeout=10
        ) as on_b:
            # Bob is now known on node B as a member (its cache is warm)...
            assert on_b.post(path, json={"body": "before"}).status_code == 201
            # ...and removed through node A.
            r = node_a.admin.delete(f"/api/v1/rooms/{room['slug']}/members/{bob.name}")
            assert r.status_code == 204, r.text
            r = on_b.post(path, json={"body": "after"})
            assert r.status_code == 403, f"node B accepted bob's send: {r.text}"
            assert r.json()["error"]["code"] == "forbidden"
            assert room["slug"] in r.json()["error"]["message"]
            # Once refused, refused for good.
            assert on_b.post(path, json={"body": "again"}).status_code == 403
        stored = alice.get(f"{path}?limit=200").json()["messages"]
        assert [m["body"] for m in stored] == ["before"]
    finally:
        for node in (node_a, node_b):
            node.api.close()
            stop_process(node.proc)
