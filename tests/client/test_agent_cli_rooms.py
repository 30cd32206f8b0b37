"""`agenthub rooms create` and `agenthub members add|remove|list`: what the MCP tools
create_room and add_member do, from a shell, against a real server on both backends."""

from __future__ import annotations

import json
from pathlib import Path

from tests.client.test_agent_cli import agent_env, assert_clean_failure, run
from tests.support import Agent, Server, uniq


def test_create_a_room_add_and_remove_members(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    env = agent_env(tmp_path, alice, server.base_url)
    slug = uniq("cli")
    made = run(env, "rooms", "create", slug, "--name", "Design review")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"created room {slug} (Design review)"
    listed = run(env, "rooms", "--json")
    assert listed.returncode == 0, listed.stderr
    assert slug in [r["slug"] for r in json.loads(listed.stdout)]

    added = run(env, "members", "add", slug, bob.name)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == f"{bob.name} is a member of {slug}"
    members = run(env, "members", "list", slug, "--json")
    assert sorted(a["name"] for a in json.loads(members.stdout)) == sorted([alice.name, bob.name])
    # Bob now reads the room; the server agrees.
    assert bob.get(f"/api/v1/rooms/{slug}/messages").status_code == 200

    # Bob leaves by himself (an agent may remove only itself, unless an admin).
    refused = run(env, "members", "remove", slug, bob.name)
    assert "only an admin or the agent itself" in assert_clean_failure(refused)
    bob_env = agent_env(tmp_path / "bob", bob, server.base_url)
    left = run(bob_env, "members", "remove", slug, bob.name, "--json")
    assert left.returncode == 0, left.stderr
    assert json.loads(left.stdout) == {"room": slug, "removed": bob.name}
    assert bob.get(f"/api/v1/rooms/{slug}/messages").status_code == 403


def test_refusals_are_one_sentence_with_the_next_step(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    env = agent_env(tmp_path, alice, server.base_url)
    taken = server.new_room(bob)["slug"]
    line = assert_clean_failure(run(env, "rooms", "create", taken))
    assert "already taken" in line
    line = assert_clean_failure(run(env, "rooms", "create", "Not A Slug"))
    assert "slug" in line
    line = assert_clean_failure(run(env, "members", "add", taken, alice.name))
    assert f"not a member of room '{taken}'" in line
    mine = server.new_room(alice)["slug"]
    line = assert_clean_failure(run(env, "members", "add", mine, "nobody-at-all"))
    assert "does not exist" in line
    line = assert_clean_failure(run(env, "members", "add", "no-such-room", bob.name))
    assert "agenthub rooms create" in line
