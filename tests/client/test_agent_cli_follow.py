"""The README's promises about `agenthub tail --follow` and `agenthub wait`, run as a user would
(subprocesses against a real server, both backends): following resumes by itself across a
server restart, `wait --after SEQ` counts what came after SEQ, and `wait` ignores your own
messages unless `--include-mine`."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.test_agent_cli import Background, agent_env, json_lines, run
from tests.faults import restart_server
from tests.support import Server, start_server, stop_process


@pytest.fixture
def own_server(backend: str, database_url: str, tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, to restart."""
    srv = start_server(backend, database_url, tmp_path / "data", SOCKETIO_PING_INTERVAL="1")
    try:
        yield srv
    finally:
        srv.api.close()
        stop_process(srv.proc)


def test_tail_follow_resumes_across_a_server_restart(own_server: Server, tmp_path: Path) -> None:
    srv = own_server
    alice, bob = srv.new_agent(), srv.new_agent()
    slug = srv.new_room(alice, bob)["slug"]
    bob.post(f"/api/v1/rooms/{slug}/messages", {"body": "before"})
    env = agent_env(tmp_path, alice, srv.base_url)
    with Background(env, "tail", slug, "--lines", "1", "--follow", "--json") as tail:
        assert json.loads(tail.line())["body"] == "before"
        assert bob.post(f"/api/v1/rooms/{slug}/messages", {"body": "live"}).status_code == 201
        assert json.loads(tail.line())["body"] == "live"

        restart_server(srv)
        # Said to the new process, possibly before the tail has reconnected: it catches up.
        for body in ("after restart 1", "after restart 2"):
            r = bob.post(f"/api/v1/rooms/{slug}/messages", {"body": body})
            assert r.status_code == 201, r.text
        got = [json.loads(tail.line()) for _ in range(2)]
        assert [(m["seq"], m["body"]) for m in got] == [
            (3, "after restart 1"),
            (4, "after restart 2"),
        ]
        r = bob.post(f"/api/v1/rooms/{slug}/messages", {"body": "and live again"})
        assert r.status_code == 201
        assert json.loads(tail.line())["seq"] == 5  # nothing repeated, nothing skipped

        tail.proc.send_signal(signal.SIGINT)
        assert tail.exit_code() == 130
        assert tail.stdout.empty()
        assert tail.proc.returncode == 130
        assert not any("Traceback" in line for line in tail.drain_stderr())


def test_wait_after_a_seq_counts_what_came_after_it(server: Server, tmp_path: Path) -> None:
    alice, bob = server.new_agent(), server.new_agent()
    slug = server.new_room(alice, bob)["slug"]
    for body in ("one", "two", "three"):
        alice.post(f"/api/v1/rooms/{slug}/messages", {"body": body})
    env = agent_env(tmp_path, bob, server.base_url)

    # Already there: printed at once (a plain `wait` would wait for a fourth).
    done = run(env, "wait", slug, "--after", "1", "--json", "--timeout", "30")
    assert done.returncode == 0, done.stderr
    assert [(m["seq"], m["body"]) for m in json_lines(done.stdout)] == [(2, "two"), (3, "three")]

    # After the last one: it waits for the next.
    with Background(env, "wait", slug, "--after", "3", "--json", "--timeout", "60") as waiting:
        waiting.stderr_line("waiting for a new message")
        alice.post(f"/api/v1/rooms/{slug}/messages", {"body": "four"})
        got = json.loads(waiting.line())
        assert (got["seq"], got["body"]) == (4, "four")
        assert waiting.exit_code() == 0


def test_wait_ignores_your_own_messages_unless_include_mine(server: Server, tmp_path: Path) -> None:
    alice, bob = server.new_agent(), server.new_agent()
    slug = server.new_room(alice, bob)["slug"]
    env = agent_env(tmp_path, bob, server.base_url)
    with (
        Background(env, "wait", slug, "--json", "--timeout", "60") as others_only,
        Background(env, "wait", slug, "--include-mine", "--json", "--timeout", "60") as mine_too,
    ):
        others_only.stderr_line("waiting for a new message")
        mine_too.stderr_line("waiting for a new message")
        bob.post(f"/api/v1/rooms/{slug}/messages", {"body": "bob thinks aloud"})
        got = json.loads(mine_too.line())
        assert (got["seq"], got["sender"], got["body"]) == (1, bob.name, "bob thinks aloud")
        assert mine_too.exit_code() == 0
        # The plain wait is still waiting: Alice's message is the one that ends it.
        assert others_only.proc.poll() is None
        alice.post(f"/api/v1/rooms/{slug}/messages", {"body": "alice answers"})
        got = json.loads(others_only.line())
        assert (got["seq"], got["sender"]) == (2, alice.name)
        assert others_only.exit_code() == 0
        assert others_only.stdout.empty()  # Bob's own message was not printed
