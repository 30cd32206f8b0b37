"""The hub's /mcp endpoint with the official MCP TypeScript SDK (npm `@modelcontextprotocol/sdk`,
run by Node.js): two agents converse, a long wait survives the client's request timeout through
progress notifications (`resetTimeoutOnProgress`), and a refused argument is a tool error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import Agent, Server

JS_DIR = Path(__file__).parent.parent / "js"


def node_ready() -> str:
    """Path to node once the MCP SDK is installed (`make test` runs npm ci)."""
    node = shutil.which("node")
    installed = (JS_DIR / "node_modules" / "@modelcontextprotocol" / "sdk").is_dir()
    if node and installed:
        return node
    why = "Node.js is not installed" if not node else "tests/js/node_modules is missing (npm ci)"
    if os.environ.get("AGENTHUB_REQUIRE_NODE") == "1":
        pytest.fail(f"the MCP TypeScript client test cannot run: {why}")
    pytest.skip(f"the MCP TypeScript client test needs Node.js and npm: {why}")


def test_official_typescript_mcp_client(server: Server, alice: Agent, bob: Agent) -> None:
    node = node_ready()
    room = server.new_room(alice, bob)["slug"]
    done = subprocess.run(
        [node, str(JS_DIR / "mcp_http.mjs"), server.base_url, alice.token, bob.token, room],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["sessionId"] is True
    assert "wait_for_messages" in seen["tools"]
    assert seen["outputSchemas"] is True
    assert seen["asked"]["seq"] == 1
    heard = seen["heard"]
    assert [(m["sender"], m["body"]) for m in heard["messages"]] == [
        (alice.name, "hello from the TypeScript SDK")
    ]
    assert heard["timedOut"] is False
    # 14 s of waiting under a 7 s request timeout: alive only through progress.
    assert seen["kept"]["result"]["timedOut"] is True
    assert seen["kept"]["progress"] >= 2
    assert "timed out" in seen["cut"].lower()
    assert seen["badArgument"]["isError"] is True
    assert "argument 'limit'" in seen["badArgument"]["text"]
    stored = bob.get(f"/api/v1/rooms/{room}/messages").json()["messages"]
    assert [m["body"] for m in stored] == ["hello from the TypeScript SDK"]
