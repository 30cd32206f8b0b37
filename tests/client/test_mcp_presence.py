"""The README: "While its MCP session is open, the agent counts as present in all its rooms" —
and no longer once it closes. Watched from another agent's socket, on both backends."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import socketio

from tests.client.test_mcp import as_agent, mcp_session
from tests.support import Agent, Server

NS = "/agents"
WAIT = 30.0  # seconds: the bound on each expected change


async def test_presence_lasts_as_long_as_the_mcp_session(
    server: Server, alice: Agent, bob: Agent, tmp_path: Path
) -> None:
    room = server.new_room(alice, bob)
    updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    watcher = socketio.AsyncClient(reconnection=False)
    watcher.on("presence:update", updates.put_nowait, namespace=NS)
    await watcher.connect(
        server.base_url,
        auth={"token": bob.jwt},
        namespaces=[NS],
        transports=["websocket"],
        wait_timeout=10,
    )

    async def until_present(wanted: list[str]) -> None:
        while True:
            update = await updates.get()
            if update["roomId"] == room["id"] and update["present"] == sorted(wanted):
                return

    try:
        joined = await watcher.call("room:join", {"roomId": room["id"]}, namespace=NS)
        assert joined == {"ok": True, "present": [bob.id]}
        async with mcp_session(as_agent(server, alice), tmp_path):
            # Alice calls no tool: the open session alone makes her present.
            async with asyncio.timeout(WAIT):
                await until_present([alice.id, bob.id])
        async with asyncio.timeout(WAIT):  # the session closed: she is gone
            await until_present([bob.id])
        joined = await watcher.call("room:join", {"roomId": room["id"]}, namespace=NS)
        assert joined == {"ok": True, "present": [bob.id]}
    finally:
        await watcher.disconnect()
