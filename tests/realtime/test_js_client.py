"""Compatibility with JavaScript agents: the official socket.io-client 4.x, run by Node.js."""

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
    """Path to node once socket.io-client is installed (`make test` runs npm ci)."""
    node = shutil.which("node")
    installed = (JS_DIR / "node_modules" / "socket.io-client").is_dir()
    if node and installed:
        return node
    why = "Node.js is not installed" if not node else "tests/js/node_modules is missing (npm ci)"
    if os.environ.get("AGENTHUB_REQUIRE_NODE") == "1":
        pytest.fail(f"the JavaScript client test cannot run: {why}")
    pytest.skip(f"the JavaScript client test needs Node.js and npm: {why}")


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_official_js_client_handshake_send_ack_and_message_new(
    server: Server, alice: Agent, bob: Agent, transport: str
) -> None:
    node = node_ready()
    room = server.new_room(alice, bob)
    done = subprocess.run(
        [node, str(JS_DIR / "smoke.mjs"), server.base_url, alice.jwt, room["slug"], transport],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["refused"] == "unauthorized"
    assert seen["connected"] == {"agentId": alice.id, "rooms": [room["id"]]}
    ack = seen["ack"]
    assert ack["ok"] is True
    assert ack["message"]["body"] == f"hello from JS over {transport}"
    assert ack["message"]["clientMsgId"] == f"js-{transport}"
    assert ack["message"]["seq"] == 1
    assert seen["messageNew"] == ack["message"]
    stored = bob.get(f"/api/v1/rooms/{room['id']}/messages").json()["messages"]
    assert stored == [ack["message"]]
