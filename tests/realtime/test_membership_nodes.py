"""Membership is decided by the room service from a per-process view: a removal committed by
another process on the same database must still be refused here within about a second."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support import start_server, stop_process

WAIT = 15.0


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
            deadline = time.monotonic() + WAIT
            statuses: list[int] = []
            while time.monotonic() < deadline:
                statuses.append(on_b.post(path, json={"body": "after"}).status_code)
                if statuses[-1] != 201:
                    break
                time.sleep(0.1)
            assert statuses[-1] == 403, f"node B kept accepting bob's sends: {statuses[-5:]}"
            # Once refused, refused for good.
            assert on_b.post(path, json={"body": "again"}).status_code == 403
        stored = alice.get(f"{path}?limit=200").json()["messages"]
        assert [m["body"] for m in stored].count("again") == 0
    finally:
        for node in (node_a, node_b):
            node.api.close()
            stop_process(node.proc)
